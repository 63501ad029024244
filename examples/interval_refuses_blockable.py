"""Buggy interval-notifier driver: it refuses an invalidation that may block.

The bug: the callback always uses ``mutex_trylock`` and returns false when
the lock is taken, even when ``mmu_notifier_range_blockable(range)`` is
true.  Only a non-blockable invalidation (the OOM reaper) may be refused:
munmap, reclaim, mprotect and fork cannot back off, so the core warns
(``WARN_ON`` in ``mn_itree_invalidate``) and carries on as if the device had
dropped its mapping, and the CPU frees or changes a page the device still
maps.

Found: ``warn`` (the core's WARN_ON), then ``notifier-contract``,
``device-stale-mapping`` and ``device-use-after-free`` when the device
keeps using the page, in every race where a blockable invalidation meets the
driver lock held by a fault.

Fix: sleep on the lock when the range is blockable (see
``interval_correct.py``).
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
    mutex_trylock,
    mutex_unlock,
)


class ImpatientDevice(MyDevice):
    """MyDevice whose invalidate gives up on a busy lock, blockable or not."""

    async def invalidate(self, mni: Any, range: MmuNotifierRange, cur_seq: int) -> bool:
        """Zap the range if the lock is free, else refuse (BUG when blockable)."""
        if not await mutex_trylock(self.update):
            return False  # BUG: a blockable range may not be refused
        await mmu_interval_set_seq(mni, cur_seq)
        await self.zap(range.start, range.end)
        await mutex_unlock(self.update)
        return True


def make_driver(kernel: IntervalApi, name: str, device: Device) -> ImpatientDevice:
    """The driver factory."""
    return ImpatientDevice(kernel=kernel, name=name, device=device)


REFUSED = ("warn", "notifier-contract", "device-stale-mapping")
FREED = (*REFUSED, "device-use-after-free")
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        race: dict.fromkeys(INTERVAL_VARIANTS, kinds)
        for race, kinds in (
            ("fault-vs-munmap", FREED),
            ("fault-vs-reclaim", FREED),
            ("fault-vs-mprotect", REFUSED),
            ("fault-vs-fork", REFUSED),
            ("two-pages-one-invalidated", FREED),
            ("two-pages-both-invalidated", FREED),
        )
    }
)

SCENARIOS = mirror_scenarios(
    make_driver, variants=INTERVAL_VARIANTS, expect=EXPECT, default_expect=()
)
