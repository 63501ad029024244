"""Every bad input of the issue's robustness list: one line, a documented status.

The list (README "Robustness"; docs/cli.md "Exit status"): an unknown
scenario or variant, a missing file, one that does not import or defines no
scenario, a scenario whose task raises, negative or absurd bounds, an
unreadable or tampered replay token, Ctrl-C, and --time-budget.  Each error
is exactly one ``hmmsim: error: ...`` line naming the problem, never a
traceback, and its status is the documented one.  These run against the
built-in scenarios, as a user on a fresh clone would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hmmsim.cli import EXIT_OK, EXIT_USAGE, main

SCENARIO = "oom-vs-driver-lock"
TOKEN = "hs1.oom-vs-driver-lock/prepatch:notifier-contract.pdngh4dgeaftamnrmaadmaaz3uaj4.593dce91"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HMMSIM_* variable changes the explorations (and the store is off)."""
    for name in list(os.environ):
        if name.startswith("HMMSIM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HMMSIM_STORE", "off")  # no .hmmsim/ in the working tree


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``hmmsim *argv``; return status, stdout, stderr."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files(tmp_path: Path) -> dict[str, Path]:
    """User files that are wrong in each way the loader reports."""
    made = {
        "syntax.py": "def broken(:\n",
        "raises.py": "raise RuntimeError('no GPU here')\n",
        "empty.py": "x = 1\n",
    }
    paths = {}
    for name, text in made.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    (tmp_path / "dir.json").mkdir()
    paths["dir.json"] = tmp_path / "dir.json"
    return paths


BAD_INPUTS = [
    (["check", "no-such-scenario"], "unknown scenario 'no-such-scenario' (known:"),
    (["check", SCENARIO, "--variant", "v9.9"], "has no variant 'v9.9'"),
    (["compare", SCENARIO, "prepatch", "v9.9"], "has no variant 'v9.9'"),
    (["check", "{tmp}/missing.py"], "missing.py: no such file"),
    (["check", "{tmp}/syntax.py"], "syntax.py:1: syntax error"),
    (["check", "{tmp}/raises.py"], "raises.py:1: importing it raised RuntimeError"),
    (["check", "{tmp}/empty.py"], "empty.py defines no scenario"),
    (["check", SCENARIO, "--max-executions", "-1"], "--max-executions must be"),
    (["check", SCENARIO, "--max-executions", "10" * 10], "--max-executions must be"),
    (["check", SCENARIO, "--max-steps", "0"], "--max-steps must be"),
    (["check", SCENARIO, "--max-steps", "1" + "0" * 11], "--max-steps must be"),
    (["check", SCENARIO, "--preemption-bound", "-3"], "--preemption-bound must"),
    (["check", SCENARIO, "--pct-depth", "0"], "--pct-depth must be"),
    (["check", SCENARIO, "--seed", "-5"], "--seed must be"),
    (["check", SCENARIO, "--time-budget", "-1"], "--time-budget must be"),
    (["check", SCENARIO, "--time-budget", "1e12"], "--time-budget must be"),
    (["check", "--all", "--jobs", "-1"], "--jobs must be at least 1"),
    (["replay", "hs1.garbage"], "replay token"),
    (["replay", TOKEN[:-1] + "0"], "replay token"),
    (["replay", TOKEN.replace("pdngh4", "pdngh5")], "replay token"),
    (["replay", "{tmp}/dir.json"], "dir.json"),
    (["replay", "{tmp}/empty.py"], "not a JSON report"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_naming_it_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each bad input: status 2, one error line naming the problem, no traceback."""
    files(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]

    code, out, err = run_cli(capsys, *argv)

    assert EXIT_USAGE == code
    lines = err.splitlines()
    assert 1 == len(lines), err
    assert lines[0].startswith("hmmsim: error: ")
    assert message in lines[0]
    assert "Traceback" not in err
    assert "" == out


def test_a_task_that_raises_is_a_finding_with_its_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model task raising is reported as an ``exception`` violation, status 0."""
    model = tmp_path / "model.py"
    model.write_text(
        "from hmmsim.api import Cell, READ_ONCE, SimpleInstance, scenario\n"
        "\n"
        "@scenario(name='boom', title='A task raises', variants=('only',))\n"
        "def boom(variant):\n"
        "    cell = Cell('x', 0)\n"
        "\n"
        "    async def task():\n"
        "        value = await READ_ONCE(cell)\n"
        "        return 1 // value\n"
        "\n"
        "    return SimpleInstance(task_list=[('divider', task())])\n",
        encoding="utf-8",
    )

    code, out, err = run_cli(capsys, "check", str(model))

    assert EXIT_OK == code
    assert "violation 1: exception: task divider raised ZeroDivisionError" in out
    assert "READ_ONCE(x)" in out
    assert out.splitlines()[-1].startswith("hmmsim replay hs1.boom/only:exception.")
    assert "Traceback" not in err


def test_time_budget_stops_the_exploration_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--time-budget ends a long exploration early: INCOMPLETE, reason time-budget."""
    code, out, _ = run_cli(
        capsys, "check", "concurrent-invalidations", "--time-budget", "0.3", "-q"
    )

    assert EXIT_OK == code
    assert "concurrent-invalidations/v5.3: INCOMPLETE" in out


def test_time_budget_in_the_full_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The full report names the exit reason and what it does not prove."""
    _, out, _ = run_cli(
        capsys, "check", "concurrent-invalidations", "--time-budget", "0.3"
    )

    assert "exit: time-budget:" in out
    assert "time budget 0.3 s" in out


class TestBrokenPipe:
    """Output piped into a reader that goes away."""

    def test_closed_pipe_stops_quietly_with_status_zero(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A BrokenPipeError while printing exits 0 without an error line."""

        def broken(argv: object) -> int:
            raise BrokenPipeError

        monkeypatch.setattr("hmmsim.cli._run", broken)

        status = main(["list"])

        assert EXIT_OK == status
        assert "" == capsys.readouterr().err
