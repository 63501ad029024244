"""Tests for `hmmsim.report.html`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hmmsim.report import ScenarioRun
from hmmsim.report.html import counterexample_path, write_report


class TestWriteReport:
    def test_index_has_the_matrix_and_links(
        self,
        tmp_path: Path,
        buggy: ScenarioRun,
        fixed: ScenarioRun,
        locks: ScenarioRun,
        mp: ScenarioRun,
    ) -> None:
        """index.html has a row per scenario, a column per variant and kind links."""
        index = write_report(tmp_path, [buggy, fixed, locks, mp], version="1.0")

        html = index.read_text(encoding="utf-8")
        assert tmp_path / "index.html" == index
        assert "<th>buggy</th><th>fixed</th><th>abba</th><th>ok</th>" in html
        assert 'href="cx/counter--buggy--lost-update.html"' in html
        assert 'href="cx/locks--abba--deadlock.html"' in html
        assert "VERIFIED" in html
        assert "not exhausted" not in html
        assert "unexpected" in html
        assert "&mdash;" in html
        assert "<link" not in html
        assert "<script" not in html

    def test_counterexample_page_has_swimlanes_and_marks(
        self, tmp_path: Path, buggy: ScenarioRun
    ) -> None:
        """A counterexample page has one lane per task, state changes and the replay."""
        write_report(tmp_path, [buggy], version="1.0")
        cx = buggy.result.counterexamples[0]

        html = (tmp_path / counterexample_path(buggy, cx)).read_text(encoding="utf-8")
        assert "<th>incr0</th><th>incr1</th><th>state changes</th>" in html
        assert '<span class="changed">counter=1</span>' in html
        assert "READ_ONCE(counter)" in html
        assert "&gt;&gt; at the end" in html
        assert buggy.replay_command(cx) in html

    def test_step_finding_marks_its_row(
        self, tmp_path: Path, crash: ScenarioRun
    ) -> None:
        """A finding made during a step marks that row and shows inside the lane."""
        write_report(tmp_path, [crash], version="1.0")

        html = (tmp_path / "cx" / "crash--raise--exception.html").read_text(
            encoding="utf-8"
        )
        assert 'id="step-0" class="marked"' in html
        assert '<div class="finding">exception: task boom raised' in html

    def test_page_without_trace_and_incomplete_cell(
        self, tmp_path: Path, buggy: ScenarioRun
    ) -> None:
        """Without a trace the page says so; a bounded run is flagged."""
        run = dataclasses.replace(
            buggy,
            traces=(),
            result=dataclasses.replace(buggy.result, complete=False),
        )

        index = write_report(tmp_path, [run], version="1.0")

        assert "exhausted under a bound" in index.read_text(encoding="utf-8")
        page = tmp_path / "cx" / "counter--buggy--lost-update.html"
        assert "(no trace captured)" in page.read_text(encoding="utf-8")

    def test_reports_are_deterministic(
        self, tmp_path: Path, locks: ScenarioRun
    ) -> None:
        """Writing the same runs twice gives the same bytes."""
        first = write_report(tmp_path / "a", [locks], version="1").read_bytes()
        second = write_report(tmp_path / "b", [locks], version="1").read_bytes()

        assert first == second
