"""The HTML report: a scenario x variant matrix and one page per counterexample.

:func:`write_report` writes a self-contained directory (inline CSS, no
scripts, no external assets, so it opens from a CI artifact as it is):

- ``index.html``: one row per scenario, one column per variant; each cell
  gives the outcome, the violation kinds (each linking to its page), the
  executions and whether the exploration was exhausted;
- ``museum.html`` (:func:`write_museum`, ``hmmsim museum check --report``):
  the race museum, one section per exhibit with its commit, release,
  summary, verdict, CPU diagram, rule, bounds, hand-check record and replay
  command; the swimlane page of each exhibit's counterexample goes to
  ``museum-cx/``; the index links to the museum page when the directory
  has one;
- ``cx/<scenario>--<variant>--<kind>.html``: the counterexample as swimlanes,
  one lane per task, with the one-sentence explanation on top, the set-up
  steps folded into a ``<details>`` element (the state they leave shown
  beside it), the state values changed at each step highlighted, the locks
  each task holds after each step, the violating step marked ``>>>`` (other
  findings ``!!``), the steps that caused it marked ``<<<`` with their notes,
  a checkbox that hides the steps with nothing to show (no tracepoint, no
  state change, no mark), and the replay command last (one click selects it).

Every page has a sticky header naming hmmsim's version, the command, the
date and the git revision the caller passes (the command line and clock are
the caller's: the same runs and arguments give the same files), and a legend
of the marks and colours.  Colours say whether a result is *as expected*:
a violation the scenario expects (the bugs of ``prepatch``) is light red and
labelled "expected"; a result that differs from the expectation is bold red
and labelled UNEXPECTED.

The directory is locked while it is written (``.lock``, ``flock``), so two
runs writing the same report wait for each other, and the ``cx/`` pages a
run did not write are removed, so no stale page survives.  A kind whose name
is not a plain file name gets a hash suffix, so kinds ``x.y`` and ``x_y``
never share a page.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import jinja2

from hmmsim.engine import Cause, Counterexample, Finding
from hmmsim.museum import MuseumEntry
from hmmsim.oracle import explain
from hmmsim.report.museum import entry_diagram
from hmmsim.report.timeline import (
    CAUSE_MARK,
    OTHER_MARK,
    PRIMARY_MARK,
    STARTED,
    Timeline,
    TimelineRow,
    build_timeline,
    cause_text,
)
from hmmsim.runs import ScenarioRun

__all__ = ["MUSEUM_PAGE", "counterexample_path", "write_museum", "write_report"]

#: The museum's page in a report directory.
MUSEUM_PAGE: Final = "museum.html"
#: The directory of the museum's counterexample pages.
_MUSEUM_CX: Final = "museum-cx"

_CSS: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; }
header.top { position: sticky; top: 0; z-index: 3; background: #fff;
  border-bottom: 1px solid #ccc; padding: 6px 0; margin-bottom: 0.5em; }
header.top .title { font-weight: bold; }
header.top .meta { color: #555; font-size: 12px; }
header.top .meta code { font-size: 12px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
table.lanes thead th, table.matrix thead th { position: sticky; top: var(--head, 3.6em);
  z-index: 2; box-shadow: 0 1px 0 #ccc; }
code, .lane, .state, pre { font-family: ui-monospace, monospace; font-size: 13px; }
.verified { background: #e1f5e1; } .incomplete { background: #fff6d6; }
.error { background: #e6e0f5; } .reason { color: #5a3e99; }
.error { background: #eee; } .none { color: #999; }
.violation { background: #fde2e1; }
.violation.expected { background: #fbeceb; color: #444; }
.unexpected { background: #f8b4b0; outline: 3px solid #b00; outline-offset: -3px; }
.tag { font-size: 11px; padding: 0 4px; border-radius: 3px; margin-left: 4px; }
.tag.expected { background: #eee; color: #555; }
.tag.unexpected { background: #b00; color: #fff; font-weight: bold; }
.badge { font-weight: bold; }
.lanes td.lane { min-width: 14em; }
.lanes td.step { white-space: nowrap; text-align: right; color: #666; }
.lanes td.empty { background: #fafafa; }
.lanes .note { color: #555; padding-left: 1.5em; font-size: 12px; }
.lanes .held { color: #1d4f91; font-size: 11px; }
.lanes tr.marked td { background: #fde2e1; border-top: 2px solid #c00;
  border-bottom: 2px solid #c00; }
.lanes tr.marked td.step { font-weight: bold; color: #c00; }
.lanes tr.cause td { background: #e6eefc; border-top: 2px solid #1d4f91;
  border-bottom: 2px solid #1d4f91; }
.lanes tr.cause td.step { font-weight: bold; color: #1d4f91; }
.lanes tr.other td { background: #fff0e0; }
.lanes tr.other .finding { color: #a50; }
.lanes .because { color: #1d4f91; font-weight: bold; }
.state .changed { background: #fff3b0; padding: 0 2px; display: inline-block;
  margin: 1px 0; }
.finding { color: #c00; }
.explanation { font-size: 1.1em; }
ul.causes { color: #1d4f91; }
details.setup { margin: 1em 0; } details.setup summary { cursor: pointer; }
.after-setup code { background: #eef; padding: 0 2px; }
pre.diagram { background: #f8f8f8; padding: 6px; overflow-x: auto; }
section { border-top: 1px solid #ccc; margin-top: 1.5em; }
pre.replay { background: #f3f3f3; padding: 6px; overflow-x: auto;
  user-select: all; -webkit-user-select: all; cursor: text; }
.legend { font-size: 12px; color: #444; border: 1px solid #ddd; padding: 4px 8px;
  margin: 0.5em 0; background: #fcfcfc; }
.legend span.key { display: inline-block; min-width: 2em; padding: 0 4px;
  margin-right: 4px; font-family: ui-monospace, monospace; }
.controls { margin: 0.5em 0; }
.legend .key.marked { background: #fde2e1; color: #c00; font-weight: bold; }
.legend .key.cause { background: #e6eefc; color: #1d4f91; font-weight: bold; }
.legend .key.other { background: #fff0e0; color: #a50; }
.legend .key.changed { background: #fff3b0; }
.legend .key.held { color: #1d4f91; }
#hide-noise:checked ~ table.lanes tr.noise { display: none; }
"""

