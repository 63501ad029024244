"""Tests for `hmmsim.report.html`."""

from __future__ import annotations

import dataclasses
import fcntl
import threading
from pathlib import Path

from hmmsim.engine import Cause
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


class TestReportDirectory:
    """The directory is locked, cleaned of stale pages, and kinds never collide."""

    def test_stale_counterexample_pages_are_removed(
        self, tmp_path: Path, buggy: ScenarioRun, fixed: ScenarioRun
    ) -> None:
        """A cx page a later run did not write is deleted; other files stay."""
        write_report(tmp_path, [buggy], version="1")
        (tmp_path / "cx" / "notes.txt").write_text("mine")
        page = tmp_path / counterexample_path(buggy, buggy.result.counterexamples[0])
        assert page.exists()

        write_report(tmp_path, [fixed], version="1")

        assert not page.exists()
        assert (tmp_path / "cx" / "notes.txt").exists()

    def test_kinds_that_differ_only_in_punctuation_get_two_pages(
        self, buggy: ScenarioRun
    ) -> None:
        """Kinds x.y and x_y map to different page names."""
        cx = buggy.result.counterexamples[0]
        dot = counterexample_path(buggy, dataclasses.replace(cx, kind="x.y"))
        under = counterexample_path(buggy, dataclasses.replace(cx, kind="x_y"))

        assert dot != under
        assert under.endswith("--x_y.html")

    def test_a_second_writer_waits_for_the_lock(
        self, tmp_path: Path, buggy: ScenarioRun
    ) -> None:
        """While another process holds .lock, write_report blocks; then it writes."""
        tmp_path.mkdir(exist_ok=True)
        holder = (tmp_path / ".lock").open("a")
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        done = threading.Event()

        def write() -> None:
            write_report(tmp_path, [buggy], version="1")
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        waited = not done.wait(0.3)
        exists_while_locked = (tmp_path / "index.html").exists()
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
        holder.close()
        writer.join(60)

        assert waited
        assert not exists_while_locked
        assert done.is_set()
        assert (tmp_path / "index.html").exists()


class TestPageContents:
    """Legend, header, expectation colours, causes, held locks and noise."""

    def test_header_names_command_date_and_revision_only_when_given(
        self, tmp_path: Path, buggy: ScenarioRun
    ) -> None:
        """The sticky header shows what the caller passes, nothing time-dependent by default."""
        plain = write_report(tmp_path / "a", [buggy], version="9").read_text()
        full = write_report(
            tmp_path / "b",
            [buggy],
            version="9",
            command="hmmsim check counter",
            generated="2026-01-02 03:04 UTC",
            revision="deadbee",
        ).read_text()

        assert '<header class="top">' in plain
        assert "written" not in plain
        assert "<code>hmmsim check counter</code>" in full
        assert "written 2026-01-02 03:04 UTC" in full
        assert "revision <code>deadbee</code>" in full

    def test_expected_and_unexpected_cells_are_told_apart(
        self, tmp_path: Path, buggy: ScenarioRun
    ) -> None:
        """A run matching its expectation is 'expected'; one that does not is UNEXPECTED."""
        kinds = tuple(buggy.result.kinds)
        scenario = buggy.scenario
        matching = dataclasses.replace(
            buggy,
            scenario=dataclasses.replace(scenario, expect={buggy.variant: kinds}),
        )
        differing = dataclasses.replace(
            buggy, scenario=dataclasses.replace(scenario, expect={buggy.variant: ()})
        )

        good = write_report(tmp_path / "a", [matching], version="1").read_text()
        bad = write_report(tmp_path / "b", [differing], version="1").read_text()
        page = (
            tmp_path
            / "b"
            / counterexample_path(differing, buggy.result.counterexamples[0])
        ).read_text()

        assert '<td class="violation expected">' in good
        assert '<span class="tag expected">expected</span>' in good
        assert '<td class="violation unexpected">' in bad
        assert '<span class="tag unexpected">UNEXPECTED</span>' in page

    def test_causes_held_locks_and_noise_rows_are_drawn(
        self, tmp_path: Path, buggy: ScenarioRun
    ) -> None:
        """A finding's cause gets a 'cause' row and a link; held locks and noise show."""
        cx = buggy.result.counterexamples[0]
        trace = buggy.trace_of(0)
        assert trace is not None
        cause = Cause(step=0, task=trace.steps[0].task_name, note="started it")
        finding = dataclasses.replace(cx.finding, causes=(cause,))
        held = tuple(
            dataclasses.replace(step, held={step.task_name: ("big_lock",)})
            for step in trace.steps
        )
        run = dataclasses.replace(
            buggy,
            result=dataclasses.replace(
                buggy.result,
                counterexamples=[
                    dataclasses.replace(cx, finding=finding, findings=(finding,))
                ],
            ),
            traces=(dataclasses.replace(trace, steps=held),),
        )

        write_report(tmp_path, [run], version="1")
        html = (tmp_path / counterexample_path(run, cx)).read_text()

        assert '<tr id="step-0" class="cause' in html
        assert 'href="#step-0">step 0</a>' in html
        assert "&lt;&lt;&lt; cause of lost-update" in html
        assert '<div class="held">holds big_lock</div>' in html
        assert '<input type="checkbox" id="hide-noise">' in html


def test_an_error_row_shows_its_reason(tmp_path: Path, fixed: ScenarioRun) -> None:
    """A unit that ended in an error is a cell with ERROR and the reason (D1)."""
    failed = dataclasses.replace(fixed, error="worker process died: killed by SIGKILL")

    index = write_report(tmp_path, [failed], version="0")

    page = Path(index).read_text(encoding="utf-8")
    assert ">ERROR<" in page
    assert "worker process died: killed by SIGKILL" in page
