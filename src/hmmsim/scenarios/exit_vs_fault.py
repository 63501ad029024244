"""Scenario ``exit-vs-fault``: process exit races a driver's device fault."""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.fork import mmput
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    WorldFactory,
    WorldInstance,
    fault_and_read,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    dmirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup()

    async def exit_task() -> None:
        # exit_mm: the process drops its own mm_users reference.
        await mmput(world.mm)

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(dmirror)

    return WorldInstance(
        world=world, setup=setup, actors=[("exit", exit_task), ("device", device)]
    )


RACE = race(
    name="exit-vs-fault",
    title="Process exit (last mmput, exit_mmap, hmm_release) races a device fault",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0).  Actors: 'exit' drops the process's mm_users reference "
        "(the last one unless the driver holds one), which runs exit_mmap: "
        "mmu_notifier_release -> hmm_release -> the mirror's release, then "
        "unmaps everything; 'device' faults BASE through the reference "
        "driver (mmget_not_zero first, one retry) and reads it.  Exercises "
        "the lifetime rules: ranges pin the mm, release stops the device."
    ),
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": (),
            "v5.3": (),
            "v5.5": (),
            "current": (),
        },
    )
)