_BASE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title><style>{{ css }}</style></head>
<body><header class="top"><div class="title">{{ heading }}</div>
<div class="meta">hmmsim {{ version }}{% if revision %}, revision <code>{{ revision }}</code>{% endif %}{% if generated %}; written {{ generated }}{% endif %}{% if command %}; command <code>{{ command }}</code>{% endif %}</div></header>
{% block body %}{% endblock %}</body></html>
"""

_LEGEND_INDEX: Final = """<div class="legend">
<span class="key violation expected">VIOLATION</span> found what the scenario expects
(red is expected on <code>prepatch</code>: the bugs the seed patch fixed);
<span class="key unexpected">UNEXPECTED</span> differs from the expectation;
<span class="key verified">VERIFIED</span> every schedule class explored, nothing found;
<span class="key incomplete">INCOMPLETE</span> nothing found, but not exhaustive;
<span class="key error">ERROR</span> the run did not finish.
Each kind links to its counterexample.</div>
"""

_LEGEND_CX: Final = """<div class="legend">
<span class="key marked">&gt;&gt;&gt;</span> the step where the violation was detected;
<span class="key cause">&lt;&lt;&lt;</span> a step that caused it (note underneath);
<span class="key other">!!</span> another finding of the same execution;
<span class="key changed">yellow</span> state changed by the step (its Op and the task's code up to its next Op);
<span class="key held">holds</span> locks a task holds after the step;
<code>-&gt;</code> a tracepoint, <code>?</code> a data choice,
<code>(started)</code> what a task did before its first Op.</div>
"""

_INDEX: Final = (
    """{% extends "base.html" %}{% block body %}
<h1>hmmsim {{ version }} report</h1>
<p>{{ runs|length }} runs: {{ totals }}.{% if museum %} See also <a href="museum.html">the race museum</a>.{% endif %}</p>
"""
    + _LEGEND_INDEX
    + """<table class="matrix">
<thead><tr><th>scenario</th>{% for v in variants %}<th>{{ v }}</th>{% endfor %}</tr></thead>
{% for row in rows %}<tr>
<th title="{{ row.title }}">{{ row.name }}<br><small>{{ row.title }}</small></th>
{% for cell in row.cells %}{% if cell is none %}<td class="none">&mdash;</td>
{% else %}<td class="{{ cell.status }}{% if cell.unexpected %} unexpected{% elif cell.expected %} expected{% endif %}">
<span class="badge">{{ cell.status|upper }}</span>
{% if cell.unexpected %}<span class="tag unexpected">UNEXPECTED</span>{% elif cell.expected %}<span class="tag expected">expected</span>{% endif %}
{% for kind, href in cell.links %}<br><a href="{{ href }}">{{ kind }}</a>{% endfor %}
<br><small>{{ cell.executions }} executions, {{ cell.exit }}</small>{% if cell.error %}<br><small class="reason">{{ cell.error }}</small>{% endif %}</td>
{% endif %}{% endfor %}</tr>
{% endfor %}</table>
{% endblock %}
"""
)

_CX: Final = (
    """{% extends "base.html" %}{% block body %}
<p><a href="../{{ back }}">&larr; {{ back_text }}</a></p>
<h1>{{ scenario }} / {{ variant }}: {{ kind }}
{% if unexpected %}<span class="tag unexpected">UNEXPECTED</span>{% elif expected %}<span class="tag expected">expected on {{ variant }}</span>{% endif %}</h1>
<p class="explanation">{{ explanation }}</p>
<p class="finding"><b>{{ kind }}</b>{% if task %} ({{ task }}){% endif %}: {{ message }}</p>
{% if causes %}<ul class="causes">{% for c in causes %}<li>&lt;&lt;&lt; caused at <a href="#step-{{ c.step }}">step {{ c.step }}</a> ({{ c.task }}): {{ c.note }}</li>{% endfor %}</ul>{% endif %}
<p><small>{{ scenario_title }}. {{ steps }} steps, {{ preemptions }} preemptions
(shrunk from {{ original_steps }}); strategy {{ strategy }}, seed {{ seed }};
{% if marked is not none %}the violation is marked at <a href="#step-{{ marked }}">step {{ marked }}</a>{% else %}the violation was found after the last step{% endif %}.</small></p>
"""
    + _LEGEND_CX
    + """
{% if setup_rows %}<details class="setup"><summary>set-up: {{ setup_rows|length }} steps of
task <code>setup</code> (click to show)</summary>
<table class="lanes"><tr><th>step</th><th>setup</th><th>state changes</th></tr>
{% for r in setup_rows %}<tr id="step-{{ r.index }}"{% if r.causes %} class="cause"{% endif %}><td class="step">{{ r.mark }} {{ r.index }}</td>
<td class="lane"><div class="op">{{ r.op }}</div>{% for n in r.notes %}<div class="note">{{ n }}</div>{% endfor %}{% for f, c in r.causes %}<div class="because">&lt;&lt;&lt; {{ cause_text(f, c) }}</div>{% endfor %}</td>
<td class="state">{% for c in r.changes %}<span class="changed">{{ c }}</span> {% endfor %}</td></tr>
{% endfor %}</table></details>
<p class="after-setup">State after set-up: {% for c in setup_state %}<code>{{ c }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</p>
{% endif %}{% if lanes %}<input type="checkbox" id="hide-noise"> <label for="hide-noise" class="controls">hide the
{{ noise }} steps with nothing to show (no tracepoint, state change or mark)</label>
<table class="lanes">
<thead><tr><th>step</th>{% for t in tasks %}<th>{{ t }}</th>{% endfor %}<th>state changes</th></tr></thead>
{% for r in lanes %}<tr id="step-{{ r.index }}{{ r.suffix }}" class="{{ r.css }}">
<td class="step">{{ r.mark }} {{ r.index }}</td>
{% for cell in r.cells %}{% if cell.op is none %}<td class="lane empty">{% if cell.held %}<div class="held">holds {{ cell.held }}</div>{% endif %}</td>
{% else %}<td class="lane"><div class="op">{{ cell.op }}</div>{% for n in cell.notes %}<div class="note">{{ n }}</div>{% endfor %}{% for f, c in r.causes %}
<div class="because">&lt;&lt;&lt; {{ cause_text(f, c) }}</div>{% endfor %}{% for f in r.findings %}
<div class="finding">{{ f.kind }}: {{ f.message }}</div>{% endfor %}{% if cell.held %}<div class="held">holds {{ cell.held }}</div>{% endif %}</td>{% endif %}
{% endfor %}<td class="state">{% for c in r.changes %}<span class="changed">{{ c }}</span> {% endfor %}</td>
</tr>{% endfor %}</table>
{% else %}<p>(no trace captured)</p>{% endif %}
{% for f in trailing %}<p class="finding trailing">{{ f.when }}: <b>{{ f.kind }}</b>: {{ f.message }}
{% for d in f.detail %}<br>{{ d }}{% endfor %}</p>{% endfor %}
<h2>Replay</h2><p><small>Click the command to select it, then copy.</small></p>
<pre class="replay">{{ command_line }}</pre>
{% endblock %}
"""
)

_MUSEUM: Final = """{% extends "base.html" %}{% block body %}
{% if index %}<p><a href="index.html">&larr; all results</a></p>{% endif %}
<h1>The race museum</h1>
<p>Upstream HMM and mmu-notifier concurrency fixes: each exhibit's kernel just before the fix
shows the race as a replayable counterexample, and the kernel just after it is verified
exhaustively within the stated bounds. {{ passed }} of {{ entries|length }} exhibit{{ "" if entries|length == 1 else "s" }} {{ "holds its pin" if entries|length == 1 else "hold their pins" }}.</p>
<table class="matrix"><thead><tr><th>commit</th><th>release</th><th>exhibit</th><th>before</th><th>after</th><th>verdict</th></tr></thead>
{% for e in entries %}<tr><td><code>{{ e.exhibit.commit }}</code></td><td>{{ e.exhibit.release }}</td>
<td><a href="#{{ e.exhibit.slug }}">{{ e.exhibit.subject }}</a></td>
<td class="{{ e.before.status.value }}">{{ e.exhibit.before }}: {{ e.before.status.value }}{% if e.before.result.kinds %} ({{ e.before.result.kinds|join(", ") }}){% endif %}</td>
<td class="{{ e.after.status.value }}">{{ e.exhibit.after }}: {{ e.after.status.value }}</td>
<td class="{{ 'verified' if e.judgement.passed else 'unexpected' }}">{{ 'PASS' if e.judgement.passed else 'FAIL' }}</td></tr>
{% endfor %}</table>
{% for e in entries %}<section id="{{ e.exhibit.slug }}">
<h2><code>{{ e.exhibit.commit }}</code> {{ e.exhibit.subject }}</h2>
<p>First released in <b>{{ e.exhibit.release }}</b> ({{ e.exhibit.date }}); exhibit <code>{{ e.exhibit.slug }}</code>:
scenario <code>{{ e.exhibit.scenario }}</code>, before <code>{{ e.exhibit.before }}</code>,
after <code>{{ e.exhibit.after }}</code>, kinds {% for k in e.exhibit.kinds %}<code>{{ k }}</code>{% if not loop.last %}, {% endif %}{% endfor %}.</p>
<p class="{{ 'verified' if e.judgement.passed else 'unexpected' }}"><b>{{ 'PASS' if e.judgement.passed else 'FAIL' }}</b>: {{ e.judgement.reason }}</p>
<p>{{ e.exhibit.summary }}</p>
{% if diagrams[loop.index0] %}<h3>The race on {{ e.exhibit.before }} ({{ e.exhibit.primary }})</h3>
<pre class="diagram">{{ diagrams[loop.index0] }}</pre>{% endif %}
{% if pages[loop.index0] %}<p><a href="{{ pages[loop.index0] }}">The whole counterexample, step by step</a></p>{% endif %}
<p><b>Rule.</b> {{ e.exhibit.rule }}</p>
<p><b>Bounds.</b> {{ e.exhibit.bounds }}</p>
<p><b>Checked by hand.</b> {{ e.exhibit.checked }}</p>
{% if e.replay_command %}<p><small>Replay (click to select):</small></p><pre class="replay">{{ e.replay_command }}</pre>{% endif %}
</section>
{% endfor %}{% endblock %}
"""

_ENV: Final = jinja2.Environment(
    loader=jinja2.DictLoader(
        {
            "base.html": _BASE,
            "index.html": _INDEX,
            "cx.html": _CX,
            "museum.html": _MUSEUM,
        }
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def counterexample_path(run: ScenarioRun, cx: Counterexample) -> str:
    """Return the page of ``cx`` relative to the report directory.

    A kind that is not a plain file name gets a hash of itself appended, so
    two kinds never share a page (``x.y`` and ``x_y``).
    """
    kind = _safe(cx.kind)
    if kind != cx.kind:
        kind += "-" + hashlib.sha256(cx.kind.encode()).hexdigest()[:8]
    return f"cx/{run.scenario.name}--{run.variant}--{kind}.html"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Cell:
    status: str
    links: tuple[tuple[str, str], ...]
    executions: int
    exit: str
    unexpected: bool
    expected: bool
    error: str | None = None


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
        expected=run.as_expected is True,
        error=run.error,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _LaneCell:
    op: str | None
    notes: tuple[str, ...]
    held: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Lane:
    index: int
    suffix: str
    mark: str
    css: str
    cells: tuple[_LaneCell, ...]
    changes: tuple[str, ...]
    findings: tuple[Finding, ...]
    causes: tuple[tuple[Finding, Cause], ...]


def _is_noise(row: TimelineRow) -> bool:
    """A step with nothing to show: no tracepoint, data, change, finding or mark."""
    return not (row.notes or row.changes or row.findings or row.mark)


def _row_css(row: TimelineRow) -> str:
    classes = []
    if row.mark == PRIMARY_MARK:
        classes.append("marked")
    elif row.mark == CAUSE_MARK:
        classes.append("cause")
    elif row.mark:
        classes.append("other")
    if _is_noise(row):
        classes.append("noise")
    return " ".join(classes)


def _held_text(held: Mapping[str, tuple[str, ...]], name: str) -> str:
    return ", ".join(held.get(name, ()))


def _lane(row: TimelineRow, names: Sequence[str]) -> _Lane:
    return _Lane(
        index=row.index,
        # A "(started)" row shares its step's number: keep ids unique.
        suffix=f"-{row.task}" if row.op == STARTED else "",
        mark=row.mark,
        css=_row_css(row),
        cells=tuple(
            _LaneCell(
                op=row.op if c == row.column else None,
                notes=row.notes if c == row.column else (),
                held=_held_text(row.held, name),
            )
            for c, name in enumerate(names)
        ),
        changes=row.changes,
        findings=row.findings,
        causes=row.causes,
    )


def _lanes(timeline: Timeline) -> list[_Lane]:
    return [_lane(row, timeline.names) for row in timeline.rows]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Meta:
    """What every page's header says about the run that wrote it."""

    version: str
    command: str
    generated: str
    revision: str


def _cx_page(
    run: ScenarioRun,
    index: int,
    cx: Counterexample,
    meta: _Meta,
    *,
    back: tuple[str, str] = ("index.html", "all results"),
) -> str:
    trace = run.trace_of(index)
    lanes: list[_Lane] = []
    trailing: list[dict[str, object]] = []
    tasks: tuple[str, ...] = ()
    setup_rows: tuple[TimelineRow, ...] = ()
    setup_state: tuple[str, ...] = ()
    marked = None
    noise = 0
    if trace is not None:
        timeline = build_timeline(trace, cx.findings, primary=cx.kind)
        full = build_timeline(trace, cx.findings, primary=cx.kind, full=True)
        setup_rows = tuple(
            r for r in full.rows if r.index < timeline.hidden and r.op != STARTED
        )
        setup_state = timeline.setup_state
        lanes = _lanes(timeline)
        noise = sum(1 for r in timeline.rows if _is_noise(r))
        trailing = _trailing(timeline, cx)
        tasks = timeline.names
        marked = next((r.index for r in timeline.rows if r.mark == PRIMARY_MARK), None)
    expected = run.expected
    title = f"{run.scenario.name}/{run.variant}: {cx.kind}"
    return _ENV.get_template("cx.html").render(
        css=_CSS,
        title=title,
        heading=title,
        version=meta.version,
        command=meta.command,
        generated=meta.generated,
        revision=meta.revision,
        scenario_title=run.scenario.title,
        scenario=run.scenario.name,
        variant=run.variant,
        kind=cx.kind,
        expected=expected is not None and cx.kind in expected,
        unexpected=expected is not None and cx.kind not in expected,
        task=cx.finding.task,
        message=cx.finding.message,
        causes=cx.finding.causes,
        cause_text=cause_text,
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
        noise=noise,
        trailing=trailing,
        command_line=run.replay_command(cx),
        back=back[0],
        back_text=back[1],
    )


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the report directory's lock (another writer waits for it)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file (no half pages)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_report(
    directory: Path | str,
    runs: Sequence[ScenarioRun],
    *,
    version: str,
    command: str = "",
    generated: str = "",
    revision: str = "",
) -> Path:
    """Write ``index.html`` and the counterexample pages; return the index path.

    Args:
        directory: the report directory (created if missing).
        runs: the runs to report.
        version: hmmsim's version, named on every page.
        command: the command line that made the runs ("" leaves it out).
        generated: when, as text ("" leaves it out: pages then depend only
            on the runs and arguments).
        revision: the git revision of hmmsim, if known.

    Raises:
        OSError: the directory cannot be created or written.
    """
    root = Path(directory)
    meta = _Meta(
        version=version, command=command, generated=generated, revision=revision
    )
    with _locked(root):
        (root / "cx").mkdir(exist_ok=True)
        written: set[str] = set()
        for run in runs:
            for i, cx in enumerate(run.result.counterexamples):
                name = counterexample_path(run, cx)
                written.add(Path(name).name)
                _write(root / name, _cx_page(run, i, cx, meta))
        for stale in (root / "cx").iterdir():
            if stale.name not in written and stale.suffix == ".html":
                stale.unlink()
        variants, rows = _matrix(runs)
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.status.value] = counts.get(run.status.value, 0) + 1
        index = root / "index.html"
        _write(
            index,
            _ENV.get_template("index.html").render(
                css=_CSS,
                title=f"hmmsim {version} report",
                heading=f"hmmsim report: {len(runs)} runs",
                version=version,
                command=command,
                generated=generated,
                revision=revision,
                runs=runs,
                totals=", ".join(f"{counts[k]} {k}" for k in sorted(counts)) or "none",
                variants=variants,
                rows=rows,
                museum=(root / MUSEUM_PAGE).exists(),
            ),
        )
    return index


