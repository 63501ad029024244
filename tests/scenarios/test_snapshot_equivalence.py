"""Every built-in scenario explores the same with and without set-up snapshots."""

from __future__ import annotations

import pytest

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExplorationResult, explore
from hmmsim.engine.snapshot import SnapshotCache
from hmmsim.scenarios import Scenario, all_scenarios

UNITS = [
    pytest.param(scenario, variant, id=f"{scenario.name}-{variant}")
    for scenario in all_scenarios()
    for variant in scenario.variants
]


def _summary(result: ExplorationResult) -> object:
    return (
        result.executions,
        result.steps,
        sorted(result.outcomes.items()),
        [(c.kind, c.execution, c.schedule, c.steps) for c in result.counterexamples],
    )


@pytest.mark.parametrize(("scenario", "variant"), UNITS)
def test_snapshots_change_nothing(scenario: Scenario, variant: str) -> None:
    """DPOR's first 40 executions are the same whether the set-up is restored or run."""
    config = scenario.explore_config(ExploreConfig(max_executions=40, shrink=False))
    program = scenario.program(variant)
    cache = SnapshotCache()
    restored = explore(program, config, snapshots=cache)
    rerun = explore(program, config, snapshots=False)

    assert _summary(rerun) == _summary(restored)
    assert cache.restored == restored.executions - 1, cache.skipped
