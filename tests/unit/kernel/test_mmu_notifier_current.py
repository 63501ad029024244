"""Tests for `hmmsim.kernel.mmu_notifier_current` (mm/mmu_notifier.c, v6.16).

Sequential tests mirror those of the v5.5 core; the two fixes since v5.5
(c2655835fd8c and 319561669a59) are tested directly, the second one by an
exhaustive exploration that finds the v5.5 use-after-free and not the v6.16
one.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Coroutine, Sequence
from types import ModuleType
from typing import Any

import pytest
from tests.support.kernel_harness import BASE, make_mm, run_one, run_tasks

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Instance, SimpleInstance, explore
from hmmsim.kernel import mmu_notifier_current as cur
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
from hmmsim.kernel.mmu_notifier_current import (
    MmuIntervalNotifier,
    MmuNotifierSubscriptions,
    StaticMmuIntervalNotifierOps,
    mmu_interval_check_retry,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_insert_locked,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_seq_released,
    mmu_interval_set_seq,
    mn_itree_inv_end,
    mn_itree_inv_start_range,
    mn_itree_invalidate,
)
from hmmsim.kernel.slab import kfree
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
    shared_access,
    up_write,
)

Body = Coroutine[Any, Any, Any]


async def cur_mm(npages: int = 4) -> MmStruct:
    """A fresh mm served by the current notifier core."""
    mm = await make_mm(npages)
    mm.notifier_core = cur
    return mm


def subs(mm: MmStruct) -> MmuNotifierSubscriptions:
    subscriptions = mm.mmu_notifier_mm
    assert isinstance(subscriptions, MmuNotifierSubscriptions)
    return subscriptions


class Driver:
    """An interval subscriber with a user lock, in the shape of test_hmm.c."""

    def __init__(self, log: list[str], name: str = "sub") -> None:
        self.log = log
        self.lock = Mutex(f"{name}.lock")
        self.sub = MmuIntervalNotifier(name=name, container=self)
        self.ops = StaticMmuIntervalNotifierOps(invalidate=self.invalidate)

    async def invalidate(
        self, sub: MmuIntervalNotifier, r: MmuNotifierRange, cur_seq: int
    ) -> bool:
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


def hlist_subscriber(
    log: list[str], name: str, *, ret: int = 0, with_end: bool = True
) -> MmuNotifier:
    """A classic subscriber whose start returns ``ret`` and logs its calls."""

    async def start(mn: MmuNotifier, r: MmuNotifierRange) -> int:
        log.append(f"{name} start {ret}")
        return ret

    async def end(mn: MmuNotifier, r: MmuNotifierRange) -> None:
        log.append(f"{name} end")

    ops = StaticMmuNotifierOps(
        invalidate_range_start=start, invalidate_range_end=end if with_end else None
    )
    return MmuNotifier(ops=ops, name=name)


class TestRegisterAndInsert:
    def test_first_insert_creates_the_subscriptions_struct(self) -> None:
        """The first insert creates mmu_notifier_subscriptions: seq 2, sub seq 1."""
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            d = Driver([])
            seen.append(await d.insert(mm))
            m = subs(mm)
            seen.extend(
                [m.has_itree, m.invalidate_seq.value, d.sub.invalidate_seq.value]
            )
            seen.extend([m.itree == [d.sub], m.name])

        assert [] == run(body)
        assert [0, True, 2, 1, True, "mm->notifier_subscriptions"] == seen

    def test_enomem(self) -> None:
        """A failed allocation of the notifier structure gives -ENOMEM."""
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            current_execution().context["failslab"] = 1
            seen.append(await Driver([]).insert(mm))

        run(body)
        assert [-errno.ENOMEM] == seen

    def test_empty_interval_is_eoverflow(self) -> None:
        """length 0 gives -EOVERFLOW."""
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            seen.append(await Driver([]).insert(mm, 0, 0))

        run(body)
        assert [-errno.EOVERFLOW] == seen

    def test_insert_on_an_mm_without_users_warns_and_is_einval(self) -> None:
        """v6.16 checks mm_users (v5.5 checked mm_count): a dead mm is -EINVAL."""
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            first = Driver([], "first")
            await first.insert(mm)
            mm.mm_users.value = 0  # the last user is gone, mm_count still held
            seen.append(await Driver([], "late").insert(mm))

        assert ["warn"] == run(body)
        assert [-errno.EINVAL] == seen

    def test_insert_while_invalidating_is_deferred_to_the_last_end(self) -> None:
        """With seq odd the insert waits on the deferred list; the last end adds it."""
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver([], "first").insert(mm)
            m = subs(mm)
            await mn_itree_inv_start_range(m, rng(mm))
            late = Driver([], "late")
            await late.insert(mm)
            seen.extend([late.sub.rb_empty, late.sub.invalidate_seq.value])
            await mn_itree_inv_end(m)
            seen.extend([late.sub.rb_empty, len(m.itree), m.invalidate_seq.value])

        assert [] == run(body)
        assert [True, 3, False, 2, 4] == seen

    def test_insert_locked_under_mmap_sem(self) -> None:
        """The _locked variant registers with mmap_sem already held for write."""
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            d = Driver([])
            await down_write(mm.mmap_sem)
            seen.append(
                await mmu_interval_notifier_insert_locked(d.sub, mm, 0, 4096, d.ops)
            )
            await up_write(mm.mmap_sem)
            seen.append(subs(mm).itree == [d.sub])

        assert [] == run(body)
        assert [0, True] == seen

    def test_insert_locked_enomem(self) -> None:
        """The _locked variant passes a failed allocation on as -ENOMEM."""
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            d = Driver([])
            current_execution().context["failslab"] = 1
            await down_write(mm.mmap_sem)
            seen.append(
                await mmu_interval_notifier_insert_locked(d.sub, mm, 0, 4096, d.ops)
            )
            await up_write(mm.mmap_sem)

        run(body)
        assert [-errno.ENOMEM] == seen

    def test_insert_while_active_but_even_makes_seq_odd(self) -> None:
        """An insert during a non-intersecting invalidation goes in, seq becomes odd."""
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver([], "first").insert(mm, BASE, PAGE_SIZE)
            m = subs(mm)
            far = rng(mm, BASE + 8 * PAGE_SIZE, BASE + 9 * PAGE_SIZE)
            sub, seq = await mn_itree_inv_start_range(m, far)
            seen.extend([sub, seq])
            second = Driver([], "second")
            await second.insert(mm, BASE, PAGE_SIZE)
            seen.extend([m.invalidate_seq.value, second.sub.invalidate_seq.value])
            await mn_itree_inv_end(m)
            seen.extend([m.invalidate_seq.value, len(m.itree)])

        assert [] == run(body)
        assert [None, 2, 3, 3, 4, 2] == seen


class TestSequence:
    def test_nested_sections_release_on_the_last_end(self) -> None:
        """Two open sections: the first end keeps seq odd, the second makes it even."""
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver([]).insert(mm)
            m = subs(mm)
            await mn_itree_inv_start_range(m, rng(mm))
            await mn_itree_inv_start_range(m, rng(mm))
            await mn_itree_inv_end(m)
            seen.extend([m.invalidate_seq.value, m.active_invalidate_ranges])
            await mn_itree_inv_end(m)
            seen.extend([m.invalidate_seq.value, m.active_invalidate_ranges])

        assert [] == run(body)
        assert [3, 1, 4, 0] == seen

    def test_non_intersecting_range_keeps_seq_even(self) -> None:
        """A range no subscription covers leaves seq even and calls nobody."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver(log).insert(mm, BASE, PAGE_SIZE)
            r = rng(mm, BASE + 4 * PAGE_SIZE, BASE + 5 * PAGE_SIZE)
            await mmu_notifier_invalidate_range_start(r)
            seen.append(subs(mm).invalidate_seq.value)
            await mmu_notifier_invalidate_range_end(r)
            seen.append(subs(mm).invalidate_seq.value)

        assert [] == run(body)
        assert [2, 2] == seen
        assert [] == log

    def test_read_begin_sleeps_while_the_sub_is_being_invalidated(self) -> None:
        """read_begin during an invalidation of the sub waits for the last end."""
        log: list[str] = []

        def tasks() -> Sequence[tuple[str, Body]]:
            started = new_completion("started")
            state: dict[str, Any] = {}

            async def invalidator() -> None:
                mm = await cur_mm()
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

            return [("reader", reader()), ("invalidator", invalidator())]

        result = run_tasks(tasks)

        assert [] == result.kinds
        assert ["invalidate sub MMU_NOTIFY_UNMAP seq=3", "end", "read_begin 3"] == log

    def test_read_begin_idle_and_read_retry_after_an_invalidation(self) -> None:
        """Idle read_begin returns the sub's seq; an invalidation makes retry true."""
        log: list[str] = []
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            d = Driver(log)
            await d.insert(mm)
            seq = await mmu_interval_read_begin(d.sub)
            seen.extend([seq, mmu_interval_read_retry(d.sub, seq)])
            r = rng(mm)
            await mmu_notifier_invalidate_range_start(r)
            await mmu_notifier_invalidate_range_end(r)
            seen.append(mmu_interval_read_retry(d.sub, seq))
            seen.append(await mmu_interval_check_retry(d.sub, seq))

        assert [] == run(body)
        assert [1, False, True, True] == seen
        assert ["invalidate sub MMU_NOTIFY_UNMAP seq=3"] == log


