"""Tests for `hmmsim.kernel.mmu_notifier_v55` (mm/mmu_notifier.c, v5.5), run sequentially."""

from __future__ import annotations

import errno
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from tests.support.kernel_harness import BASE, make_mm, run_one, run_tasks

from hmmsim.kernel import mmu_notifier_v55 as v55
from hmmsim.kernel.fork import mmput
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmu_notifier import (
    MmuNotifier,
    MmuNotifierRange,
    StaticMmuNotifierOps,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_invalidate_range_start_nonblock,
    mmu_notifier_range_blockable,
    mmu_notifier_range_init,
    mmu_notifier_register,
)
from hmmsim.kernel.mmu_notifier_v55 import (
    MmuIntervalNotifier,
    MmuNotifierMm,
    StaticMmuIntervalNotifierOps,
    mmu_interval_check_retry,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_insert_locked,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
    mn_itree_inv_end,
    mn_itree_inv_start_range,
    mn_itree_invalidate,
)
from hmmsim.kernel.types import MMU_NOTIFY_RELEASE, MMU_NOTIFY_UNMAP, PAGE_SIZE
from hmmsim.scenarios._world import complete, new_completion, wait_for_completion
from hmmsim.sync import (
    READ_ONCE,
    Mutex,
    current_execution,
    down_write,
    msleep,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    up_write,
)

Body = Coroutine[Any, Any, Any]


async def v55_mm(npages: int = 4) -> MmStruct:
    """A fresh mm served by the v5.5 notifier core."""
    mm = await make_mm(npages)
    mm.notifier_core = v55
    return mm


def mmn(mm: MmStruct) -> MmuNotifierMm:
    mmn_mm = mm.mmu_notifier_mm
    assert isinstance(mmn_mm, MmuNotifierMm)
    return mmn_mm


class Driver:
    """An interval subscriber with a user lock, in the shape of test_hmm.c."""

    def __init__(self, log: list[str], name: str = "sub") -> None:
        self.log = log
        self.lock = Mutex(f"{name}.lock")
        self.sub = MmuIntervalNotifier(name=name, container=self)
        self.ops = StaticMmuIntervalNotifierOps(invalidate=self.invalidate)
        self.refuse = False

    async def invalidate(
        self, sub: MmuIntervalNotifier, r: MmuNotifierRange, cur_seq: int
    ) -> bool:
        if self.refuse:
            self.log.append(f"refuse {sub.name}")
            return False
        if mmu_notifier_range_blockable(r):
            await mutex_lock(self.lock)
        elif not await mutex_trylock(self.lock):
            self.log.append(f"busy {sub.name}")
            return False
        await mmu_interval_set_seq(sub, cur_seq)
        self.log.append(f"invalidate {sub.name} {r.event.name} seq={cur_seq}")
        await mutex_unlock(self.lock)
        return True

    async def insert(self, mm: MmStruct, start: int = 0, length: int = 1 << 40) -> int:
        return await mmu_interval_notifier_insert(self.sub, mm, start, length, self.ops)


def rng(
    mm: MmStruct, start: int = BASE, end: int = BASE + PAGE_SIZE
) -> MmuNotifierRange:
    r = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(r, MMU_NOTIFY_UNMAP, 0, None, mm, start, end)
    return r


def run(body: Callable[[], Body], **kwargs: Any) -> list[str]:
    return run_one(body, **kwargs).kinds


