"""Tests for the progress stats: DPOR's open backtrack points, rate text, the CLI's events."""

from __future__ import annotations

from tests.support.toy_programs import counter_race

from hmmsim.cli import _Progress, progress_text
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExplorationResult, explore
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.parallel import StatEvents


class TestOpenPoints:
    def test_open_points_fall_to_zero_at_exhaustion(self) -> None:
        """DPOR reports backtrack points while exploring and none once exhausted."""
        strategy = DporStrategy()
        seen: list[int] = []

        def record(result: ExplorationResult) -> None:
            seen.append(strategy.open_points)

        explore(
            lambda: counter_race(tasks=3),
            ExploreConfig(strategy="dpor"),
            strategy=strategy,
            on_progress=record,
        )

        assert max(seen) > 0
        assert 0 == strategy.open_points

    def test_the_runner_passes_the_stat_to_progress(self) -> None:
        """With a progress callback, the result carries the strategy's open points."""
        seen: list[int | None] = []

        explore(
            counter_race,
            ExploreConfig(strategy="dpor"),
            on_progress=lambda result: seen.append(result.open_points),
        )

        assert isinstance(seen[0], int)


class TestProgressText:
    def test_rate_and_open_points(self) -> None:
        """Progress shows executions, executions per second and DPOR's open points."""
        assert "120 executions, 60/s, 7 open backtrack points" == progress_text(
            120, 2.0, 7
        )

    def test_without_open_points_or_time(self) -> None:
        """Sampling strategies have no open points; no time yet means rate 0."""
        assert "0 executions, 0/s" == progress_text(0, 0.0, None)

    def test_cli_progress_takes_the_stats(self) -> None:
        """The CLI's progress events accept the optional stats (StatEvents)."""
        progress = _Progress(quiet=True, total_runs=1)
        progress.measured(0, 5)

        assert isinstance(progress, StatEvents)
        assert {0: 5} == progress._open
