"""The human report: header, verdict, counterexample timelines, stats, replay.

:func:`render_run` follows the order of the style guide: a header (scenario,
variant, strategy, seed, versions), the outcome with each violated kind and
its one-sentence explanation, the timeline of each (shrunk) counterexample,
the statistics, and last the exact command that replays each counterexample,
so the final line of a failing report can be pasted as it is.

:func:`render_summary` is the one-row-per-run table of ``check --all``,
:func:`render_comparison` the output of ``compare`` and
:func:`render_replay` the output of ``replay``.  All return plain text.
"""

from __future__ import annotations

from collections.abc import Sequence

from hmmsim.engine import Counterexample, ExecutionResult, Finding, Trace
from hmmsim.oracle import explain
from hmmsim.report.timeline import CAUSE_MARK, render_timeline
from hmmsim.runs import ScenarioRun

__all__ = [
    "outcome_label",
    "render_comparison",
    "render_replay",
    "render_replays",
    "render_run",
    "render_summary",
]


def outcome_label(run: ScenarioRun) -> str:
    """Return ``VIOLATION``, ``VERIFIED``, ``INCOMPLETE`` or ``ERROR``."""
    return run.status.value.upper()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _header(run: ScenarioRun, version: str) -> list[str]:
    scenario = run.scenario
    config = run.config
    lines = [
        f"hmmsim {version}: scenario {scenario.name}, variant {run.variant}",
        f"  {scenario.title}",
    ]
    facts = [f"strategy {run.result.strategy}", f"seed {config.seed}"]
    if scenario.kernel_version:
        facts.append(f"kernel {scenario.kernel_version} modelled")
    if run.file is not None:
        facts.append(f"file {run.file}")
    lines.append("  " + ", ".join(facts))
    bounds = [
        f"max executions {config.max_executions or 'unbounded'}",
        f"max steps {config.max_steps}",
    ]
    if config.preemption_bound is not None:
        bounds.append(f"preemption bound {config.preemption_bound}")
    if config.time_budget_s is not None:
        bounds.append(f"time budget {config.time_budget_s:g} s")
    lines.append("  " + ", ".join(bounds))
    return lines


def _expectation(run: ScenarioRun) -> list[str]:
    expected = run.expected
    if expected is None:
        return []
    wanted = ", ".join(expected) if expected else "no violation"
    verdict = "as expected" if run.as_expected else "UNEXPECTED"
    return [f"expected: {wanted} ({verdict})"]


def _verdict(run: ScenarioRun) -> list[str]:
    result = run.result
    if run.error is not None:
        lines = [
            f"outcome: ERROR ({run.error}; "
            f"{_plural(result.executions, 'execution')} explored before it)"
        ]
    elif result.counterexamples:
        kinds = ", ".join(result.kinds)
        lines = [f"outcome: VIOLATION ({_plural(len(result.kinds), 'kind')}: {kinds})"]
    elif result.status.value == "verified":
        lines = ["outcome: VERIFIED (no violation in any schedule)"]
    else:
        lines = [
            "outcome: INCOMPLETE (no violation found, but not every schedule "
            f"was explored: {result.describe_exit()})"
        ]
    return lines + _expectation(run)


def _counterexample(
    index: int,
    cx: Counterexample,
    trace: Trace | None,
    *,
    width: int,
    full: bool,
    full_hint: str,
) -> list[str]:
    finding = cx.finding
    where = f"task {finding.task}, " if finding.task else ""
    step = f"step {finding.step}" if finding.step >= 0 else "at the end"
    shrunk = (
        f" (shrunk from {cx.original_steps})" if cx.original_steps != cx.steps else ""
    )
    lines = [
        f"violation {index}: {cx.kind}: {finding.message}",
        f"  {explain(cx.kind)}",
        f"  {where}{step}; {_plural(cx.steps, 'step')}{shrunk}, "
        f"{_plural(cx.preemptions, 'preemption')}; "
        + (
            f"found in execution {cx.execution}"
            if cx.execution
            else "replayed from the counterexample store"
        ),
        *_cause_lines(finding),
        "",
    ]
    if trace is not None:
        lines.append(
            render_timeline(
                trace,
                cx.findings,
                primary=cx.kind,
                width=width,
                full=full,
                full_hint=full_hint,
            ).rstrip()
        )
    else:
        lines.append("  (no trace captured)")
    return lines


