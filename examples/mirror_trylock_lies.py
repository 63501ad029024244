"""Buggy driver: reports success when its trylock fails.

The bug: when the update may not block and ``mutex_trylock`` fails,
``sync_cpu_device_pagetables`` returns 0 *without zapping* the device
entries ("someone else holds the lock, they will deal with it").  HMM then
tells the OOM reaper the invalidation succeeded, the reaper frees the page,
and the device still maps it.

Found on v5.3: ``notifier-contract`` (the CPU PTE is cleared while the
device still maps the page), ``device-use-after-free`` (the device then
reads the freed page) and ``device-stale-mapping`` in oom-vs-driver-lock.

Fix: return -EAGAIN when the trylock fails, so that the reaper skips the
VMA and retries later (see ``mirror_correct.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # examples/ itself
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from mirror_correct import RACES, MyMirror, expect

from hmmsim.api import (
    PAGE_SIZE,
    WRITE_ONCE,
    Device,
    device_pte_clear,
    mirror_scenarios,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
)


class LyingMirror(MyMirror):
    """MyMirror whose invalidation callback gives up silently."""

    async def sync_cpu_device_pagetables(self, mirror: Any, update: Any) -> int:
        """Zap the range, unless the lock is taken in a non-blocking update."""
        del mirror
        if update.blockable:
            await mutex_lock(self.update)
        elif not await mutex_trylock(self.update):
            return 0  # BUG: claims the device no longer maps the range
        await WRITE_ONCE(self.notifier_seq, self.notifier_seq.value + 1)
        addr = update.start
        while addr < update.end:
            await device_pte_clear(self.device, addr)
            addr += PAGE_SIZE
        await mutex_unlock(self.update)
        return 0


def make_driver(hmm: Any, name: str, device: Device) -> LyingMirror:
    """The driver factory."""
    return LyingMirror(hmm=hmm, name=name, device=device)


LIES = ("notifier-contract", "device-use-after-free", "device-stale-mapping")
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        "oom-vs-driver-lock": {"v5.3": LIES},
        "oom-two-mirrors": {"v5.3": LIES},
        "fault-vs-oom-reap": {"v5.3": LIES},
    }
)

SCENARIOS = mirror_scenarios(make_driver, expect=EXPECT, default_expect=(), races=RACES)
