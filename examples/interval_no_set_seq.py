"""Buggy interval-notifier driver: its invalidate never calls mmu_interval_set_seq.

The bug: the callback zaps the device entries under the driver lock but
forgets ``mmu_interval_set_seq(mni, cur_seq)``.  The subscription's sequence
then never moves, so ``mmu_interval_read_retry`` under the lock always says
"no invalidation since read_begin": a fault whose ``hmm_range_fault`` walked
the page before an invalidation freed it programs the device with the freed
page anyway.  (The core has no way to notice: only the driver knows when its
device stopped using the old pages.)

Found: ``device-stale-mapping`` (the device maps a page the CPU no longer
maps), ``device-use-after-free`` (it reads that page, freed or reused) and
``notifier-contract`` (the CPU later changes a PTE the device still maps)
in every race where an invalidation can fall between a fault's walk and its
retry check: fault-vs-munmap, fault-vs-oom-reap, fault-vs-reclaim,
fault-vs-mprotect, fault-vs-fork and two-pages-both-invalidated
(two-pages-one-invalidated is safe: its invalidation misses the faulted page).

Fix: ``await mmu_interval_set_seq(mni, cur_seq)`` under the lock, before
zapping (see ``interval_correct.py``).
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
    mmu_notifier_range_blockable,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
)


class NoSeqDevice(MyDevice):
    """MyDevice whose invalidate forgets mmu_interval_set_seq."""

    async def invalidate(self, mni: Any, range: MmuNotifierRange, cur_seq: int) -> bool:
        """Zap the range, but never record the invalidation (BUG)."""
        del mni, cur_seq
        if mmu_notifier_range_blockable(range):
            await mutex_lock(self.update)
        elif not await mutex_trylock(self.update):
            return False
        await self.zap(range.start, range.end)  # BUG: no mmu_interval_set_seq
        await mutex_unlock(self.update)
        return True


def make_driver(kernel: IntervalApi, name: str, device: Device) -> NoSeqDevice:
    """The driver factory."""
    return NoSeqDevice(kernel=kernel, name=name, device=device)


STALE = ("device-stale-mapping", "device-use-after-free", "notifier-contract")
SEEN = ("device-stale-mapping", "notifier-contract")
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        race: dict.fromkeys(INTERVAL_VARIANTS, kinds)
        for race, kinds in (
            ("fault-vs-munmap", STALE),
            ("fault-vs-oom-reap", STALE),
            ("fault-vs-reclaim", STALE),
            ("fault-vs-mprotect", SEEN),
            ("fault-vs-fork", SEEN),
            ("two-pages-both-invalidated", STALE),
        )
    }
)

SCENARIOS = mirror_scenarios(
    make_driver, variants=INTERVAL_VARIANTS, expect=EXPECT, default_expect=()
)
