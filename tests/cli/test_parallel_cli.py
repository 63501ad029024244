"""`hmmsim check --all` in worker processes: same bytes as serial, Ctrl-C, --jobs."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from types import FrameType

import pytest
from tests.cli.conftest import CliRunner

from hmmsim.cli import main

BOUNDED = ("--max-executions", "60", "-q")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HMMSIM_* variable changes the explorations (and the store is off)."""
    for name in list(os.environ):
        if name.startswith("HMMSIM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HMMSIM_STORE", "off")  # no .hmmsim/ in the working tree


@pytest.mark.usefixtures("clean_env")
def test_parallel_json_is_byte_identical_to_serial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The built-in matrix gives the same JSON with one worker or two."""
    serial, parallel = tmp_path / "serial.json", tmp_path / "parallel.json"

    assert 0 == main(
        [
            "check",
            "--all",
            "--jobs",
            "1",
            "--json",
            str(serial),
            "--report",
            str(tmp_path / "h1"),
            *BOUNDED,
        ]
    )
    out_serial = capsys.readouterr().out
    assert 0 == main(
        [
            "check",
            "--all",
            "--jobs",
            "2",
            "--json",
            str(parallel),
            "--report",
            str(tmp_path / "h2"),
            *BOUNDED,
        ]
    )
    out_parallel = capsys.readouterr().out

    assert serial.read_bytes() == parallel.read_bytes()
    assert out_serial == out_parallel
    assert len(json.loads(serial.read_text())["results"]) >= 16


@pytest.mark.usefixtures("clean_env")
def test_ctrl_c_during_a_parallel_run_reports_and_exits_130(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGINT to the parent stops the workers; what was explored is reported."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
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
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

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
