"""Tests for `hmmsim.engine.execution`."""

from __future__ import annotations

import types
from collections.abc import Generator, Iterable, Mapping

import pytest
from tests.support.harness import along, exhaust, kinds, sequential, tasks
from tests.support.toy_programs import ab_ba, counter_race, timeout_race

from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    LOCAL,
    Execution,
    Finding,
    Instance,
    LockGraph,
    Op,
    OpKind,
    Outcome,
    Schedule,
    SimpleInstance,
    Task,
    current_execution,
    current_task,
    explore,
    replay,
)
from hmmsim.engine.view import ExecutionView
from hmmsim.errors import InternalError, ScenarioError
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    msleep,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    tracepoint,
)


class _Foreign:
    """An awaitable that is not an hmmsim primitive: it yields 5."""

    def __await__(self) -> Generator[int, None, None]:
        yield 5


class _FirstChooser:
    """Always the lowest enabled task; data choices as configured."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        return enabled[0]

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        return self.value


class _BadTaskChooser(_FirstChooser):
    """Chooses a task id that is never enabled."""

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        return 99


def one_task(steps: int) -> Instance:
    """One task of ``steps`` sleeps."""

    async def body() -> None:
        for _ in range(steps):
            await msleep(1)

    return tasks(body())


class TestSteps:
    def test_two_tasks_of_two_steps_take_four_steps(self) -> None:
        """Each performed Op is one step; the schedule records one choice per step."""
        result = sequential(counter_race)

        assert 4 == result.steps
        assert (0, 0, 1, 1) == result.schedule.tasks
        assert Outcome.PASSED == result.outcome
        assert 2 == result.final_state

    def test_a_switch_away_from_an_enabled_task_is_a_preemption(self) -> None:
        """Switching while the previous task could go on counts; after it ends, not."""
        interleaved = along(counter_race, "t0", "t1", "t0", "t1")
        serial = along(counter_race, "t0", "t0", "t1", "t1")

        assert (2, 0) == (interleaved.preemptions, serial.preemptions)
        assert ["lost-update"] == kinds(interleaved)

    def test_step_limit_ends_the_execution(self) -> None:
        """An execution that reaches max_steps ends with STEP_LIMIT, without end checks."""
        result = replay(lambda: one_task(10), Schedule(), strict=False, max_steps=3)

        assert (Outcome.STEP_LIMIT, 3) == (result.outcome, result.steps)

    def test_ops_and_step_tasks_are_recorded_per_step(self) -> None:
        """Execution.ops and step_tasks hold the Op and task id of every step."""
        execution = Execution(counter_race, _FirstChooser(), max_steps=100)
        execution.run()

        assert [0, 0, 1, 1] == execution.step_tasks
        assert ["READ_ONCE", "WRITE_ONCE"] * 2 == [op.func for op in execution.ops]


class TestSpawn:
    def test_duplicate_task_names_get_a_suffix(self) -> None:
        """A second task with a taken name is renamed name#<id>."""

        def program() -> Instance:
            async def body() -> None:
                await msleep(1)

            return SimpleInstance(task_list=[("w", body()), ("w", body())])

        result = replay(program, Schedule(), strict=False, capture=True)

        assert result.trace is not None
        assert ("w", "w#1") == result.trace.tasks

    def test_a_task_that_ends_before_its_first_op_takes_no_step(self) -> None:
        """A task body with no await finishes when spawned and is never scheduled."""
        ran: list[str] = []

        def program() -> Instance:
            async def body() -> None:
                ran.append("body")

            return tasks(body())

        result = sequential(program)

        assert (["body"], 0, Outcome.PASSED) == (ran, result.steps, result.outcome)

    def test_a_fatal_finding_while_spawning_closes_the_unspawned_bodies(self) -> None:
        """BUG_ON in the first task's spawn leaves no coroutine for a later GC to report."""
        from hmmsim.sync import BUG_ON  # noqa: PLC0415 - only this test needs it

        def program() -> Instance:
            cell = Cell("c", 0)

            async def crashes() -> None:
                BUG_ON(True, "at spawn")
                await READ_ONCE(cell)  # pragma: no cover - BUG_ON stops the task

            async def later() -> None:
                await WRITE_ONCE(cell, 1)

            return tasks(crashes(), later(), later())

        result = exhaust(program)

        assert ["bug"] == result.kinds
        assert {"violation": 1} == result.outcomes


