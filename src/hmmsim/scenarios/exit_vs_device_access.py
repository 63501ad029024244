"""Scenario ``exit-vs-device-access``: process exit while the device reads the page.

The last ``mmput`` runs ``exit_mmap``: ``mmu_notifier_release`` first (the
driver's release, or for interval notifiers an invalidation of the whole
address space), then the page tables are torn down and the pages freed.  A
device that still maps a page after that reads freed memory.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.device import device_access
from hmmsim.kernel.fork import mmput
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    mirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup(device_maps=[0])

    async def exit_task() -> None:
        # exit_mm: the process drops its own mm_users reference.
        await mmput(world.mm)

    async def device() -> tuple[int | None, int | None]:
        first = await device_access(mirror.device, BASE, False)
        second = await device_access(mirror.device, BASE, False)
        return first, second

    return WorldInstance(
        world=world, setup=setup, actors=[("exit", exit_task), ("device", device)]
    )


RACE = race(
    name="exit-vs-device-access",
    title="Process exit (exit_mmap) while the device reads the page it maps",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0) whose device maps it after a completed fault.  Actors: 'exit' "
        "drops the process's last mm_users reference (exit_mmap: "
        "mmu_notifier_release, then unmap and free every page); 'device' "
        "reads BASE twice through its page table.  Checks that release (or "
        "the release invalidation) stops the device before the pages are "
        "freed."
    ),
)(build)

SCENARIO = register(
    race_scenario(RACE, expect={"prepatch": (), "v5.3": (), "v5.5": (), "current": ()})
)