class TestRegisterAndInsert:
    def test_first_insert_registers_itree_mode_with_seq_two(self) -> None:
        """The first insert creates the v5.5 structure: seq 2, has_itree, sub seq 1."""
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            d = Driver([])
            seen.append(await d.insert(mm))
            m = mmn(mm)
            seen.extend(
                [m.has_itree, m.invalidate_seq.value, d.sub.invalidate_seq.value]
            )
            seen.extend([d.sub.rb_empty, m.itree == [d.sub], mm.mm_count.value])

        assert [] == run(body)
        assert [0, True, 2, 1, False, True, 2] == seen

    def test_empty_or_wrapping_interval_is_eoverflow(self) -> None:
        """length 0, or start + length - 1 beyond ULONG_MAX, gives -EOVERFLOW."""
        seen: list[int] = []

        async def body() -> None:
            mm = await v55_mm()
            seen.append(await Driver([]).insert(mm, 0, 0))
            seen.append(await Driver([]).insert(mm, v55.ULONG_MAX, 2))

        run(body)
        assert [-errno.EOVERFLOW, -errno.EOVERFLOW] == seen

    def test_enomem(self) -> None:
        """A failed allocation of the notifier structure gives -ENOMEM."""
        seen: list[int] = []

        async def body() -> None:
            mm = await v55_mm()
            current_execution().context["failslab"] = 1
            seen.append(await Driver([]).insert(mm))

        run(body)
        assert [-errno.ENOMEM] == seen

    def test_insert_locked_under_mmap_sem(self) -> None:
        """The _locked variant registers with mmap_sem already held for write."""
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            d = Driver([])
            await down_write(mm.mmap_sem)
            seen.append(
                await mmu_interval_notifier_insert_locked(d.sub, mm, 0, 4096, d.ops)
            )
            await up_write(mm.mmap_sem)
            seen.append(mmn(mm).itree == [d.sub])

        assert [] == run(body)
        assert [0, True] == seen

    def test_insert_while_active_but_even_makes_seq_odd(self) -> None:
        """An insert during a non-intersecting invalidation goes in, seq becomes odd."""
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            first = Driver([], "first")
            await first.insert(mm, BASE, PAGE_SIZE)
            m = mmn(mm)
            far = rng(mm, BASE + 8 * PAGE_SIZE, BASE + 9 * PAGE_SIZE)
            sub, seq = await mn_itree_inv_start_range(m, far)
            seen.extend([sub, seq, m.active_invalidate_ranges])
            second = Driver([], "second")
            await second.insert(mm, BASE, PAGE_SIZE)
            seen.extend([m.invalidate_seq.value, second.sub.invalidate_seq.value])
            seen.extend([second.sub.rb_empty, len(m.itree)])
            await mn_itree_inv_end(m)
            seen.extend([m.invalidate_seq.value, m.active_invalidate_ranges])

        assert [] == run(body)
        assert [None, 2, 1, 3, 3, False, 2, 4, 0] == seen

    def test_insert_while_invalidating_is_deferred_to_the_last_end(self) -> None:
        """With seq odd the insert waits on the deferred list; the last end adds it."""
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            first = Driver([], "first")
            await first.insert(mm)
            m = mmn(mm)
            sub, seq = await mn_itree_inv_start_range(m, rng(mm))
            seen.extend([sub is first.sub, seq])
            late = Driver([], "late")
            await late.insert(mm)
            seen.extend([late.sub.rb_empty, m.deferred_list == [late.sub]])
            seen.extend([late.sub.invalidate_seq.value])
            await mn_itree_inv_end(m)
            seen.extend([late.sub.rb_empty, m.deferred_list, len(m.itree)])
            seen.extend([m.invalidate_seq.value])

        assert [] == run(body)
        assert [True, 3, True, True, 3, False, [], 2, 4] == seen


