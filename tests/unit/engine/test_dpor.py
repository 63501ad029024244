"""Tests for `hmmsim.engine.strategies.dpor`."""

from __future__ import annotations

from collections.abc import Callable
from math import comb, factorial

import pytest
from tests.support.differential import behaviours, run_all
from tests.support.toy_programs import (
    ab_ba,
    counter_race,
    independent,
    message_passing,
    timeout_race,
)

from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    ExplorationResult,
    Instance,
    Outcome,
    Program,
    Schedule,
    SimpleInstance,
    Status,
    explore,
)
from hmmsim.engine.strategies import make_strategy
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.errors import ModelError
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    RwSemaphore,
    SrcuStruct,
    WaitQueueHead,
    call_srcu,
    current_execution,
    down_read,
    down_write,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    shared_access,
    srcu_read_lock,
    srcu_read_unlock,
    up_read,
    up_write,
    wait_event,
    wait_event_timeout,
    wake_up_all,
)


def dpor(program: Program, **overrides: object) -> ExplorationResult:
    """Explore ``program`` with DPOR (no shrinking) and return the result."""
    config = ExploreConfig(strategy="dpor", shrink=False).replace(**overrides)
    return explore(program, config)


def dfs(program: Program, **overrides: object) -> ExplorationResult:
    """Explore ``program`` with DFS (no shrinking) and return the result."""
    config = ExploreConfig(strategy="dfs", shrink=False).replace(**overrides)
    return explore(program, config)


def assert_agrees_with_dfs(program: Program) -> int:
    """Check that DPOR reaches DFS's behaviours; return how many runs it took."""
    reference = run_all(program, DfsStrategy())
    reduced = run_all(program, DporStrategy())
    assert reference is not None
    assert reduced is not None
    assert behaviours(reference) == behaviours(reduced)
    assert len(reduced) <= len(reference)
    return len(reduced)


def wake_maybe() -> Instance:
    """A waiter with a timeout, and a waker that decides (a data choice) to wake it."""
    flag = Cell("flag", False)
    wq = WaitQueueHead("wq")
    got: list[int] = []

    async def is_set() -> bool:
        return await READ_ONCE(flag)

    async def waiter() -> None:
        got.append(await wait_event_timeout(wq, is_set, 5))

    async def waker() -> None:
        if current_execution().choose(2, "wake?"):
            await WRITE_ONCE(flag, True)
            await wake_up_all(wq)

    return SimpleInstance(
        task_list=[("waiter", waiter()), ("waker", waker())],
        state=lambda: (tuple(got), flag.value),
    )


def waiters(count: int, *, waker: bool) -> Instance:
    """``count`` tasks wait for a flag; with ``waker``, one more sets it and wakes them."""
    flag = Cell("flag", False)
    wq = WaitQueueHead("wq")

    async def is_set() -> bool:
        return await READ_ONCE(flag)

    async def waiter() -> None:
        await wait_event(wq, is_set)

    async def wake() -> None:
        await WRITE_ONCE(flag, True)
        await wake_up_all(wq)

    task_list = [(f"w{i}", waiter()) for i in range(count)]
    if waker:
        task_list.append(("waker", wake()))
    return SimpleInstance(task_list=task_list)


def late_wake(*, note: bool = False, pick: bool = False) -> Instance:
    """A producer wakes a consumer that waits with a timeout, after a write it reads.

    The consumer's timed wait is explored "woken" first; where the producer
    sleeps (its step was explored from an equivalent state) nobody can wake
    it: a sleep-set-blocked execution, which the "timed out" value covers.
    With ``note``, the consumer first reports a non-fatal finding; with
    ``pick``, it makes a data choice after its wait.
    """
    ready = Cell("ready", False)
    data = Cell("data", 0)
    wq = WaitQueueHead("wq")
    seen: list[int] = []

    async def producer() -> None:
        await WRITE_ONCE(data, 42)
        await WRITE_ONCE(ready, True)
        await wake_up_all(wq)

    async def consumer() -> None:
        async def is_ready() -> bool:
            return await READ_ONCE(ready)

        if note:
            current_execution().report("note", "consumer started", fatal=False)
        await wait_event_timeout(wq, is_ready, 10)
        seen.append(await READ_ONCE(data))
        if pick:
            seen.append(current_execution().choose(2, "after"))

    return SimpleInstance(
        task_list=[("producer", producer()), ("consumer", consumer())],
        state=lambda: tuple(seen),
    )


