"""Pin a counterexample as a regression test: ``hmmsim pin TOKEN``.

:func:`pin_source` writes the source of a pytest module that replays the
token's schedule with :func:`check_pinned` and asserts its violation kind:
by default that the kind does *not* occur (the bug stays fixed; the test fails
the day the model goes back to the bug), or with ``expect="present"`` that it
still does (a known bug, e.g. on the ``prepatch`` variant, stays visible).

The replay is lenient: once the model is fixed, the recorded schedule may
stop applying part-way (a lock is no longer taken, a task has finished); the
replay then follows it as far as it applies and goes on without preemption,
as the shrinker does.  The test depends on hmmsim and, for a user model, on
the model file, named relative to the test module so the pair can move
together.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Final, Literal

from hmmsim.engine import ExecutionResult, Schedule, replay
from hmmsim.errors import ConfigError, ReplayError
from hmmsim.loader import load_file, select
from hmmsim.scenarios import NAME_PATTERN, Scenario, get
from hmmsim.service import resolve_config

__all__ = ["Expect", "check_pinned", "pin_source", "replay_pinned"]

Expect = Literal["absent", "present"]
_EXPECTS: Final = ("absent", "present")


def _context(token: str) -> tuple[Schedule, str, str, str]:
    context, schedule = Schedule.from_token(token)
    where, _, kind = context.partition(":")
    scenario, _, variant = where.partition("/")
    if not (kind and NAME_PATTERN.match(scenario) and NAME_PATTERN.match(variant)):
        raise ReplayError(
            f"replay token names {context!r}; pinning needs scenario/variant:kind"
        )
    return schedule, scenario, variant, kind


def _scenario(name: str, file: str | os.PathLike[str] | None) -> Scenario:
    if file is None:
        return get(name)
    path = os.fspath(file)
    return select(load_file(path), name, path)[0]


def replay_pinned(
    token: str, *, file: str | os.PathLike[str] | None = None
) -> tuple[str, ExecutionResult]:
    """Replay ``token`` leniently, capturing its trace; return (kind, result).

    Raises:
        ReplayError: the token is malformed or names no kind.
        ConfigError: the scenario or variant is unknown.
    """
    schedule, name, variant, kind = _context(token)
    scenario = _scenario(name, file)
    program = scenario.program(scenario.check_variant(variant))
    result = replay(
        program,
        schedule,
        strict=False,
        capture=True,
        max_steps=max(resolve_config(scenario).max_steps, len(schedule.tasks)),
    )
    return kind, result


def check_pinned(
    token: str,
    *,
    file: str | os.PathLike[str] | None = None,
    expect: Expect = "absent",
) -> ExecutionResult:
    """Replay a pinned token and assert its kind is absent (or present).

    Raises:
        AssertionError: the expectation does not hold; the message is the
            replay's timeline, so pytest shows the race.
    """
    __tracebackhide__ = True  # pytest: show the message, not this frame
    if expect not in _EXPECTS:
        raise ConfigError(f"expect must be 'absent' or 'present', not {expect!r}")
    kind, result = replay_pinned(token, file=file)
    found = kind in {f.kind for f in result.findings}
    if found == (expect == "present"):
        return result
    from hmmsim.report.text import render_replay  # noqa: PLC0415 - only on failure

    _, scenario, variant, _ = _context(token)
    text = render_replay(
        label=f"{scenario}/{variant}",
        kind=kind,
        result=result,
        reproduced=found,
        width=120,
        full=False,
    )
    verdict = (
        f"the pinned violation {kind} occurs again"
        if found
        else f"the pinned violation {kind} no longer occurs"
    )
    raise AssertionError(f"{verdict}:\n{text}")


def _literal(text: str) -> str:
    """A double-quoted Python string literal (what ruff format writes)."""
    return json.dumps(text)


def _identifier(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "pinned"


def pin_source(
    token: str,
    *,
    file: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    expect: Expect = "absent",
    version: str = "",
) -> str:
    """Return the source of a pytest module that pins ``token``.

    ``file`` (a user model) is written relative to ``output``'s directory
    (the current directory when ``output`` is None).

    Raises:
        ReplayError: the token is malformed or names no kind.
        ConfigError: ``expect`` is not ``absent`` or ``present``.
    """
    if expect not in _EXPECTS:
        raise ConfigError(f"pin: --expect must be absent or present, not {expect!r}")
    token = token.strip()
    _, scenario, variant, kind = _context(token)
    name = _identifier(f"{scenario}_{variant}_{kind}")
    base = Path(output).resolve().parent if output is not None else Path.cwd()
    lines = [
        f'"""Regression test pinned by `hmmsim pin`{f" (hmmsim {version})" if version else ""}.',
        "",
        f"It replays a schedule that showed {kind} on {scenario}/{variant}",
        (
            "and fails if that violation occurs again."
            if expect == "absent"
            else "and fails if that violation no longer occurs."
        ),
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    file_arg = ""
    relative = ""
    if file is not None:
        relative = os.path.relpath(Path(file).resolve(), base)
        lines += ["from pathlib import Path", ""]
        file_arg = ", file=FILE"
    lines += ["from hmmsim.pin import check_pinned", "", f"TOKEN = {_literal(token)}"]
    if relative:
        lines.append(f"FILE = Path(__file__).resolve().parent / {_literal(relative)}")
    doc = (
        f"Replaying the pinned schedule shows no {kind}."
        if expect == "absent"
        else f"Replaying the pinned schedule still shows {kind}."
    )
    lines += [
        "",
        "",
        f"def test_pinned_{name}() -> None:",
        f'    """{doc}"""',
        f"    check_pinned(TOKEN{file_arg}, expect={_literal(expect)})",
    ]
    return "\n".join(lines) + "\n"