class TestReadBeginDiagram:
    def test_read_retry_true_after_concurrent_invalidate(self) -> None:
        """Replays the docstring diagram of mmu_interval_read_begin step by step."""
        log: list[str] = []

        def tasks() -> Sequence[tuple[str, Body]]:
            begun = new_completion("begun")
            invalidated = new_completion("invalidated")
            state: dict[str, Any] = {}

            async def fault() -> None:
                mm = await cur_mm()
                d = Driver(log)
                await d.insert(mm)
                state["mm"], state["d"] = mm, d
                seq = await mmu_interval_read_begin(d.sub)
                log.append(f"read_begin {seq}")
                await complete(begun)
                await wait_for_completion(invalidated)
                await mutex_lock(d.lock)
                log.append(f"read_retry {mmu_interval_read_retry(d.sub, seq)}")
                await mutex_unlock(d.lock)

            async def invalidation() -> None:
                await wait_for_completion(begun)
                mm = state["mm"]
                m = subs(mm)
                r = rng(mm)
                r.flags = 1  # MMU_NOTIFIER_RANGE_BLOCKABLE
                assert 0 == await mn_itree_invalidate(m, r)
                seq_now: int = await READ_ONCE(m.invalidate_seq)
                log.append(f"mm seq {seq_now}")
                await mn_itree_inv_end(m)
                seq_now = await READ_ONCE(m.invalidate_seq)
                log.append(f"mm seq {seq_now}")
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
    def test_blockable_refusal_warns_and_goes_on(self) -> None:
        """A callback refusing a blockable range is a WARN; the start still succeeds."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()

            async def refuse(
                sub: MmuIntervalNotifier, r: MmuNotifierRange, cur_seq: int
            ) -> bool:
                log.append(f"refuse {sub.name}")
                return False

            a = MmuIntervalNotifier(name="a")
            ops = StaticMmuIntervalNotifierOps(invalidate=refuse)
            await mmu_interval_notifier_insert(a, mm, BASE, PAGE_SIZE, ops)
            await Driver(log, "b").insert(mm, BASE, 2 * PAGE_SIZE)
            r = rng(mm)
            await mmu_notifier_invalidate_range_start(r)
            seen.append(subs(mm).active_invalidate_ranges)
            await mmu_notifier_invalidate_range_end(r)
            seen.append(subs(mm).active_invalidate_ranges)

        assert ["warn"] == run(body)
        assert [1, 0] == seen
        assert ["refuse a", "invalidate b MMU_NOTIFY_UNMAP seq=3"] == log

    def test_sleeping_in_a_nonblocking_interval_callback_is_reported(self) -> None:
        """MODEL debug aid: a callback sleeping on a non-blockable range is caught."""

        async def body() -> None:
            mm = await cur_mm()
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

    def test_nonblocking_pair_with_an_hlist_subscriber(self) -> None:
        """A successful non-blocking start is ended: hlist end runs, seq even again."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver(log).insert(mm)
            assert 0 == await mmu_notifier_register(hlist_subscriber(log, "hl"), mm)
            r = rng(mm)
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(r))
            await mmu_notifier_invalidate_range_end(r)
            seen.append(subs(mm).invalidate_seq.value)

        assert [] == run(body)
        assert [0, 4] == seen
        assert ["invalidate sub MMU_NOTIFY_UNMAP seq=3", "hl start 0", "hl end"] == log

    def test_refused_nonblocking_interval_start_unwinds_itself(self) -> None:
        """A refused non-blocking callback: -EAGAIN, section closed, seq even again."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            d = Driver(log)
            await d.insert(mm)
            await mutex_lock(d.lock)
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(rng(mm)))
            await mutex_unlock(d.lock)
            m = subs(mm)
            seen.extend([m.active_invalidate_ranges, m.invalidate_seq.value])

        assert [] == run(body)
        assert [-errno.EAGAIN, 0, 4] == seen
        assert ["busy sub"] == log

    def test_refusal_ends_the_subscribers_whose_start_succeeded(self) -> None:
        """c2655835fd8c: after a refusal every hlist end runs (v5.5 called none)."""
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            ok = hlist_subscriber(log, "ok")
            refusing = hlist_subscriber(
                log, "refusing", ret=-errno.EAGAIN, with_end=False
            )
            # hlist_add_head: the last registered is called first.
            assert 0 == await mmu_notifier_register(ok, mm)
            assert 0 == await mmu_notifier_register(refusing, mm)
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(rng(mm)))
            seen.extend([ok.ghost_balance, refusing.ghost_balance])

        assert [] == run(body)
        assert [-errno.EAGAIN, 0, 0] == seen
        assert ["refusing start -11", "ok start 0", "ok end"] == log

    def test_v55_refusal_leaves_the_succeeded_start_without_its_end(self) -> None:
        """The same refusal on v5.5: no end at all, the ok subscriber stays open."""
        log: list[str] = []

        async def body() -> None:
            mm = await make_mm()
            mm.notifier_core = v55
            ok = hlist_subscriber(log, "ok")
            refusing = hlist_subscriber(
                log, "refusing", ret=-errno.EAGAIN, with_end=False
            )
            assert 0 == await mmu_notifier_register(ok, mm)
            assert 0 == await mmu_notifier_register(refusing, mm)
            await mmu_notifier_invalidate_range_start_nonblock(rng(mm))

        assert [] == run(body)
        assert ["refusing start -11", "ok start 0"] == log

    def test_a_failing_subscriber_with_an_end_warns_and_gets_its_end(self) -> None:
        """Since c2655835fd8c a start that can fail must not have an end: WARN."""
        log: list[str] = []

        async def body() -> None:
            mm = await cur_mm()
            bad = hlist_subscriber(log, "bad", ret=-errno.EAGAIN, with_end=True)
            assert 0 == await mmu_notifier_register(bad, mm)
            r = rng(mm)
            assert -errno.EAGAIN == await mmu_notifier_invalidate_range_start_nonblock(
                r
            )

        assert ["warn"] == run(body)
        assert ["bad start -11", "bad end"] == log

    def test_hlist_refusal_still_leaves_the_interval_section_open(self) -> None:
        """Today's code: an hlist -EAGAIN after the interval part succeeded is not
        unwound; the interval sequence stays odd (docs/scenarios.md, oom-hmm-and-kvm).
        """
        log: list[str] = []
        seen: list[int] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver(log).insert(mm)
            refusing = hlist_subscriber(
                log, "refusing", ret=-errno.EAGAIN, with_end=False
            )
            assert 0 == await mmu_notifier_register(refusing, mm)
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(rng(mm)))
            m = subs(mm)
            seen.extend([m.active_invalidate_ranges, m.invalidate_seq.value & 1])
            seen.extend([mm.ghost_open_invalidations])

        assert [] == run(body)
        assert [-errno.EAGAIN, 1, 1, 0] == seen
        assert ["invalidate sub MMU_NOTIFY_UNMAP seq=3", "refusing start -11"] == log

    def test_hlist_subscribers_get_start_and_end(self) -> None:
        """Classic subscribers see start and end after the intervals."""
        log: list[str] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver(log).insert(mm)
            assert 0 == await mmu_notifier_register(hlist_subscriber(log, "hl"), mm)
            r = rng(mm)
            await mmu_notifier_invalidate_range_start(r)
            await mmu_notifier_invalidate_range_end(r)

        assert [] == run(body)
        assert [
            "invalidate sub MMU_NOTIFY_UNMAP seq=3",
            "hl start 0",
            "hl end",
        ] == log


class TestRemove:
    def test_remove_when_idle_leaves_the_tree_at_once(self) -> None:
        """Idle remove takes the sub out of the tree and drops the mm_count."""
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            d = Driver([])
            await d.insert(mm)
            count = mm.mm_count.value
            await mmu_interval_notifier_remove(d.sub)
            seen.extend([subs(mm).itree, d.sub.rb_empty, count - mm.mm_count.value])

        assert [] == run(body)
        assert [[], True, 1] == seen

    def test_seq_released_reads_the_sequence_under_the_lock(self) -> None:
        """mmu_interval_seq_released: false at the same odd value, true once it moved."""
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver([]).insert(mm)
            m = subs(mm)
            _, seq = await mn_itree_inv_start_range(m, rng(mm))
            seen.append(await mmu_interval_seq_released(m, seq))
            await mn_itree_inv_end(m)
            seen.append(await mmu_interval_seq_released(m, seq))

        run_result = run_one(body)

        assert [] == run_result.kinds
        assert [False, True] == seen

    def test_remove_while_invalidating_waits_for_the_last_end(self) -> None:
        """A remove during an invalidation is deferred and returns after the end."""
        log: list[str] = []

        def tasks() -> Sequence[tuple[str, Body]]:
            opened = new_completion("opened")
            state: dict[str, Any] = {}

            async def invalidator() -> None:
                mm = await cur_mm()
                d = Driver(log)
                await d.insert(mm)
                state["mm"], state["d"] = mm, d
                r = rng(mm)
                await mmu_notifier_invalidate_range_start(r)
                await complete(opened)
                await msleep(1)  # a scheduling point: the woken remover runs
                log.append(f"end, deferred={len(subs(mm).deferred_list)}")
                await mmu_notifier_invalidate_range_end(r)

            async def remover() -> None:
                await wait_for_completion(opened)
                await mmu_interval_notifier_remove(state["d"].sub)
                log.append(f"removed, tree={len(subs(state['mm']).itree)}")

            return [("remover", remover()), ("invalidator", invalidator())]

        result = run_tasks(tasks)

        assert [] == result.kinds
        assert [
            "invalidate sub MMU_NOTIFY_UNMAP seq=3",
            "end, deferred=1",
            "removed, tree=0",
        ] == log


def remove_then_free(core: ModuleType) -> Callable[[], Instance]:
    """A remove racing with the last end, the caller freeing the sub at once."""

    async def invalidate(
        sub: MmuIntervalNotifier, r: MmuNotifierRange, seq: int
    ) -> bool:
        await core.mmu_interval_set_seq(sub, seq)
        return True

    ops = StaticMmuIntervalNotifierOps(invalidate=invalidate)

    def program() -> Instance:
        opened = new_completion("opened")
        state: dict[str, Any] = {}

        async def invalidator() -> None:
            mm = await make_mm(1)
            mm.notifier_core = core
            sub = MmuIntervalNotifier(name="sub")
            assert 0 == await core.mmu_interval_notifier_insert(
                sub, mm, 0, 1 << 40, ops
            )
            state["sub"] = sub
            r = rng(mm)
            await mmu_notifier_invalidate_range_start(r)
            await complete(opened)
            await mmu_notifier_invalidate_range_end(r)

        async def remover() -> None:
            await wait_for_completion(opened)
            sub = state["sub"]
            await core.mmu_interval_notifier_remove(sub)
            # The caller frees the structure embedding the subscription.
            await shared_access(sub, write=True, func="kfree")
            kfree(sub)

        return SimpleInstance(
            task_list=[("invalidator", invalidator()), ("remover", remover())]
        )

    return program


@pytest.mark.parametrize(
    ("core", "kinds"), [(v55, ["use-after-free"]), (cur, [])], ids=["v5.5", "current"]
)
def test_remove_race_of_319561669a59(core: ModuleType, kinds: list[str]) -> None:
    """DPOR finds the v5.5 use-after-free of the remove race, and none on current."""
    result = explore(
        remove_then_free(core), ExploreConfig(max_executions=10_000, shrink=False)
    )

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert kinds == sorted(result.kinds)


class TestRemoveDeferred:
    def test_remove_cancels_a_deferred_insert(self) -> None:
        """Removing a sub whose insert is still deferred cancels it without waiting."""
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver([]).insert(mm)
            m = subs(mm)
            await mn_itree_inv_start_range(m, rng(mm))
            late = Driver([], "late")
            await late.insert(mm)
            await mmu_interval_notifier_remove(late.sub)
            seen.append(m.deferred_list)
            await mn_itree_inv_end(m)
            seen.append(len(m.itree))

        assert [] == run(body)
        assert [[], 1] == seen


class TestReleaseAndDestroy:
    def test_exit_releases_hlist_subscribers_too(self) -> None:
        """The last mmput calls the hlist release and unhooks the subscriber."""
        log: list[str] = []

        async def body() -> None:
            mm = await cur_mm()
            await Driver(log).insert(mm)

            async def release(mn: MmuNotifier, m: MmStruct) -> None:
                log.append(f"release {mn.name}")

            hl = MmuNotifier(ops=StaticMmuNotifierOps(release=release), name="hl")
            assert 0 == await mmu_notifier_register(hl, mm)
            await mmput(mm)
            log.append(f"first={subs(mm).first}")

        assert [] == run(body)
        assert "release hl" in log
        assert "first=None" == log[-1]

    def test_exit_invalidates_every_interval_with_release_then_frees(self) -> None:
        """The last mmput invalidates with MMU_NOTIFY_RELEASE; the mm is freed later."""
        log: list[str] = []
        seen: list[object] = []

        async def body() -> None:
            mm = await cur_mm()
            d = Driver(log)
            await d.insert(mm)
            await mmput(mm)
            seen.extend(
                [subs(mm).invalidate_seq.value, subs(mm).active_invalidate_ranges]
            )
            await mmu_interval_notifier_remove(d.sub)
            seen.extend([mm.freed, mm.mmu_notifier_mm])

        assert [] == run(body)
        assert [
            f"invalidate sub {MMU_NOTIFY_RELEASE.name} seq=3",
            "invalidate sub MMU_NOTIFY_UNMAP seq=5",
        ] == log
        assert [6, 0, True, None] == seen