class TestReduction:
    @pytest.mark.parametrize(("m", "n"), [(1, 1), (2, 3), (3, 3), (4, 2), (6, 5)])
    def test_independent_tasks_need_one_execution(self, m: int, n: int) -> None:
        """Two tasks on disjoint cells: DFS runs C(m+n, n) executions, DPOR exactly one."""
        assert comb(m + n, n) == dfs(lambda: independent(m, n)).executions
        assert (1, Status.VERIFIED) == (
            dpor(lambda: independent(m, n)).executions,
            dpor(lambda: independent(m, n)).status,
        )

    def test_two_racing_increments_have_four_traces(self) -> None:
        """R0 W0 R1 W1, R1 W1 R0 W0, and both reads first with either write last: 4 runs."""
        result = dpor(counter_race)

        assert (4, {"passed": 2, "violation": 2}) == (
            result.executions,
            result.outcomes,
        )
        assert ["lost-update"] == result.kinds

    @pytest.mark.parametrize("n", [2, 3, 4])
    def test_racing_increments_need_n_factorial_squared_executions(
        self, n: int
    ) -> None:
        """n increments: n! write orders, and the k-th writer's read fits in k slots: (n!)^2."""
        result = dpor(lambda: counter_race(tasks=n))

        assert factorial(n) ** 2 == result.executions
        assert factorial(n) == result.outcomes["passed"]

    @pytest.mark.parametrize("n", [2, 3])
    def test_locked_increments_need_one_execution_per_lock_order(self, n: int) -> None:
        """Under the mutex only the order of the critical sections matters: n! runs."""
        result = dpor(lambda: counter_race(locked=True, tasks=n))

        assert (factorial(n), Status.VERIFIED) == (result.executions, result.status)

    def test_message_passing_has_four_traces(self) -> None:
        """Consumer sees ready at once, after preparing to wait (wake before or after), or sleeps."""
        result = dpor(message_passing)

        assert (4, Status.VERIFIED) == (result.executions, result.status)

    def test_ab_ba_finds_the_deadlock_and_the_inversion(self) -> None:
        """AB-BA: three traces (either order, and the deadlock), no sleep-set-blocked run.

        3 executions: an unlock never races with a lock of the same mutex
        taken after it (the two are never enabled in the other order), so
        no reversal runs a task's first lock ahead of an unlock into a
        state where it blocks while the other task sleeps (5 runs, 2 of
        them blocked, when only an acquirer already blocked there counted).
        """
        result = dpor(ab_ba)

        assert ["lock-order", "deadlock"] == result.kinds
        assert {"violation": 2, "passed": 1} == result.outcomes


