"""Scenario ``fault-vs-oom-reap``: a whole invalidation between snapshot and check.

The v5.3 ``range->valid`` flag is set back to true by the last
invalidate_range_end, so a driver that checks hmm_range_valid after an
entire start/end pair ran since its walk cannot tell (Jason Gunthorpe,
"mm/hmm: allow hmm_range to be used with a mmu_interval_notifier or
hmm_mirror", commit 04ec32fbc2b2, v5.5 — the reason for the sequence counts
of mmu_interval_notifier).  The OOM reaper can run that pair while the
driver holds mmap_sem for read.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    WorldFactory,
    WorldInstance,
    fault_and_read,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]

REAP_ATTEMPTS = 1


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    dmirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup(oom_victim=True)

    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(dmirror)

    return WorldInstance(
        world=world, setup=setup, actors=[("oom_reaper", reaper), ("device", device)]
    )


RACE = race(
    name="fault-vs-oom-reap",
    title="The OOM reaper runs a whole invalidation between a driver's walk and its check",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0); the process is an OOM victim.  Actors: 'device' faults "
        "BASE through the driver (one retry) and reads it; "
        f"'oom_reaper' reaps with {REAP_ATTEMPTS} attempt.  Exercises the "
        "valid-flag protocol of v5.3 against an invalidation that both "
        "starts and ends while the driver holds mmap_sem for read."
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
            "v5.3": ("device-use-after-free", "device-stale-mapping"),
            "v5.5": (),
            "current": (),
        },
    )
)
