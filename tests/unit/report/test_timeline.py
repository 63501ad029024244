"""Tests for `hmmsim.report.timeline`."""

from __future__ import annotations

from hmmsim.engine import Finding, Step, Trace
from hmmsim.report import ScenarioRun
from hmmsim.report.timeline import (
    OTHER_MARK,
    PRIMARY_MARK,
    format_value,
    render_timeline,
    timeline_rows,
)


def two_task_trace() -> Trace:
    """Return a hand-made trace of two tasks with state, data and events."""
    return Trace(
        tasks=("fault", "unmap"),
        steps=(
            Step(
                index=0,
                task=0,
                task_name="fault",
                op="mutex_lock(lock)",
                kind="ACQUIRE",
                state={"seq": 0, "valid": True},
            ),
            Step(
                index=1,
                task=1,
                task_name="unmap",
                op="WRITE_ONCE(seq)",
                kind="WRITE",
                data=(("timeout", 1),),
                state={"seq": 1, "valid": True},
            ),
            Step(
                index=2,
                task=0,
                task_name="fault",
                op="READ_ONCE(seq)",
                kind="READ",
                state={"seq": 1, "valid": False},
            ),
        ),
    )


class TestTimelineRows:
    def test_rows_hold_lines_changes_and_marks(self) -> None:
        """Each row has the op, data choices, changed state and its mark."""
        finding = Finding(kind="warn", message="w", step=1, task="unmap")

        rows = timeline_rows(two_task_trace(), [finding], primary="deadlock")

        assert ("mutex_lock(lock)",) == rows[0].lines
        assert ("seq=0", "valid=True") == rows[0].changes
        assert ("WRITE_ONCE(seq)", "? timeout=1") == rows[1].lines
        assert ("seq=1",) == rows[1].changes
        assert OTHER_MARK == rows[1].mark
        assert ("valid=False",) == rows[2].changes
        assert "" == rows[2].mark

    def test_primary_finding_gets_the_primary_mark(self) -> None:
        """The counterexample's own kind is marked ``>>``."""
        finding = Finding(kind="warn", message="w", step=2)

        rows = timeline_rows(two_task_trace(), [finding], primary="warn")

        assert PRIMARY_MARK == rows[2].mark


class TestRenderTimeline:
    def test_columns_are_tasks_and_the_violating_step_is_marked(self) -> None:
        """Task names head the columns; the step of the finding starts with ``>>``."""
        finding = Finding(kind="warn", message="seq moved", step=2, task="fault")

        text = render_timeline(two_task_trace(), [finding], primary="warn", width=80)

        lines = text.splitlines()
        assert lines[0].startswith("step  fault")
        assert "unmap" in lines[0]
        assert lines[0].endswith("| state")
        assert lines[6].startswith(">> 2  READ_ONCE(seq)")
        assert lines[6].endswith("| valid=False")
        assert ">> warn (fault): seq moved" == lines[7].strip()
        assert all(len(line) <= 80 for line in lines)
        assert all(line == line.rstrip() for line in lines)

    def test_ops_sit_in_their_task_column(self) -> None:
        """A step of the second task is indented to the second column."""
        text = render_timeline(two_task_trace(), width=80)

        row = text.splitlines()[4]
        assert row.startswith("   1    ")
        assert row.index("WRITE_ONCE(seq)") == text.splitlines()[0].index("unmap")
        assert "? timeout=1" in text.splitlines()[5]

    def test_narrow_width_wraps_instead_of_dropping_text(self) -> None:
        """At a narrow width long ops wrap onto continuation lines."""
        long_op = "mmu_interval_read_begin(mirror->notifier.interval_tree)"
        trace = Trace(
            tasks=("a", "b", "c"),
            steps=(Step(index=0, task=2, task_name="c", op=long_op, kind="READ"),),
        )

        text = render_timeline(trace, width=60)

        body = [line.strip() for line in text.splitlines()[2:]]
        assert body[0].startswith("0 ")
        assert long_op == "".join(body)[1:].lstrip()
        assert all(len(line) <= 60 for line in text.splitlines())

    def test_trailing_findings_follow_the_table(self) -> None:
        """Findings after the last step are listed after it, with details."""
        end = Finding(kind="lost-update", message="counter is 1", step=-1)
        stuck = Finding(
            kind="deadlock", message="all blocked", step=3, detail=("a waits",)
        )

        text = render_timeline(two_task_trace(), [end, stuck], primary="deadlock")

        assert "!! at the end: lost-update: counter is 1" in text
        assert ">> after step 2: deadlock: all blocked" in text
        assert "     a waits" in text

    def test_empty_trace_names_findings_before_any_step(self) -> None:
        """A finding in a trace without steps is placed before any step."""
        trace = Trace(tasks=(), steps=())

        text = render_timeline(trace, [Finding(kind="deadlock", message="m", step=0)])

        assert "(no task)" in text
        assert ">> before any step: deadlock: m" in text

    def test_toy_counterexample_timeline_shows_events(self, buggy: ScenarioRun) -> None:
        """Tracepoints emitted during a step appear under its op."""
        trace = buggy.trace_of(0)
        assert trace is not None

        text = render_timeline(trace, buggy.result.counterexamples[0].findings)

        assert "-> counter_read value=0" in text
        assert "counter=1" in text


class TestFormatValue:
    def test_sets_are_sorted_and_containers_rendered(self) -> None:
        """State values render deterministically, sets sorted."""
        assert "{1, 2, 3}" == format_value({3, 1, 2})
        assert "{a: [1, (2, 3)]}" == format_value({"a": [1, (2, 3)]})
