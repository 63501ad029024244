"""Shared test configuration: Hypothesis profiles, and a guard on the working tree.

``dev`` (the default) draws fresh examples on every run, to find new failures.
``ci`` is derandomized and keeps no example database, so a CI run, and a local
run with the same profile, is reproducible; it prints the blob that replays a
failure. ``HMMSIM_HYPOTHESIS_PROFILE`` selects a profile; without it, ``ci`` is
used when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from hmmsim.sync import audit

# Model code that touches a shared object without an Op is a model error in
# every test (hmmsim.sync.audit); HMMSIM_AUDIT=0 turns it off for measuring.
if os.environ.get("HMMSIM_AUDIT", "1") != "0":
    audit.enable()

# Hypothesis swaps in its own built-in "ci" profile as the default when it sees
# CI at import, so name the library defaults as parent explicitly: both profiles
# then mean the same thing wherever they are loaded.
_DEFAULTS = settings.get_profile("default")

# Tests always run under coverage tracing (scripts/test), which makes
# per-example timings meaningless, so neither profile has a deadline.
settings.register_profile("dev", parent=_DEFAULTS, deadline=None)
settings.register_profile(
    "ci",
    parent=_DEFAULTS,
    derandomize=True,
    deadline=None,
    print_blob=True,
    max_examples=100,
    database=None,
)

settings.load_profile(
    os.environ.get("HMMSIM_HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI") else "dev")
)


_REPORT_DIR = Path(__file__).resolve().parents[1] / "hmmsim-report"


def _report_state() -> list[tuple[str, int]]:
    if not _REPORT_DIR.exists():
        return []
    return sorted(
        (str(path.relative_to(_REPORT_DIR)), path.stat().st_mtime_ns)
        for path in _REPORT_DIR.rglob("*")
    )


@pytest.fixture(scope="session", autouse=True)
def make_run_report_untouched() -> Iterator[None]:
    """The suite never writes the hmmsim-report/ that ``make run`` left in the tree."""
    before = _report_state()
    yield
    assert before == _report_state(), (
        "a test wrote into the working tree's hmmsim-report/ (give --report a tmp_path)"
    )


_STORE_DIR = Path(__file__).resolve().parents[1] / ".hmmsim"


def _store_state() -> list[tuple[str, int]]:
    if not _STORE_DIR.exists():
        return []
    return sorted(
        (str(path.relative_to(_STORE_DIR)), path.stat().st_mtime_ns)
        for path in _STORE_DIR.rglob("*")
    )


@pytest.fixture(scope="session", autouse=True)
def counterexample_store_untouched() -> Iterator[None]:
    """The suite never writes the .hmmsim/ store of the working tree."""
    before = _store_state()
    yield
    assert before == _store_state(), (
        "a test wrote into the working tree's .hmmsim/ (set HMMSIM_STORE=off or "
        "pass --store under tmp_path)"
    )


@pytest.fixture(autouse=True)
def _no_counterexample_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep `hmmsim check` from reading or writing `.hmmsim/` in the working tree.

    Tests of the store pass ``--store DIR`` under ``tmp_path`` explicitly.
    """
    monkeypatch.setenv("HMMSIM_STORE", "off")
