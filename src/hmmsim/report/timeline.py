"""Per-task timeline of a captured trace, drawn like the kernel's race comments.

The kernel draws races as columns, one per CPU, time flowing down::

    CPU0                          CPU1
    ----                          ----
    mmu_interval_read_begin()
                                  invalidate_range_start()

:func:`render_timeline` draws a :class:`~hmmsim.engine.Trace` the same way:
one column per task, one row per step holding the Op the task performed
(``mutex_lock(hmm->lock)``), the data choices made (``? timeout=1``) and the
tracepoints emitted (``-> read_begin seq=5``).  A side column lists the
state values that changed at that step.  The step where a finding was
reported is marked ``>>`` (the counterexample's own kind) or ``!!`` (other
findings), with the finding's message underneath.  Findings made after the
last step (a deadlock, an end-of-execution property) follow the table.

:func:`timeline_rows` gives the same content as data for other renderers
(the HTML swimlanes).  Everything here is pure: strings in, a string out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hmmsim.engine import Finding, Step, Trace

__all__ = [
    "OTHER_MARK",
    "PRIMARY_MARK",
    "TimelineRow",
    "format_value",
    "render_timeline",
    "timeline_rows",
]

PRIMARY_MARK = ">>"
OTHER_MARK = "!!"

_MIN_COLUMN = 14
_GAP = "  "


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


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineRow:
    """One step of a timeline, as data.

    Attributes:
        index: the step index.
        task: the column (task id) the step belongs to.
        lines: the Op, then ``? label=value`` data choices, then ``-> event``.
        changes: ``key=value`` for each state value changed by the step.
        findings: the findings reported during this step.
        mark: ``PRIMARY_MARK``, ``OTHER_MARK`` or ``""``.
    """

    index: int
    task: int
    lines: tuple[str, ...]
    changes: tuple[str, ...]
    findings: tuple[Finding, ...]
    mark: str


def _step_lines(step: Step) -> tuple[str, ...]:
    lines = [step.op]
    lines.extend(f"? {label}={value}" for label, value in step.data)
    lines.extend(f"-> {event.describe()}" for event in step.events)
    return tuple(lines)


def _changes(
    state: Mapping[str, object], previous: Mapping[str, object] | None
) -> tuple[str, ...]:
    changed = []
    for key, value in state.items():
        if previous is None or key not in previous or previous[key] != value:
            changed.append(f"{key}={format_value(value)}")
    return tuple(changed)


def _mark(findings: Sequence[Finding], primary: str | None) -> str:
    if not findings:
        return ""
    if primary is None or any(f.kind == primary for f in findings):
        return PRIMARY_MARK
    return OTHER_MARK


def timeline_rows(
    trace: Trace, findings: Sequence[Finding] = (), *, primary: str | None = None
) -> list[TimelineRow]:
    """Return one row per step of ``trace``.

    Args:
        trace: a captured trace.
        findings: findings of the execution; each marks the step it names.
        primary: the kind of the counterexample, marked ``>>``; other kinds
            get ``!!``.  ``None`` marks every finding ``>>``.
    """
    by_step: dict[int, list[Finding]] = {}
    for finding in findings:
        by_step.setdefault(finding.step, []).append(finding)
    rows = []
    previous: Mapping[str, object] | None = None
    for step in trace.steps:
        here = tuple(by_step.get(step.index, ()))
        rows.append(
            TimelineRow(
                index=step.index,
                task=step.task,
                lines=_step_lines(step),
                changes=_changes(step.state, previous),
                findings=here,
                mark=_mark(here, primary),
            )
        )
        previous = step.state
    return rows


def trailing_findings(trace: Trace, findings: Sequence[Finding]) -> list[Finding]:
    """Return the findings not made during a step (after the last one, or at the end)."""
    indexes = {step.index for step in trace.steps}
    return [f for f in findings if f.step not in indexes]


_BREAK_AFTER: Final = re.compile(r"(?<=[(,.\s])|(?<=->)")


def _wrap(text: str, width: int) -> list[str]:
    """Wrap ``text`` to ``width``, preferring breaks after ``( , . ->`` and spaces.

    Continuation lines are indented by two spaces; a piece longer than a line
    is cut.
    """
    width = max(width, 4)
    lines: list[str] = []
    current = ""
    for chunk in _BREAK_AFTER.split(text):
        piece = chunk
        limit = width if not lines else width - 2
        if current and len(current) + len(piece) > limit:
            lines.append(current.rstrip())
            current = ""
            limit = width - 2
        while len(piece) > limit:
            lines.append(current + piece[: limit - len(current)])
            piece = piece[limit - len(current) :]
            current = ""
            limit = width - 2
        current += piece
    if current.strip() or not lines:
        lines.append(current.rstrip())
    return [lines[0]] + ["  " + line.lstrip() for line in lines[1:]]


def _finding_lines(finding: Finding, mark: str, width: int) -> list[str]:
    where = f" ({finding.task})" if finding.task else ""
    lines = _wrap(f"{mark} {finding.kind}{where}: {finding.message}", width)
    for extra in finding.detail:
        lines.extend(_wrap(f"     {extra}", width))
    return lines


class _Layout:
    """Column widths for a trace at a given total width."""

    def __init__(self, trace: Trace, rows: Sequence[TimelineRow], width: int) -> None:
        last = trace.steps[-1].index if trace.steps else 0
        self.gutter = len(PRIMARY_MARK) + 1 + len(str(last))
        changes = [c for row in rows for c in row.changes]
        self.state = 0
        if changes:
            self.state = min(max(len(c) for c in changes), max(16, width // 4))
        ncols = max(len(trace.tasks), 1)
        fixed = (
            self.gutter
            + len(_GAP) * ncols
            + (len(" | ") + self.state) * bool(self.state)
        )
        self.column = max(_MIN_COLUMN, (width - fixed) // ncols)
        self.ncols = ncols

    def line(self, gutter: str, cells: Sequence[str], state: str) -> str:
        text = gutter.rjust(self.gutter)
        text += "".join(_GAP + cell.ljust(self.column) for cell in cells)
        if self.state:
            text += " | " + state
        return text.rstrip()


def _row_lines(row: TimelineRow, layout: _Layout) -> list[str]:
    column = [w for line in row.lines for w in _wrap(line, layout.column)]
    state = [w for c in row.changes for w in _wrap(c, layout.state or 1)]
    out = []
    for i in range(max(len(column), len(state))):
        cells = [""] * layout.ncols
        cells[row.task] = column[i] if i < len(column) else ""
        gutter = f"{row.mark} {row.index}" if i == 0 else ""
        if i == 0 and not row.mark:
            gutter = str(row.index)
        out.append(layout.line(gutter, cells, state[i] if i < len(state) else ""))
    return out


def render_timeline(
    trace: Trace,
    findings: Sequence[Finding] = (),
    *,
    primary: str | None = None,
    width: int = 100,
) -> str:
    """Return ``trace`` as a per-task column timeline (see the module docstring).

    Args:
        trace: a captured trace (``engine.replay(..., capture=True).trace``).
        findings: the execution's findings, marked at their steps.
        primary: the counterexample's kind (marked ``>>``; others ``!!``).
        width: target line width; columns never get narrower than 14.
    """
    rows = timeline_rows(trace, findings, primary=primary)
    layout = _Layout(trace, rows, width)
    names = list(trace.tasks) or ["(no task)"]
    header = [
        layout.line("step", [n[: layout.column] for n in names], "state"),
        layout.line("", ["-" * min(len(n), layout.column) for n in names], "-----"),
    ]
    lines = list(header)
    for row in rows:
        lines.extend(_row_lines(row, layout))
        for finding in row.findings:
            indent = " " * (layout.gutter + len(_GAP))
            mark = (
                row.mark if finding.kind == primary or primary is None else OTHER_MARK
            )
            lines.extend(
                indent + text
                for text in _finding_lines(finding, mark, width - len(indent))
            )
    last = trace.steps[-1].index if trace.steps else -1
    for finding in trailing_findings(trace, findings):
        mark = PRIMARY_MARK if primary in (None, finding.kind) else OTHER_MARK
        when = "at the end" if finding.step < 0 else f"after step {last}"
        if last < 0:
            when = "before any step"
        lines.extend(_finding_lines(finding, f"{mark} {when}:", width))
    return "\n".join(lines) + "\n"
