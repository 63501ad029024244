"""Per-task timeline of a captured trace, drawn like the kernel's race comments.

The kernel draws races as columns, one per CPU, time flowing down::

    CPU0                          CPU1
    ----                          ----
    mmu_interval_read_begin()
                                  invalidate_range_start()

:func:`render_timeline` draws a :class:`~hmmsim.engine.Trace` the same way:
one column per task, one row per step holding the Op the task performed
(``mutex_lock(mm->hmm->lock)``), then, indented under it, the data choices
made (``? timeout=1``) and the tracepoints emitted (``-> hmm_range_valid
range=dmirror0->range valid=True``; addresses in hex).  A side column lists
only the state values that *changed* at that step (``hmm->notifiers=1``), a
value the step removed as ``key=(gone)``.  A step is its Op plus the task's
local code up to its next Op, so a change may come from that code (the
``kref_get`` step of ``hmm_range_register`` shows ``hmm->ranges`` gaining the
range, which the code after the ``kref_get`` puts on the list).

The set-up is folded: the leading steps of the task named ``setup`` (the
harness that maps memory and binds mirrors before the actors start, see
:mod:`hmmsim.scenarios._world`) are replaced by one line saying how many
there were, followed by the state they left, unless ``full=True`` or a
finding was made during them.

The step where a finding was reported is marked ``>>>`` (the
counterexample's own kind) or ``!!`` (other findings), with the finding's
message underneath.  The steps the oracle names as the *causes* of the
counterexample's finding (:class:`~hmmsim.engine.Cause`: the step that set a
device PTE to a freed page, dropped an ``-EAGAIN``, raised a count never
lowered) are marked ``<<<``, each with its note underneath: detection and
cause are usually far apart.

Each tracepoint is drawn in the column of the task that emitted it: a task
spawned during another task's step runs up to its first Op inside that step,
so its first tracepoints get a row of their own (``(started)``) under the
same step number.  Findings made after the last step (a deadlock, an
end-of-execution property) follow the table.

:func:`build_timeline` gives the same content as data for other renderers
(the HTML swimlanes).  Everything here is pure: data in, a string out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from hmmsim.engine import Cause, Event, Finding, Step, Trace

__all__ = [
    "CAUSE_MARK",
    "GONE",
    "OTHER_MARK",
    "PRIMARY_MARK",
    "SETUP_TASK",
    "STARTED",
    "Timeline",
    "TimelineRow",
    "build_timeline",
    "cause_text",
    "format_event",
    "format_value",
    "render_timeline",
    "timeline_rows",
    "trailing_findings",
    "wrap_text",
]

#: Marks the step of the counterexample's own violation.
PRIMARY_MARK: Final = ">>>"
#: Marks the step of another finding of the same execution.
OTHER_MARK: Final = "!!"
#: Marks a step named as a cause of the counterexample's violation.
CAUSE_MARK: Final = "<<<"
#: The op text of a row holding what a spawned task did before its first Op.
STARTED: Final = "(started)"
#: The task whose leading steps are folded as set-up.
SETUP_TASK: Final = "setup"

_MIN_COLUMN: Final = 14
_MAX_COLUMN: Final = 60
_GAP: Final = "  "
_STATE_SEP: Final = " | "
_STATE_HEADER: Final = "state changes"
#: Event fields shown in hex when they hold an int (addresses).
_HEX_FIELDS: Final = frozenset({"addr", "address", "start", "end", "va"})


def format_value(value: object) -> str:
    """Return a deterministic text form of a state value (sets are sorted)."""
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(format_value(v) for v in value)) + "}"
    if isinstance(value, Mapping):
        items = (f"{format_value(k)}: {format_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(format_value(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return str(value)


def _field(key: str, value: object) -> str:
    if key in _HEX_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}"
    return format_value(value)


def format_event(event: Event) -> str:
    """Return ``name k=v ...``, compactly.

    Addresses are in hex, ``start`` and ``end`` become ``[start, end)``, and
    a field whose value is its own name (``mm=mm``) is left out.
    """
    fields = dict(event.fields)
    parts = [event.name]
    if "start" in fields and "end" in fields:
        start, end = fields.pop("start"), fields.pop("end")
        parts.append(f"[{_field('start', start)}, {_field('end', end)})")
    for key, value in fields.items():
        text = _field(key, value)
        if text != key:
            parts.append(f"{key}={text}")
    return " ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineRow:
    """One step of a timeline, as data.

    Attributes:
        index: the step index.
        task: the task id the step belongs to.
        column: the column of that task among the shown columns.
        op: the Op performed, e.g. ``mutex_lock(mm->hmm->lock)``.
        notes: ``? label=value`` data choices, then ``-> event`` tracepoints.
        changes: ``key=value`` for each state value changed by the step.
        findings: the findings reported during this step.
        mark: ``PRIMARY_MARK``, ``OTHER_MARK``, ``CAUSE_MARK`` or ``""``.
        causes: ``(kind, cause)`` for each finding this step is a cause of.
        held: the locks each task holds after the step, by task name.
        setup: whether the step belongs to the folded set-up.
    """

    index: int
    task: int
    column: int
    op: str
    notes: tuple[str, ...]
    changes: tuple[str, ...]
    findings: tuple[Finding, ...]
    mark: str
    causes: tuple[tuple[Finding, Cause], ...] = ()
    held: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    setup: bool = False

    @property
    def lines(self) -> tuple[str, ...]:
        """The op followed by its notes."""
        return (self.op, *self.notes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """A trace prepared for display.

    Attributes:
        columns: the task ids shown as columns, in order.
        names: their names.
        hidden: how many leading set-up steps were folded (0: none).
        setup_state: ``key=value`` for every state value after the folded
            set-up (empty when nothing was folded).
        rows: the shown steps.
        trailing: findings not made during a shown step (after the last
            step, or at the end).
        last_step: index of the last step of the trace (-1: no step).
        hidden_causes: causes that lie in the folded set-up, with their finding.
    """

    columns: tuple[int, ...]
    names: tuple[str, ...]
    hidden: int
    setup_state: tuple[str, ...]
    rows: tuple[TimelineRow, ...]
    trailing: tuple[Finding, ...]
    last_step: int
    hidden_causes: tuple[tuple[Finding, Cause], ...] = ()


def _own(event: Event, step: Step) -> bool:
    return event.task in (-1, step.task)


def _notes(step: Step) -> tuple[str, ...]:
    notes = [f"? {label}={value}" for label, value in step.data]
    if step.location:
        notes.append(f"@ {step.location}")
    notes.extend(
        f"-> {format_event(event)}" for event in step.events if _own(event, step)
    )
    return tuple(notes)


def _foreign(step: Step) -> dict[int, list[str]]:
    """The tracepoints of other tasks (spawned in this step), by task id."""
    out: dict[int, list[str]] = {}
    for event in step.events:
        if not _own(event, step):
            out.setdefault(event.task, []).append(f"-> {format_event(event)}")
    return out


#: Shown for a state value the step removed (e.g. a range taken off a list).
GONE: Final = "(gone)"


def _changes(
    state: Mapping[str, object], previous: Mapping[str, object] | None
) -> tuple[str, ...]:
    changed = [
        f"{key}={format_value(value)}"
        for key, value in state.items()
        if previous is None or key not in previous or previous[key] != value
    ]
    if previous is not None:
        changed += [f"{key}={GONE}" for key in previous if key not in state]
    return tuple(changed)


def _mark(findings: Sequence[Finding], primary: str | None) -> str:
    if not findings:
        return ""
    if primary is None or any(f.kind == primary for f in findings):
        return PRIMARY_MARK
    return OTHER_MARK


def _started_row(step: Step, task: int, notes: list[str], column: int) -> TimelineRow:
    """The row of what ``task`` did during ``step`` before its first Op."""
    return TimelineRow(
        index=step.index,
        task=task,
        column=column,
        op=STARTED,
        notes=tuple(notes),
        changes=(),
        findings=(),
        mark="",
        held=step.held,
    )


def _causes_by_step(
    findings: Sequence[Finding], primary: str | None
) -> dict[int, list[tuple[Finding, Cause]]]:
    """The causes of the primary kind's findings (every finding's without one)."""
    out: dict[int, list[tuple[Finding, Cause]]] = {}
    for finding in findings:
        if primary is not None and finding.kind != primary:
            continue
        for cause in finding.causes:
            out.setdefault(cause.step, []).append((finding, cause))
    return out


def cause_text(finding: Finding, cause: Cause) -> str:
    """Return ``cause of KIND (step N): note``."""
    where = f"step {finding.step}" if finding.step >= 0 else "at the end"
    return f"cause of {finding.kind} ({where}): {cause.note}"


def _setup_prefix(trace: Trace, finding_steps: set[int]) -> int:
    """Return how many leading steps belong to the set-up task (0: none to fold)."""
    count = 0
    for step in trace.steps:
        if step.task_name != SETUP_TASK:
            break
        count += 1
    if count == len(trace.steps) or any(
        trace.steps[i].index in finding_steps for i in range(count)
    ):
        return 0  # the set-up is all there is, or something went wrong in it
    return count


def build_timeline(
    trace: Trace,
    findings: Sequence[Finding] = (),
    *,
    primary: str | None = None,
    full: bool = False,
) -> Timeline:
    """Prepare ``trace`` for display (see the module docstring).

    Args:
        trace: a captured trace.
        findings: findings of the execution; each marks the step it names.
        primary: the kind of the counterexample, marked ``>>>``; other kinds
            get ``!!``.  ``None`` marks every finding ``>>>``.
        full: show the set-up steps instead of folding them.
    """
    by_step: dict[int, list[Finding]] = {}
    for finding in findings:
        by_step.setdefault(finding.step, []).append(finding)
    causes = _causes_by_step(findings, primary)
    hidden = 0 if full else _setup_prefix(trace, set(by_step))
    shown = trace.steps[hidden:]
    leading = next(
        (s.index for s in trace.steps if s.task_name != SETUP_TASK),
        len(trace.steps),
    )
    previous: Mapping[str, object] | None = None
    setup_state: tuple[str, ...] = ()
    if hidden:
        previous = trace.steps[hidden - 1].state
        setup_state = _changes(previous, None)
    used = {step.task for step in shown} | {
        e.task for step in trace.steps for e in step.events if not _own(e, step)
    }
    columns = tuple(t for t in range(len(trace.tasks)) if t in used or not hidden)
    position = {task: i for i, task in enumerate(columns)}
    # What an actor did while the folded set-up spawned it stays visible.
    rows = [
        _started_row(step, task, notes, position[task])
        for step in trace.steps[:hidden]
        for task, notes in _foreign(step).items()
    ]
    for step in shown:
        here = tuple(by_step.get(step.index, ()))
        because = tuple(causes.get(step.index, ()))
        mark = _mark(here, primary) or (CAUSE_MARK if because else "")
        rows.append(
            TimelineRow(
                index=step.index,
                task=step.task,
                column=position[step.task],
                op=step.op,
                notes=_notes(step),
                changes=_changes(step.state, previous),
                findings=here,
                mark=mark,
                causes=because,
                held=step.held,
                setup=step.index < leading,
            )
        )
        rows.extend(
            _started_row(step, task, notes, position[task])
            for task, notes in _foreign(step).items()
        )
        previous = step.state
    hidden_causes = tuple(
        pair for index in sorted(causes) if index < hidden for pair in causes[index]
    )
    return Timeline(
        columns=columns,
        names=tuple(trace.tasks[t] for t in columns),
        hidden=hidden,
        setup_state=setup_state,
        rows=tuple(rows),
        trailing=tuple(trailing_findings(trace, findings)),
        last_step=trace.steps[-1].index if trace.steps else -1,
        hidden_causes=hidden_causes,
    )


def timeline_rows(
    trace: Trace, findings: Sequence[Finding] = (), *, primary: str | None = None
) -> list[TimelineRow]:
    """Return one row per step of ``trace``, set-up included."""
    return list(build_timeline(trace, findings, primary=primary, full=True).rows)


def trailing_findings(trace: Trace, findings: Sequence[Finding]) -> list[Finding]:
    """Return the findings not made during a step (after the last one, or at the end)."""
    indexes = {step.index for step in trace.steps}
    return [f for f in findings if f.step not in indexes]


#: A line never ends with one of these alone (nor is empty).
_MARKERS: Final = frozenset({"", "->", "*", "?", ">>>", "!!", "<<<"})
_BREAK_AFTER: Final = re.compile(r"(?<=[(,\s])|(?<=->)")


def _wrap(text: str, width: int, indent: int = 2) -> list[str]:
    """Wrap ``text`` to ``width``, preferring breaks after ``( ,``, ``->`` and spaces.

    Continuation lines are indented by ``indent`` spaces beyond the first
    line's own indentation; a piece longer than a line is cut.
    """
    width = max(width, 8)
    lead = len(text) - len(text.lstrip(" "))
    pad = " " * min(lead + indent, width // 2)
    lines: list[str] = []
    current = ""
    for chunk in _BREAK_AFTER.split(text):
        piece = chunk
        limit = width if not lines else width - len(pad)
        if (
            current.strip() not in _MARKERS
            and len(current) + len(piece.rstrip()) > limit
        ):
            lines.append(current.rstrip())
            current = ""
            limit = width - len(pad)
        if not current and lines:
            piece = piece.lstrip()
        while len(current) + len(piece.rstrip()) > limit:
            cut = limit - len(current)
            lines.append(current + piece[:cut])
            piece = piece[cut:]
            current = ""
            limit = width - len(pad)
        current += piece
    if current.strip() or not lines:
        lines.append(current.rstrip())
    return [lines[0]] + [pad + line for line in lines[1:]]


def wrap_text(text: str, width: int, indent: int = 2) -> list[str]:
    """Wrap ``text`` to ``width`` as the timelines do (breaks after ``( ,``, ``->``).

    Continuation lines are indented by ``indent`` spaces beyond the first
    line's own indentation; a piece longer than a line is cut.
    """
    return _wrap(text, width, indent)


#: Prefix of a state change shown under the op (when there is no state column).
_CHANGE: Final = "* "
#: A column with a state column beside it is never squeezed below this.
_COMFORTABLE: Final = 30


def _op_lines(row: TimelineRow) -> list[str]:
    return [row.op] + ["  " + note for note in row.notes]


class _Layout:
    """Column widths: as wide as the ops they hold, the widest shrunk first.

    State changes get a column of their own on the right when that leaves
    every task column comfortable; otherwise they go under the op, ``* ``
    first, like the tracepoints.
    """

    def __init__(self, timeline: Timeline, width: int) -> None:
        self.ncols = max(len(timeline.columns), 1)
        last = timeline.last_step
        self.gutter = max(len("step"), len(PRIMARY_MARK) + 1 + len(str(max(last, 0))))
        natural = [len(name) for name in timeline.names] or [len("(no task)")]
        natural += [0] * (self.ncols - len(natural))
        for row in timeline.rows:
            natural[row.column] = max(natural[row.column], len(row.op))
        natural = [min(n, _MAX_COLUMN) for n in natural]
        changes = [len(c) for row in timeline.rows for c in row.changes]
        need = min(max(*changes, len(_STATE_HEADER)), 40) if changes else 0
        fixed = self.gutter + len(_GAP) * self.ncols
        side = _fit(natural, width - fixed - len(_STATE_SEP) - need)
        self.side_state = bool(need) and all(
            c >= min(n, _COMFORTABLE) for c, n in zip(side, natural, strict=True)
        )
        if self.side_state:
            # The state column sits at the right edge; the last task column
            # takes the spare room, where the notes of every column can run.
            self.columns = side
            self.columns[-1] += max(
                0, width - fixed - sum(side) - len(_STATE_SEP) - need
            )
            self.state = need
        else:
            self.columns = _fit(natural, width - fixed)
            self.state = 0

    def cell_lines(self, row: TimelineRow) -> list[str]:
        """The lines of ``row``: the op in its column, the notes under it.

        Only one task acts per row, so the notes may run on over the (empty)
        columns to the right of the op's, up to the state column.
        """
        notes = ["  " + note for note in row.notes]
        if not self.side_state:
            notes += ["  " + _CHANGE + change for change in row.changes]
        width = self.columns[row.column]
        room = sum(self.columns[row.column :]) + len(_GAP) * (
            self.ncols - row.column - 1
        )
        lines = _wrap(row.op, width)
        return lines + [w for note in notes for w in _wrap(note, room)]

    @property
    def state_at(self) -> int:
        """The column where the state separator starts."""
        return self.gutter + sum(len(_GAP) + c for c in self.columns)

    def state_lines(self, row: TimelineRow) -> list[str]:
        """The lines of ``row`` in the state column (none without one)."""
        if not self.side_state:
            return []
        return [w for c in row.changes for w in _wrap(c, self.state)]

    def line(self, gutter: str, cells: Sequence[str], state: str) -> str:
        """One output line: the gutter, each cell at its column, the state."""
        text = gutter.rjust(self.gutter)
        start = self.gutter
        for cell, width in zip(cells, self.columns, strict=True):
            start += len(_GAP)
            if cell:  # a note may run on past its column: place, do not pad
                text = text.ljust(start) + cell
            start += width
        if self.side_state:
            text = text.ljust(self.state_at) + _STATE_SEP + state
        return text.rstrip()


def _fit(natural: Sequence[int], room: int) -> list[int]:
    """Shrink the widest of ``natural`` until they fit ``room`` (never below 14)."""
    if sum(natural) <= room:
        return list(natural)
    cap = max(natural)
    while cap > _MIN_COLUMN and sum(min(n, cap) for n in natural) > room:
        cap -= 1
    return [min(n, cap) for n in natural]


def _row_lines(row: TimelineRow, layout: _Layout) -> list[str]:
    column = layout.cell_lines(row)
    state = layout.state_lines(row)
    out = []
    for i in range(max(len(column), len(state))):
        cells = [""] * layout.ncols
        cells[row.column] = column[i] if i < len(column) else ""
        gutter = ""
        if i == 0:
            gutter = f"{row.mark} {row.index}" if row.mark else str(row.index)
        out.append(layout.line(gutter, cells, state[i] if i < len(state) else ""))
    return out


def _finding_lines(finding: Finding, mark: str, width: int) -> list[str]:
    where = f" ({finding.task})" if finding.task else ""
    lines = _wrap(f"{mark} {finding.kind}{where}: {finding.message}", width, 4)
    for extra in finding.detail:
        lines.extend(_wrap(f"     {extra}", width))
    return lines


def _pack(items: Sequence[str], first: str, width: int) -> list[str]:
    """Join ``items`` with ``, `` into lines of ``width``, never splitting one."""
    lines = [first]
    for i, item in enumerate(items):
        text = item + ("," if i < len(items) - 1 else "")
        if len(lines[-1]) + 1 + len(text) > width and lines[-1].strip():
            lines.append("    " + text)
        else:
            lines[-1] += ("" if lines[-1].endswith(" ") else " ") + text
    return lines


def _setup_lines(timeline: Timeline, hint: str, width: int) -> list[str]:
    # The hint is a command: never wrapped, so it can be copied.
    lines = [
        f"{SETUP_TASK}: {timeline.hidden} steps hidden ({hint or '--full shows them'})"
    ]
    if timeline.setup_state:
        lines.extend(_pack(timeline.setup_state, "state after set-up:", width))
    for finding, cause in timeline.hidden_causes:
        lines.extend(
            _wrap(
                f"{CAUSE_MARK} step {cause.step} ({cause.task}), in the set-up: "
                + cause_text(finding, cause),
                width,
                4,
            )
        )
    return [*lines, ""]


def render_timeline(
    trace: Trace,
    findings: Sequence[Finding] = (),
    *,
    primary: str | None = None,
    width: int = 120,
    full: bool = False,
    full_hint: str = "",
) -> str:
    """Return ``trace`` as a per-task column timeline (see the module docstring).

    Args:
        trace: a captured trace (``engine.replay(..., capture=True).trace``).
        findings: the execution's findings, marked at their steps.
        primary: the counterexample's kind (marked ``>>>``; others ``!!``).
        width: target line width; a column never gets narrower than 14.
        full: show the set-up steps instead of folding them.
        full_hint: how to see the folded set-up, e.g. the replay command
            with ``--full`` (default: ``--full shows them``).
    """
    timeline = build_timeline(trace, findings, primary=primary, full=full)
    layout = _Layout(timeline, width)
    names = list(timeline.names) or ["(no task)"]
    lines = _setup_lines(timeline, full_hint, width) if timeline.hidden else []
    lines += [
        layout.line(
            "step",
            [n[:w] for n, w in zip(names, layout.columns, strict=True)],
            _STATE_HEADER,
        ),
        layout.line(
            "-" * len("step"),
            ["-" * min(len(n), w) for n, w in zip(names, layout.columns, strict=True)],
            "-------------",
        ),
    ]
    indent = " " * (layout.gutter + len(_GAP))
    for row in timeline.rows:
        lines.extend(_row_lines(row, layout))
        for finding, cause in row.causes:
            lines.extend(
                indent + text
                for text in _wrap(
                    f"{CAUSE_MARK} {cause_text(finding, cause)}",
                    width - len(indent),
                    4,
                )
            )
        for finding in row.findings:
            mark = PRIMARY_MARK if primary in (None, finding.kind) else OTHER_MARK
            lines.extend(
                indent + text
                for text in _finding_lines(finding, mark, width - len(indent))
            )
    for finding in timeline.trailing:
        mark = PRIMARY_MARK if primary in (None, finding.kind) else OTHER_MARK
        if finding.step < 0:
            when = "at the end"
        elif timeline.last_step < 0:
            when = "before any step"
        else:
            when = f"after step {timeline.last_step}"
        lines.extend(_finding_lines(finding, f"{mark} {when}:", width))
    return "\n".join(lines) + "\n"
