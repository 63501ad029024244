"""Sequential tests of the mmu notifier core (mm/mmu_notifier.c, v5.3)."""

from __future__ import annotations

import errno
from typing import Any

from tests.support.kernel_harness import run_one

from hmmsim.kernel import mmu_notifier as mn_mod
from hmmsim.kernel.fork import mm_alloc, mmput
from hmmsim.kernel.mm_types import MmStruct, RcuHead
from hmmsim.kernel.mmu_notifier import (
    MmuNotifier,
    MmuNotifierRange,
    StaticMmuNotifierOps,
    mmu_notifier_call_srcu,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_invalidate_range_start_nonblock,
    mmu_notifier_range_init,
    mmu_notifier_range_init_owner,
    mmu_notifier_register,
    mmu_notifier_synchronize,
    mmu_notifier_unregister,
    mmu_notifier_unregister_no_release,
)
from hmmsim.kernel.types import MMU_NOTIFY_MIGRATE, MMU_NOTIFY_UNMAP
from hmmsim.sync import current_execution, msleep


class Subscriber:
    """Records the order of calls; start returns ``ret``; may sleep in its callbacks."""

    def __init__(self, log: list[str], name: str, ret: int = 0, sleep: bool = False):
        self.log = log
        self.name = name
        self.ret = ret
        self.sleep = sleep
        self.mn = MmuNotifier(
            ops=StaticMmuNotifierOps(
                release=self.release,
                invalidate_range_start=self.start,
                invalidate_range_end=self.end,
            ),
            name=name,
        )

    async def release(self, mn: MmuNotifier, mm: MmStruct) -> None:
        self.log.append(f"release {self.name}")

    async def start(self, mn: MmuNotifier, r: MmuNotifierRange) -> int:
        self.log.append(f"start {self.name}")
        if self.sleep:
            await msleep(1)
        return self.ret

    async def end(self, mn: MmuNotifier, r: MmuNotifierRange) -> None:
        self.log.append(f"end {self.name}")
        if self.sleep:
            await msleep(1)


def new_range(mm: MmStruct) -> MmuNotifierRange:
    rng = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(rng, MMU_NOTIFY_UNMAP, 0, None, mm, 0, 4096)
    return rng


class TestMmuNotifierRegister:
    def test_enomem(self) -> None:
        """A failed allocation of the subscriber list gives -ENOMEM."""
        out: list[int] = []

        async def body() -> None:
            mm = mm_alloc()
            current_execution().context["failslab"] = 1
            out.append(await mmu_notifier_register(MmuNotifier(), mm))

        run_one(body)
        assert [-errno.ENOMEM] == out

    def test_dead_mm_is_a_bug(self) -> None:
        """Registering on an mm without users is a BUG."""

        async def body() -> None:
            mm = mm_alloc()
            mm.mm_users.value = 0
            await mmu_notifier_register(MmuNotifier(), mm)

        assert ["bug"] == run_one(body).kinds


class TestInvalidateRangeStart:
    def test_calls_everyone_and_returns_the_error(self) -> None:
        """A failing subscriber does not stop the loop; its error is returned."""
        log: list[str] = []
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc()
            a = Subscriber(log, "a")
            b = Subscriber(log, "b", ret=-errno.EAGAIN)
            await mmu_notifier_register(a.mn, mm)
            await mmu_notifier_register(b.mn, mm)
            out.append(
                await mmu_notifier_invalidate_range_start_nonblock(new_range(mm))
            )
            out.append((a.mn.ghost_balance, b.mn.ghost_balance))
            out.append((mm.ghost_open_invalidations, mm.ghost_starts_in_flight))

        run = run_one(body)
        assert [] == run.kinds
        assert ["start b", "start a"] == log
        assert [-errno.EAGAIN, (1, 0), (0, 0)] == out
        assert [
            {"mm": "mm", "notifier": "b", "ret": -errno.EAGAIN, "blockable": False}
        ] == (run.named("mmu_notifier_callback_failed"))

    def test_blockable_ignores_the_result(self) -> None:
        """The blockable variant sets the flag and its caller always ends."""
        log: list[str] = []
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc()
            a = Subscriber(log, "a", ret=-errno.EAGAIN)
            await mmu_notifier_register(a.mn, mm)
            rng = new_range(mm)
            await mmu_notifier_invalidate_range_start(rng)
            await mmu_notifier_invalidate_range_end(rng)
            out.append((rng.flags, a.mn.ghost_balance, mm.ghost_open_invalidations))

        run = run_one(body)
        assert [] == run.kinds
        assert ["start a", "end a"] == log
        assert [(1, 0, 0)] == out

    def test_without_notifiers_nothing_happens(self) -> None:
        """An mm nobody subscribed to skips the core entirely."""
        out: list[int] = []

        async def body() -> None:
            mm = mm_alloc()
            out.append(
                await mmu_notifier_invalidate_range_start_nonblock(new_range(mm))
            )
            await mmu_notifier_invalidate_range_start(new_range(mm))
            await mmu_notifier_invalidate_range_end(new_range(mm))

        run = run_one(body)
        assert [0] == out
        assert [] == run.events

    def test_sleeping_in_nonblockable_callbacks_is_reported(self) -> None:
        """non_block_start/end (MODEL) catch a sleep in a non-blockable start and end."""

        async def body() -> None:
            mm = mm_alloc()
            await mmu_notifier_register(Subscriber([], "s", sleep=True).mn, mm)
            rng = new_range(mm)
            await mmu_notifier_invalidate_range_start_nonblock(rng)
            await mmu_notifier_invalidate_range_end(rng)

        kinds = run_one(body).kinds
        assert ["sleep-in-nonblockable", "sleep-in-nonblockable"] == kinds


