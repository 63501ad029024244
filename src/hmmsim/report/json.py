"""The machine report: versioned, stable key order, byte-identical across runs.

Schema 1 (documented in ``docs/cli.md``)::

    {"schema": 1, "hmmsim": "<version>", "results": [<result>, ...]}

    result = {"scenario", "variant", "file", "strategy", "seed", "outcome",
              "exit_reason", "executions", "steps", "outcomes", "complete",
              "expected", "violations": [<violation>, ...]}
             (+ "error" only when the unit did not finish, with outcome
             "error"; + "seconds" only when timings are asked for)

    violation = {"kind", "message", "task", "step", "causes", "steps", "preemptions",
                 "original_steps", "replay", "schedule"}

Nothing here depends on the wall clock, ``id()`` or hash order unless
``timings=True`` adds ``seconds``, so two runs with the same config write the
same bytes.  :func:`parse` reads a report back for ``hmmsim replay FILE``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hmmsim.engine import Counterexample, Schedule
from hmmsim.errors import ReplayError
from hmmsim.runs import ScenarioRun

__all__ = ["SCHEMA", "ReplayItem", "dumps", "parse", "result_json"]

SCHEMA: Final = 1


def _violation(run: ScenarioRun, cx: Counterexample) -> dict[str, object]:
    finding = cx.finding
    return {
        "kind": cx.kind,
        "message": finding.message,
        "task": finding.task,
        "step": finding.step,
        "causes": [cause.to_json() for cause in finding.causes],
        "steps": cx.steps,
        "preemptions": cx.preemptions,
        "original_steps": cx.original_steps,
        "replay": run.token(cx),
        "schedule": cx.schedule.to_json(),
    }


def result_json(run: ScenarioRun, *, timings: bool = False) -> dict[str, object]:
    """Return the JSON object of one run (keys in schema order)."""
    result = run.result
    expected = run.expected
    data: dict[str, object] = {
        "scenario": run.scenario.name,
        "variant": run.variant,
        "file": run.file,
        "strategy": result.strategy,
        "seed": run.config.seed,
        "outcome": run.status.value,
        "exit_reason": result.exit_reason.value,
        "executions": result.executions,
        "steps": result.steps,
        "outcomes": dict(sorted(result.outcomes.items())),
        "complete": result.complete,
        "expected": None if expected is None else list(expected),
        "violations": [_violation(run, cx) for cx in result.counterexamples],
    }
    if run.error is not None:
        data["error"] = run.error
    if timings:
        data["seconds"] = round(result.seconds, 3)
    return data


def dumps(runs: Sequence[ScenarioRun], *, version: str, timings: bool = False) -> str:
    """Return the whole report as JSON text, ending with a newline."""
    document = {
        "schema": SCHEMA,
        "hmmsim": version,
        "results": [result_json(run, timings=timings) for run in runs],
    }
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayItem:
    """One violation of a JSON report, as ``hmmsim replay FILE`` needs it."""

    scenario: str
    variant: str
    kind: str
    schedule: Schedule
    file: str | None


def _field(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ReplayError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    return value


def _items(result: dict[str, Any], where: str) -> list[ReplayItem]:
    scenario = _field(result, "scenario", str, where)
    variant = _field(result, "variant", str, where)
    file = result.get("file")
    if file is not None and not isinstance(file, str):
        raise ReplayError(f"{where}: field 'file' must be a string or null")
    items = []
    for j, violation in enumerate(_field(result, "violations", list, where)):
        here = f"{where}.violations[{j}]"
        if not isinstance(violation, dict):
            raise ReplayError(f"{here}: must be an object")
        items.append(
            ReplayItem(
                scenario=scenario,
                variant=variant,
                kind=_field(violation, "kind", str, here),
                schedule=Schedule.from_json(violation.get("schedule")),
                file=file,
            )
        )
    return items


def parse(text: str) -> list[ReplayItem]:
    """Return every violation of a JSON report written by :func:`dumps`.

    Raises:
        ReplayError: the text is not JSON, not schema 1, or malformed.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"not a JSON report: {exc}") from None
    except RecursionError:
        raise ReplayError("not a JSON report: nested too deeply") from None
    if not isinstance(document, dict) or "results" not in document:
        raise ReplayError("not an hmmsim JSON report (no 'results')")
    if document.get("schema") != SCHEMA:
        raise ReplayError(
            f"unsupported report schema {document.get('schema')!r} (expected {SCHEMA})"
        )
    results = document["results"]
    if not isinstance(results, list):
        raise ReplayError("field 'results' must be a list")
    items: list[ReplayItem] = []
    for i, result in enumerate(results):
        if not isinstance(result, dict):
            raise ReplayError(f"results[{i}]: must be an object")
        items.extend(_items(result, f"results[{i}]"))
    return items
