"""Tests that DPOR's reduction keeps every behaviour of the HMM model.

On a built-in scenario small enough for naive DFS to exhaust, DPOR and DFS
must reach exactly the same set of (outcome, violation kinds, final state).
"""

from __future__ import annotations

import pytest

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExecutionResult, ExitReason, explore
from hmmsim.engine.strategies.base import Strategy
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.scenarios import get

Behaviour = tuple[str, tuple[str, ...], str]


def _behaviours(name: str, variant: str, strategy: Strategy) -> set[Behaviour]:
    seen: set[Behaviour] = set()
    end = strategy.end_execution

    def record(result: ExecutionResult) -> None:
        if result.outcome.value != "redundant":
            kinds = tuple(sorted({f.kind for f in result.findings}))
            seen.add((result.outcome.value, kinds, repr(result.final_state)))
        end(result)

    strategy.end_execution = record  # type: ignore[method-assign]
    config = ExploreConfig(max_executions=20_000, max_steps=4000, shrink=False)
    result = explore(get(name).program(variant), config, strategy=strategy)
    assert ExitReason.EXHAUSTED == result.exit_reason
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["prepatch", "v5.3"])
def test_dpor_and_dfs_reach_the_same_behaviours_on_exit_vs_fault(variant: str) -> None:
    """exit-vs-fault: the reduced and the naive exploration agree exactly."""
    dpor = _behaviours("exit-vs-fault", variant, DporStrategy())
    dfs = _behaviours("exit-vs-fault", variant, DfsStrategy())

    assert dfs == dpor
    assert len(dfs) >= 2