def write_museum(
    directory: Path | str,
    entries: Sequence[MuseumEntry],
    *,
    version: str,
    command: str = "",
    generated: str = "",
    revision: str = "",
) -> Path:
    """Write ``museum.html`` and its counterexample pages; return the page's path.

    Each exhibit's before counterexamples get swimlane pages in
    ``museum-cx/`` (stale ones are removed); ``index.html`` and ``cx/`` are
    left alone, and the museum page links to the index when there is one.

    Raises:
        OSError: the directory cannot be created or written.
    """
    root = Path(directory)
    meta = _Meta(
        version=version, command=command, generated=generated, revision=revision
    )
    with _locked(root):
        (root / _MUSEUM_CX).mkdir(exist_ok=True)
        written: set[str] = set()
        pages: list[str] = []
        for entry in entries:
            page = ""
            for i, cx in enumerate(entry.before.result.counterexamples):
                name = counterexample_path(entry.before, cx).replace(
                    "cx/", f"{_MUSEUM_CX}/", 1
                )
                written.add(Path(name).name)
                _write(
                    root / name,
                    _cx_page(
                        entry.before, i, cx, meta, back=(MUSEUM_PAGE, "the museum")
                    ),
                )
                if cx is entry.counterexample:
                    page = name
            pages.append(page)
        for stale in (root / _MUSEUM_CX).iterdir():
            if stale.name not in written and stale.suffix == ".html":
                stale.unlink()
        path = root / MUSEUM_PAGE
        _write(
            path,
            _ENV.get_template("museum.html").render(
                css=_CSS,
                title=f"hmmsim {version}: the race museum",
                heading=f"hmmsim race museum: {len(entries)} exhibit"
                + ("" if len(entries) == 1 else "s"),
                version=version,
                command=command,
                generated=generated,
                revision=revision,
                index=(root / "index.html").exists(),
                entries=entries,
                passed=sum(1 for e in entries if e.judgement.passed),
                diagrams=[entry_diagram(e, width=110) for e in entries],
                pages=pages,
            ),
        )
    return path
