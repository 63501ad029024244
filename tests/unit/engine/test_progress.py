"""Tests for `hmmsim.engine.progress` (the ``hang`` kind).

Toy programs with exact expectations: a loop that changes nothing while no
other task can run is a hang; a spin-wait that another task ends is not (the
spinning task yields to it); a loop whose state grows still ends at the step
limit, which stays a bound (incomplete), never a finding.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.differential import behaviours, run_all
from tests.support.harness import tasks

from hmmsim.config import ExploreConfig
from hmmsim.engine import Instance, Outcome, Status, Task, explore, replay
from hmmsim.engine.progress import view_of
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    RwSemaphore,
    SpinLock,
    WaitQueueHead,
    cond_resched,
    down_read,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
    up_read,
    wait_event_timeout,
)

STRATEGIES = ["dfs", "dpor"]


def _retry_forever() -> Instance:
    flag = Cell("flag", 0)
    lock = Mutex("m")

    async def waiter() -> None:
        while True:
            await mutex_lock(lock)
            ready = flag.value  # under the lock every writer takes
            await mutex_unlock(lock)
            if ready:
                return

    return tasks(waiter())


def _spin_until_set() -> Instance:
    flag = Cell("flag", 0)

    async def waiter() -> None:
        while not await READ_ONCE(flag):
            pass

    async def setter() -> None:
        await WRITE_ONCE(flag, 1)

    return tasks(waiter(), setter())


def _poll_under_a_lock_another_task_waits_for() -> Instance:
    """A poller takes and drops a spinlock each round; the setter waits for it.

    The setter steps once first (so the poller's solo run starts while it
    holds the lock): the poller's round then comes back to its view at a
    point where it holds the lock and the setter cannot run, yet the setter
    can take the lock where the round drops it.  Not a hang.
    """
    flag = Cell("flag", 0)
    other = Cell("other", 0)
    lock = SpinLock("ptl")

    async def poller() -> None:
        while True:
            await spin_lock(lock)
            ready = await READ_ONCE(flag)
            await spin_unlock(lock)
            if ready:
                return

    async def setter() -> None:
        await WRITE_ONCE(other, 1)
        await spin_lock(lock)
        await WRITE_ONCE(flag, 1)
        await spin_unlock(lock)

    return tasks(poller(), setter())


def _bounded_retry() -> Instance:
    flag = Cell("flag", 0)

    async def poller() -> None:
        for _attempt in range(12):
            if await READ_ONCE(flag):
                return

    return tasks(poller())


def _counting_forever() -> Instance:
    flag = Cell("flag", 0)

    async def counter() -> None:
        rounds = 0
        while not await READ_ONCE(flag):
            rounds += 1

    return tasks(counter())


def _spin_against_a_sleeper() -> Instance:
    flag = Cell("flag", 0)
    lock = Mutex("m")

    async def spinner() -> None:
        await mutex_lock(lock)
        while not await READ_ONCE(flag):
            await cond_resched()
        await mutex_unlock(lock)

    async def sleeper() -> None:
        await mutex_lock(lock)
        await WRITE_ONCE(flag, 1)
        await mutex_unlock(lock)

    return tasks(spinner(), sleeper())


def _timed_retry_forever() -> Instance:
    done = Cell("done", False)
    wq = WaitQueueHead("wq")

    async def is_done() -> bool:
        return await READ_ONCE(done)

    async def waiter() -> None:
        while not await wait_event_timeout(wq, is_done, 10):
            pass

    return tasks(waiter())


def _fault_retries_while_invalidation_never_ends() -> Instance:
    """A fault that retries while an invalidation that never ends is in progress.

    The invalidation makes the sequence count odd and never makes it even
    again (an unbalanced invalidate_range_start); the fault path retries for
    as long as the count is odd, as a driver looping on -EBUSY does.
    """
    mmap_sem = RwSemaphore("mmap_sem")
    seq = Cell("notifier_seq", 0)
    mapped = Cell("device_pte", 0)

    async def invalidate_start_without_end() -> None:
        await WRITE_ONCE(seq, 1)

    async def device_fault() -> None:
        while True:
            await down_read(mmap_sem)
            if await READ_ONCE(seq) & 1:
                await up_read(mmap_sem)  # -EBUSY: try again
                await cond_resched()
                continue
            await WRITE_ONCE(mapped, 1)
            await up_read(mmap_sem)
            return

    return tasks(device_fault(), invalidate_start_without_end())


def _explore(program: object, strategy: str, **overrides: object) -> object:
    assert callable(program)
    config = ExploreConfig(strategy=strategy, shrink=False, **overrides)  # type: ignore[arg-type]
    return explore(program, config)


class TestHang:
    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_a_lone_retry_loop_that_changes_nothing_is_a_hang(
        self, strategy: str
    ) -> None:
        """One task retrying under a lock with nothing changing: one execution, a hang."""
        result = explore(_retry_forever, ExploreConfig(strategy=strategy, shrink=False))

        assert Status.VIOLATION == result.status
        assert ["hang"] == result.kinds
        assert 1 == result.executions
        example = result.counterexamples[0]
        assert 19 == example.steps
        assert example.finding.message == (
            "hang: t0 repeats a loop with no change to any state, and no other "
            "task can run"
        )
        assert (
            "t0 goes round a loop that changes nothing, at "
            in example.finding.detail[0]
        )
        assert "in waiter" in example.finding.detail[0]

    def test_the_hang_replays_from_its_schedule(self) -> None:
        """Replaying the counterexample's schedule ends in the same hang at the same step."""
        result = explore(_retry_forever, ExploreConfig(strategy="dpor", shrink=False))
        example = result.counterexamples[0]

        again = replay(_retry_forever, example.schedule)

        assert Outcome.VIOLATION == again.outcome
        assert [example.finding] == [f for f in again.findings if f.kind == "hang"]
        assert example.steps == again.steps

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_a_spin_wait_that_another_task_ends_is_verified(
        self, strategy: str
    ) -> None:
        """A spinning task yields to the task that sets its flag: no hang, no step limit."""
        result = explore(
            _spin_until_set, ExploreConfig(strategy=strategy, shrink=False)
        )

        assert Status.VERIFIED == result.status
        assert {"passed": result.executions} == result.outcomes

    @pytest.mark.parametrize(("strategy", "executions"), [("dfs", 225), ("dpor", 17)])
    def test_a_poll_loop_that_drops_the_lock_its_waker_needs_is_verified(
        self, strategy: str, executions: int
    ) -> None:
        """A round that comes back while holding the waker's lock still lets it in."""
        result = explore(
            _poll_under_a_lock_another_task_waits_for,
            ExploreConfig(strategy=strategy, shrink=False),
        )

        assert Status.VERIFIED == result.status
        assert {"passed": executions} == result.outcomes

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_a_bounded_retry_is_not_a_hang(self, strategy: str) -> None:
        """A poll loop with a changing counter ends normally: verified in one execution."""
        result = explore(_bounded_retry, ExploreConfig(strategy=strategy, shrink=False))

        assert Status.VERIFIED == result.status
        assert 1 == result.executions

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_a_loop_whose_state_grows_ends_at_the_step_limit(
        self, strategy: str
    ) -> None:
        """A counter that grows for ever is not a repeat: the step limit cuts it, incomplete."""
        config = ExploreConfig(strategy=strategy, shrink=False, max_steps=200)

        result = explore(_counting_forever, config)

        assert Status.INCOMPLETE == result.status
        assert {"step-limit": 1} == result.outcomes

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_a_spin_against_a_task_asleep_for_ever_is_a_hang(
        self, strategy: str
    ) -> None:
        """The flag's setter sleeps on the spinner's mutex: hang, naming the sleeper."""
        result = explore(
            _spin_against_a_sleeper, ExploreConfig(strategy=strategy, shrink=False)
        )

        assert ["hang"] == result.kinds
        assert {"passed", "violation"} == set(result.outcomes)
        detail = result.counterexamples[0].finding.detail
        assert 2 == len(detail)
        assert "t1 waits in mutex_lock(m), held by t0" == detail[1]

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_a_retry_on_a_timeout_that_always_fires_is_a_hang(
        self, strategy: str
    ) -> None:
        """Waiting with a timeout for a wake-up nobody sends, again and again: a hang."""
        result = explore(
            _timed_retry_forever, ExploreConfig(strategy=strategy, shrink=False)
        )

        assert ["hang"] == result.kinds
        assert {"pruned", "violation"} == set(result.outcomes)

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_a_fault_retrying_while_an_invalidation_never_ends_hangs(
        self, strategy: str
    ) -> None:
        """The retry-forever model: a hang when the invalidation starts first, else it passes."""
        result = explore(
            _fault_retries_while_invalidation_never_ends,
            ExploreConfig(strategy=strategy, shrink=False),
        )

        assert ["hang"] == result.kinds
        assert {"passed", "violation"} == set(result.outcomes)
        assert "in device_fault" in result.counterexamples[0].finding.detail[0]


