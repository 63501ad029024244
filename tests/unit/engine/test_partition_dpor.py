"""Tests for DPOR work units: the coordinator, slicing, and the merged result."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import toy_programs as toys
from tests.support.differential import behaviours, run_all
from tests.unit.engine.test_dpor import waiters

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, ExplorationResult, Instance, Outcome, explore
from hmmsim.engine.partition import (
    DporCoordinator,
    UnitReport,
    copy_graph,
    explore_dpor_unit,
    explore_split,
)
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.errors import ConfigError, InternalError

CONFIG = ExploreConfig(strategy="dpor", shrink=False)

PROGRAMS: list[tuple[str, Callable[[], Instance]]] = [
    ("counter_race_3", lambda: toys.counter_race(tasks=3)),
    ("counter_race_locked", lambda: toys.counter_race(tasks=3, locked=True)),
    ("message_passing", toys.message_passing),
    ("independent_3_2", lambda: toys.independent(3, 2)),
    ("timeout_race", toys.timeout_race),
    ("ab_ba", toys.ab_ba),
    ("half_published", toys.half_published),
    ("two_waiters_and_a_waker", lambda: waiters(2, waker=True)),
    ("two_waiters_nobody_wakes", lambda: waiters(2, waker=False)),
]


def _summary(result: ExplorationResult) -> tuple[object, ...]:
    return (
        result.exit_reason,
        result.executions,
        dict(sorted(result.outcomes.items())),
        [(c.kind, c.execution, c.schedule.choices) for c in result.counterexamples],
        result.status,
    )


def _split_behaviours(
    program: Callable[[], Instance], slice_executions: int
) -> set[object]:
    """Run every unit with the differential harness; return what they reach."""
    coordinator = DporCoordinator(CONFIG, slice_executions=slice_executions)
    reached: set[object] = set()
    while not coordinator.is_done():
        for index, unit, _graph in coordinator.take():
            strategy = DporStrategy(unit=unit, slice_executions=slice_executions)
            results = run_all(program, strategy)
            assert results is not None
            reached |= behaviours(results)
            outcomes: dict[str, int] = {}
            for r in results:
                outcomes[r.outcome.value] = outcomes.get(r.outcome.value, 0) + 1
            report = UnitReport(
                result=ExplorationResult(
                    strategy="dpor",
                    exit_reason=ExitReason.EXHAUSTED,
                    executions=len(results),
                    outcomes=outcomes,
                ),
                claims=tuple(strategy.claims),
                statuses=tuple(strategy.statuses),
                nodes=tuple(strategy.nodes),
                frontier=tuple(strategy.frontier),
                lockdep=copy_graph(_graph),
            )
            coordinator.accept(index, report)
    return reached


class TestSplitMatchesSerial:
    """Split explorations reach what serial DPOR and DFS reach."""

    @pytest.mark.parametrize("slice_executions", [1, 2, 3, 7])
    @pytest.mark.parametrize(("name", "program"), PROGRAMS)
    def test_same_behaviours_as_dfs(
        self, name: str, program: Callable[[], Instance], slice_executions: int
    ) -> None:
        """Every final state and finding set of DFS is reached, at every slice size."""
        dfs = run_all(program, DfsStrategy())
        assert dfs is not None
        assert _split_behaviours(program, slice_executions) == behaviours(dfs)

    @pytest.mark.parametrize("slice_executions", [1, 2, 3, 7, None])
    @pytest.mark.parametrize(("name", "program"), PROGRAMS)
    def test_same_verdict_and_kinds_as_serial(
        self, name: str, program: Callable[[], Instance], slice_executions: int | None
    ) -> None:
        """Verdict and violation kinds equal serial DPOR's; executions stay close."""
        serial = explore(program, CONFIG)
        split = explore_split(program, CONFIG, slice_executions=slice_executions)
        assert split.status == serial.status
        assert split.kinds == serial.kinds
        assert split.executions <= serial.executions * 1.1 + 1

    def test_unsliced_split_is_serial_dpor(self) -> None:
        """Without slicing the one unit is the serial exploration."""
        program = lambda: toys.counter_race(tasks=3)  # noqa: E731
        assert _summary(explore_split(program, CONFIG, slice_executions=None)) == (
            _summary(explore(program, CONFIG))
        )

    def test_three_racing_counters_explore_each_trace_once(self) -> None:
        """(3!)^2 = 36 Mazurkiewicz traces: no trace is explored twice when split."""
        for k in (1, 2, 3, 5):
            result = explore_split(
                lambda: toys.counter_race(tasks=3), CONFIG, slice_executions=k
            )
            assert result.executions == 36


