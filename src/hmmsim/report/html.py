"""The HTML report: a scenario x variant matrix and one page per counterexample.

:func:`write_report` writes a self-contained directory (inline CSS, no
scripts, no external assets, so it opens from a CI artifact as it is):

- ``index.html``: one row per scenario, one column per variant; each cell
  gives the outcome, the violation kinds (each linking to its page), the
  executions and whether the exploration was exhausted;
- ``cx/<scenario>--<variant>--<kind>.html``: the counterexample as swimlanes,
  one lane per task, with the one-sentence explanation on top, the set-up
  steps folded into a ``<details>`` element (the state they leave shown
  beside it), the state values changed at each step highlighted, the
  violating step marked ``>>>`` (other findings ``!!``), and the replay
  command last.

The pages carry no timestamps, so the same runs give the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import jinja2

from hmmsim.engine import Counterexample
from hmmsim.oracle import explain
from hmmsim.report.timeline import (
    OTHER_MARK,
    PRIMARY_MARK,
    Timeline,
    TimelineRow,
    build_timeline,
)
from hmmsim.runs import ScenarioRun

__all__ = ["counterexample_path", "write_report"]

_CSS: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
code, .lane, .state { font-family: ui-monospace, monospace; font-size: 13px; }
.violation { background: #fde2e1; } .verified { background: #e1f5e1; }
.incomplete { background: #fff6d6; } .none { color: #999; }
.unexpected { outline: 2px solid #c00; }
.badge { font-weight: bold; }
.lanes td.lane { min-width: 14em; }
.lanes td.step { white-space: nowrap; text-align: right; color: #666; }
.lanes td.empty { background: #fafafa; }
.lanes .note { color: #555; padding-left: 1.5em; font-size: 12px; }
.lanes tr.marked td { background: #fde2e1; border-top: 2px solid #c00;
  border-bottom: 2px solid #c00; }
.lanes tr.marked td.step { font-weight: bold; color: #c00; }
.lanes tr.other td { background: #fff0e0; }
.lanes tr.other .finding { color: #a50; }
.state .changed { background: #fff3b0; padding: 0 2px; display: inline-block;
  margin: 1px 0; }
.finding { color: #c00; }
.explanation { font-size: 1.1em; }
details.setup { margin: 1em 0; } details.setup summary { cursor: pointer; }
.after-setup code { background: #eef; padding: 0 2px; }
.replay { background: #f3f3f3; padding: 6px; display: block; overflow-x: auto; }
"""

