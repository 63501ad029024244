"""Fixtures of the report tests: explored toy runs."""

from __future__ import annotations

import pytest
from tests.support.toy_scenarios import COUNTER, CRASH, LOCKS, MP

from hmmsim.api import run
from hmmsim.config import ExploreConfig
from hmmsim.report import ScenarioRun

DFS = ExploreConfig(strategy="dfs")


@pytest.fixture(scope="module")
def buggy() -> ScenarioRun:
    """The racy counter: one lost-update counterexample with state and events."""
    return run(COUNTER, "buggy", config=DFS)


@pytest.fixture(scope="module")
def fixed() -> ScenarioRun:
    """The locked counter: verified."""
    return run(COUNTER, "fixed", config=DFS)


@pytest.fixture(scope="module")
def locks() -> ScenarioRun:
    """AB-BA: a lock-order inversion during a step and a trailing deadlock."""
    return run(LOCKS, "abba", config=DFS)


@pytest.fixture(scope="module")
def mp() -> ScenarioRun:
    """Message passing: verified, against a wrong expectation."""
    return run(MP, "ok", config=DFS)


@pytest.fixture(scope="module")
def crash() -> ScenarioRun:
    """A task that raises: an exception finding."""
    return run(CRASH, "raise", config=DFS)
