"""Scenario ``fault-vs-mprotect``: a device write fault races mprotect(PROT_READ).

mprotect downgrades the CPU PTE inside an MMU_NOTIFY_PROTECTION_VMA
invalidation (``change_protection``); a device that keeps or gains a
writable mapping of the page afterwards writes memory the process made
read-only.

On prepatch and v5.3 the write fault after mprotect never ends: v5.3's
``hmm_range_fault`` walks a read-only VMA for a write again and again (the
``hang`` of ``fault-on-readonly-vma``, fixed in v5.4 by c18ce674d548), for
any driver.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.types import PAGE_SIZE, VM_READ
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
    fault_and_read,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    mirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup()

    async def protect() -> int:
        return await do_mprotect_pkey(world.mm, BASE, PAGE_SIZE, VM_READ)

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(mirror, write=True)

    return WorldInstance(
        world=world, setup=setup, actors=[("mprotect", protect), ("device", device)]
    )


RACE = race(
    name="fault-vs-mprotect",
    title="A device write fault races mprotect(PROT_READ) of the page",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0).  Actors: 'mprotect' makes BASE read-only (blockable "
        "MMU_NOTIFY_PROTECTION_VMA invalidation under mmap_sem write); "
        "'device' faults BASE for write through the driver (one retry), then "
        "writes it through its page table.  Checks that no device write "
        "reaches a page the CPU maps read-only."
    ),
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": ("hang",),
            "v5.3": ("hang",),
            "v5.5": (),
            "current": (),
        },
    )
)
