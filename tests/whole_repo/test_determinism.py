"""Determinism across processes: same config, byte-identical JSON, any PYTHONHASHSEED.

Each run explores the engine's toy programs under every sampling and
exhaustive strategy in a fresh interpreter and prints a JSON dump of the
ExplorationResult fields (all but wall-clock time).  The dump is made here,
not by ``hmmsim.report``, so that this test checks the engine alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]

SCRIPT: Final = """
import json

from hmmsim.config import ExploreConfig
from hmmsim.engine import explore
from tests.support import toy_programs as toys

PROGRAMS = {
    "counter_race3": lambda: toys.counter_race(tasks=3),
    "ab_ba": toys.ab_ba,
    "message_passing": toys.message_passing,
    "timeout_race": toys.timeout_race,
    "half_published": toys.half_published,
}
CONFIGS = {
    "dfs": ExploreConfig(strategy="dfs", max_executions=200),
    "random": ExploreConfig(strategy="random", seed=7, max_executions=60),
    "pct": ExploreConfig(strategy="pct", seed=7, pct_depth=3, max_executions=60),
    "round_robin": ExploreConfig(strategy="round_robin"),
}

dump = {}
for program_name, program in PROGRAMS.items():
    for config_name, config in CONFIGS.items():
        result = explore(program, config)
        dump[f"{program_name}/{config_name}"] = {
            "strategy": result.strategy,
            "exit_reason": result.exit_reason.value,
            "status": result.status.value,
            "executions": result.executions,
            "steps": result.steps,
            "outcomes": result.outcomes,
            "complete": result.complete,
            "counterexamples": [
                {
                    "kind": c.kind,
                    "finding": c.finding.to_json(),
                    "findings": [f.to_json() for f in c.findings],
                    "schedule": c.schedule.to_json(),
                    "token": c.schedule.to_token(program_name),
                    "steps": c.steps,
                    "preemptions": c.preemptions,
                    "original_steps": c.original_steps,
                    "execution": c.execution,
                }
                for c in result.counterexamples
            ],
        }
print(json.dumps(dump, indent=1))
"""


def _run(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    env.pop("COVERAGE_PROCESS_START", None)
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return completed.stdout


def test_explorations_print_identical_json_under_any_hash_seed() -> None:
    """Two processes with PYTHONHASHSEED 1 and 4242 print byte-identical JSON."""
    first = _run("1")
    second = _run("4242")

    assert first == second
    dump = json.loads(first)
    assert 20 == len(dump)
    assert ["lock-order", "deadlock"] == [
        c["kind"] for c in dump["ab_ba/dfs"]["counterexamples"]
    ]
