"""Tests for `hmmsim.engine.runner.ExplorationResult.describe_exit`."""

from __future__ import annotations

from tests.support.toy_programs import counter_race

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, ExplorationResult, explore


class TestDescribeExit:
    """The exit sentence never claims more than was explored."""

    def test_exhausted_and_complete_says_everything_was_explored(self) -> None:
        """A complete DPOR exhaustion uses the plain EXHAUSTED sentence."""
        result = explore(counter_race, ExploreConfig(strategy="dpor", shrink=False))

        assert "every schedule class was explored" == result.describe_exit()

    def test_preemption_bound_says_others_were_skipped(self) -> None:
        """Exhausted within a preemption bound is described as cut short."""
        result = explore(
            counter_race,
            ExploreConfig(strategy="dpor", preemption_bound=0, shrink=False),
        )

        assert "skipped others" in result.describe_exit()
        assert "incomplete" == result.status.value

    def test_step_limit_says_executions_were_cut(self) -> None:
        """Executions cut by the step limit are mentioned."""
        result = explore(
            counter_race, ExploreConfig(strategy="dfs", max_steps=3, shrink=False)
        )

        assert "step limit" in result.describe_exit()
        assert "incomplete" == result.status.value


def test_a_budget_cut_exhaustive_exploration_suggests_pct() -> None:
    """DPOR stopped by its time budget or execution bound points to PCT."""
    for reason in (ExitReason.TIME_BUDGET, ExitReason.MAX_EXECUTIONS):
        result = ExplorationResult(strategy="dpor", exit_reason=reason)
        assert "--strategy pct" in result.describe_exit()
        assert result.describe_exit().startswith(reason.describe())
    sampled = ExplorationResult(strategy="pct", exit_reason=ExitReason.MAX_EXECUTIONS)
    assert "--strategy pct" not in sampled.describe_exit()