class TestCoordinator:
    """The coordinator processes reports in unit order, whatever order they come in."""

    def test_reports_out_of_order_give_the_same_result(self) -> None:
        """Holding reports back and handing them over reversed changes nothing."""
        program = lambda: toys.counter_race(tasks=3)  # noqa: E731
        expected = explore_split(program, CONFIG, slice_executions=2)
        coordinator = DporCoordinator(CONFIG, slice_executions=2)
        while not coordinator.is_done():
            batch = coordinator.take()
            reports = [
                (
                    i,
                    explore_dpor_unit(
                        program, u, CONFIG, lockdep=copy_graph(g), slice_executions=2
                    ),
                )
                for i, u, g in batch
            ]
            for index, report in reversed(reports):
                coordinator.accept(index, report)
        assert _summary(coordinator.finish(program)) == _summary(expected)

    def test_a_report_twice_is_an_internal_error(self) -> None:
        """Unit numbers are checked."""
        coordinator = DporCoordinator(CONFIG)
        ((index, unit, graph),) = coordinator.take()
        report = explore_dpor_unit(toys.message_passing, unit, CONFIG, lockdep=graph)
        coordinator.accept(index, report)
        with pytest.raises(InternalError, match="unexpected report"):
            coordinator.accept(index, report)

    def test_only_dpor_splits(self) -> None:
        """Other strategies are refused with a config error."""
        with pytest.raises(ConfigError, match="only dpor"):
            DporCoordinator(CONFIG.replace(strategy="dfs"))

    def test_interrupt_stops_handing_out_units(self) -> None:
        """An interrupted coordinator is done and says so."""
        coordinator = DporCoordinator(CONFIG, slice_executions=1)
        ((index, unit, graph),) = coordinator.take()
        program = lambda: toys.counter_race(tasks=3)  # noqa: E731
        coordinator.accept(
            index,
            explore_dpor_unit(program, unit, CONFIG, lockdep=graph, slice_executions=1),
        )
        assert coordinator.take()
        coordinator.interrupt()
        assert coordinator.is_done()
        assert coordinator.take() == []
        assert coordinator.finish(program).exit_reason is ExitReason.INTERRUPTED

    def test_stop_on_first_and_max_executions(self) -> None:
        """Stops apply at unit boundaries, in unit order."""
        program = lambda: toys.counter_race(tasks=3)  # noqa: E731
        first = explore_split(
            program, CONFIG.replace(stop_on_first=True), slice_executions=1
        )
        assert first.exit_reason is ExitReason.FOUND
        assert first.kinds == ["lost-update"]
        bounded = explore_split(
            program, CONFIG.replace(max_executions=5), slice_executions=2
        )
        assert bounded.exit_reason is ExitReason.MAX_EXECUTIONS
        assert bounded.executions == 5

    def test_the_first_unit_estimates_the_size_of_the_exploration(self) -> None:
        """A sliced first unit gives a rough size; a bound below it is named."""
        program = lambda: toys.counter_race(tasks=3)  # noqa: E731
        coordinator = DporCoordinator(CONFIG, slice_executions=6)
        ((index, unit, graph),) = coordinator.take()
        report = explore_dpor_unit(
            program, unit, CONFIG, lockdep=graph, slice_executions=6
        )
        coordinator.accept(index, report)
        estimate = coordinator.estimate
        assert estimate is not None
        assert estimate.sample == 6
        assert 6 <= estimate.executions <= 360  # 36 in truth
        assert estimate.beyond(CONFIG) is None
        assert estimate.beyond(CONFIG.replace(max_executions=5)) == (
            "--max-executions 5"
        )
        assert estimate.seconds_needed() >= 0
        # Later units are parts of the tree: they estimate nothing.
        for _index, unit, graph in coordinator.take():
            later = explore_dpor_unit(
                program, unit, CONFIG, lockdep=graph, slice_executions=6
            )
            assert later.estimate is None

    @pytest.mark.parametrize("bound", [1, 7, 13, 35, 36, 40])
    def test_max_executions_cuts_at_the_bound_exactly(self, bound: int) -> None:
        """The merge counts exactly the first N executions in unit order, as serial does."""
        program = lambda: toys.counter_race(tasks=3)  # noqa: E731
        whole = explore_split(program, CONFIG, slice_executions=4)
        bounded = explore_split(
            program, CONFIG.replace(max_executions=bound), slice_executions=4
        )
        unsliced = explore_split(
            program, CONFIG.replace(max_executions=bound), slice_executions=None
        )
        serial = explore(program, CONFIG.replace(max_executions=bound))
        expected = min(bound, whole.executions)
        assert bounded.executions == expected
        assert sum(bounded.outcomes.values()) == expected
        assert bounded.steps <= whole.steps
        assert all(c.execution <= expected for c in bounded.counterexamples)
        assert _summary(unsliced) == _summary(serial)
        if bound < whole.executions:
            assert bounded.exit_reason is ExitReason.MAX_EXECUTIONS
            assert bounded.steps < whole.steps

    def test_counterexamples_are_shrunk_once_at_the_end(self) -> None:
        """With shrinking on, the kept counterexample replays to its kind."""
        program = lambda: toys.counter_race(tasks=3)  # noqa: E731
        result = explore_split(program, CONFIG.replace(shrink=True), slice_executions=3)
        (example,) = result.counterexamples
        assert example.kind == "lost-update"
        assert example.steps <= example.original_steps
        assert result.outcomes[Outcome.VIOLATION.value] == 30


