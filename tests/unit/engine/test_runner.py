"""Tests for `hmmsim.engine.runner`."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import pytest
from tests.support.harness import exhaust, kinds, tasks
from tests.support.toy_programs import (
    ab_ba,
    counter_race,
    half_published,
    independent,
    message_passing,
)

from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    ExitReason,
    ExplorationResult,
    Instance,
    Program,
    Schedule,
    Status,
    current_execution,
    explore,
    replay,
)
from hmmsim.engine import runner as runner_module
from hmmsim.errors import ReplayDiverged
from hmmsim.sync import Mutex, msleep, mutex_lock, mutex_unlock


def _summary(result: ExplorationResult) -> dict[str, object]:
    """Everything of a result except wall-clock time, JSON-able."""
    return {
        "strategy": result.strategy,
        "exit": result.exit_reason.value,
        "status": result.status.value,
        "executions": result.executions,
        "steps": result.steps,
        "outcomes": result.outcomes,
        "counterexamples": [
            {
                "kind": c.kind,
                "finding": c.finding.to_json(),
                "schedule": c.schedule.to_json(),
                "steps": c.steps,
                "preemptions": c.preemptions,
                "original_steps": c.original_steps,
                "execution": c.execution,
            }
            for c in result.counterexamples
        ],
    }


def endless() -> Instance:
    """One task that sleeps 50 times: longer than a small step bound."""

    async def body() -> None:
        for _ in range(50):
            await msleep(1)

    return tasks(body())


def inversion_across_executions() -> Instance:
    """One task takes A and B in an order picked by a data choice."""
    a, b = Mutex("A"), Mutex("B")

    async def body() -> None:
        await msleep(1)
        first, second = (a, b) if current_execution().choose(2, "order") else (b, a)
        await mutex_lock(first)
        await mutex_lock(second)
        await mutex_unlock(second)
        await mutex_unlock(first)

    return tasks(body())


class TestStatus:
    def test_an_exhausted_clean_dfs_is_verified(self) -> None:
        """DFS exhausting a correct program: EXHAUSTED and VERIFIED."""
        result = exhaust(message_passing)

        assert (ExitReason.EXHAUSTED, Status.VERIFIED) == (
            result.exit_reason,
            result.status,
        )

    def test_hitting_max_executions_is_incomplete(self) -> None:
        """Stopping at max_executions is never verified, even with no violation."""
        result = exhaust(lambda: independent(3, 3), max_executions=5)

        assert (ExitReason.MAX_EXECUTIONS, Status.INCOMPLETE, 5) == (
            result.exit_reason,
            result.status,
            result.executions,
        )

    def test_hitting_the_step_limit_is_incomplete(self) -> None:
        """An exhausted exploration with a STEP_LIMIT execution is incomplete."""
        result = exhaust(endless, max_steps=10)

        assert (ExitReason.EXHAUSTED, Status.INCOMPLETE) == (
            result.exit_reason,
            result.status,
        )
        assert {"step-limit": 1} == result.outcomes

    def test_a_preemption_bound_that_cuts_choices_is_incomplete(self) -> None:
        """DFS with a preemption bound that skipped choices is not verified."""
        result = exhaust(counter_race, preemption_bound=0)

        assert (ExitReason.EXHAUSTED, Status.INCOMPLETE) == (
            result.exit_reason,
            result.status,
        )
        assert (False, 2, []) == (result.complete, result.executions, result.kinds)

    def test_sampling_strategies_are_never_verified(self) -> None:
        """Round robin exhausts after one execution but is not exhaustive."""
        result = explore(message_passing, ExploreConfig(strategy="round_robin"))

        assert (ExitReason.EXHAUSTED, Status.INCOMPLETE, 1) == (
            result.exit_reason,
            result.status,
            result.executions,
        )

    def test_a_violation_makes_the_status_violation(self) -> None:
        """Any counterexample makes the status VIOLATION."""
        result = exhaust(counter_race)

        assert (Status.VIOLATION, ["lost-update"]) == (result.status, result.kinds)

    def test_every_exit_reason_describes_itself(self) -> None:
        """Each ExitReason has a one-sentence description."""
        descriptions = {reason: reason.describe() for reason in ExitReason}

        assert "every schedule class was explored" == descriptions[ExitReason.EXHAUSTED]
        assert all(text and not text.endswith(".") for text in descriptions.values())
        assert len(set(descriptions.values())) == len(descriptions)


class TestStopping:
    def test_the_time_budget_stops_the_exploration(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With a clock that ticks 1 s per reading, a 3.5 s budget allows 3 executions."""
        clock = itertools.count()
        monkeypatch.setattr(
            runner_module, "time", SimpleNamespace(monotonic=lambda: float(next(clock)))
        )

        result = exhaust(lambda: independent(3, 3), time_budget_s=3.5)

        assert (ExitReason.TIME_BUDGET, Status.INCOMPLETE, 3) == (
            result.exit_reason,
            result.status,
            result.executions,
        )

    def test_stop_on_first_stops_at_the_first_violation(self) -> None:
        """stop_on_first ends the exploration with FOUND at the first finding."""
        result = exhaust(counter_race, stop_on_first=True)

        assert (ExitReason.FOUND, 2, ["lost-update"]) == (
            result.exit_reason,
            result.executions,
            result.kinds,
        )

    def test_an_interrupt_keeps_what_was_found(self) -> None:
        """A KeyboardInterrupt during exploration ends it as INTERRUPTED."""
        seen: list[int] = []

        def progress(result: ExplorationResult) -> None:
            seen.append(result.executions)
            if result.executions == 3:
                raise KeyboardInterrupt

        result = explore(
            counter_race,
            ExploreConfig(strategy="dfs", shrink=False),
            on_progress=progress,
        )

        assert (ExitReason.INTERRUPTED, [1, 2, 3], ["lost-update"]) == (
            result.exit_reason,
            seen,
            result.kinds,
        )
        assert Status.VIOLATION == result.status


