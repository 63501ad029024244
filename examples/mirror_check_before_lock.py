"""Buggy driver: checks that its range is still valid before taking the lock.

The bug: the fault path asks ``hmm_range_valid`` (and compares its
invalidation count) *before* ``mutex_lock(update)``, then programs the
device under the lock.  An invalidation that runs between the check and the
lock zaps nothing (the device does not map the page yet), lets the CPU free
the page, and the driver then maps the freed page into the device.  The
check must be made under the same lock the invalidation callback takes,
which is what makes "valid" mean "no invalidation can sneak in now".

Found: ``device-stale-mapping`` (the device maps a page the CPU no longer
maps), ``device-use-after-free`` (it then reads that page, freed) and
``notifier-contract`` (the CPU later changes a PTE the device still maps,
behind a finished invalidation) in fault-vs-oom-reap on v5.3 and in
fault-vs-reclaim on both variants.

Fix: take the driver lock first, then check (see ``mirror_correct.py``).
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # examples/ itself
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from mirror_correct import RACES, TIMEOUT_MS, MyMirror, expect

from hmmsim.api import (
    MIRROR_VARIANTS,
    PAGE_SHIFT,
    READ_ONCE,
    Device,
    MmStruct,
    down_read,
    mirror_scenarios,
    mutex_lock,
    mutex_unlock,
    up_read,
)


class EagerMirror(MyMirror):
    """MyMirror whose fault path checks validity outside the driver lock."""

    async def populate(
        self, mm: MmStruct, start: int, end: int, *, write: bool, max_retries: int
    ) -> int:
        """Mirror [start, end), checking validity before locking (BUG)."""
        hmm = self.hmm
        rng = self.new_range(start, end, write)
        ret: int = await hmm.hmm_range_register(
            rng, self.mirror, start, end, PAGE_SHIFT
        )
        if ret:
            return ret
        await hmm.hmm_range_wait_until_valid(rng, TIMEOUT_MS)
        retries = 0
        while True:
            seq = await READ_ONCE(self.notifier_seq)
            await down_read(mm.mmap_sem)
            ret = await hmm.hmm_range_fault(rng, True)
            if ret < 0:
                await up_read(mm.mmap_sem)
                await hmm.hmm_range_unregister(rng)
                return ret
            # BUG: checked before the lock; an invalidation can run in between.
            valid = await hmm.hmm_range_valid(rng)
            if not valid or await READ_ONCE(self.notifier_seq) != seq:
                await up_read(mm.mmap_sem)
                if retries < max_retries:
                    retries += 1
                    continue
                await hmm.hmm_range_unregister(rng)
                return -errno.EBUSY
            await mutex_lock(self.update)
            await self.program_device(rng)
            await hmm.hmm_range_unregister(rng)
            await mutex_unlock(self.update)
            await up_read(mm.mmap_sem)
            return 0


def make_driver(hmm: Any, name: str, device: Device) -> EagerMirror:
    """The driver factory."""
    return EagerMirror(hmm=hmm, name=name, device=device)


STALE = ("device-use-after-free", "device-stale-mapping", "notifier-contract")
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        "fault-vs-oom-reap": {"v5.3": STALE},
        "fault-vs-reclaim": dict.fromkeys(MIRROR_VARIANTS, STALE),
    }
)

SCENARIOS = mirror_scenarios(make_driver, expect=EXPECT, default_expect=(), races=RACES)
