"""The redundancy bench's "before" engine still patches into today's engine.

bench/redundancy.py rebuilds the engine of before the redundancy work by
patching the wait-queue footprints and DPOR's race rule; a change of DPOR's
internals (its clocks, its step records) breaks the patch without any other
test noticing.  These runs pin the table's toy rows.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.support import toy_programs
from tests.unit.engine.test_dpor import waiters

from hmmsim.config import ExploreConfig
from hmmsim.scenarios import get

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redundancy() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_redundancy", ROOT / "bench" / "redundancy.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_redundancy"] = module
    spec.loader.exec_module(module)
    return module


def test_the_toy_rows_before_and_after(redundancy: ModuleType) -> None:
    """Two and three waiters with a waker, AB-BA: the counts of docs/PERFORMANCE.md."""
    config = ExploreConfig(shrink=False)
    cases = [
        (lambda: waiters(2, waker=True), 37, 16),
        (lambda: waiters(3, waker=True), 702, 64),
        (toy_programs.ab_ba, 5, 3),
    ]
    for program, before, after in cases:
        with redundancy.legacy():
            old = redundancy._serial(program, config)
        new = redundancy._serial(program, config)
        assert (old["executions"], new["executions"]) == (before, after)
        assert old["exit"] == new["exit"] == "exhausted"


def test_a_scenario_keeps_its_verdict(redundancy: ModuleType) -> None:
    """A built-in scenario explored by both engines: same verdict, fewer executions."""
    scenario = get("oom-vs-mirror-unregister")
    config = scenario.explore_config().replace(shrink=False)
    program = scenario.program("current")
    with redundancy.legacy():
        old = redundancy._serial(program, config)
    new = redundancy._serial(program, config)
    assert (old["executions"], new["executions"]) == (66, 44)
    assert (old["status"], old["kinds"]) == (new["status"], new["kinds"])
