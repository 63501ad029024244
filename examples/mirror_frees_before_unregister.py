"""A buggy hmm_mirror driver: it frees its state before unregistering the mirror.

This is the driver of ``mirror_correct.py`` (it subclasses ``MyMirror``) with its own state (the
invalidation count ``notifier_seq``) moved into memory it allocates, as a C
driver's ``struct my_mirror`` would be: ``kzalloc`` at bind, written by
``sync_cpu_device_pagetables`` on every invalidation through
``kasan_check_write``.  Its unbind tears down in the wrong order:

1. ``kfree(state)``;
2. zap the device page table;
3. ``hmm_mirror_unregister(mirror)``.

Between the free and the unregister the mirror is still on
``hmm->mirrors``, so an invalidation (the OOM reaper's, in the race
``oom-vs-mirror-unregister``) still calls the callback, which writes to
freed memory: ``use-after-free``.  The kernel's rule is the reverse order:
``hmm_mirror_unregister`` takes ``mirrors_sem`` for write, so once it
returns no callback runs any more, and only then may the memory go
(``UnregistersFirst``, verified on the same races).

No flag marks the bug: the free and the callback's access are ``kfree`` and
``kasan_check_write`` on the same object, both scheduling points, so the
explorer tries both orders and KASAN's check reports the one where the
access follows the free.

Check it::

    hmmsim check examples/mirror_frees_before_unregister.py --all

Expected: ``use-after-free`` in ``oom-vs-mirror-unregister`` on ``prepatch``
and ``v5.3``, besides what prepatch's HMM core gets wrong whatever the
driver (see ``mirror_correct.py``).
"""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mirror_correct import RACES, MyMirror, expect

from hmmsim.api import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Device,
    MmStruct,
    kasan_check_read,
    kasan_check_write,
    kfree,
    kzalloc,
    mirror_scenarios,
)


@dataclass(eq=False)
class MirrorState:
    """The driver's private state, kzalloc'ed at bind (kmalloc needs a __dict__).

    Attributes:
        notifier_seq: bumped by every invalidation, under the driver lock.
    """

    notifier_seq: Cell[int]


@dataclass(slots=True, kw_only=True, eq=False)
class FreesEarly(MyMirror):
    """``MyMirror`` with its count in kzalloc'ed memory; its unbind frees too early.

    Attributes:
        state: the kzalloc'ed private state (None before bind); it holds the
            invalidation count instead of ``MyMirror.notifier_seq``.
    """

    state: MirrorState | None = None

    def my_state(self) -> MirrorState:
        """The private state (bind allocated it)."""
        assert self.state is not None, "used before bind"
        return self.state

    # -- the count lives in the allocated state; KASAN checks each access ----

    async def bump_seq(self) -> None:
        """Count one invalidation in the state (callback, driver lock held)."""
        state = self.my_state()
        await kasan_check_write(state, "sync_cpu_device_pagetables")
        await WRITE_ONCE(state.notifier_seq, state.notifier_seq.value + 1)

    async def read_seq(self) -> int:
        """Sample the state's count before a walk."""
        state = self.my_state()
        await kasan_check_read(state, "populate")
        seq: int = await READ_ONCE(state.notifier_seq)
        return seq

    async def seq_moved(self, seq: int) -> bool:
        """Whether the state's count moved since ``seq`` (driver lock held)."""
        state = self.my_state()
        await kasan_check_read(state, "populate")
        return state.notifier_seq.value != seq

    # -- bind allocates, unbind frees ----------------------------------------

    async def bind(self, mm: MmStruct) -> int:
        """Allocate the state, then hmm_mirror_register under mmap_sem write."""
        self.state = kzalloc(
            MirrorState(notifier_seq=Cell(f"{self.name}->notifier_seq", 0))
        )
        if self.state is None:
            return -errno.ENOMEM
        return await MyMirror.bind(self, mm)

    async def unbind(self) -> None:
        """BUG: the state is freed while the callback can still run."""
        await kfree(self.state)
        await self.stop_device()
        await self.hmm.hmm_mirror_unregister(self.mirror)


@dataclass(slots=True, kw_only=True, eq=False)
class UnregistersFirst(FreesEarly):
    """The fix: stop the device, unregister (no callback after it), then free."""

    async def unbind(self) -> None:
        """Stop the device, hmm_mirror_unregister, then kfree."""
        await self.stop_device()
        await self.hmm.hmm_mirror_unregister(self.mirror)
        await kfree(self.state)
        self.state = None


def make_driver(hmm: ModuleType, name: str, device: Device) -> FreesEarly:
    """The buggy driver's factory."""
    return FreesEarly(hmm=hmm, name=name, device=device)


def make_fixed_driver(hmm: ModuleType, name: str, device: Device) -> FreesEarly:
    """The fixed driver's factory (unregister first, then free)."""
    return UnregistersFirst(hmm=hmm, name=name, device=device)


#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect(
    {
        "oom-vs-mirror-unregister": {
            "prepatch": (
                "sleep-in-nonblockable",
                "range-stuck-invalid",
                "notifier-leak",
                "use-after-free",
            ),
            "v5.3": ("use-after-free",),
        }
    }
)

SCENARIOS = mirror_scenarios(make_driver, expect=EXPECT, default_expect=(), races=RACES)
