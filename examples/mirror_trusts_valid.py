"""Buggy driver: trusts ``range->valid`` alone (hmm.rst's driver, as written).

The bug: the fault path checks only ``hmm_range_valid`` under the driver
lock, as Documentation/vm/hmm.rst's ``driver_populate_range`` does in v5.3.
But v5.3 sets ``range->valid`` back to true in the last
``invalidate_range_end``: an invalidation that starts *and ends* between the
walk (``hmm_range_fault``) and the check is invisible to it.  The OOM
reaper, which takes ``mmap_sem`` for read, can run exactly there, free the
page, and the driver maps the freed page.  This is a real v5.3 limitation;
v5.5 replaced the flag with the sequence counts of mmu_interval_notifier
(commit 04ec32fbc2b2).

Found on v5.3: ``device-use-after-free`` and ``device-stale-mapping`` in
fault-vs-oom-reap and fault-vs-reclaim (the device may also map the page
after the invalidation's end, while it waits to be freed: in tlb_finish_mmu
after the reaper, in shrink_page_list after reclaim).

Fix: also count invalidations in the driver (bumped under the driver lock
in ``sync_cpu_device_pagetables``) and retry when the count moved since
before the walk (see ``mirror_correct.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # examples/ itself
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from mirror_correct import RACES, MyMirror, expect

from hmmsim.api import (
    MIRROR_VARIANTS,
    PAGE_SIZE,
    Device,
    device_pte_clear,
    mirror_scenarios,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
)


class TrustingMirror(MyMirror):
    """MyMirror without its invalidation count: valid is all it checks."""

    async def sync_cpu_device_pagetables(self, mirror: Any, update: Any) -> int:
        """Zap the range; the count is never bumped (BUG), so never differs."""
        del mirror
        if update.blockable:
            await mutex_lock(self.update)
        elif not await mutex_trylock(self.update):
            return -11  # -EAGAIN
        addr = update.start
        while addr < update.end:
            await device_pte_clear(self.device, addr)
            addr += PAGE_SIZE
        await mutex_unlock(self.update)
        return 0


def make_driver(hmm: Any, name: str, device: Device) -> TrustingMirror:
    """The driver factory."""
    return TrustingMirror(hmm=hmm, name=name, device=device)


#: The device also maps the page after the invalidation's end, while it
#: waits to be freed (tlb_finish_mmu after the reaper, shrink_page_list
#: after reclaim, which holds its isolation reference until then).
UAF_OR_STALE = ("device-use-after-free", "device-stale-mapping")
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        "fault-vs-oom-reap": {"v5.3": UAF_OR_STALE},
        "fault-vs-reclaim": dict.fromkeys(MIRROR_VARIANTS, UAF_OR_STALE),
    }
)

SCENARIOS = mirror_scenarios(make_driver, expect=EXPECT, default_expect=(), races=RACES)
