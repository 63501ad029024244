"""`hmmsim check --all` in worker processes: Ctrl-C, --jobs.

That every --jobs gives the same JSON is tests/cli/test_split_cli.py.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from tests.cli.conftest import CliRunner

from hmmsim.cli import main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HMMSIM_* variable changes the explorations (and the store is off)."""
    for name in list(os.environ):
        if name.startswith("HMMSIM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HMMSIM_STORE", "off")  # no .hmmsim/ in the working tree


@pytest.mark.usefixtures("clean_env")
def test_ctrl_c_during_a_parallel_run_reports_and_exits_130(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGINT to the parent stops the workers; what was explored is reported."""

    from hmmsim import cli  # noqa: PLC0415

    original = cli._Progress.finished
    calls: list[int] = []

    def finished(self: object, index: int, done: object) -> None:
        original(self, index, done)  # type: ignore[arg-type]
        calls.append(index)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C once the first run is in

    monkeypatch.setattr(cli._Progress, "finished", finished)
    code = main(
        [
            "check",
            "--all",
            "--jobs",
            "2",
            "--json",
            str(tmp_path / "r.json"),
            "--report",
            str(tmp_path / "h"),
            "-q",
        ]
    )

    captured = capsys.readouterr()
    assert 130 == code
    assert "interrupted after" in captured.err
    assert "runs not started" in captured.err
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert "interrupted" in {r["exit_reason"] for r in results}


def test_jobs_must_be_positive(cli: CliRunner) -> None:
    """--jobs 0 is a one-line usage error with status 2."""
    ran = cli("check", "--all", "--jobs", "0")

    assert 2 == ran.code
    assert "hmmsim: error: --jobs must be at least 1, not 0\n" == ran.err