class TestDataChoices:
    def test_every_value_of_every_data_choice_is_explored(self) -> None:
        """The waker may not wake and the waiter may time out: all five behaviours, in 8 runs.

        8, not 9: a sleep whose timeout fired touches only the waiter's own
        entry, so it no longer races with the wake-up (sync/waitqueue.py).
        """
        expected: set[tuple[str, object, frozenset[str]]] = {
            ("passed", ((0,), False), frozenset()),  # not woken: timed out
            ("passed", ((0,), True), frozenset()),  # timed out before the flag
            ("passed", ((1,), True), frozenset()),  # timed out, flag then set
            ("passed", ((5,), True), frozenset()),  # woken
            ("pruned", ((), False), frozenset()),  # "woken" but nobody wakes
        }
        results = run_all(wake_maybe, DporStrategy())

        assert results is not None
        assert (expected, 8) == (behaviours(results), len(results))

    def test_timeout_race_is_found(self) -> None:
        """The consumer that uses data after a timeout is caught, with both timeout values tried."""
        result = dpor(timeout_race)

        # 8: the consumer's sleep whose timeout fired commutes with the
        # wake-up (it touches only its own wait-queue entry).
        assert (["stale-data"], 8) == (result.kinds, result.executions)

    def test_a_data_choice_before_the_first_step(self) -> None:
        """A choice made while the tasks are created is explored like any other."""

        def program() -> Instance:
            cell = Cell("c", 0)
            seen: list[int] = []

            async def chooser() -> None:
                value = current_execution().choose(3, "initial")
                await WRITE_ONCE(cell, value)

            async def reader() -> None:
                seen.append(await READ_ONCE(cell))

            return SimpleInstance(
                task_list=[("chooser", chooser()), ("reader", reader())],
                state=lambda: tuple(seen),
            )

        assert 6 == assert_agrees_with_dfs(program)


