"""Scenario ``oom-vs-mirror-unregister``: the reaper meets a mirror being unregistered.

The seed patch's first bug (kernel-reference §4.1): a non-blocking start
cannot take ``mirrors_sem`` because another mirror is being unregistered,
returns -EAGAIN, and before the patch leaves ``hmm->notifiers`` raised.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    WorldFactory,
    WorldInstance,
    complete,
    fault_and_read,
    new_completion,
    wait_for_completion,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]

REAP_ATTEMPTS = 2
FAULT_RETRIES = 1


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=2)
    first, second = world.mirrors
    reaped = new_completion("reaped")

    async def setup() -> None:
        await world.setup(oom_victim=True)

    async def unbind() -> None:
        await world.unbind(second)

    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)
        await complete(reaped)

    async def driver() -> tuple[int, int | None]:
        await wait_for_completion(reaped)
        return await fault_and_read(first, max_retries=FAULT_RETRIES)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("unbind", unbind), ("oom_reaper", reaper), ("driver", driver)],
    )


RACE = race(
    name="oom-vs-mirror-unregister",
    title="The OOM reaper runs while another mirror is being unregistered",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; two mirrors "
        "(gpu0, gpu1) registered on the mm; the process is an OOM victim.  "
        "Actors: 'unbind' unregisters gpu1's mirror (mirrors_sem held for "
        f"write); 'oom_reaper' runs oom_reap_task with {REAP_ATTEMPTS} "
        "attempts, then signals; 'driver' waits for that signal, then "
        f"faults BASE for gpu0 (at most {FAULT_RETRIES} retry of the "
        "documented loop) and reads it through the device.  Exercises the "
        "error unwind of a failed non-blocking start: hmm->notifiers must "
        "come back to zero so the range can become valid again."
    ),
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": (
                "sleep-in-nonblockable",
                "range-stuck-invalid",
                "notifier-leak",
            ),
            "v5.3": (),
            "v5.5": ("use-after-free",),
            "current": (),
        },
    )
)
