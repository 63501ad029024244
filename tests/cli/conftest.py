"""Fixtures of the CLI tests: the toy registry and a main() runner."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.support.toy_scenarios import toy_scenarios

from hmmsim.cli import main
from hmmsim.scenarios import Registry


@dataclass(frozen=True, slots=True)
class Ran:
    """What one ``main(argv)`` call returned and printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def toys(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """Make the toy scenarios the registered ones, with a clean environment."""
    for name in ("HMMSIM_PROFILE", "HMMSIM_STRATEGY", "HMMSIM_MAX_EXECUTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    with toy_scenarios() as registry:
        yield registry


@pytest.fixture
def cli(toys: Registry, capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Return a function that runs ``hmmsim`` with arguments and captures output."""
    del toys
    return CliRunner(capsys)


class CliRunner:
    """Runs main() and returns its status and captured output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Capture with ``capsys``."""
        self.capsys = capsys

    def __call__(self, *argv: str) -> Ran:
        """Run ``hmmsim *argv``."""
        self.capsys.readouterr()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Ran(code, captured.out, captured.err)