class TestAgreesWithDfs:
    def test_spawned_tasks(self) -> None:
        """An SRCU callback task spawned mid-execution races with the reader it waits for."""

        def program() -> Instance:
            srcu = SrcuStruct("srcu")
            cell = Cell("c", 0)
            seen: list[int] = []

            async def callback() -> None:
                await WRITE_ONCE(cell, 2)

            async def reader() -> None:
                index = await srcu_read_lock(srcu)
                seen.append(await READ_ONCE(cell))
                await srcu_read_unlock(srcu, index)
                seen.append(await READ_ONCE(cell))

            async def updater() -> None:
                await WRITE_ONCE(cell, 1)
                await call_srcu(srcu, callback)

            return SimpleInstance(
                task_list=[("reader", reader()), ("updater", updater())],
                state=lambda: (tuple(seen), cell.value),
            )

        assert_agrees_with_dfs(program)

    def test_rw_semaphore_readers_and_writer(self) -> None:
        """Readers share an rwsem, a writer excludes them; unlocks of readers are races too."""

        def program() -> Instance:
            sem = RwSemaphore("sem")
            cell = Cell("c", 0)
            seen: list[int] = []

            async def reader() -> None:
                await down_read(sem)
                seen.append(await READ_ONCE(cell))
                await up_read(sem)

            async def writer() -> None:
                await down_write(sem)
                await WRITE_ONCE(cell, 1)
                await up_write(sem)

            return SimpleInstance(
                task_list=[("r1", reader()), ("r2", reader()), ("w", writer())],
                state=lambda: tuple(seen),
            )

        assert_agrees_with_dfs(program)

    def test_multi_object_accesses(self) -> None:
        """An access announced on two objects depends on accesses to either."""

        def program() -> Instance:
            a = Cell("a", 0)
            b = Cell("b", 0)
            seen: list[object] = []

            async def both() -> None:
                await shared_access(a, b, write=True, func="update_both")
                a.value = b.value = 1

            async def only_a() -> None:
                await shared_access(a, write=False, func="peek_a")
                seen.append(a.value)

            async def only_b() -> None:
                await shared_access(b, write=False, func="peek_b")
                seen.append(b.value)

            return SimpleInstance(
                task_list=[("both", both()), ("a", only_a()), ("b", only_b())],
                state=lambda: tuple(seen),
            )

        assert_agrees_with_dfs(program)

    def test_a_task_that_raises(self) -> None:
        """A step that ends the execution with an exception races with every other task."""

        def program() -> Instance:
            cell = Cell("c", 0)
            log: list[int] = []

            async def crasher() -> None:
                if await READ_ONCE(cell):
                    raise RuntimeError("saw the write")

            async def writer() -> None:
                log.append(1)
                await WRITE_ONCE(cell, 1)
                await WRITE_ONCE(Cell("other", 0), 1)
                log.append(2)

            return SimpleInstance(
                task_list=[("crasher", crasher()), ("writer", writer())],
                state=lambda: tuple(log),
            )

        assert_agrees_with_dfs(program)

    def test_an_acquirer_that_arrives_after_the_release(self) -> None:
        """A lock taken after a release still races with the earlier acquisition.

        Exactly the two lock orders: the second task's lock, reached after
        the first task's unlock, does not race with the unlock (it could
        not precede it) but with the first task's lock.  (3 runs, one of
        them sleep-set blocked, when the unlock counted as a race.)
        """

        def program() -> Instance:
            lock = Mutex("m")
            cell = Cell("c", 0)
            other = Cell("o", 0)
            seen: list[int] = []

            async def first() -> None:
                await mutex_lock(lock)
                seen.append(await READ_ONCE(cell))
                await mutex_unlock(lock)

            async def second() -> None:
                await READ_ONCE(other)
                await mutex_lock(lock)
                await WRITE_ONCE(cell, 1)
                await mutex_unlock(lock)

            return SimpleInstance(
                task_list=[("first", first()), ("second", second())],
                state=lambda: tuple(seen),
            )

        assert 2 == assert_agrees_with_dfs(program)

    def test_waiters_nobody_wakes(self) -> None:
        """Two waiters and no waker deadlock in one execution.

        The two prepare_to_wait commute (each adds only itself to the queue,
        and every wake-up wakes all, so their order is never observed): one
        Mazurkiewicz trace, where the coarser footprint needed two.
        """
        assert 1 == assert_agrees_with_dfs(lambda: waiters(2, waker=False))

    def test_two_waiters_and_a_waker(self) -> None:
        """Two waiters and a waker: 16 executions, none sleep-set blocked, as DFS reaches.

        Each waiter checks the flag before or after the write, and prepares
        to wait before or after the wake-up (a race on the queue); a sleep
        reads only its own entry, written by the wake-up that woke it, so
        it races neither with that wake-up (never enabled before it) nor
        with a later one (which finds the waiter off the queue).  With the
        coarser footprints: 37 (prepare_to_wait writes the queue) and 20,
        4 of them sleep-set blocked (the sleep reads the queue).
        """
        strategy = DporStrategy()
        results = run_all(lambda: waiters(2, waker=True), strategy)

        assert results is not None
        assert (16, 0) == (len(results), strategy.redundant)
        assert 16 == assert_agrees_with_dfs(lambda: waiters(2, waker=True))

    def test_two_wakers_and_a_waiter(self) -> None:
        """A waiter and two wakers of one queue: 36 executions, none blocked, as DFS reaches.

        The second wake-up finds the waiter queued again for its next round
        and writes its entry, which the first round's sleep read; but that
        sleep happens before the new ``prepare_to_wait``, which the wake-up
        depends on directly, so the two do not race (races are immediate
        only).  38 executions, 2 of them sleep-set blocked, when every
        earlier access to any object of the Op counted as a race.
        """

        def program() -> Instance:
            flag = Cell("flag", 0)
            wq = WaitQueueHead("wq")

            async def is_set() -> bool:
                return await READ_ONCE(flag) != 0

            async def waiter() -> None:
                await wait_event(wq, is_set)

            async def waker(value: int) -> None:
                await WRITE_ONCE(flag, value)
                await wake_up_all(wq)

            return SimpleInstance(
                task_list=[("w", waiter()), ("a", waker(1)), ("b", waker(2))],
                state=lambda: flag.value,
            )

        strategy = DporStrategy()
        results = run_all(program, strategy)

        assert results is not None
        assert (36, 0) == (len(results), strategy.redundant)
        assert 36 == assert_agrees_with_dfs(program)

    def test_a_trylock_after_an_unlock(self) -> None:
        """A trylock never blocks, so it races with the unlock before it."""

        def program() -> Instance:
            lock = Mutex("m")
            got: list[bool] = []

            async def holder() -> None:
                await mutex_lock(lock)
                await mutex_unlock(lock)

            async def trier() -> None:
                taken = await mutex_trylock(lock)
                got.append(taken)
                if taken:
                    await mutex_unlock(lock)

            return SimpleInstance(
                task_list=[("holder", holder()), ("trier", trier())],
                state=lambda: tuple(got),
            )

        assert_agrees_with_dfs(program)

    def test_a_spawned_task_takes_a_lock_released_before_it_existed(self) -> None:
        """A spawned task's first mutex_lock races with an unlock made before its spawn."""

        def program() -> Instance:
            lock = Mutex("m")
            cell = Cell("c", 0)
            other = Cell("o", 0)

            async def locked_write(value: int) -> None:
                await mutex_lock(lock)
                await WRITE_ONCE(cell, value)
                await mutex_unlock(lock)

            async def spawner() -> None:
                await WRITE_ONCE(other, 1)
                current_execution().spawn("child", locked_write(2))

            return SimpleInstance(
                task_list=[("user", locked_write(1)), ("spawner", spawner())],
                state=lambda: cell.value,
            )

        assert_agrees_with_dfs(program)


