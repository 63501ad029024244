"""Tests for `hmmsim.engine.strategies.pct`."""

from __future__ import annotations

from typing import cast

import pytest
from tests.support.harness import tasks
from tests.support.toy_programs import half_published, timeout_race

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExecutionResult, Finding, Instance, Op, explore
from hmmsim.engine.strategies.pct import PctStrategy
from hmmsim.engine.view import ExecutionView
from hmmsim.errors import ConfigError
from hmmsim.sync import SrcuStruct, call_srcu, msleep


def _pct(**overrides: object) -> ExploreConfig:
    return ExploreConfig(strategy="pct", shrink=False, **overrides)  # type: ignore[arg-type]


class _FakeView:
    """An ExecutionView with tasks and no steps: strategies need no Execution."""

    def __init__(self, count: int) -> None:
        self.task_count = count
        self.step_tasks: list[int] = []
        self.ops: list[Op] = []
        self.preemptions = 0
        self.findings: list[Finding] = []

    def pending(self, tid: int) -> Op | None:
        return None


def _picks(strategy: PctStrategy, enabled_per_step: list[list[int]]) -> list[int]:
    view: ExecutionView = _FakeView(max(map(max, enabled_per_step)) + 1)
    return [strategy.next_task(view, enabled) for enabled in enabled_per_step]


class TestFindsDepthTwoBugs:
    def test_pct_depth_two_finds_the_torn_read_at_a_fixed_seed(self) -> None:
        """Seed 3, depth 2: the depth-2 torn read is found in execution 12 (budget 100).

        One execution finds it with probability at least 1/(n k) = 1/(2 * 10)
        here, so a budget of 100 misses it with probability below 1%.
        """
        result = explore(
            half_published,
            _pct(seed=3, pct_depth=2, max_executions=100, stop_on_first=True),
        )

        assert (["torn-read"], 12) == (
            result.kinds,
            result.counterexamples[0].execution,
        )

    def test_pct_depth_one_never_preempts_and_misses_it(self) -> None:
        """Depth 1 has no change point: each task runs until it blocks or ends."""
        result = explore(half_published, _pct(seed=3, pct_depth=1, max_executions=300))

        assert ([], {"passed": 300}) == (result.kinds, result.outcomes)

    def test_pct_makes_random_data_choices(self) -> None:
        """PCT draws data choices too: it finds the timeout race at seed 0."""
        result = explore(
            timeout_race,
            _pct(seed=0, pct_depth=2, max_executions=500, stop_on_first=True),
        )

        assert ["stale-data"] == result.kinds

    def test_the_same_seed_gives_the_same_exploration(self) -> None:
        """Two explorations with one seed agree; another seed finds it elsewhere."""
        config = _pct(pct_depth=2, max_executions=100, stop_on_first=True)

        runs = [
            explore(half_published, config.replace(seed=seed)).counterexamples[0]
            for seed in (3, 3, 1)
        ]

        assert runs[0] == runs[1]
        assert (12, 79) == (runs[0].execution, runs[2].execution)


class TestChangePoints:
    def test_the_first_execution_has_no_change_point(self) -> None:
        """Before any execution k is unknown (0), so no change point is drawn."""
        strategy = PctStrategy(seed=1, depth=3)
        strategy.begin_execution()

        assert ((), 0) == (strategy.change_points, strategy.steps_estimate)

    def test_k_is_the_most_counted_steps_seen(self) -> None:
        """end_execution raises k to the steps with a real choice, never lowers it."""
        strategy = PctStrategy(seed=1, depth=3)
        result = cast(ExecutionResult, None)
        strategy.begin_execution()
        _picks(strategy, [[0, 1], [0, 1], [0], [1]])
        strategy.end_execution(result)
        after_first = strategy.steps_estimate
        strategy.begin_execution()
        _picks(strategy, [[0, 1]])
        strategy.end_execution(result)

        assert (2, 2) == (after_first, strategy.steps_estimate)

    def test_depth_minus_one_points_are_drawn_from_one_to_k(self) -> None:
        """With k known, d - 1 distinct change points in 1..k are drawn."""
        strategy = PctStrategy(seed=5, depth=4)
        strategy.steps_estimate = 10
        strategy.begin_execution()
        points = strategy.change_points

        assert 3 == len(set(points))
        assert all(1 <= p <= 10 for p in points)

    def test_fewer_steps_than_points_takes_every_step(self) -> None:
        """When k < d - 1, every counted step is a change point."""
        strategy = PctStrategy(seed=5, depth=6)
        strategy.steps_estimate = 2
        strategy.begin_execution()

        assert (1, 2) == strategy.change_points


class TestPriorities:
    def test_without_change_points_the_same_task_keeps_running(self) -> None:
        """With no change point, the highest-priority task wins every choice."""
        strategy = PctStrategy(seed=2, depth=1)
        strategy.begin_execution()

        picks = _picks(strategy, [[0, 1, 2]] * 4)

        assert 1 == len(set(picks))

    def test_each_change_point_drops_the_running_task_below_the_others(self) -> None:
        """Change points at steps 1-3 make two tasks alternate B, A, B."""
        strategy = PctStrategy(seed=2, depth=4)
        strategy.steps_estimate = 3
        strategy.begin_execution()

        picks = _picks(strategy, [[0, 1]] * 4)

        # Step 1 drops A (to 3): B runs.  Step 2 drops B (to 2): A runs.
        # Step 3 drops A again (to 1): B runs, and keeps running at step 4.
        assert picks[0] != picks[1]
        assert [picks[0], picks[1], picks[0], picks[0]] == picks

    def test_steps_with_one_enabled_task_are_not_counted(self) -> None:
        """A forced step neither counts towards k nor consumes a change point."""
        strategy = PctStrategy(seed=2, depth=2)
        strategy.steps_estimate = 1
        strategy.begin_execution()

        picks = _picks(strategy, [[0], [1], [0, 1], [0, 1]])

        assert [0, 1] == picks[:2]
        assert picks[2] == picks[3]

    def test_tasks_spawned_later_get_a_priority(self) -> None:
        """A call_srcu callback task spawned mid-execution is scheduled by priority."""

        def program() -> Instance:
            srcu = SrcuStruct("srcu")

            async def callback() -> None:
                await msleep(1)

            async def body() -> None:
                await msleep(1)
                await call_srcu(srcu, callback)
                await msleep(1)

            return tasks(body(), body())

        result = explore(program, _pct(seed=0, pct_depth=3, max_executions=30))

        assert {"passed": 30} == result.outcomes


class TestValidation:
    @pytest.mark.parametrize("depth", [0, -1, True, 2.5])
    def test_a_bad_depth_is_a_config_error(self, depth: object) -> None:
        """Depth must be an integer >= 1."""
        with pytest.raises(ConfigError, match="pct depth must be an integer >= 1"):
            PctStrategy(seed=0, depth=depth)  # type: ignore[arg-type]

    def test_pct_is_not_exhaustive(self) -> None:
        """A PCT exploration is never complete."""
        strategy = PctStrategy()

        assert (False, False, "pct") == (
            strategy.exhaustive,
            strategy.complete,
            strategy.name,
        )