class TestSequence:
    def test_nested_sections_release_on_the_last_end(self) -> None:
        """Two open sections: the first end keeps seq odd, the second makes it even."""
        seen: list[int] = []

        async def body() -> None:
            mm = await v55_mm()
            await Driver([]).insert(mm)
            m = mmn(mm)
            await mn_itree_inv_start_range(m, rng(mm))
            await mn_itree_inv_start_range(m, rng(mm))
            seen.extend([m.invalidate_seq.value, m.active_invalidate_ranges])
            await mn_itree_inv_end(m)
            seen.extend([m.invalidate_seq.value, m.active_invalidate_ranges])
            await mn_itree_inv_end(m)
            seen.extend([m.invalidate_seq.value, m.active_invalidate_ranges])

        assert [] == run(body)
        assert [3, 2, 3, 1, 4, 0] == seen

    def test_non_intersecting_range_keeps_seq_even(self) -> None:
        """A range no subscription covers leaves seq even and calls nobody."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await v55_mm()
            await Driver(log).insert(mm, BASE, PAGE_SIZE)
            r = rng(mm, BASE + 4 * PAGE_SIZE, BASE + 5 * PAGE_SIZE)
            await mmu_notifier_invalidate_range_start(r)
            seen.append(mmn(mm).invalidate_seq.value)
            await mmu_notifier_invalidate_range_end(r)
            seen.append(mmn(mm).invalidate_seq.value)

        assert [] == run(body)
        assert [2, 2] == seen
        assert [] == log

    def test_read_begin_idle_and_read_retry_after_set_seq(self) -> None:
        """Idle read_begin returns the sub's seq; an invalidation makes retry true."""
        log: list[str] = []
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            d = Driver(log)
            await d.insert(mm)
            seq = await mmu_interval_read_begin(d.sub)
            seen.extend([seq, mmu_interval_read_retry(d.sub, seq)])
            seen.append(await mmu_interval_check_retry(d.sub, seq))
            r = rng(mm)
            await mmu_notifier_invalidate_range_start(r)
            await mmu_notifier_invalidate_range_end(r)
            seen.extend([mmu_interval_read_retry(d.sub, seq)])
            seen.append(await mmu_interval_check_retry(d.sub, seq))
            seen.append(await mmu_interval_read_begin(d.sub))

        assert [] == run(body)
        assert [1, False, False, True, True, 3] == seen
        assert ["invalidate sub MMU_NOTIFY_UNMAP seq=3"] == log

    def test_read_begin_sleeps_while_the_sub_is_being_invalidated(self) -> None:
        """read_begin during an invalidation of the sub waits for the last end."""
        log: list[str] = []

        def tasks() -> Sequence[tuple[str, Body]]:
            started = new_completion("started")
            state: dict[str, Any] = {}

            async def invalidator() -> None:
                mm = await v55_mm()
                d = Driver(log)
                await d.insert(mm)
                state["d"] = d
                r = rng(mm)
                await mmu_notifier_invalidate_range_start(r)
                await complete(started)
                await msleep(1)  # a scheduling point: the woken reader runs
                log.append("end")
                await mmu_notifier_invalidate_range_end(r)

            async def reader() -> None:
                await wait_for_completion(started)
                seq = await mmu_interval_read_begin(state["d"].sub)
                log.append(f"read_begin {seq}")

            # The sequential strategy runs the lowest enabled task: the reader
            # goes first as soon as it is woken.
            return [("reader", reader()), ("invalidator", invalidator())]

        result = run_tasks(tasks)

        assert [] == result.kinds
        assert [
            "invalidate sub MMU_NOTIFY_UNMAP seq=3",
            "end",
            "read_begin 3",
        ] == log
        assert [True] == [f["waited"] for f in result.named("mmu_interval_read_begin")]


class TestReadBeginDiagram:
    def test_read_retry_true_after_concurrent_invalidate(self) -> None:
        """Replays the docstring diagram of mmu_interval_read_begin step by step."""
        log: list[str] = []

        def tasks() -> Sequence[tuple[str, Body]]:
            begun = new_completion("begun")
            invalidated = new_completion("invalidated")
            state: dict[str, Any] = {}

            async def fault() -> None:
                mm = await v55_mm()
                d = Driver(log)
                await d.insert(mm)
                state["mm"], state["d"] = mm, d
                # read_begin: lock, seq = sub seq, not the mm's: no sleep.
                seq = await mmu_interval_read_begin(d.sub)
                log.append(f"read_begin {seq}")
                await complete(begun)
                await wait_for_completion(invalidated)
                # user_lock; read_retry; user_unlock
                await mutex_lock(d.lock)
                log.append(f"read_retry {mmu_interval_read_retry(d.sub, seq)}")
                await mutex_unlock(d.lock)

            async def invalidation() -> None:
                await wait_for_completion(begun)
                mm, d = state["mm"], state["d"]
                m = mmn(mm)
                r = rng(mm)
                r.flags = 1  # MMU_NOTIFIER_RANGE_BLOCKABLE
                # inv_start (seq |= 1) and ops->invalidate (user_lock, set_seq)
                assert 0 == await mn_itree_invalidate(m, r)
                seq_now: int = await READ_ONCE(m.invalidate_seq)
                log.append(f"mm seq {seq_now}")
                # inv_end: seq += 1
                await mn_itree_inv_end(m)
                seq_now = await READ_ONCE(m.invalidate_seq)
                log.append(f"mm seq {seq_now}")
                assert await READ_ONCE(d.sub.invalidate_seq) == 3
                await complete(invalidated)

            return [("fault", fault()), ("invalidation", invalidation())]

        result = run_tasks(tasks)

        assert [] == result.kinds
        assert [
            "read_begin 1",
            "invalidate sub MMU_NOTIFY_UNMAP seq=3",
            "mm seq 3",
            "mm seq 4",
            "read_retry True",
        ] == log


