"""Tests for `hmmsim.__main__`."""

from __future__ import annotations

import runpy
import sys
from types import ModuleType

import pytest


def test_python_m_hmmsim_exits_with_the_status_main_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``python -m hmmsim`` calls ``hmmsim.cli.main()`` and exits with its result."""
    cli = ModuleType("hmmsim.cli")  # a stand-in, so this tests __main__ alone
    monkeypatch.setattr(cli, "main", lambda: 3, raising=False)
    monkeypatch.setitem(sys.modules, "hmmsim.cli", cli)
    monkeypatch.delitem(sys.modules, "hmmsim.__main__", raising=False)

    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("hmmsim", run_name="__main__")

    assert 3 == exit_info.value.code
