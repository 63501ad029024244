"""The race museum's presentation: CPU diagrams, the exhibit text and JSON.

:func:`render_diagram` draws a counterexample the way kernel commit messages
draw a race: two columns, one per CPU (the exhibit's ``columns`` tasks),
time flowing down, so the interleaving reads top to bottom::

         oom_reaper                      driver
         ----------                      ------
                                         driver_lock()
                                           mutex_lock(dmirror0->update)
         hmm_invalidate_range_start()
           mutex_trylock(mm->hmm->lock)
     <<<   mutex_trylock(dmirror0->update)
             -> dummy_sync mirror=dmirror0 ret=-11
         <<< dummy_sync returned -EAGAIN, but ...
     >>> notifier-contract (oom_reaper): the CPU clears the PTE ...

Each step shows its Op under the kernel function that performed it (a new
``function()`` line whenever a task's function changes; the functions come
from the source locations of a replay, :func:`hmmsim.museum.located_trace`).
The set-up is folded, and so are the steps of other tasks, unless one of
them is marked as the violation (``>>>``) or a cause of it (``<<<``): such a
task gets a third column.  A loop that ends the diagram (a livelock's
counterexample goes round it until the explorer sees it) is drawn once,
with a line saying how often it ran.  Marked steps keep their tracepoints (``->``) and
cause notes; the violation itself is the last line.

The rows come from :func:`hmmsim.report.timeline.build_timeline`, the same
event extraction as the text and HTML timelines.  Everything here is pure:
data in, text out.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hmmsim.engine import Finding, Trace
from hmmsim.museum import Exhibit, MuseumEntry
from hmmsim.report.timeline import (
    CAUSE_MARK,
    PRIMARY_MARK,
    STARTED,
    wrap_text,
)
from hmmsim.report.timeline import build_timeline as _build_timeline
from hmmsim.runs import ScenarioRun

__all__ = [
    "Diagram",
    "DiagramLine",
    "build_diagram",
    "entry_diagram",
    "museum_json",
    "render_diagram",
    "render_entry",
    "render_list",
    "render_verdicts",
]

#: Width of the mark gutter (``>>> `` or ``<<< ``).
_GUTTER: Final = 4
_GAP: Final = 2
_MIN_COLUMN: Final = 20
#: Marks that pull a step of another task into a column of its own.
_KEY_MARKS: Final = frozenset({PRIMARY_MARK, CAUSE_MARK})


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagramLine:
    """One line of a diagram: text in one column (or across all of them).

    Attributes:
        column: the column, or -1 for a line across the whole width (a
            cause note, the violation).
        text: what is written there.
        mark: ``>>>``, ``<<<`` or ``!!`` in the gutter, or ``""``.
    """

    column: int
    text: str
    mark: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagram:
    """A counterexample as CPU columns (see the module docstring).

    Attributes:
        names: the task name of each column.
        lines: the lines, top to bottom.
        folded: ``(task, steps)`` for every task whose steps were left out
            (the set-up first).
    """

    names: tuple[str, ...]
    lines: tuple[DiagramLine, ...]
    folded: tuple[tuple[str, int], ...]


def _function(location: str) -> str:
    """The function of a ``file:line in function`` location ("" if none)."""
    _, found, function = location.rpartition(" in ")
    return function if found else ""


def _shows(function: str, op: str) -> bool:
    """Whether ``function`` gets a line of its own above ``op``.

    Not when the op names it already (``get_page(page#0)`` in ``get_page``),
    nor for the model's own helpers (a leading ``_``): their ops stay under
    the kernel function drawn last, as a call inside it would.
    """
    return (
        bool(function)
        and not function.startswith("_")
        and not op.startswith(function + "(")
    )


#: A block of lines that ends the diagram this many times in a row is folded.
_MIN_REPEATS: Final = 3


def _fold_repeats(lines: list[DiagramLine]) -> list[DiagramLine]:
    """Keep one copy of a block of lines that repeats at the end (a loop).

    A livelock's counterexample goes round the same loop until the explorer
    sees it: the block that ends the diagram :data:`_MIN_REPEATS` times or
    more in a row is drawn once (its last copy, which holds the marks of the
    detection), followed by a line saying how often it ran.  The earlier
    copies must carry no mark; the block removing the most lines wins.
    """

    def same(copy: list[DiagramLine], last: list[DiagramLine]) -> bool:
        return all(
            not a.mark and (a.column, a.text) == (b.column, b.text)
            for a, b in zip(copy, last, strict=True)
        )

    best_period, best_runs = 0, 0
    for period in range(1, len(lines) // _MIN_REPEATS + 1):
        last = lines[-period:]
        runs = 1
        while len(lines) >= (runs + 1) * period and same(
            lines[len(lines) - (runs + 1) * period : len(lines) - runs * period], last
        ):
            runs += 1
        removed = (runs - 1) * period
        if runs >= _MIN_REPEATS and removed > (best_runs - 1) * best_period:
            best_period, best_runs = period, runs
    if not best_period:
        return lines
    kept = [*lines[: len(lines) - best_runs * best_period], *lines[-best_period:]]
    note = f"(the {best_period} lines above, {best_runs} times in a row)"
    return [*kept, DiagramLine(column=kept[-best_period].column, text=note)]


def build_diagram(
    trace: Trace,
    findings: Sequence[Finding],
    *,
    primary: str,
    columns: Sequence[str],
) -> Diagram:
    """Return the diagram of ``trace`` with ``columns`` as the CPUs.

    Args:
        trace: the counterexample's trace (with source locations for the
            function lines).
        findings: the execution's findings.
        primary: the exhibit's kind, drawn as the last line.
        columns: the task names drawn as columns, in order.
    """
    timeline = _build_timeline(trace, findings, primary=primary, full=True)
    steps = {step.index: step for step in trace.steps}
    rows = [r for r in timeline.rows if not r.setup and r.op != STARTED]
    shown = [t for name in columns for t, n in enumerate(trace.tasks) if n == name]
    extra = sorted({r.task for r in rows if r.mark in _KEY_MARKS} - set(shown))
    order = shown + extra
    position = {task: i for i, task in enumerate(order)}
    folded: dict[str, int] = {}
    setup = sum(1 for r in timeline.rows if r.setup and r.op != STARTED)
    if setup:
        folded[trace.tasks[trace.steps[0].task]] = setup
    violation = next((f for f in findings if f.kind == primary), None)
    last = violation.step if violation is not None and violation.step >= 0 else None
    lines: list[DiagramLine] = []
    current: dict[int, str] = {}
    for row in rows:
        if last is not None and row.index > last:
            break  # the race ends where the violation is detected
        if row.task not in position:
            name = trace.tasks[row.task]
            folded[name] = folded.get(name, 0) + 1
            continue
        column = position[row.task]
        function = _function(steps[row.index].location)
        indent = ""
        if _shows(function, row.op) and current.get(row.task) != function:
            lines.append(DiagramLine(column=column, text=f"{function}()"))
            current[row.task] = function
        if row.task in current:
            indent = "  "
        lines.append(DiagramLine(column=column, text=indent + row.op, mark=row.mark))
        if row.mark:
            events = (n for n in row.notes if n.startswith("->"))
            lines.extend(
                DiagramLine(column=column, text=f"{indent}  {note}") for note in events
            )
        lines.extend(
            DiagramLine(column=-1, text=cause.note, mark=CAUSE_MARK)
            for _, cause in row.causes
        )
    lines = _fold_repeats(lines)
    if violation is not None:
        where = f" ({violation.task})" if violation.task else ""
        message = violation.message.removeprefix(f"{violation.kind}: ")
        lines.append(
            DiagramLine(
                column=-1,
                text=f"{violation.kind}{where}: {message}",
                mark=PRIMARY_MARK,
            )
        )
    return Diagram(
        names=tuple(trace.tasks[t] for t in order),
        lines=tuple(lines),
        folded=tuple(folded.items()),
    )


def render_diagram(
    trace: Trace,
    findings: Sequence[Finding],
    *,
    primary: str,
    columns: Sequence[str],
    width: int = 100,
) -> str:
    """Return the diagram of ``trace`` as text (see :func:`build_diagram`).

    Columns share ``width`` equally (never narrower than 20); a longer line
    wraps inside its column, a line across the width wraps at ``width``.
    """
    diagram = build_diagram(trace, findings, primary=primary, columns=columns)
    count = max(len(diagram.names), 1)
    column = max(_MIN_COLUMN, (width - _GUTTER - _GAP * (count - 1)) // count)
    full = _GUTTER + count * column + _GAP * (count - 1)

    def place(index: int, text: str, mark: str = "") -> str:
        start = _GUTTER + index * (column + _GAP)
        return (mark.ljust(_GUTTER) + " " * (start - _GUTTER) + text).rstrip()

    out: list[str] = []
    if diagram.folded:
        folded = ", ".join(
            f"{name} ({steps} step{'' if steps == 1 else 's'})"
            for name, steps in diagram.folded
        )
        out.extend(wrap_text(f"folded: {folded}", full, 4))
        out.append("")
    out.append(
        "".join(
            (" " * _GUTTER if i == 0 else " " * _GAP) + name[:column].ljust(column)
            for i, name in enumerate(diagram.names)
        ).rstrip()
    )
    out.append(
        "".join(
            (" " * _GUTTER if i == 0 else " " * _GAP)
            + ("-" * min(len(name), column)).ljust(column)
            for i, name in enumerate(diagram.names)
        ).rstrip()
    )
    for line in diagram.lines:
        if line.column < 0:
            for j, piece in enumerate(wrap_text(line.text, full - _GUTTER, 4)):
                out.append(
                    (line.mark if j == 0 else "").ljust(_GUTTER) + piece.rstrip()
                )
            continue
        for j, piece in enumerate(wrap_text(line.text, column, 2)):
            out.append(place(line.column, piece, line.mark if j == 0 else ""))
    return "\n".join(out) + "\n"


def entry_diagram(entry: MuseumEntry, width: int = 100) -> str:
    """Return the CPU diagram of an entry's counterexample ("" without one)."""
    if entry.trace is None:
        return ""
    return render_diagram(
        entry.trace,
        entry.findings,
        primary=entry.exhibit.primary,
        columns=entry.exhibit.columns,
        width=width,
    )


def render_list(items: Sequence[Exhibit]) -> str:
    """Return the exhibit list: commit, release, slug, title, scenario, variants."""
    if not items:
        return "no exhibit is registered\n"
    width = max(len(e.slug) for e in items)
    out = []
    for e in items:
        out.append(f"{e.commit}  {e.release:<6} {e.slug.ljust(width)}  {e.subject}\n")
        out.append(
            f"{'':12}  {'':6} {'':{width}}  {e.scenario}: {e.before} -> {e.after}"
            f" ({', '.join(e.kinds)})\n"
        )
    return "".join(out)


def _verdict(entry: MuseumEntry) -> str:
    word = "PASS" if entry.judgement.passed else "FAIL"
    return f"{word} {entry.exhibit.slug}: {entry.judgement.reason}"


def render_verdicts(entries: Sequence[MuseumEntry]) -> str:
    """Return one verdict line per exhibit and a total."""
    passed = sum(1 for e in entries if e.judgement.passed)
    lines = [_verdict(e) for e in entries]
    lines.append(f"{passed} of {len(entries)} exhibits hold their pins")
    return "\n".join(lines) + "\n"


def render_entry(entry: MuseumEntry, *, width: int = 100) -> str:
    """Return one exhibit in full: header, summary, diagram, rule, verdict, replay."""
    e = entry.exhibit

    def para(label: str, text: str) -> list[str]:
        return textwrap.wrap(
            f"{label}: {text}", width, subsequent_indent="    ", break_on_hyphens=False
        )

    out = [
        f"{e.commit} {e.subject}",
        f"  first released in {e.release} ({e.date}); exhibit {e.slug}",
        f"  {e.scenario}: before {e.before}, after {e.after}; kinds {', '.join(e.kinds)}",
        "",
        *para("Summary", e.summary),
        "",
    ]
    diagram = entry_diagram(entry, width)
    if diagram:
        out += [f"The race on {e.before} ({e.primary}):", "", diagram.rstrip(), ""]
    out += [
        *para("Rule", e.rule),
        *para("Bounds", e.bounds),
        *para("Checked by hand", e.checked),
        "",
        _verdict(entry),
    ]
    if entry.replay_command:
        out.append(entry.replay_command)
    return "\n".join(out) + "\n"


def _run_json(run: ScenarioRun) -> dict[str, object]:
    return {
        "variant": run.variant,
        "outcome": run.status.value,
        "exit_reason": run.result.exit_reason.value,
        "executions": run.result.executions,
        "complete": run.result.complete,
        "kinds": list(run.result.kinds),
    }


def _entry_json(entry: MuseumEntry) -> dict[str, object]:
    e = entry.exhibit
    return {
        "slug": e.slug,
        "commit": e.commit,
        "subject": e.subject,
        "release": e.release,
        "date": e.date,
        "scenario": e.scenario,
        "kinds": list(e.kinds),
        "verdict": "pass" if entry.judgement.passed else "fail",
        "reason": entry.judgement.reason,
        "before": {
            **_run_json(entry.before),
            "replay": (
                entry.before.token(entry.counterexample)
                if entry.counterexample is not None
                else None
            ),
        },
        "after": _run_json(entry.after),
    }


def museum_json(entries: Sequence[MuseumEntry], *, version: str) -> str:
    """Return the museum report as JSON text (stable keys, no clock), newline-ended.

    Schema 1: ``{"schema": 1, "hmmsim": VERSION, "exhibits": [...]}``; each
    exhibit has ``slug, commit, subject, release, date, scenario, kinds,
    verdict ("pass"/"fail"), reason, before, after``, and each side
    ``variant, outcome, exit_reason, executions, complete, kinds`` (before
    also ``replay``: the token of the primary kind's counterexample, or null).
    """
    document = {
        "schema": 1,
        "hmmsim": version,
        "exhibits": [_entry_json(e) for e in entries],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