class TestInvalidate:
    def test_refused_nonblocking_start_unwinds_itself(self) -> None:
        """A refused non-blocking callback: -EAGAIN, section closed, seq even again."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await v55_mm()
            d = Driver(log)
            await d.insert(mm)
            await mutex_lock(d.lock)
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(rng(mm)))
            await mutex_unlock(d.lock)
            m = mmn(mm)
            seen.extend([m.active_invalidate_ranges, m.invalidate_seq.value])
            seen.extend([mm.ghost_open_invalidations, mm.ghost_starts_in_flight])

        assert [] == run(body)
        assert [-errno.EAGAIN, 0, 4, 0, 0] == seen
        assert ["busy sub"] == log

    def test_blockable_refusal_warns_and_goes_on(self) -> None:
        """A callback refusing a blockable range is a WARN; the start still succeeds."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await v55_mm()
            a, b = Driver(log, "a"), Driver(log, "b")
            a.refuse = True
            await a.insert(mm, BASE, PAGE_SIZE)
            await b.insert(mm, BASE, 2 * PAGE_SIZE)
            r = rng(mm)
            await mmu_notifier_invalidate_range_start(r)
            seen.append(mmn(mm).active_invalidate_ranges)
            await mmu_notifier_invalidate_range_end(r)
            seen.append(mmn(mm).active_invalidate_ranges)

        assert ["warn"] == run(body)
        assert [1, 0] == seen
        assert ["refuse a", "invalidate b MMU_NOTIFY_UNMAP seq=3"] == log

    def test_sleeping_in_a_nonblocking_interval_callback_is_reported(self) -> None:
        """MODEL debug aid: a callback sleeping on a non-blockable range is caught."""

        async def body() -> None:
            mm = await v55_mm()
            lock = Mutex("sleepy")

            async def invalidate(
                sub: MmuIntervalNotifier, r: MmuNotifierRange, cur_seq: int
            ) -> bool:
                await mutex_lock(lock)
                await mutex_unlock(lock)
                return True

            sub = MmuIntervalNotifier(name="sleepy")
            ops = StaticMmuIntervalNotifierOps(invalidate=invalidate)
            await mmu_interval_notifier_insert(sub, mm, 0, 1 << 40, ops)
            r = rng(mm)
            assert 0 == await mmu_notifier_invalidate_range_start_nonblock(r)
            await mmu_notifier_invalidate_range_end(r)

        assert "sleep-in-nonblockable" in run(body)

    def test_hlist_subscriber_failure_leaves_the_interval_section_open(self) -> None:
        """v5.5: an hlist -EAGAIN after the interval part succeeded is not unwound."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await v55_mm()
            await Driver(log).insert(mm)

            async def start(mn: MmuNotifier, r: MmuNotifierRange) -> int:
                log.append("hlist start")
                return -errno.EAGAIN

            hl = MmuNotifier(
                ops=StaticMmuNotifierOps(invalidate_range_start=start), name="hl"
            )
            seen.append(await mmu_notifier_register(hl, mm))
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(rng(mm)))
            m = mmn(mm)
            seen.extend([m.active_invalidate_ranges, m.invalidate_seq.value & 1])

        assert [] == run(body)
        assert [0, -errno.EAGAIN, 1, 1] == seen
        assert ["invalidate sub MMU_NOTIFY_UNMAP seq=3", "hlist start"] == log

    def test_hlist_subscribers_get_start_and_end(self) -> None:
        """Classic subscribers on a v5.5 mm see start and end after the intervals."""
        log: list[str] = []

        async def body() -> None:
            mm = await v55_mm()
            await Driver(log).insert(mm)

            async def start(mn: MmuNotifier, r: MmuNotifierRange) -> int:
                log.append("hlist start")
                return 0

            async def end(mn: MmuNotifier, r: MmuNotifierRange) -> None:
                log.append("hlist end")

            hl = MmuNotifier(
                ops=StaticMmuNotifierOps(
                    invalidate_range_start=start, invalidate_range_end=end
                ),
                name="hl",
            )
            await mmu_notifier_register(hl, mm)
            r = rng(mm)
            await mmu_notifier_invalidate_range_start(r)
            await mmu_notifier_invalidate_range_end(r)

        assert [] == run(body)
        assert [
            "invalidate sub MMU_NOTIFY_UNMAP seq=3",
            "hlist start",
            "hlist end",
        ] == log


class TestRemove:
    def test_remove_when_idle_leaves_the_tree_at_once(self) -> None:
        """Idle remove takes the sub out of the tree and drops the mm_count."""
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            d = Driver([])
            await d.insert(mm)
            count = mm.mm_count.value
            await mmu_interval_notifier_remove(d.sub)
            seen.extend([mmn(mm).itree, d.sub.rb_empty, count - mm.mm_count.value])

        assert [] == run(body)
        assert [[], True, 1] == seen

    def test_remove_while_invalidating_waits_for_the_last_end(self) -> None:
        """A remove during an invalidation is deferred and returns after the end."""
        log: list[str] = []

        def tasks() -> Sequence[tuple[str, Body]]:
            opened = new_completion("opened")
            state: dict[str, Any] = {}

            async def invalidator() -> None:
                mm = await v55_mm()
                d = Driver(log)
                await d.insert(mm)
                state["mm"], state["d"] = mm, d
                r = rng(mm)
                await mmu_notifier_invalidate_range_start(r)
                await complete(opened)
                await msleep(1)  # a scheduling point: the woken remover runs
                log.append(f"end, deferred={len(mmn(mm).deferred_list)}")
                await mmu_notifier_invalidate_range_end(r)

            async def remover() -> None:
                await wait_for_completion(opened)
                await mmu_interval_notifier_remove(state["d"].sub)
                log.append(f"removed, tree={len(mmn(state['mm']).itree)}")

            # The remover (task 0) runs as soon as it is woken.
            return [("remover", remover()), ("invalidator", invalidator())]

        result = run_tasks(tasks)

        assert [] == result.kinds
        assert [
            "invalidate sub MMU_NOTIFY_UNMAP seq=3",
            "end, deferred=1",
            "removed, tree=0",
        ] == log

    def test_remove_cancels_a_deferred_insert(self) -> None:
        """Removing a sub whose insert is still deferred cancels it without waiting."""
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            await Driver([]).insert(mm)
            m = mmn(mm)
            await mn_itree_inv_start_range(m, rng(mm))
            late = Driver([], "late")
            await late.insert(mm)
            seen.append(m.deferred_list == [late.sub])
            await mmu_interval_notifier_remove(late.sub)
            seen.append(m.deferred_list)
            await mn_itree_inv_end(m)
            seen.append(len(m.itree))

        assert [] == run(body)
        assert [True, [], 1] == seen


class TestReleaseAndDestroy:
    def test_exit_invalidates_every_interval_with_release(self) -> None:
        """The last mmput invalidates every subscription with MMU_NOTIFY_RELEASE."""
        log: list[str] = []
        seen: list[object] = []

        async def body() -> None:
            mm = await v55_mm()
            d = Driver(log)
            await d.insert(mm)
            await mmput(mm)
            seen.extend(
                [mmn(mm).invalidate_seq.value, mmn(mm).active_invalidate_ranges]
            )
            await mmu_interval_notifier_remove(d.sub)
            seen.append(mm.freed)

        assert [] == run(body)
        # Release first, then exit_mmap's unmap (the sub is still in the tree).
        assert [
            f"invalidate sub {MMU_NOTIFY_RELEASE.name} seq=3",
            "invalidate sub MMU_NOTIFY_UNMAP seq=5",
        ] == log
        assert [6, 0, True] == seen
