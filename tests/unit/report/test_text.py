"""Tests for `hmmsim.report.text`."""

from __future__ import annotations

import dataclasses
import re

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExecutionResult, Outcome, Schedule
from hmmsim.report import ScenarioRun
from hmmsim.report.text import (
    render_comparison,
    render_replay,
    render_replays,
    render_run,
    render_summary,
)


class TestRenderRun:
    def test_failing_report_sections_in_order(self, buggy: ScenarioRun) -> None:
        """Header, verdict, explanation, timeline, stats, then the replay command last."""
        text = render_run(buggy, version="9.9", timings=False)

        lines = text.splitlines()
        assert "hmmsim 9.9: scenario counter, variant buggy" == lines[0]
        assert "  strategy dfs, seed 0, kernel v5.3 modelled" == lines[2]
        order = [
            "outcome: VIOLATION (1 kind: lost-update)",
            "expected: lost-update (as expected)",
            "violation 1: lost-update: counter is 1",
            "  A property of the model named 'lost-update' was violated.",
            "step  incr0",
            ">> at the end: lost-update: counter is 1",
            "stats: 6 executions, 24 steps (passed 2, violation 4)",
            "exit: exhausted: every schedule class was explored",
            "replay lost-update:",
        ]
        positions = [text.index(item) for item in order]
        assert sorted(positions) == positions
        assert buggy.replay_command(buggy.result.counterexamples[0]) == lines[-1]
        assert "time:" not in text

    def test_timings_add_the_time(self, fixed: ScenarioRun) -> None:
        """With timings the stats include the wall-clock time."""
        assert "time: " in render_run(fixed, version="1")

    def test_verified_report_has_no_replay(self, fixed: ScenarioRun) -> None:
        """A verified run says so and prints no replay command."""
        text = render_run(fixed, version="1")

        assert "outcome: VERIFIED (no violation in any schedule)" in text
        assert "hmmsim replay" not in text

    def test_unexpected_result_is_flagged(self, mp: ScenarioRun) -> None:
        """A result that contradicts the expectation is marked UNEXPECTED."""
        assert "expected: deadlock (UNEXPECTED)" in render_run(mp, version="1")

    def test_incomplete_report_and_bounds(self, buggy: ScenarioRun) -> None:
        """An incomplete run explains why and the header lists the bounds."""
        config = ExploreConfig(
            strategy="dfs", preemption_bound=0, time_budget_s=5.0, max_executions=None
        )
        run = dataclasses.replace(
            buggy,
            config=config,
            result=dataclasses.replace(
                buggy.result, counterexamples=[], complete=False
            ),
            traces=(),
            file="model.py",
        )

        text = render_run(run, version="1")

        assert "max executions unbounded, max steps 2000, preemption bound 0" in text
        assert "time budget 5 s" in text
        assert "file model.py" in text
        assert "outcome: INCOMPLETE" in text
        assert "not a proof" in text

    def test_missing_trace_is_said(self, buggy: ScenarioRun) -> None:
        """A counterexample without a captured trace says so."""
        text = render_run(dataclasses.replace(buggy, traces=()), version="1")

        assert "(no trace captured)" in text

    def test_shrunk_counterexample_reports_both_lengths(
        self, buggy: ScenarioRun
    ) -> None:
        """When shrinking shortened a schedule, the original length is given."""
        cx = dataclasses.replace(buggy.result.counterexamples[0], original_steps=9)
        run = dataclasses.replace(
            buggy, result=dataclasses.replace(buggy.result, counterexamples=[cx])
        )

        assert "(shrunk from 9)" in render_run(run, version="1")

    def test_step_and_task_of_a_finding_during_a_step(self, crash: ScenarioRun) -> None:
        """A finding made during a step names its task and step."""
        assert "task boom, step 0;" in render_run(crash, version="1")


class TestSummaryAndComparison:
    def test_summary_has_one_row_per_run_and_totals(
        self,
        buggy: ScenarioRun,
        fixed: ScenarioRun,
        mp: ScenarioRun,
        locks: ScenarioRun,
    ) -> None:
        """The summary table has a row per run, the totals and unexpected count."""
        text = render_summary([buggy, fixed, mp, locks])

        lines = text.splitlines()
        assert lines[0].split() == [
            "scenario",
            "variant",
            "outcome",
            "kinds",
            "executions",
            "exhausted",
            "expect",
        ]
        assert "counter   buggy    VIOLATION" in lines[2]
        assert lines[5].startswith("locks     abba     VIOLATION  lock-order, deadlock")
        assert lines[5].endswith("-")
        assert "4 runs: 2 verified, 2 violation" == lines[6]
        assert "1 run UNEXPECTED" == lines[7]

    def test_summary_with_timings_and_replays(
        self, buggy: ScenarioRun, fixed: ScenarioRun
    ) -> None:
        """Timings add a time column; each counterexample gets a replay line."""
        text = render_summary([buggy, fixed], timings=True)
        replays = render_replays([buggy, fixed])

        assert "time" in text.splitlines()[0].split()
        assert re.search(r"VIOLATION\s+lost-update\s+\d+\s+\d+\.\d s\s+yes", text)
        assert replays.startswith("counterexamples (replay one to see its timeline):\n")
        assert f"  {buggy.replay_command(buggy.result.counterexamples[0])}\n" in replays
        assert "" == render_replays([fixed])

    def test_empty_summary(self) -> None:
        """A summary of nothing says none."""
        assert "0 runs: none" in render_summary([])

    def test_comparison_lists_kinds_on_each_side(
        self, buggy: ScenarioRun, locks: ScenarioRun
    ) -> None:
        """Kinds found on one side only, and on both, are listed."""
        text = render_comparison(buggy, locks)

        assert "only in buggy: lost-update:" in text
        assert "only in abba: deadlock: Every live task is blocked" in text
        assert "outcome differs" not in text

    def test_comparison_of_kinds_in_both(self, locks: ScenarioRun) -> None:
        """Two failing runs with a common kind list it as in both."""
        other = dataclasses.replace(
            locks,
            variant="other",
            result=dataclasses.replace(
                locks.result, counterexamples=locks.result.counterexamples[:1]
            ),
        )

        text = render_comparison(locks, other)

        assert "in both: lock-order" in text
        assert "only in abba: deadlock" in text


class TestRenderReplay:
    def test_replay_without_trace(self) -> None:
        """A replay result without a trace still gets a verdict."""
        result = ExecutionResult(
            outcome=Outcome.PASSED,
            findings=(),
            schedule=Schedule(),
            steps=0,
            preemptions=0,
        )

        text = render_replay(
            label="a/b", kind="deadlock", result=result, reproduced=False
        )

        assert text.startswith("replay a/b: 0 steps, outcome passed, findings: none\n")
        assert text.endswith("NOT reproduced: expected deadlock, found none\n")