class TestMmuNotifierRelease:
    def test_exit_calls_release_and_unhooks(self) -> None:
        """exit_mmap calls every release, then the list is empty."""
        log: list[str] = []
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc()
            a = Subscriber(log, "a")
            await mmu_notifier_register(a.mn, mm)
            await mmput(mm)
            out.append(a.mn.hlist_hashed)
            # The unregister that follows finds it unhashed: no second release.
            await mmu_notifier_unregister(a.mn, mm)

        run = run_one(body)
        assert [] == run.kinds
        assert ["release a"] == log
        assert [False] == out


class TestMmuNotifierUnregister:
    def test_calls_release_once(self) -> None:
        """Unregister calls release when the core has not, and unhooks."""
        log: list[str] = []
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc()
            a = Subscriber(log, "a")
            b = Subscriber(log, "b")
            await mmu_notifier_register(a.mn, mm)
            await mmu_notifier_register(b.mn, mm)
            await mmu_notifier_unregister(a.mn, mm)
            await mmu_notifier_unregister_no_release(b.mn, mm)
            await mmu_notifier_invalidate_range_start(new_range(mm))
            out.append(mm.mm_count.value)

        run = run_one(body)
        assert [] == run.kinds
        assert ["release a"] == log
        assert [1] == out


class TestMmuNotifierCallSrcu:
    def test_callback_runs_after_grace_period(self) -> None:
        """Queued callbacks run in their own task; synchronize waits for them."""
        ran: list[object] = []

        async def callback(rcu: RcuHead) -> None:
            ran.append(rcu.container)

        async def body() -> None:
            await mmu_notifier_call_srcu(RcuHead(container="x"), callback)
            assert [] == ran
            await mmu_notifier_synchronize()
            assert ["x"] == ran
            await mmu_notifier_synchronize()

        run = run_one(body)
        assert [] == run.kinds
        assert ["x"] == ran


def test_unhashed_removal_is_a_no_op() -> None:
    """Removing a subscriber twice leaves the list alone."""

    async def body() -> None:
        mm = mm_alloc()
        a = MmuNotifier(name="a")
        b = MmuNotifier(name="b")
        c = MmuNotifier(name="c")
        for mn in (a, b, c):
            await mmu_notifier_register(mn, mm)
        await mmu_notifier_unregister_no_release(b, mm)
        await mmu_notifier_unregister_no_release(b, mm)
        mnmm = mm.mmu_notifier_mm
        assert mnmm is not None
        assert mnmm.first is c
        assert c.hlist_next is a
        assert mn_mod.hlist_unhashed(b)

    assert [] == run_one(body).kinds


def test_range_init_owner_names_the_owner() -> None:
    """mmu_notifier_range_init_owner fills the range like range_init, with no vma, and sets the owner."""
    seen: list[object] = []
    owner = object()

    async def body() -> None:
        mm = mm_alloc("mm")
        range = MmuNotifierRange(mm=mm)
        mmu_notifier_range_init_owner(
            range, MMU_NOTIFY_MIGRATE, 0, mm, 0x1000, 0x3000, owner
        )
        seen.extend(
            [
                range.event,
                range.owner is owner,
                range.vma,
                range.start,
                range.end,
                range.flags,
            ]
        )

    assert [] == run_one(body).kinds
    assert [MMU_NOTIFY_MIGRATE, True, None, 0x1000, 0x3000, 0] == seen