class TestUnitPrefixes:
    """A unit whose prefix does not fit the program is an internal error."""

    def test_a_prefix_task_that_is_not_enabled(self) -> None:
        """Task 7 does not exist in a two-task program."""
        from hmmsim.engine.strategies.dpor import DporUnit  # noqa: PLC0415

        # A unit's prefix packs a task choice t as 2t and a data value v as 2v+1.
        unit = DporUnit(prefix=(7 << 1,), done_before=((),), branches=(0,))
        with pytest.raises(InternalError, match="diverged"):
            explore_dpor_unit(toys.message_passing, unit, CONFIG)

    def test_a_data_choice_where_the_program_offers_tasks(self) -> None:
        """A data root at a task choice point."""
        from hmmsim.engine.strategies.dpor import DporUnit  # noqa: PLC0415

        unit = DporUnit(values=(0, 1))
        with pytest.raises(InternalError, match="expects a data choice"):
            explore_dpor_unit(toys.message_passing, unit, CONFIG)

    def test_a_data_value_in_the_prefix_where_tasks_are_offered(self) -> None:
        """A data value in the prefix where the program chooses a task."""
        from hmmsim.engine.strategies.dpor import DporUnit  # noqa: PLC0415

        unit = DporUnit(prefix=(0 << 1 | 1,), branches=(0,))
        with pytest.raises(InternalError, match="diverged"):
            explore_dpor_unit(toys.message_passing, unit, CONFIG)

    def test_data_roots_and_a_time_budget(self) -> None:
        """Slicing a program with data choices makes data roots; a tiny budget stops early."""
        split = explore_split(toys.timeout_race, CONFIG, slice_executions=1)
        assert split.executions == explore(toys.timeout_race, CONFIG).executions
        stopped = explore_split(
            lambda: toys.counter_race(tasks=3),
            CONFIG.replace(time_budget_s=1e-9),
            slice_executions=1,
        )
        assert stopped.exit_reason is ExitReason.TIME_BUDGET
        assert "--strategy pct" in stopped.describe_exit()
