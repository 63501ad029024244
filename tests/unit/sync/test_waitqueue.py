"""Tests for `hmmsim.sync.waitqueue`."""

from __future__ import annotations

from tests.support.harness import exhaust, kinds, sequential, tasks
from tests.support.toy_programs import message_passing

from hmmsim.engine import Instance, Outcome, Status
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    WaitQueueHead,
    init_waitqueue_head,
    wait_event,
    wait_event_timeout,
    waitqueue,
    wake_up,
    wake_up_all,
)


def flag_waiters(*, waiters: int, set_flag: bool, single: bool = False) -> Instance:
    """``waiters`` tasks wait for a flag; the last task (maybe) sets it and wakes them."""
    flag = Cell("flag", False)
    wq = WaitQueueHead("wq")

    async def is_set() -> bool:
        return await READ_ONCE(flag)

    async def waiter() -> None:
        await wait_event(wq, is_set)

    async def waker() -> None:
        if set_flag:
            await WRITE_ONCE(flag, True)
        await (wake_up(wq) if single else wake_up_all(wq))

    return tasks(*(waiter() for _ in range(waiters)), waker())


class TestWaitEvent:
    def test_message_passing_is_verified(self) -> None:
        """The producer/consumer toy program passes in every interleaving."""
        result = exhaust(message_passing)

        assert Status.VERIFIED == result.status
        assert [] == result.kinds

    def test_wake_up_all_wakes_every_waiter(self) -> None:
        """Two waiters of one flag both finish in every interleaving."""
        result = exhaust(lambda: flag_waiters(waiters=2, set_flag=True))

        assert Status.VERIFIED == result.status
        assert {"passed": result.executions} == result.outcomes

    def test_wake_up_wakes_the_waiters_too(self) -> None:
        """wake_up (no exclusive waiters in the model) also wakes every waiter."""
        result = exhaust(lambda: flag_waiters(waiters=2, set_flag=True, single=True))

        assert Status.VERIFIED == result.status

    def test_a_wake_up_without_the_condition_leaves_the_waiter_asleep(self) -> None:
        """Waking without making the condition true ends in a deadlock."""
        result = exhaust(lambda: flag_waiters(waiters=1, set_flag=False))

        assert ["deadlock"] == result.kinds
        assert Outcome.VIOLATION.value in result.outcomes

    def test_a_true_condition_returns_without_sleeping(self) -> None:
        """wait_event on a true condition takes one step (the condition's read)."""

        def program() -> Instance:
            flag = Cell("flag", True)
            wq = WaitQueueHead("wq")

            async def is_set() -> bool:
                return await READ_ONCE(flag)

            async def body() -> None:
                await wait_event(wq, is_set)

            return tasks(body())

        result = sequential(program)

        assert (Outcome.PASSED, 1) == (result.outcome, result.steps)


class TestWaitEventTimeout:
    def test_both_branches_of_the_timeout_are_explored(self) -> None:
        """DFS sees the condition-true, timed-out and timed-out-but-true returns."""
        returned: set[int] = set()

        def program() -> Instance:
            flag = Cell("flag", False)
            wq = WaitQueueHead("wq")

            async def is_set() -> bool:
                return await READ_ONCE(flag)

            async def waiter() -> None:
                returned.add(await wait_event_timeout(wq, is_set, 10))

            async def waker() -> None:
                await WRITE_ONCE(flag, True)
                await wake_up_all(wq)

            return tasks(waiter(), waker())

        result = exhaust(program)

        assert {0, 1, 10} == returned
        assert Status.VERIFIED == result.status

    def test_a_timed_waiter_never_woken_is_pruned(self) -> None:
        """Choosing 'woken' with no waker is infeasible (PRUNED); the timeout passes."""
        returned: list[int] = []

        def program() -> Instance:
            flag = Cell("flag", False)
            wq = WaitQueueHead("wq")

            async def is_set() -> bool:
                return await READ_ONCE(flag)

            async def waiter() -> None:
                returned.append(await wait_event_timeout(wq, is_set, 5))

            return tasks(waiter())

        result = exhaust(program)

        assert {"pruned": 1, "passed": 1} == result.outcomes
        assert [0] == returned
        assert Status.VERIFIED == result.status

    def test_timeout_below_one_counts_as_one(self) -> None:
        """A true condition returns max(timeout, 1), as the kernel macro does."""
        returned: list[int] = []

        def program() -> Instance:
            flag = Cell("flag", True)
            wq = WaitQueueHead("wq")

            async def is_set() -> bool:
                return await READ_ONCE(flag)

            async def waiter() -> None:
                returned.append(await wait_event_timeout(wq, is_set, 0))

            return tasks(waiter())

        sequential(program)

        assert [1] == returned


class TestWaitQueueHead:
    def test_init_waitqueue_head_empties_the_queue(self) -> None:
        """init_waitqueue_head forgets the waiters; the head has no holders."""
        wq = WaitQueueHead("wq")
        wq.waiters = []

        init_waitqueue_head(wq)

        assert [] == wq.waiters
        assert () == wq.holders()
        assert "WaitQueueHead('wq', waiters=[])" == repr(wq)

    def test_a_condition_true_after_queueing_does_not_sleep(self) -> None:
        """If the condition turns true between the first check and queueing, no sleep."""

        def program() -> Instance:
            flag = Cell("flag", False)
            wq = WaitQueueHead("wq")

            async def is_set() -> bool:
                return await READ_ONCE(flag)

            async def waiter() -> None:
                await wait_event(wq, is_set)

            async def setter() -> None:
                await WRITE_ONCE(flag, True)

            return tasks(waiter(), setter())

        # t0 reads false, t1 sets the flag, t0 queues, rereads true, and leaves.
        result = sequential(program, "t0", "t1", "t0", "t0")

        assert [] == kinds(result)
        assert 4 == result.steps


class TestPrepareToWait:
    def test_prepare_to_wait_queues_a_task_once(self) -> None:
        """Preparing to wait twice leaves the task queued once, as in the kernel."""
        queued: list[list[str]] = []

        def program() -> Instance:
            wq = WaitQueueHead("wq")

            async def body() -> None:
                await waitqueue._prepare_to_wait(wq)
                await waitqueue._prepare_to_wait(wq)
                queued.append([t.name for t in wq.waiters])

            return tasks(body())

        sequential(program)

        assert [["t0"]] == queued