class TestDataChoices:
    def test_a_data_choice_is_recorded_after_its_step(self) -> None:
        """choose() asks the chooser and records 'd<value>' in the schedule."""
        values: list[int] = []

        def program() -> Instance:
            async def body() -> None:
                await msleep(1)
                values.append(current_execution().choose(3, "pick"))
                values.append(current_execution().choose(1, "only"))

            return tasks(body())

        result = Execution(program, _FirstChooser(2), max_steps=10).run()

        assert [2, 0] == values
        assert ["t0", "d2"] == result.schedule.to_json()["choices"]

    def test_a_chooser_value_out_of_range_is_an_internal_error(self) -> None:
        """A strategy answering outside range(bound) is a tool bug."""

        def program() -> Instance:
            async def body() -> None:
                current_execution().choose(2, "pick")
                await msleep(1)

            return tasks(body())

        with pytest.raises(InternalError, match=r"chose 7 outside range\(2\)"):
            Execution(program, _FirstChooser(7), max_steps=10).run()

    def test_a_task_choice_not_enabled_is_an_internal_error(self) -> None:
        """A strategy choosing a task that is not enabled is a tool bug."""
        with pytest.raises(InternalError, match=r"chose task 99, not in \[0, 1\]"):
            Execution(counter_race, _BadTaskChooser(), max_steps=10).run()


class TestFindings:
    def test_a_task_raising_an_exception_is_an_exception_finding(self) -> None:
        """ValueError in a task becomes a fatal 'exception' finding, not a crash."""

        def program() -> Instance:
            async def body() -> None:
                await msleep(1)
                raise ValueError("bad value")

            return tasks(body(), body())

        result = sequential(program)

        assert ["exception"] == kinds(result)
        finding = result.findings[0]
        assert finding.message.startswith("task t0 raised ValueError at body() line ")
        assert finding.message.endswith(": bad value")
        assert ("ValueError: bad value",) == finding.detail
        assert 1 == result.steps

    def test_a_fatal_finding_stops_every_task(self) -> None:
        """After a fatal finding no other task runs; their coroutines are closed."""
        closed: list[str] = []

        def program() -> Instance:
            async def failing() -> None:
                await msleep(1)
                raise RuntimeError("boom")

            async def other() -> None:
                try:
                    await msleep(1)
                    await msleep(1)
                finally:
                    closed.append("other")

            return tasks(failing(), other())

        result = sequential(program)

        assert (["exception"], ["other"]) == (kinds(result), closed)

    def test_deadlock_names_the_waits_and_holders(self) -> None:
        """AB-BA interleaved deadlocks; the detail says who waits on what held by whom."""
        result = along(ab_ba, "t0", "t1")

        assert ["deadlock", "lock-order"] == sorted(kinds(result))
        deadlock = next(f for f in result.findings if f.kind == "deadlock")
        assert "deadlock: all 2 live tasks are blocked" == deadlock.message
        assert (
            "ab waits in mutex_lock(B), held by ba",
            "ba waits in mutex_lock(A), held by ab",
        ) == deadlock.detail
        assert "" == deadlock.task

    def test_a_wait_on_an_object_nobody_holds_names_no_holder(self) -> None:
        """Deadlock detail for a bare wait says only what the task waits in."""

        def program() -> Instance:
            async def body() -> None:
                await Op(OpKind.WAIT, LOCAL, False, "wait_forever", guard=lambda: False)

            cell = Cell("c", 0)

            async def reader() -> None:
                await Op(OpKind.WAIT, cell.oid, False, "wait_cell", cell, lambda: False)

            return tasks(body(), reader())

        result = sequential(program)

        assert (
            "t0 waits in wait_forever()",
            "t1 waits in wait_cell(c)",
        ) == result.findings[0].detail

    def test_end_checks_run_only_when_every_task_finished(self) -> None:
        """check_end findings are added to a finished execution with global task ''."""
        result = along(counter_race, "t0", "t1", "t0", "t1")
        finding = result.findings[0]

        assert ("lost-update", "counter is 1", "") == (
            finding.kind,
            finding.message,
            finding.task,
        )

    def test_non_fatal_findings_make_the_outcome_a_violation(self) -> None:
        """A run with only non-fatal findings finishes all tasks but is a VIOLATION."""
        result = sequential(ab_ba)

        assert (["lock-order"], 8) == (kinds(result), result.steps)
        assert Outcome.VIOLATION == result.outcome