_BASE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title><style>{{ css }}</style></head>
<body>{% block body %}{% endblock %}</body></html>
"""

_INDEX: Final = """{% extends "base.html" %}{% block body %}
<h1>hmmsim {{ version }} report</h1>
<p>{{ runs|length }} runs: {{ totals }}.</p>
<table class="matrix">
<tr><th>scenario</th>{% for v in variants %}<th>{{ v }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>
<th title="{{ row.title }}">{{ row.name }}<br><small>{{ row.title }}</small></th>
{% for cell in row.cells %}{% if cell is none %}<td class="none">&mdash;</td>
{% else %}<td class="{{ cell.status }}{% if cell.unexpected %} unexpected{% endif %}">
<span class="badge">{{ cell.status|upper }}</span>
{% if cell.unexpected %}<br><b>unexpected</b>{% endif %}
{% for kind, href in cell.links %}<br><a href="{{ href }}">{{ kind }}</a>{% endfor %}
<br><small>{{ cell.executions }} executions, {{ cell.exit }}</small></td>
{% endif %}{% endfor %}</tr>
{% endfor %}</table>
{% endblock %}
"""

_CX: Final = """{% extends "base.html" %}{% block body %}
<p><a href="../index.html">&larr; all results</a></p>
<h1>{{ scenario }} / {{ variant }}: {{ kind }}</h1>
<p class="explanation">{{ explanation }}</p>
<p class="finding"><b>{{ kind }}</b>{% if task %} ({{ task }}){% endif %}: {{ message }}</p>
<p><small>{{ scenario_title }}. {{ steps }} steps, {{ preemptions }} preemptions
(shrunk from {{ original_steps }}); strategy {{ strategy }}, seed {{ seed }};
{% if marked is not none %}the violation is marked at <a href="#step-{{ marked }}">step {{ marked }}</a>{% else %}the violation was found after the last step{% endif %}.</small></p>
{% if setup_rows %}<details class="setup"><summary>set-up: {{ setup_rows|length }} steps of
task <code>setup</code> (click to show)</summary>
<table class="lanes"><tr><th>step</th><th>setup</th><th>state changes</th></tr>
{% for r in setup_rows %}<tr id="step-{{ r.index }}"><td class="step">{{ r.index }}</td>
<td class="lane"><div class="op">{{ r.op }}</div>{% for n in r.notes %}<div class="note">{{ n }}</div>{% endfor %}</td>
<td class="state">{% for c in r.changes %}<span class="changed">{{ c }}</span> {% endfor %}</td></tr>
{% endfor %}</table></details>
<p class="after-setup">State after set-up: {% for c in setup_state %}<code>{{ c }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</p>
{% endif %}{% if lanes %}<table class="lanes">
<tr><th>step</th>{% for t in tasks %}<th>{{ t }}</th>{% endfor %}<th>state changes</th></tr>
{% for r in lanes %}<tr id="step-{{ r.index }}"{% if r.mark == primary_mark %} class="marked"{% elif r.mark %} class="other"{% endif %}>
<td class="step">{{ r.mark }} {{ r.index }}</td>
{% for cell in r.cells %}{% if cell is none %}<td class="lane empty"></td>
{% else %}<td class="lane"><div class="op">{{ cell.op }}</div>{% for n in cell.notes %}<div class="note">{{ n }}</div>{% endfor %}{% for f in r.findings %}
<div class="finding">{{ f.kind }}: {{ f.message }}</div>{% endfor %}</td>{% endif %}
{% endfor %}<td class="state">{% for c in r.changes %}<span class="changed">{{ c }}</span> {% endfor %}</td>
</tr>{% endfor %}</table>
{% else %}<p>(no trace captured)</p>{% endif %}
{% for f in trailing %}<p class="finding trailing">{{ f.when }}: <b>{{ f.kind }}</b>: {{ f.message }}
{% for d in f.detail %}<br>{{ d }}{% endfor %}</p>{% endfor %}
<h2>Replay</h2><code class="replay">{{ command }}</code>
{% endblock %}
"""

_ENV: Final = jinja2.Environment(
    loader=jinja2.DictLoader(
        {"base.html": _BASE, "index.html": _INDEX, "cx.html": _CX}
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def counterexample_path(run: ScenarioRun, cx: Counterexample) -> str:
    """Return the page of ``cx`` relative to the report directory."""
    return f"cx/{run.scenario.name}--{run.variant}--{_safe(cx.kind)}.html"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Cell:
    status: str
    links: tuple[tuple[str, str], ...]
    executions: int
    exit: str
    unexpected: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    name: str
    title: str
    cells: tuple[_Cell | None, ...]


def _matrix(runs: Sequence[ScenarioRun]) -> tuple[list[str], list[_Row]]:
    variants = list(dict.fromkeys(run.variant for run in runs))
    by_scenario: dict[str, dict[str, ScenarioRun]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario.name, {})[run.variant] = run
    rows = []
    for name, cells in by_scenario.items():
        first = next(iter(cells.values()))
        rows.append(
            _Row(
                name=name,
                title=first.scenario.title,
                cells=tuple(_cell(cells[v]) if v in cells else None for v in variants),
            )
        )
    return variants, rows


def _cell(run: ScenarioRun) -> _Cell:
    result = run.result
    exit_text = f"not exhausted ({result.exit_reason.value})"
    if result.exit_reason.value == "exhausted":
        exit_text = "exhausted" if result.complete else "exhausted under a bound"
    return _Cell(
        status=run.status.value,
        links=tuple(
            (cx.kind, counterexample_path(run, cx)) for cx in result.counterexamples
        ),
        executions=result.executions,
        exit=exit_text,
        unexpected=run.as_expected is False,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _LaneCell:
    op: str
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Lane:
    index: int
    mark: str
    cells: tuple[_LaneCell | None, ...]
    changes: tuple[str, ...]
    findings: tuple[object, ...]


def _lanes(timeline: Timeline) -> list[_Lane]:
    ncols = len(timeline.columns)
    return [
        _Lane(
            index=row.index,
            mark=row.mark,
            cells=tuple(
                _LaneCell(op=row.op, notes=row.notes) if c == row.column else None
                for c in range(ncols)
            ),
            changes=row.changes,
            findings=row.findings,
        )
        for row in timeline.rows
    ]


def _trailing(timeline: Timeline, cx: Counterexample) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for finding in timeline.trailing:
        when = "at the end" if finding.step < 0 else "after the last step"
        mark = PRIMARY_MARK if finding.kind == cx.kind else OTHER_MARK
        out.append(
            {
                "when": f"{mark} {when}",
                "kind": finding.kind,
                "message": finding.message,
                "detail": finding.detail,
            }
        )
    return out


def _cx_page(run: ScenarioRun, index: int, cx: Counterexample) -> str:
    trace = run.trace_of(index)
    lanes: list[_Lane] = []
    trailing: list[dict[str, object]] = []
    tasks: tuple[str, ...] = ()
    setup_rows: tuple[TimelineRow, ...] = ()
    setup_state: tuple[str, ...] = ()
    marked = None
    if trace is not None:
        timeline = build_timeline(trace, cx.findings, primary=cx.kind)
        full = build_timeline(trace, cx.findings, primary=cx.kind, full=True)
        setup_rows = full.rows[: timeline.hidden]
        setup_state = timeline.setup_state
        lanes = _lanes(timeline)
        trailing = _trailing(timeline, cx)
        tasks = timeline.names
        marked = next((r.index for r in timeline.rows if r.mark == PRIMARY_MARK), None)
    return _ENV.get_template("cx.html").render(
        css=_CSS,
        title=f"{run.scenario.name}/{run.variant}: {cx.kind}",
        scenario_title=run.scenario.title,
        primary_mark=PRIMARY_MARK,
        scenario=run.scenario.name,
        variant=run.variant,
        kind=cx.kind,
        task=cx.finding.task,
        message=cx.finding.message,
        explanation=explain(cx.kind),
        steps=cx.steps,
        preemptions=cx.preemptions,
        original_steps=cx.original_steps,
        strategy=run.result.strategy,
        seed=run.config.seed,
        marked=marked,
        setup_rows=setup_rows,
        setup_state=setup_state,
        tasks=tasks,
        lanes=lanes,
        trailing=trailing,
        command=run.replay_command(cx),
    )


def write_report(
    directory: Path | str, runs: Sequence[ScenarioRun], *, version: str
) -> Path:
    """Write ``index.html`` and the counterexample pages; return the index path.

    Raises:
        OSError: the directory cannot be created or written.
    """
    root = Path(directory)
    (root / "cx").mkdir(parents=True, exist_ok=True)
    for run in runs:
        for i, cx in enumerate(run.result.counterexamples):
            page = root / counterexample_path(run, cx)
            page.write_text(_cx_page(run, i, cx), encoding="utf-8")
    variants, rows = _matrix(runs)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status.value] = counts.get(run.status.value, 0) + 1
    index = root / "index.html"
    index.write_text(
        _ENV.get_template("index.html").render(
            css=_CSS,
            title=f"hmmsim {version} report",
            version=version,
            runs=runs,
            totals=", ".join(f"{counts[k]} {k}" for k in sorted(counts)) or "none",
            variants=variants,
            rows=rows,
        ),
        encoding="utf-8",
    )
    return index