def _stats(run: ScenarioRun, timings: bool) -> list[str]:
    result = run.result
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
    lines = [
        f"stats: {_plural(result.executions, 'execution')}, "
        f"{_plural(result.steps, 'step')}" + (f" ({outcomes})" if outcomes else ""),
        f"exit: {result.exit_reason.value}: {result.describe_exit()}",
    ]
    if not result.complete:
        lines.append("note: a bound cut some schedules, so this is not a proof")
    if timings:
        lines.append(f"time: {result.seconds:.2f} s")
    return lines


def render_run(
    run: ScenarioRun,
    *,
    version: str,
    width: int = 120,
    timings: bool = True,
    full: bool = False,
) -> str:
    """Return the full human report of ``run``; its last lines replay each finding.

    Args:
        run: the run to report.
        version: the hmmsim version, for the header.
        width: target line width of the timelines.
        timings: include the wall-clock time in the stats.
        full: show the set-up steps of each timeline instead of folding them.
    """
    lines = [*_header(run, version), "", *_verdict(run)]
    cxs = run.result.counterexamples
    for i, cx in enumerate(cxs):
        hint = f"{run.replay_command(cx)} --full shows them"
        lines += [
            "",
            *_counterexample(
                i + 1, cx, run.trace_of(i), width=width, full=full, full_hint=hint
            ),
        ]
    lines += ["", *_stats(run, timings)]
    for cx in cxs:
        lines += ["", f"replay {cx.kind}:", run.replay_command(cx)]
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) for c, w in zip(cells, widths, strict=True)
        ).rstrip()

    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _expect_cell(run: ScenarioRun) -> str:
    verdict = run.as_expected
    if verdict is None:
        return "-"
    return "ok" if verdict else "UNEXPECTED"


def _seconds(run: ScenarioRun) -> str:
    return f"{run.result.seconds:.1f} s"


def _exhausted(run: ScenarioRun) -> str:
    result = run.result
    if result.exit_reason.value != "exhausted":
        return f"no ({result.exit_reason.value})"
    return "yes" if result.complete else "yes, bounded"


def render_summary(runs: Sequence[ScenarioRun], *, timings: bool = False) -> str:
    """Return a table with one row per run, then the totals.

    Columns: scenario, variant, outcome, violation kinds, executions, time
    (only with ``timings``: it varies from run to run), whether the
    exploration was exhausted, and whether the result is as expected.
    """
    rows = [
        [
            run.scenario.name,
            run.variant,
            outcome_label(run),
            ", ".join(run.result.kinds) or "-",
            str(run.result.executions),
            *([_seconds(run)] if timings else []),
            _exhausted(run),
            _expect_cell(run),
        ]
        for run in runs
    ]
    header = [
        "scenario",
        "variant",
        "outcome",
        "kinds",
        "executions",
        *(["time"] if timings else []),
        "exhausted",
        "expect",
    ]
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status.value] = counts.get(run.status.value, 0) + 1
    total = ", ".join(f"{counts[k]} {k}" for k in sorted(counts))
    lines = _table(header, rows)
    lines.append(f"{_plural(len(runs), 'run')}: {total or 'none'}")
    unexpected = sum(1 for run in runs if run.as_expected is False)
    if unexpected:
        lines.append(f"{_plural(unexpected, 'run')} UNEXPECTED")
    lines += [
        f"error: {run.scenario.name}/{run.variant}: {run.error}"
        for run in runs
        if run.error is not None
    ]
    return "\n".join(lines) + "\n"


def render_replays(runs: Sequence[ScenarioRun]) -> str:
    """Return one replay command per counterexample, or ``""`` if none."""
    commands = [
        item.replay_command(cx) for item in runs for cx in item.result.counterexamples
    ]
    if not commands:
        return ""
    lines = ["counterexamples (replay one to see its timeline):"]
    lines += [f"  {command}" for command in commands]
    return "\n".join(lines) + "\n"