class TestBounds:
    @pytest.mark.parametrize(
        "program", [counter_race, message_passing, ab_ba, timeout_race]
    )
    def test_a_preemption_bound_that_cuts_makes_it_incomplete(
        self, program: Callable[[], Instance]
    ) -> None:
        """With no preemption allowed, a race needing one is dropped: never verified."""
        result = dpor(program, preemption_bound=0)

        assert (1, False) == (result.executions, result.complete)
        assert Status.VERIFIED != result.status

    def test_a_bound_no_race_needs_keeps_it_complete(self) -> None:
        """Independent tasks never need a preemption: DPOR stays complete under bound 0."""
        result = dpor(lambda: independent(3, 3), preemption_bound=0)

        assert (1, True, Status.VERIFIED) == (
            result.executions,
            result.complete,
            result.status,
        )

    def test_bound_one_finds_the_lost_update_but_not_everything(self) -> None:
        """One preemption suffices for a lost update; DPOR still reports the cut."""
        result = dpor(counter_race, preemption_bound=1)

        assert (["lost-update"], 3, False) == (
            result.kinds,
            result.executions,
            result.complete,
        )

    def test_a_bound_that_forbids_a_reversal_makes_it_incomplete(self) -> None:
        """Two waiters and a waker under one preemption: some orders are cut, incomplete."""
        result = dpor(lambda: waiters(2, waker=True), preemption_bound=1)

        # 12 (16 unbounded, see test_two_waiters_and_a_waker): 18 with the
        # coarse footprint where prepare_to_wait wrote the queue, 14 when it
        # read it, and 12 since a sleep no longer races with the wake-up
        # that woke it (which backtracked every enabled task there).
        assert (12, False) == (result.executions, result.complete)

    def test_pending_ops_at_the_step_limit_still_race(self) -> None:
        """A two-object access left pending by the step limit races with the step before."""

        def program() -> Instance:
            a = Cell("a", 0)
            b = Cell("b", 0)

            async def both() -> None:
                await shared_access(a, b, write=True, func="update_both")

            async def writer() -> None:
                await WRITE_ONCE(a, 1)

            return SimpleInstance(task_list=[("both", both()), ("writer", writer())])

        result = dpor(program, max_steps=1)

        assert {"step-limit": 2} == result.outcomes

    def test_make_strategy_passes_the_bound(self) -> None:
        """The registry builds DporStrategy with the config's preemption bound."""
        strategy = make_strategy(ExploreConfig(strategy="dpor", preemption_bound=2))

        assert isinstance(strategy, DporStrategy)
        assert (2, "dpor", True) == (
            strategy.preemption_bound,
            strategy.name,
            strategy.exhaustive,
        )

    def test_backtracking_from_executions_cut_by_the_step_limit(self) -> None:
        """Executions truncated at 3 steps still yield their races: 4 runs, incomplete."""
        result = dpor(counter_race, max_steps=3)

        assert ({"step-limit": 4}, Status.INCOMPLETE) == (
            result.outcomes,
            result.status,
        )


