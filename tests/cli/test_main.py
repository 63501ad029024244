"""Tests for `hmmsim.__main__`."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from types import ModuleType

import pytest

import hmmsim


def test_python_m_hmmsim_exits_with_the_status_main_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``python -m hmmsim`` calls ``hmmsim.cli.main()`` and exits with its result."""
    cli = ModuleType("hmmsim.cli")  # a stand-in, so this tests __main__ alone
    monkeypatch.setattr(cli, "main", lambda: 3, raising=False)
    monkeypatch.setitem(sys.modules, "hmmsim.cli", cli)
    monkeypatch.delitem(sys.modules, "hmmsim.__main__", raising=False)
    # By path: pytest's assertion-rewriting import hook (it marks hmmsim for
    # rewriting, as the package of the hmmsim_check plugin) cannot run modules.
    main_py = Path(hmmsim.__file__).with_name("__main__.py")

    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(main_py), run_name="__main__")

    assert 3 == exit_info.value.code