def render_comparison(
    first: ScenarioRun, second: ScenarioRun, *more: ScenarioRun
) -> str:
    """Return how the outcomes and violation kinds of two or more variants differ."""
    runs = (first, second, *more)
    lines = [
        f"scenario {first.scenario.name}: " + " vs ".join(r.variant for r in runs),
        "",
        *_table(
            ["variant", "outcome", "kinds", "executions", "exit"],
            [
                [
                    run.variant,
                    outcome_label(run),
                    ", ".join(run.result.kinds) or "-",
                    str(run.result.executions),
                    run.result.exit_reason.value,
                ]
                for run in runs
            ],
        ),
        "",
    ]
    if more:
        return "\n".join(lines + _kinds_by_variant(runs)) + "\n"
    a, b = first.variant, second.variant
    kinds_a, kinds_b = first.result.kinds, second.result.kinds
    only_a = [k for k in kinds_a if k not in kinds_b]
    only_b = [k for k in kinds_b if k not in kinds_a]
    both = [k for k in kinds_a if k in kinds_b]
    if first.status is second.status and not only_a and not only_b:
        lines.append(f"no difference: both {outcome_label(first)}")
    else:
        if first.status is not second.status:
            lines.append(
                f"outcome differs: {a} {outcome_label(first)}, {b} {outcome_label(second)}"
            )
        lines += [f"only in {a}: {k}: {explain(k)}" for k in only_a]
        lines += [f"only in {b}: {k}: {explain(k)}" for k in only_b]
        lines += [f"in both: {k}" for k in both]
    return "\n".join(lines) + "\n"


def _kinds_by_variant(runs: Sequence[ScenarioRun]) -> list[str]:
    """Lines of the N-variant comparison: outcomes, then which variant shows which kind."""
    labels = {outcome_label(run) for run in runs}
    lines = (
        [f"same outcome everywhere: {labels.pop()}"]
        if len(labels) == 1
        else [
            "outcome differs: "
            + ", ".join(f"{run.variant} {outcome_label(run)}" for run in runs)
        ]
    )
    kinds = list(dict.fromkeys(k for run in runs for k in run.result.kinds))
    if not kinds:
        return lines
    lines.append("")
    lines += _table(
        ["kind", *(run.variant for run in runs)],
        [
            [k, *("yes" if k in run.result.kinds else "-" for run in runs)]
            for k in kinds
        ],
    )
    lines.append("")
    lines += [f"{k}: {explain(k)}" for k in kinds]
    return lines


def _cause_lines(finding: Finding) -> list[str]:
    """``  caused at step N (task): note`` for each cause the oracle named."""
    return [
        f"  {CAUSE_MARK} caused at step {c.step} ({c.task}): {c.note}"
        for c in finding.causes
    ]


def render_replay(
    *,
    label: str,
    kind: str,
    result: ExecutionResult,
    reproduced: bool,
    width: int = 120,
    full: bool = False,
    full_hint: str = "",
) -> str:
    """Return the output of ``hmmsim replay``: what ran, its timeline and verdict.

    Args:
        label: ``scenario/variant`` replayed.
        kind: the kind the replay had to reproduce (``""``: none recorded).
        result: the replayed execution, with its trace captured.
        reproduced: whether ``kind`` was found again.
        width: target line width of the timeline.
        full: show the set-up steps instead of folding them.
        full_hint: how to see the folded set-up (see ``render_timeline``).
    """
    found = ", ".join(dict.fromkeys(f.kind for f in result.findings)) or "none"
    lines = [
        f"replay {label}: {_plural(result.steps, 'step')}, "
        f"outcome {result.outcome.value}, findings: {found}"
    ]
    if kind:
        lines.append(f"  {kind}: {explain(kind)}")
        primary = next((f for f in result.findings if f.kind == kind), None)
        if primary is not None:
            lines.extend(_cause_lines(primary))
    lines.append("")
    if result.trace is not None:
        lines.append(
            render_timeline(
                result.trace,
                result.findings,
                primary=kind or None,
                width=width,
                full=full,
                full_hint=full_hint,
            ).rstrip()
        )
        lines.append("")
    if not kind:
        lines.append("no violation kind recorded; nothing to verify")
    elif reproduced:
        lines.append(f"reproduced: {kind}")
    else:
        lines.append(f"NOT reproduced: expected {kind}, found {found}")
    return "\n".join(lines) + "\n"
