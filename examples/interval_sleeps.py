"""Buggy interval-notifier driver: it sleeps on its lock when it may not block.

The bug: the callback takes the driver mutex with ``mutex_lock`` whatever
``mmu_notifier_range_blockable(range)`` says.  The OOM reaper invalidates
with a non-blockable range (it must not wait for a driver that may itself
be waiting for memory); sleeping there can stall the reaper behind the very
task that holds the lock.

Found: ``sleep-in-nonblockable`` wherever the OOM reaper's invalidation
reaches the driver (oom-vs-driver-lock, oom-vs-mirror-unregister,
oom-two-mirrors, fault-vs-oom-reap).

Fix: ``mutex_trylock`` when not blockable, and return false if it fails
(see ``interval_correct.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # examples/ itself
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from interval_correct import MyDevice, expect

from hmmsim.api import (
    INTERVAL_VARIANTS,
    Device,
    IntervalApi,
    MmuNotifierRange,
    mirror_scenarios,
    mmu_interval_set_seq,
    mutex_lock,
    mutex_unlock,
)


class SleepyDevice(MyDevice):
    """MyDevice whose invalidate always sleeps on the driver lock."""

    async def invalidate(self, mni: Any, range: MmuNotifierRange, cur_seq: int) -> bool:
        """Zap the range, sleeping on the lock even when that is forbidden (BUG)."""
        await mutex_lock(self.update)  # BUG: may sleep in a non-blockable range
        await mmu_interval_set_seq(mni, cur_seq)
        await self.zap(range.start, range.end)
        await mutex_unlock(self.update)
        return True


def make_driver(kernel: IntervalApi, name: str, device: Device) -> SleepyDevice:
    """The driver factory."""
    return SleepyDevice(kernel=kernel, name=name, device=device)


SLEEP = ("sleep-in-nonblockable",)
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        race: dict.fromkeys(INTERVAL_VARIANTS, SLEEP)
        for race in (
            "oom-vs-driver-lock",
            "oom-vs-mirror-unregister",
            "oom-two-mirrors",
            "fault-vs-oom-reap",
        )
    }
)

SCENARIOS = mirror_scenarios(
    make_driver, variants=INTERVAL_VARIANTS, expect=EXPECT, default_expect=()
)
