"""Tests for the progress stats: DPOR's open backtrack points, rate text, the CLI's events."""

from __future__ import annotations

import pytest
from tests.support.toy_programs import counter_race

from hmmsim.cli import _Progress, overrun_warning, progress_text
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExplorationResult, explore
from hmmsim.engine.partition import Estimate
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.parallel import StatEvents
from hmmsim.service import Unit


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


class TestOverrunWarning:
    """A DPOR run the first estimate let pass is watched as it goes."""

    @staticmethod
    def _unit(**changes: object) -> Unit:
        from hmmsim.scenarios import get  # noqa: PLC0415

        config = ExploreConfig(strategy="dpor", max_executions=1000).replace(**changes)
        return Unit(
            scenario=get("exit-vs-fault"), variant="v5.3", config=config, file=None
        )

    def test_quiet_while_within_half_of_the_bounds(self) -> None:
        """Under half of --max-executions and of --time-budget: no warning."""
        unit = self._unit(time_budget_s=60.0)
        assert overrun_warning(unit, 499, 29.0, None) is None

    def test_half_of_the_execution_bound(self) -> None:
        """Half of --max-executions used without finishing: warn and name PCT."""
        line = overrun_warning(self._unit(), 500, 3.2, None)
        assert line is not None
        assert line.startswith(
            "warning: exit-vs-fault/v5.3: exhaustive DPOR has not finished after "
            "500 executions (3 s), past half of --max-executions 1000"
        )
        assert line.endswith("hmmsim check exit-vs-fault --variant v5.3 --strategy pct")

    def test_half_of_the_time_budget(self) -> None:
        """Half of --time-budget used: warn, naming that bound."""
        unit = self._unit(max_executions=None, time_budget_s=10.0)
        line = overrun_warning(unit, 20, 5.0, None)
        assert line is not None
        assert "past half of --time-budget 10," in line

    def test_twice_the_first_estimate(self) -> None:
        """A run past twice the first unit's estimate says the estimate was low."""
        estimate = Estimate(executions=100, sample=40, seconds=0.5)
        unit = self._unit(max_executions=None)
        assert overrun_warning(unit, 200, 1.0, estimate) is None
        line = overrun_warning(unit, 201, 1.0, estimate)
        assert line is not None
        assert "past twice the first estimate of 100," in line

    def test_sampling_strategies_are_not_watched(self) -> None:
        """PCT and random runs are bounded by design: no warning."""
        assert overrun_warning(self._unit(strategy="pct"), 999, 1.0, None) is None

    def test_the_progress_events_warn_once(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The CLI's progress prints the overrun warning once per run, on stderr."""
        progress = _Progress(quiet=False, total_runs=1)
        progress.started(0, self._unit())
        progress.progressed(0, 400)
        progress.progressed(0, 600)
        progress.progressed(0, 800)
        err = capsys.readouterr().err
        assert err.count("warning: exit-vs-fault/v5.3") == 1
        assert "after 600 executions" in err

    def test_no_second_warning_after_the_early_one(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A run the first estimate already warned about is not warned about again."""
        progress = _Progress(quiet=False, total_runs=1)
        unit = self._unit()
        progress.started(0, unit)
        progress.estimated(0, unit, Estimate(executions=5000, sample=400, seconds=1.0))
        progress.progressed(0, 900)
        err = capsys.readouterr().err
        assert err.count("warning:") == 1
        assert "looks like roughly 5,000 executions" in err
