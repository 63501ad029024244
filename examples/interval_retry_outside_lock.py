"""Buggy interval-notifier driver: it checks mmu_interval_read_retry before locking.

The bug: the fault path asks whether the range was invalidated first
(``mmu_interval_check_retry``: outside the lock only the lockless variant of
``mmu_interval_read_retry`` may be used) and takes the driver lock only to
program the device.  An invalidation that runs
between the check and the lock zaps nothing (the device does not map the
page yet), lets the CPU free the page, and the driver then maps the freed
page.  read_retry is only meaningful under the lock the invalidate callback
takes around ``mmu_interval_set_seq`` (hmm.rst: "take_lock(driver->update);
if (mmu_interval_read_retry(...))").

Found: ``device-stale-mapping``, ``device-use-after-free`` and
``notifier-contract`` wherever an invalidation can fall between the check
and the lock.

Fix: lock first, then check (see ``interval_correct.py``).
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # examples/ itself
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from interval_correct import MyDevice, expect

from hmmsim.api import (
    INTERVAL_VARIANTS,
    Device,
    IntervalApi,
    MmStruct,
    mirror_scenarios,
    mmu_interval_check_retry,
    mmu_interval_read_begin,
    mutex_lock,
    mutex_unlock,
)


class EagerDevice(MyDevice):
    """MyDevice whose fault path checks read_retry outside the driver lock."""

    async def populate(
        self, mm: MmStruct, start: int, end: int, *, write: bool, max_retries: int
    ) -> int:
        """Mirror [start, end), checking for invalidations before locking (BUG)."""
        rng = self.new_range(start, end, write)
        retries = 0
        while True:
            rng.notifier_seq = await mmu_interval_read_begin(self.notifier)
            ret = await self.walk(mm, rng)
            if ret == -errno.EBUSY and retries < max_retries:
                retries += 1
                continue
            if ret:
                return ret
            # BUG: asked before taking the lock (with the lockless variant: the
            # plain read of read_retry is only defined under the lock).
            if await mmu_interval_check_retry(self.notifier, rng.notifier_seq):
                if retries < max_retries:
                    retries += 1
                    continue
                return -errno.EBUSY
            await mutex_lock(self.update)
            await self.program_device(rng)
            await mutex_unlock(self.update)
            return 0


def make_driver(kernel: IntervalApi, name: str, device: Device) -> EagerDevice:
    """The driver factory."""
    return EagerDevice(kernel=kernel, name=name, device=device)


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
