"""Tests for `hmmsim.report.timeline`."""

from __future__ import annotations

from hmmsim.engine import Cause, Event, Finding, Step, Trace
from hmmsim.report import ScenarioRun
from hmmsim.report.timeline import (
    CAUSE_MARK,
    GONE,
    OTHER_MARK,
    PRIMARY_MARK,
    STARTED,
    build_timeline,
    format_event,
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


def setup_then_race() -> Trace:
    """Return a trace whose first two steps belong to the ``setup`` task."""

    def step(index: int, task: int, op: str, **kwargs: object) -> Step:
        return Step(
            index=index,
            task=task,
            task_name=("setup", "fault", "reaper")[task],
            op=op,
            kind="OTHER",
            **kwargs,  # type: ignore[arg-type]
        )

    return Trace(
        tasks=("setup", "fault", "reaper"),
        steps=(
            step(0, 0, "vm_mmap(mm)", state={"notifiers": 0, "pte": "-"}),
            step(1, 0, "cpu_store(page#0)", state={"notifiers": 0, "pte": "page#0"}),
            step(
                2, 1, "hmm_range_fault(range)", state={"notifiers": 0, "pte": "page#0"}
            ),
            step(
                3,
                2,
                "mutex_trylock(mm->hmm->lock)",
                events=(
                    Event(
                        name="invalidate_start",
                        fields={"mm": "mm", "start": 0x10000, "end": 0x11000},
                    ),
                ),
                state={"notifiers": 1, "pte": "page#0"},
            ),
            step(4, 1, "mutex_lock(update)", state={"notifiers": 1, "pte": "-"}),
        ),
    )


class TestTimelineRows:
    def test_rows_hold_op_notes_changes_and_marks(self) -> None:
        """Each row has the op, data choices, changed state and its mark."""
        finding = Finding(kind="warn", message="w", step=1, task="unmap")

        rows = timeline_rows(two_task_trace(), [finding], primary="deadlock")

        assert ("mutex_lock(lock)",) == rows[0].lines
        assert ("seq=0", "valid=True") == rows[0].changes
        assert "WRITE_ONCE(seq)" == rows[1].op
        assert ("? timeout=1",) == rows[1].notes
        assert ("seq=1",) == rows[1].changes
        assert OTHER_MARK == rows[1].mark
        assert ("valid=False",) == rows[2].changes
        assert "" == rows[2].mark

    def test_primary_finding_gets_the_primary_mark(self) -> None:
        """The counterexample's own kind is marked ``>>>``."""
        finding = Finding(kind="warn", message="w", step=2)

        rows = timeline_rows(two_task_trace(), [finding], primary="warn")

        assert ">>>" == PRIMARY_MARK == rows[2].mark


class TestSetupFolding:
    def test_setup_steps_are_folded_and_state_is_relative_to_them(self) -> None:
        """The set-up prefix is hidden, its column dropped, its final state kept."""
        timeline = build_timeline(setup_then_race())

        assert 2 == timeline.hidden
        assert ("fault", "reaper") == timeline.names
        assert ("notifiers=0", "pte=page#0") == timeline.setup_state
        assert [2, 3, 4] == [row.index for row in timeline.rows]
        assert () == timeline.rows[0].changes
        assert ("notifiers=1",) == timeline.rows[1].changes
        assert 1 == timeline.rows[1].column

    def test_full_shows_the_setup(self) -> None:
        """``full=True`` keeps every step and the set-up column."""
        timeline = build_timeline(setup_then_race(), full=True)

        assert 0 == timeline.hidden
        assert ("setup", "fault", "reaper") == timeline.names
        assert 5 == len(timeline.rows)

    def test_a_finding_during_setup_keeps_it_shown(self) -> None:
        """Nothing is hidden when something went wrong during the set-up."""
        finding = Finding(kind="bug", message="m", step=1)

        assert 0 == build_timeline(setup_then_race(), [finding]).hidden

    def test_a_trace_of_only_setup_is_not_folded(self) -> None:
        """A trace that never left the set-up shows it."""
        trace = setup_then_race()
        only = Trace(tasks=trace.tasks, steps=trace.steps[:2])

        assert 0 == build_timeline(only).hidden

    def test_rendered_fold_names_the_hint_and_the_state(self) -> None:
        """The fold line says how many steps and how to see them."""
        text = render_timeline(
            setup_then_race(), width=100, full_hint="hmmsim replay T --full"
        )

        lines = text.splitlines()
        assert "setup: 2 steps hidden (hmmsim replay T --full)" == lines[0]
        assert "state after set-up: notifiers=0, pte=page#0" == lines[1]
        assert "vm_mmap" not in text
        assert "setup" not in lines[3]

    def test_golden_timeline(self) -> None:
        """The whole rendering of a small trace, at a width with a state column."""
        finding = Finding(kind="stale", message="pte cleared", step=4, task="fault")

        text = render_timeline(setup_then_race(), [finding], primary="stale", width=100)

        assert (
            "setup: 2 steps hidden (--full shows them)\n"
            "state after set-up: notifiers=0, pte=page#0\n"
            "\n"
            " step  fault                   reaper                                                | state changes\n"
            " ----  -----                   ------                                                | -------------\n"
            "    2  hmm_range_fault(range)                                                        |\n"
            "    3                          mutex_trylock(mm->hmm->lock)                          | notifiers=1\n"
            "                                 -> invalidate_start [0x10000, 0x11000)              |\n"
            ">>> 4  mutex_lock(update)                                                            | pte=-\n"
            "       >>> stale (fault): pte cleared\n"
        ) == text


class TestLayout:
    def test_narrow_width_puts_state_changes_under_the_op(self) -> None:
        """When a state column would squeeze the tasks, changes go inline."""
        text = render_timeline(setup_then_race(), width=60)

        assert "state changes" not in text
        assert "* notifiers=1" in text
        assert all(len(line) <= 60 for line in text.splitlines()[2:])

    def test_wide_width_has_a_state_column(self) -> None:
        """With room to spare, changes get their own column."""
        text = render_timeline(setup_then_race(), width=160)

        assert text.splitlines()[3].endswith("| state changes")


class TestFormatEvent:
    def test_addresses_are_hex_ranges_and_self_named_fields_dropped(self) -> None:
        """``start``/``end`` become a range; ``mm=mm`` is left out."""
        event = Event(
            name="invalidate",
            fields={"mm": "mm", "start": 4096, "end": 8192, "addr": 16, "ok": True},
        )

        assert "invalidate [0x1000, 0x2000) addr=0x10 ok=True" == format_event(event)


class TestRenderTimeline:
    def test_columns_are_tasks_and_the_violating_step_is_marked(self) -> None:
        """Task names head the columns; the step of the finding starts with ``>>>``."""
        finding = Finding(kind="warn", message="seq moved", step=2, task="fault")

        text = render_timeline(two_task_trace(), [finding], primary="warn", width=80)

        lines = text.splitlines()
        assert lines[0].startswith(" step  fault")
        assert "unmap" in lines[0]
        assert lines[0].endswith("| state changes")
        assert lines[6].startswith(">>> 2  READ_ONCE(seq)")
        assert lines[6].endswith("| valid=False")
        assert ">>> warn (fault): seq moved" == lines[7].strip()
        assert all(len(line) <= 80 for line in lines)
        assert all(line == line.rstrip() for line in lines)

    def test_ops_sit_in_their_task_column(self) -> None:
        """A step of the second task is indented to the second column."""
        text = render_timeline(two_task_trace(), width=80)

        row = text.splitlines()[4]
        assert row.startswith("    1    ")
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
        assert ">>> after step 2: deadlock: all blocked" in text
        assert "     a waits" in text

    def test_empty_trace_names_findings_before_any_step(self) -> None:
        """A finding in a trace without steps is placed before any step."""
        trace = Trace(tasks=(), steps=())

        text = render_timeline(trace, [Finding(kind="deadlock", message="m", step=0)])

        assert "(no task)" in text
        assert ">>> before any step: deadlock: m" in text

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


class TestCauses:
    """Cause steps are marked beside the detecting step."""

    def test_the_cause_step_is_marked_with_its_note(self) -> None:
        """A finding's cause step gets <<< and its note; the detection keeps >>>."""
        cause = Cause(step=1, task="unmap", note="bumped seq for good")
        finding = Finding(kind="warn", message="seq odd", step=2, causes=(cause,))

        text = render_timeline(two_task_trace(), [finding], primary="warn")

        assert f"{CAUSE_MARK} 1" in text
        assert f"{CAUSE_MARK} cause of warn (step 2): bumped seq for good" in text
        assert f"{PRIMARY_MARK} 2" in text

    def test_causes_of_other_kinds_are_not_marked(self) -> None:
        """Only the counterexample's own kind has its causes marked."""
        cause = Cause(step=1, task="unmap", note="n")
        other = Finding(kind="other", message="m", step=2, causes=(cause,))

        rows = timeline_rows(two_task_trace(), [other], primary="warn")

        assert ("", ()) == (rows[1].mark, rows[1].causes)

    def test_a_cause_in_the_folded_set_up_is_listed_above_the_table(self) -> None:
        """A secondary cause in the set-up is named in the set-up summary."""
        first = Cause(step=2, task="a", note="first")
        second = Cause(step=0, task="setup", note="mapped it")
        finding = Finding(kind="k", message="m", step=3, causes=(first, second))
        trace = setup_then_race()

        timeline = build_timeline(trace, [finding], primary="k")
        text = render_timeline(trace, [finding], primary="k")

        assert timeline.hidden > 0
        assert [(finding, second)] == list(timeline.hidden_causes)
        assert "<<< step 0 (setup), in the set-up: cause of k (step 3): mapped" in text


class TestTracepointOwner:
    """Tracepoints are drawn in the column of the task that emitted them."""

    def test_a_spawned_task_s_first_tracepoint_gets_its_own_row(self) -> None:
        """An event emitted by task 1 during task 0's step is drawn under task 1."""
        trace = Trace(
            tasks=("setup", "reclaim"),
            steps=(
                Step(
                    index=0,
                    task=0,
                    task_name="setup",
                    op="kthread_run()",
                    kind="LOCAL",
                    events=(
                        Event(name="mine", task=0),
                        Event(name="reclaim_start", task=1),
                    ),
                ),
            ),
        )

        rows = timeline_rows(trace)

        assert [
            (0, "kthread_run()", ("-> mine",)),
            (1, STARTED, ("-> reclaim_start",)),
        ] == [(r.column, r.op, r.notes) for r in rows]


def test_a_removed_state_value_is_shown_as_gone() -> None:
    """A key the step's state no longer has is listed as key=(gone)."""
    trace = Trace(
        tasks=("t",),
        steps=(
            Step(index=0, task=0, task_name="t", op="a()", kind="X", state={"k": 1}),
            Step(index=1, task=0, task_name="t", op="b()", kind="X", state={}),
        ),
    )

    rows = timeline_rows(trace)

    assert (("k=1",), (f"k={GONE}",)) == (rows[0].changes, rows[1].changes)


def test_an_actor_started_by_the_folded_set_up_keeps_its_row() -> None:
    """Folding the set-up keeps what a spawned actor did before its first Op."""
    trace = Trace(
        tasks=("setup", "reclaim"),
        steps=(
            Step(
                index=0,
                task=0,
                task_name="setup",
                op="spawn()",
                kind="X",
                events=(Event(name="reclaim_start", task=1),),
            ),
            Step(index=1, task=1, task_name="reclaim", op="lock()", kind="X"),
        ),
    )

    timeline = build_timeline(trace)

    assert 1 == timeline.hidden
    assert [(0, STARTED), (1, "lock()")] == [(r.index, r.op) for r in timeline.rows]