class TestCounterexamples:
    def test_one_counterexample_per_kind_in_order_found(self) -> None:
        """AB-BA gives a lock-order and a deadlock counterexample, first found first."""
        result = exhaust(ab_ba)

        # DFS: execution 1 runs ab then ba (inversion); execution 2 lets ba
        # take B after ab released it; execution 3 is the deadlock.
        assert ["lock-order", "deadlock"] == result.kinds
        assert [1, 3] == [c.execution for c in result.counterexamples]

    def test_a_counterexample_replays_strictly(self) -> None:
        """The counterexample schedule reproduces its finding under strict replay."""
        result = explore(counter_race, ExploreConfig(strategy="dfs"))
        example = result.counterexamples[0]

        again = replay(counter_race, example.schedule)

        assert ["lost-update"] == kinds(again)
        assert example.finding == again.findings[0]

    def test_shrinking_is_used_when_configured(self) -> None:
        """With shrink on, the counterexample is never longer than the original."""
        result = explore(
            half_published,
            ExploreConfig(strategy="random", seed=1, max_executions=100),
        )
        example = result.counterexamples[0]

        assert example.steps <= example.original_steps
        assert 1 == example.preemptions

    def test_a_given_shrinker_is_called_with_the_kind(self) -> None:
        """explore(shrinker=...) calls it with program, schedule, kind, max_steps."""
        calls: list[tuple[str, int]] = []

        def shrinker(
            program: Program, schedule: Schedule, kind: str, max_steps: int
        ) -> Schedule:
            calls.append((kind, max_steps))
            return schedule

        explore(
            counter_race,
            ExploreConfig(strategy="dfs", shrink=False, max_steps=77),
            shrinker=shrinker,
        )

        assert [("lost-update", 77)] == calls

    def test_an_inversion_seen_across_executions_keeps_the_reporting_execution(
        self,
    ) -> None:
        """A lock-order finding needing an earlier execution's edge is kept as found."""
        result = explore(inversion_across_executions, ExploreConfig(strategy="dfs"))
        example = result.counterexamples[0]

        assert ("lock-order", 2) == (example.kind, example.execution)
        assert [] == kinds(replay(inversion_across_executions, example.schedule))
        assert ["t0", "d1", "t0", "t0", "t0", "t0"] == example.schedule.to_json()[
            "choices"
        ]


class TestReplay:
    def test_replay_reproduces_an_execution(self) -> None:
        """Replaying a recorded schedule gives the same result again."""
        first = replay(counter_race, Schedule.parse("t0 t1 t0 t1"))
        second = replay(counter_race, first.schedule)

        assert first == second

    def test_a_schedule_naming_a_blocked_task_diverges(self) -> None:
        """Strict replay of a task that is not enabled raises ReplayDiverged."""
        with pytest.raises(
            ReplayDiverged, match=r"choice 2: schedule says task 1, but .* tasks \[0\]"
        ):
            replay(ab_ba, Schedule.parse("t0 t0 t1"))

    def test_a_schedule_that_ends_early_diverges(self) -> None:
        """Strict replay of a schedule that is too short raises ReplayDiverged."""
        with pytest.raises(ReplayDiverged, match="schedule ended before the execution"):
            replay(counter_race, Schedule.parse("t0 t0"))

    def test_leftover_choices_diverge(self) -> None:
        """Strict replay that ends with choices unused raises ReplayDiverged."""
        with pytest.raises(ReplayDiverged, match="ended after 4 of 5 choices"):
            replay(counter_race, Schedule.parse("t0 t0 t1 t1 t0"))

    def test_a_data_choice_where_a_task_choice_was_recorded_diverges(self) -> None:
        """A task choice where the program asks for a data choice diverges."""
        with pytest.raises(ReplayDiverged, match=r"values for order: \[0, 1\]"):
            replay(inversion_across_executions, Schedule.parse("t0 t0"))

    def test_lenient_replay_continues_without_preemption(self) -> None:
        """strict=False treats the schedule as a prefix and runs on from there."""
        result = replay(counter_race, Schedule.parse("t1"), strict=False)

        assert (1, 1, 0, 0) == result.schedule.tasks


class TestDeterminism:
    @pytest.mark.parametrize(
        "config",
        [
            ExploreConfig(strategy="dfs"),
            ExploreConfig(strategy="random", seed=11, max_executions=50),
            ExploreConfig(strategy="pct", seed=11, max_executions=50),
            ExploreConfig(strategy="round_robin"),
        ],
        ids=["dfs", "random", "pct", "round_robin"],
    )
    def test_the_same_exploration_twice_gives_identical_results(
        self, config: ExploreConfig
    ) -> None:
        """Exploring twice with one config gives equal JSON-able summaries."""
        program = half_published

        first = json.dumps(_summary(explore(program, config)))
        second = json.dumps(_summary(explore(program, config)))

        assert first == second
