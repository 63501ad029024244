"""Scenario ``oom-two-mirrors``: the first of two mirrors refuses a reap.

Kernel-reference §4.3: with two mirrors on one mm, the first returns -EAGAIN
to a non-blocking invalidation; before the seed patch the second is never
called and the start still reports success.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.device import device_access
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
    busy_with,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]

REAP_ATTEMPTS = 2


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=2)
    first, second = world.mirrors

    async def setup() -> None:
        # HMM calls the mirror registered last first (list_add at the head):
        # bind gpu1 then gpu0, so gpu0's mirror is the first one called.
        await world.setup(bind=[1, 0], device_maps=[0, 1], oom_victim=True)

    async def driver0() -> None:
        await busy_with(first.update)

    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)

    async def gpu0() -> int | None:
        return await device_access(first.device, BASE, False)

    async def gpu1() -> int | None:
        return await device_access(second.device, BASE, False)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[
            ("driver0", driver0),
            ("oom_reaper", reaper),
            ("gpu0", gpu0),
            ("gpu1", gpu1),
        ],
    )


RACE = race(
    name="oom-two-mirrors",
    title="Two mirrors on one mm; the first cannot finish a non-blocking invalidation",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; two mirrors "
        "whose devices (gpu0, gpu1) both map it; gpu0's mirror is first in "
        "hmm->mirrors; the process is an OOM victim.  Actors: 'driver0' "
        "holds gpu0's update lock for unrelated work; 'oom_reaper' runs "
        f"oom_reap_task with {REAP_ATTEMPTS} attempts; 'gpu0' and 'gpu1' "
        "each read BASE once through their page tables.  Exercises the "
        "mirror loop: one -EAGAIN must fail the whole start, whatever the "
        "other mirrors did."
    ),
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": (
                "sleep-in-nonblockable",
                "notifier-contract",
                "device-use-after-free",
                "device-stale-mapping",
            ),
            "v5.3": (),
            "v5.5": (),
            "current": (),
        },
    )
)
