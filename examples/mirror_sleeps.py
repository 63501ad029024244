"""Buggy driver: sleeps on its lock inside a non-blocking invalidation.

The bug: ``sync_cpu_device_pagetables`` ignores ``update.blockable`` and
always calls ``mutex_lock``.  The OOM reaper invalidates with blockable
false (``mmu_notifier_invalidate_range_start_nonblock``); a callback that
sleeps there can stall the reaper behind the very task it is trying to
kill.  The kernel catches it with ``non_block_start()`` / ``might_sleep()``
("sleeping function called from invalid context").

Found: ``sleep-in-nonblockable`` on every variant, in the scenarios where
the reaper invalidates a mirrored page (oom-vs-driver-lock, fault-vs-oom-reap).

Fix: take the lock with ``mutex_trylock`` when the update may not block and
return -EAGAIN if it is taken (see ``mirror_correct.py``).
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
    WRITE_ONCE,
    Device,
    device_pte_clear,
    mirror_scenarios,
    mutex_lock,
    mutex_unlock,
)


class SleepingMirror(MyMirror):
    """MyMirror whose invalidation callback always sleeps on the lock."""

    async def sync_cpu_device_pagetables(self, mirror: Any, update: Any) -> int:
        """Zap the range, but lock as if every update could block (BUG)."""
        del mirror
        await mutex_lock(self.update)  # BUG: ignores update.blockable
        await WRITE_ONCE(self.notifier_seq, self.notifier_seq.value + 1)
        addr = update.start
        while addr < update.end:
            await device_pte_clear(self.device, addr)
            addr += PAGE_SIZE
        await mutex_unlock(self.update)
        return 0


def make_driver(hmm: Any, name: str, device: Device) -> SleepingMirror:
    """The driver factory."""
    return SleepingMirror(hmm=hmm, name=name, device=device)


SLEEP = ("sleep-in-nonblockable",)
#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        "oom-vs-driver-lock": dict.fromkeys(MIRROR_VARIANTS, SLEEP),
        "oom-vs-mirror-unregister": {"v5.3": SLEEP},
        "oom-two-mirrors": dict.fromkeys(MIRROR_VARIANTS, SLEEP),
        "fault-vs-oom-reap": dict.fromkeys(MIRROR_VARIANTS, SLEEP),
    }
)

SCENARIOS = mirror_scenarios(make_driver, expect=EXPECT, default_expect=(), races=RACES)