class TestSleepSets:
    def test_blocked_executions_are_abandoned_without_findings(self) -> None:
        """A sleep-set-blocked execution ends REDUNDANT, with no findings, and is counted."""
        strategy = DporStrategy()
        result = explore(late_wake, ExploreConfig(shrink=False), strategy=strategy)

        # The one run where the consumer, first, chose "woken" and the
        # producer sleeps: 8 runs, 7 behaviours-distinct orders and values.
        assert (1, 1, 8) == (
            result.outcomes["redundant"],
            strategy.redundant,
            result.executions,
        )
        assert_agrees_with_dfs(late_wake)

    def test_blocked_executions_with_findings_run_to_the_end(self) -> None:
        """With a finding already made, a blocked execution is completed."""
        strategy = DporStrategy()
        results = run_all(lambda: late_wake(note=True), strategy)

        assert results is not None
        assert (1, []) == (
            strategy.redundant,
            [r for r in results if r.outcome is Outcome.REDUNDANT],
        )
        assert all(r.findings for r in results)
        assert_agrees_with_dfs(lambda: late_wake(note=True))

    def test_a_completed_blocked_execution_makes_its_data_choices_too(self) -> None:
        """Data choices after the sleep-set block take their first value, exploring nothing."""
        strategy = DporStrategy()
        results = run_all(lambda: late_wake(note=True, pick=True), strategy)

        assert results is not None
        # The completed blocked run: the consumer went first and was "woken".
        woken_first = [
            r.final_state
            for r in results
            if Schedule.parse("t1 t1 t1 d0").choices == r.schedule.choices[:4]
        ]
        assert (1, [(42, 0)]) == (strategy.redundant, woken_first)
        assert Outcome.REDUNDANT not in {r.outcome for r in results}
        assert_agrees_with_dfs(lambda: late_wake(note=True, pick=True))


class TestDeterminism:
    def test_the_same_program_gives_the_same_schedules_in_the_same_order(self) -> None:
        """Two explorations of one program produce identical schedule sequences."""

        def schedules() -> list[Schedule]:
            results = run_all(timeout_race, DporStrategy())
            assert results is not None
            return [r.schedule for r in results]

        first = schedules()

        assert first == schedules()
        assert 8 == len(first)  # see test_timeout_race_is_found

    def test_a_program_that_changes_its_tasks_is_an_internal_error(self) -> None:
        """Replaying a prefix that now offers other tasks raises an internal error."""
        runs: list[int] = []

        def program() -> Instance:
            runs.append(1)
            cell = Cell("c", 0)

            async def body() -> None:
                await WRITE_ONCE(cell, 1)

            count = 2 if len(runs) == 1 else 3
            return SimpleInstance(task_list=[(f"t{i}", body()) for i in range(count)])

        with pytest.raises(
            ModelError, match=r"not deterministic.*dpor replay diverged at choice 0"
        ):
            dpor(program)

    def test_a_program_that_changes_its_data_choices_is_an_internal_error(self) -> None:
        """Replaying a data choice with another range raises an internal error."""
        runs: list[int] = []

        def program() -> Instance:
            runs.append(1)
            cell = Cell("c", 0)

            async def body() -> None:
                await WRITE_ONCE(cell, 1)
                current_execution().choose(2 + len(runs), "grows")

            return SimpleInstance(task_list=[("t0", body()), ("t1", body())])

        with pytest.raises(ModelError, match="in range"):
            dpor(program)