class TestHangAgreement:
    @pytest.mark.parametrize(
        "program",
        [
            _retry_forever,
            _spin_until_set,
            _spin_against_a_sleeper,
            _timed_retry_forever,
            _fault_retries_while_invalidation_never_ends,
            _poll_under_a_lock_another_task_waits_for,
        ],
    )
    def test_dpor_and_dfs_reach_the_same_behaviours(self, program: object) -> None:
        """With loops and hangs, DPOR reaches exactly the behaviours DFS reaches."""
        assert callable(program)
        dfs = run_all(program, DfsStrategy())
        dpor = run_all(program, DporStrategy())

        assert dfs is not None
        assert dpor is not None
        assert behaviours(dfs) == behaviours(dpor)


class _Node:
    """A plain object with a __dict__ (not slotted)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.peer: object = None

    def touch(self) -> None:
        """A method, so that a bound method can be encoded."""


def _view_of_args(*args: object) -> tuple[object, ...]:
    async def body(*values: object) -> None:
        del values

    coro = body(*args)
    try:
        return view_of(Task(0, "t", coro))
    finally:
        coro.close()


class TestViewOf:
    def test_equal_structures_of_different_objects_encode_equal(self) -> None:
        """Two copies of a cyclic structure with sets, methods and closures encode the same."""

        def world() -> tuple[object, ...]:
            a, b = _Node("a"), _Node("b")
            a.peer, b.peer = b, a
            late = 0

            def closure() -> int:
                return late  # noqa: F821 - deleted below on purpose

            del late  # the closure's cell is now empty

            def gen() -> Iterator[int]:
                yield 1

            empty = closure
            return (
                a,
                {"k": [1, 2]},
                frozenset({3, (4, 5)}),
                {a},
                a.touch,
                empty,
                gen(),
                Outcome.PASSED,
            )

        assert _view_of_args(*world()) == _view_of_args(*world())

    def test_a_changed_value_deep_in_the_structure_encodes_differently(self) -> None:
        """Changing one attribute of a reachable object changes the view."""
        a, b = _Node("a"), _Node("b")
        a.peer = b
        before = _view_of_args(a)
        b.label = "c"

        assert before != _view_of_args(a)
