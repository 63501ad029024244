"""Buggy interval-notifier driver: it programs the device after dropping the lock.

The bug: the fault path checks ``mmu_interval_read_retry`` correctly under
the driver lock, then unlocks and only then writes the device page table
(say, to keep the lock hold time short).  An invalidation that runs between
the unlock and the device update records its sequence and zaps nothing; the
driver then maps a page the CPU is about to free.  The retry check is only
a promise while the lock is held: the device must be programmed before the
lock is dropped (hmm.rst: "Use pfns array content to update device page
table, under the update lock").

Found: ``device-stale-mapping``, ``device-use-after-free`` and
``notifier-contract`` wherever an invalidation can fall between the unlock
and the device update.

Fix: program the device, then unlock (see ``interval_correct.py``).
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
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mutex_lock,
    mutex_unlock,
)


class LateDevice(MyDevice):
    """MyDevice whose fault path programs the device after unlocking."""

    async def populate(
        self, mm: MmStruct, start: int, end: int, *, write: bool, max_retries: int
    ) -> int:
        """Mirror [start, end), updating the device outside the lock (BUG)."""
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
            await mutex_lock(self.update)
            if mmu_interval_read_retry(self.notifier, rng.notifier_seq):
                await mutex_unlock(self.update)
                if retries < max_retries:
                    retries += 1
                    continue
                return -errno.EBUSY
            await mutex_unlock(self.update)
            await self.program_device(rng)  # BUG: the lock is gone
            return 0


def make_driver(kernel: IntervalApi, name: str, device: Device) -> LateDevice:
    """The driver factory."""
    return LateDevice(kernel=kernel, name=name, device=device)


STALE = ("device-stale-mapping", "device-use-after-free", "notifier-contract")
UAF = ("device-stale-mapping", "device-use-after-free")
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        race: dict.fromkeys(INTERVAL_VARIANTS, kinds)
        for race, kinds in (
            ("fault-vs-munmap", UAF),
            ("fault-vs-oom-reap", UAF),
            ("fault-vs-reclaim", UAF),
            ("fault-vs-mprotect", ("device-stale-mapping", "notifier-contract")),
            ("fault-vs-fork", ("device-stale-mapping",)),
            ("two-pages-both-invalidated", STALE),
        )
    }
)

SCENARIOS = mirror_scenarios(
    make_driver, variants=INTERVAL_VARIANTS, expect=EXPECT, default_expect=()
)
