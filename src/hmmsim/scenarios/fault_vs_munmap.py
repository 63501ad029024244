"""Scenario ``fault-vs-munmap``: a device fault races munmap while memory is reused."""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.mmap import sys_munmap, vm_mmap
from hmmsim.kernel.types import PAGE_SIZE, VM_READ, VM_WRITE
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
    fault_and_read,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]

#: The process's second buffer, allocated while the first is unmapped.
OTHER = BASE + 16 * PAGE_SIZE


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    dmirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup()
        await vm_mmap(world.mm, OTHER, PAGE_SIZE, VM_READ | VM_WRITE)

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(dmirror)

    async def unmap() -> int:
        return await sys_munmap(world.mm, BASE, PAGE_SIZE)

    async def allocate() -> int:
        # Touching a new page allocates a frame: the LIFO free list hands out
        # the frame munmap freed, if it came first.
        return await cpu_store(world.mm, OTHER, 0x99)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("device", device), ("munmap", unmap), ("cpu", allocate)],
    )


RACE = race(
    name="fault-vs-munmap",
    title="A device fault races munmap of the same address while memory is reused",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, a second "
        "mapping at OTHER not touched yet, one mirror (gpu0).  Actors: "
        "'device' faults BASE through the driver (one retry) and "
        "reads it through its page table; 'munmap' unmaps BASE; 'cpu' "
        "writes OTHER, which allocates a page and reuses the frame munmap "
        "freed.  Exercises the blockable invalidation and the range "
        "validity check under mmap_sem."
    ),
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": ("null-deref",),
            "v5.3": ("null-deref",),
            "v5.5": (),
            "current": (),
        },
    )
)
