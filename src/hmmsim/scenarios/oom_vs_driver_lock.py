"""Scenario ``oom-vs-driver-lock``: the OOM reaper meets a busy driver lock.

The seed patch's second bug (kernel-reference §4.2): a mirror's
``sync_cpu_device_pagetables`` cannot take its driver lock without sleeping,
returns -EAGAIN, and before the patch HMM loses that error.
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

#: Reaper attempts (MAX_OOM_REAP_RETRIES is 10; two already show the retry).
REAP_ATTEMPTS = 2


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    dmirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup(device_maps=[0], oom_victim=True)

    async def driver() -> None:
        # Unrelated device work under the driver's update lock.
        await busy_with(dmirror.update)

    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)

    async def device() -> tuple[int | None, int | None]:
        first = await device_access(dmirror.device, BASE, False)
        second = await device_access(dmirror.device, BASE, False)
        return first, second

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("driver", driver), ("oom_reaper", reaper), ("device", device)],
    )


RACE = race(
    name="oom-vs-driver-lock",
    title="The OOM reaper invalidates while the driver holds its update lock",
    description=(
        "Set-up: one anonymous page at BASE, written by the CPU; one mirror "
        "(gpu0) whose device maps the page after a completed fault; the "
        "process is an OOM victim.  Actors: 'driver' holds its update lock "
        "for unrelated device work; 'oom_reaper' runs oom_reap_task with "
        f"{REAP_ATTEMPTS} attempts; 'device' reads BASE twice through its "
        "page table.  Exercises the non-blocking invalidation path: "
        "sync_cpu_device_pagetables must return -EAGAIN when the lock is "
        "taken, and HMM must pass it on so the reaper skips the VMA."
    ),
    config={"max_steps": 3000},
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