class TestLockdep:
    def test_inversion_is_reported_once_per_exploration(self) -> None:
        """The AB-BA order inversion is reported once even if seen in many executions."""
        graph = LockGraph()
        first = replay(ab_ba, Schedule(), strict=False, lockdep=graph)
        second = replay(ab_ba, Schedule(), strict=False, lockdep=graph)

        assert (["lock-order"], []) == (kinds(first), kinds(second))
        assert {("A", "B"), ("B", "A")} == set(graph.edges)

    def test_inversion_message_names_both_orders(self) -> None:
        """The lock-order finding names both lock classes and both orders."""
        result = sequential(ab_ba)

        assert (
            "possible circular locking dependency: A is taken while holding B, "
            "and elsewhere B while holding A"
        ) == result.findings[0].message

    def test_an_inversion_across_executions_gives_both_schedules(self) -> None:
        """Orders seen in two executions: the finding says so and names the earlier schedule."""

        def program() -> Instance:
            a, b = Mutex("A"), Mutex("B")

            async def body() -> None:
                first, second = (
                    (a, b) if current_execution().choose(2, "order") else (b, a)
                )
                await mutex_lock(first)
                await mutex_lock(second)
                await mutex_unlock(second)
                await mutex_unlock(first)

            return tasks(body())

        result = exhaust(program)
        example = result.counterexamples[0]
        alone = replay(program, example.schedule)

        assert ["lock-order"] == result.kinds
        assert example.finding.message.endswith(
            "(seen in another execution: this schedule alone does not show it)"
        )
        assert (
            "A -> B: this execution, step 0",
            "B -> A: an earlier execution, schedule seed 0: d0 t0",
        ) == example.finding.detail
        assert [] == kinds(alone)

    def test_nesting_locks_of_one_class_adds_no_edge(self) -> None:
        """Two locks of the same lockdep class nested add no lock-order edge."""

        def program() -> Instance:
            a = Mutex("a", lockdep_class="node")
            b = Mutex("b", lockdep_class="node")

            async def body() -> None:
                await mutex_lock(a)
                await mutex_lock(b)
                await mutex_unlock(b)
                await mutex_unlock(a)

            return tasks(body())

        graph = LockGraph()
        replay(program, Schedule(), strict=False, lockdep=graph)

        assert {} == graph.edges

    def test_a_three_lock_cycle_is_an_inversion(self) -> None:
        """A -> B, B -> C and C -> A in three tasks close a cycle that is reported."""

        def program() -> Instance:
            locks = {name: Mutex(name) for name in "ABC"}

            async def nest(outer: str, inner: str) -> None:
                await mutex_lock(locks[outer])
                await mutex_lock(locks[inner])
                await mutex_unlock(locks[inner])
                await mutex_unlock(locks[outer])

            return tasks(nest("A", "B"), nest("B", "C"), nest("C", "A"))

        result = sequential(program)

        assert ["lock-order"] == kinds(result)
        assert (
            "possible circular locking dependency: A is taken while holding C, "
            "and elsewhere B while holding A, C while holding B"
        ) == result.findings[0].message

    def test_a_trylock_adds_no_dependency_but_counts_as_held(self) -> None:
        """Trylocking B under A adds no A -> B edge; locking C under B adds B -> C."""

        def program() -> Instance:
            a, b, c = Mutex("A"), Mutex("B"), Mutex("C")

            async def body() -> None:
                await mutex_lock(a)
                await mutex_trylock(b)
                await mutex_lock(c)
                await mutex_unlock(c)
                await mutex_unlock(b)
                await mutex_unlock(a)

            return tasks(body())

        graph = LockGraph()
        replay(program, Schedule(), strict=False, lockdep=graph)

        assert [("A", "C"), ("B", "C")] == list(graph.edges)

    def test_path_finds_a_shortest_path_or_none(self) -> None:
        """LockGraph.path follows edges breadth-first and returns None when cut off."""
        graph = LockGraph()
        for first, second in [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")]:
            graph.add(first, second)

        assert (["a", "c", "d"], None) == (graph.path("a", "d"), graph.path("d", "a"))
        assert graph.add("a", "b") is None

    def test_releasing_a_lock_the_task_does_not_hold_returns_false(self) -> None:
        """lock_released reports whether the task held the lock."""
        execution = Execution(counter_race, _FirstChooser(), max_steps=1)
        task = Task(0, "t", _dummy())
        lock = Mutex("m")
        other = Mutex("other")
        task.held.extend([lock, other])

        assert (True, False) == (
            execution.lock_released(task, lock),
            execution.lock_released(task, lock),
        )
        assert [other] == task.held
        task.coro.close()


async def _dummy() -> None:
    await msleep(1)


class TestScenarioErrors:
    def test_a_forgotten_await_raises_scenario_error(self) -> None:
        """Calling mutex_lock(m) without await is reported as a ScenarioError."""

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                await msleep(1)
                mutex_lock(lock)  # type: ignore[unused-coroutine]  # the bug under test
                await msleep(1)

            return tasks(body())

        with pytest.raises(ScenarioError, match="forgotten 'await'") as info:
            explore(program, ExploreConfig(strategy="dfs", shrink=False))

        assert "task 't0'" in str(info.value)
        assert "mutex_lock" in str(info.value)

    def test_awaiting_a_foreign_awaitable_raises_scenario_error(self) -> None:
        """A task awaiting something that yields 5 is not a model primitive."""

        def program() -> Instance:
            async def body() -> None:
                await _Foreign()

            return tasks(body())

        with pytest.raises(ScenarioError, match="awaited 5, which is not an hmmsim"):
            sequential(program)

    def test_awaiting_a_bare_generator_raises_scenario_error(self) -> None:
        """A task awaiting a generator-based coroutine that yields 5 is refused."""

        @types.coroutine
        def bare() -> Generator[int, None, None]:
            yield 5

        def program() -> Instance:
            async def body() -> None:
                await msleep(1)
                await bare()

            return tasks(body())

        with pytest.raises(ScenarioError, match="task 't0' awaited 5"):
            sequential(program)

    def test_primitives_outside_an_execution_raise_scenario_error(self) -> None:
        """current_execution() with nothing running raises ScenarioError."""
        with pytest.raises(ScenarioError, match="outside an hmmsim execution"):
            current_execution()

    def test_current_task_outside_a_task_raises_scenario_error(self) -> None:
        """current_task() in the program factory (no task running) raises."""

        def program() -> Instance:
            current_task()
            return one_task(1)

        with pytest.raises(ScenarioError, match="outside a task"):
            sequential(program)

    def test_an_unrelated_unraisable_error_goes_to_the_previous_hook(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """strict_coroutines passes unraisable errors it does not own to the old hook."""
        import sys  # noqa: PLC0415

        from hmmsim.engine.execution import strict_coroutines  # noqa: PLC0415

        seen: list[str] = []
        monkeypatch.setattr(
            sys, "unraisablehook", lambda u: seen.append(str(u.exc_value))
        )

        class _Boom:
            def __del__(self) -> None:
                raise KeyError("in __del__")

        with strict_coroutines():
            _Boom()

        assert ["'in __del__'"] == seen


class TestCapture:
    def test_a_captured_trace_has_steps_data_events_and_state(self) -> None:
        """capture=True records each step's Op, data choices, tracepoints and state."""
        counter: list[int] = [0]

        def snapshot() -> Mapping[str, object]:
            return {"counter": counter[0]}

        def program() -> Instance:
            counter[0] = 0
            cell = Cell("c", 0)

            async def body() -> None:
                await WRITE_ONCE(cell, 1)
                tracepoint("wrote", {"value": 1})
                counter[0] += 1
                current_execution().choose(2, "coin")
                await READ_ONCE(cell)

            return SimpleInstance(task_list=[("w", body())], snap=snapshot)

        result = replay(program, Schedule.parse("t0 d1 t0"), capture=True)

        assert result.trace is not None
        first, second = result.trace.steps
        assert ("WRITE_ONCE(c)", "WRITE", (("coin", 1),)) == (
            first.op,
            first.kind,
            first.data,
        )
        assert ["wrote value=1"] == [e.describe() for e in first.events]
        assert ({"counter": 1}, "w", 0) == (first.state, first.task_name, first.index)
        assert ((), ()) == (second.data, second.events)

    def test_without_capture_there_is_no_trace(self) -> None:
        """An execution that does not capture returns trace None."""
        assert sequential(counter_race).trace is None


class TestPruned:
    def test_a_timed_waiter_choosing_woken_with_no_waker_is_pruned(self) -> None:
        """Outcome PRUNED: the 'woken' branch of a timed wait nobody ends is infeasible."""

        def program() -> Instance:
            async def never() -> bool:
                return False

            from hmmsim.sync import WaitQueueHead, wait_event_timeout  # noqa: PLC0415

            wq = WaitQueueHead("wq")

            async def body() -> None:
                await wait_event_timeout(wq, never, 1)

            return tasks(body())

        result = sequential(program)

        assert Outcome.PRUNED == result.outcome
        assert [] == kinds(result)

    def test_a_data_choice_program_has_both_outcomes(self) -> None:
        """timeout_race passes with 'woken' and shows stale-data with a timeout."""
        result = exhaust(timeout_race)

        assert ["stale-data"] == result.kinds
        assert {"passed", "violation"} == set(result.outcomes)


class TestEndCheck:
    def test_end_findings_come_from_the_instance(self) -> None:
        """Findings returned by check_end are part of the result."""

        def end() -> Iterable[Finding]:
            yield Finding(kind="custom-end", message="end", step=-1)

        result = sequential(lambda: tasks(_dummy(), end=end))

        assert ["custom-end"] == kinds(result)
