"""Tests for `hmmsim.engine.partition`: split, explore units, merge."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from tests.support import toy_programs as toys

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, ExplorationResult, Instance, Status, explore
from hmmsim.engine.partition import WorkUnit, explore_unit, merge, split
from hmmsim.engine.schedule import TaskChoice
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.errors import ConfigError, ReplayError

CONFIG = ExploreConfig(strategy="dfs", shrink=False)

PROGRAMS: list[tuple[str, Callable[[], Instance]]] = [
    ("counter_race_3", lambda: toys.counter_race(tasks=3)),
    ("message_passing", toys.message_passing),
    ("independent_3_2", lambda: toys.independent(3, 2)),
    ("timeout_race", toys.timeout_race),
]


def _summary(result: ExplorationResult) -> tuple[object, ...]:
    return (
        result.exit_reason,
        result.executions,
        result.steps,
        dict(sorted(result.outcomes.items())),
        [
            (c.kind, c.execution, c.schedule.choices, c.steps)
            for c in result.counterexamples
        ],
        result.complete,
    )


class TestSplitAndMerge:
    """Units partition the DFS tree and merge into the serial result."""

    @pytest.mark.parametrize("depth", [1, 2, 5])
    @pytest.mark.parametrize(("name", "program"), PROGRAMS)
    def test_merged_units_equal_the_serial_exploration(
        self, name: str, program: Callable[[], Instance], depth: int
    ) -> None:
        """Same executions, steps, outcomes and first counterexamples."""
        serial = explore(program, CONFIG)
        units = split(program, CONFIG, depth=depth)

        merged = merge([explore_unit(program, u, CONFIG) for u in units])

        assert _summary(serial) == _summary(merged)
        assert [u.index for u in units] == list(range(len(units)))

    def test_units_are_distinct_prefixes_in_dfs_order(self) -> None:
        """Depth 1 on two tasks gives one unit per first choice."""
        units = split(lambda: toys.counter_race(tasks=2), CONFIG, depth=1)

        assert [("t0",), ("t1",)] == [tuple(map(str, u.prefix.choices)) for u in units]

    def test_unit_round_trips_through_json(self) -> None:
        """A unit can be shipped as JSON and read back."""
        unit = split(toys.message_passing, CONFIG, depth=3)[1]

        again = WorkUnit.from_json(json.loads(json.dumps(unit.to_json())))

        assert unit == again

    def test_a_bounded_unit_makes_the_merge_incomplete(self) -> None:
        """A unit stopped by max_executions is reported, not hidden."""

        def program() -> Instance:
            return toys.independent(3, 2)

        units = split(program, CONFIG, depth=1)
        bounded = CONFIG.replace(max_executions=2)

        merged = merge([explore_unit(program, u, bounded) for u in units])

        assert ExitReason.MAX_EXECUTIONS == merged.exit_reason
        assert Status.INCOMPLETE == merged.status

    def test_one_unit_alone_is_never_verified(self) -> None:
        """Exhausting one unit's subtree is incomplete; merging every unit verifies."""

        def program() -> Instance:
            return toys.independent(3, 2)

        units = split(program, CONFIG, depth=1)
        results = [explore_unit(program, u, CONFIG) for u in units]

        assert [Status.INCOMPLETE] * len(units) == [r.status for r in results]
        assert "work unit" in results[0].describe_exit()
        assert Status.VERIFIED == merge(results).status

    def test_a_dfs_horizon_is_never_verified(self) -> None:
        """A horizon that cuts choices explores a few executions and says incomplete."""

        def program() -> Instance:
            return toys.independent(3, 2)

        full = explore(program, CONFIG)
        cut = explore(program, CONFIG, strategy=DfsStrategy(horizon=2))

        assert (Status.VERIFIED, 10) == (full.status, full.executions)
        assert (Status.INCOMPLETE, 4) == (cut.status, cut.executions)

    def test_bad_depth_and_bad_json_are_refused(self) -> None:
        """Nonsense input gives the tool's own errors."""
        with pytest.raises(ConfigError, match="depth"):
            split(toys.message_passing, CONFIG, depth=0)
        with pytest.raises(ReplayError, match="index"):
            WorkUnit.from_json({"prefix": {}})


class TestDfsPrefix:
    """DfsStrategy with a prefix explores only the subtree below it."""

    def test_prefix_not_offered_by_the_program_is_an_internal_error(self) -> None:
        """A prefix naming a task that cannot run is refused."""
        strategy = DfsStrategy(prefix=(TaskChoice(7),))

        with pytest.raises(Exception, match="prefix diverged"):
            explore(toys.message_passing, CONFIG, strategy=strategy)
