"""Replay one variant's counterexample on another variant (for ``compare``).

A counterexample's schedule names the task of every step.  Replayed leniently
on another variant of the same scenario, it is followed as far as it applies
(the same tasks are enabled) and the execution then goes on without
preemption.  :func:`cross_replay` does that and finds the first step where the
two executions differ (another task, or the same task performing another
Op): that is where the variants' code parts ways on this interleaving.  The
result carries both executions' steps around that point for a side-by-side
view, what the other variant found, and the replay commands of both sides.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Final

from hmmsim.engine import Choice, Counterexample, Step, Trace, replay
from hmmsim.errors import ReplayDiverged
from hmmsim.report.sidebyside import DIVERGE_MARK, CrossReplay, SideBySideRow
from hmmsim.report.timeline import CAUSE_MARK, PRIMARY_MARK
from hmmsim.runs import ScenarioRun, invoked_as, token_context

__all__ = ["cross_replay", "cross_replays"]

#: Steps shown before and after each key step.
_BEFORE: Final = 2
_AFTER: Final = 2


def _label(steps: tuple[Step, ...], i: int) -> str:
    return f"{steps[i].task_name}: {steps[i].op}" if i < len(steps) else ""


def _rows(
    a: Trace, b: Trace, cx: Counterexample
) -> tuple[int | None, tuple[SideBySideRow, ...]]:
    """The first step run by different tasks, and both sides around the key steps.

    The key steps are that first difference, the source's first cause and its
    detection; the windows around them are joined, a gap shown as index -1.
    """
    length = max(len(a.steps), len(b.steps))
    diverge = next(
        (
            i
            for i in range(length)
            if i >= len(a.steps)
            or i >= len(b.steps)
            or a.steps[i].task != b.steps[i].task
        ),
        None,
    )
    marks: dict[int, str] = {}
    if cx.finding.causes:
        marks[cx.finding.causes[0].step] = CAUSE_MARK
    if 0 <= cx.finding.step < length:
        marks[cx.finding.step] = PRIMARY_MARK
    if diverge is not None:
        marks[diverge] = DIVERGE_MARK
    shown = sorted(
        {
            i
            for key in marks
            for i in range(key - _BEFORE, key + _AFTER + 1)
            if 0 <= i < length
        }
    )
    rows: list[SideBySideRow] = []
    for i in shown:
        if rows and rows[-1].index != i - 1:
            rows.append(
                SideBySideRow(index=-1, mark="", source="", target="", differs=False)
            )
        left, right = _label(a.steps, i), _label(b.steps, i)
        rows.append(
            SideBySideRow(
                index=i,
                mark=marks.get(i, ""),
                source=left,
                target=right,
                differs=left != right,
            )
        )
    return diverge, tuple(rows)


def _common_prefix(a: tuple[Choice, ...], b: tuple[Choice, ...]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def cross_replay(
    source: ScenarioRun, cx: Counterexample, target: ScenarioRun
) -> CrossReplay:
    """Replay ``cx`` (of ``source``) on ``target``'s variant and compare.

    Raises:
        ReplayDiverged: the source no longer replays its own counterexample.
    """
    scenario = source.scenario
    steps = max(source.config.max_steps, len(cx.schedule.tasks))
    mine = replay(
        scenario.program(source.variant), cx.schedule, capture=True, max_steps=steps
    )
    theirs = replay(
        scenario.program(target.variant),
        cx.schedule,
        capture=True,
        strict=False,
        max_steps=max(target.config.max_steps, len(cx.schedule.tasks)),
    )
    if mine.trace is None or theirs.trace is None:
        raise ReplayDiverged("a replay captured no trace")  # pragma: no cover
    diverge, rows = _rows(mine.trace, theirs.trace, cx)
    kinds = tuple(dict.fromkeys(f.kind for f in theirs.findings))
    context = token_context(scenario.name, target.variant, kinds[0] if kinds else "")
    command = f"{invoked_as()} replay {theirs.schedule.to_token(context)}"
    if target.file is not None:
        command += f" --file {shlex.quote(target.file)}"
    return CrossReplay(
        kind=cx.kind,
        source=source.variant,
        target=target.variant,
        source_command=source.replay_command(cx),
        target_command=command,
        followed=_common_prefix(theirs.schedule.choices, cx.schedule.choices),
        total=len(cx.schedule.choices),
        diverge=diverge,
        rows=rows,
        target_kinds=kinds,
    )


def cross_replays(runs: list[ScenarioRun]) -> list[CrossReplay]:
    """Replay each counterexample on every variant that did not find its kind.

    Counterexamples of one variant that share a schedule are replayed once,
    under the first one's kind (the others are named with it).
    """
    out: list[CrossReplay] = []
    for source in runs:
        seen: dict[tuple[str, tuple[Choice, ...]], int] = {}
        for cx in source.result.counterexamples:
            for target in runs:
                if target is source or cx.kind in target.result.kinds:
                    continue
                key = (target.variant, cx.schedule.choices)
                if key in seen:
                    done = out[seen[key]]
                    out[seen[key]] = dataclasses.replace(
                        done, also=(*done.also, cx.kind)
                    )
                    continue
                seen[key] = len(out)
                out.append(cross_replay(source, cx, target))
    return out
