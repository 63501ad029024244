"""Run a full exploration in a child process that coverage does not trace.

Coverage tracing makes an exhaustive exploration of the largest built-in
scenarios ten to twenty times slower, and the lines those explorations run are
covered by the bounded tests anyway.  Tests that need the real, exhaustive
verdict (the matrix, every example on the race battery) run it here: a fresh interpreter without the
``COVERAGE_PROCESS_*`` variables, so the ``.pth`` hook of ``coverage`` stays
off.  The child prints one JSON object, which the test compares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import json, sys
from hmmsim.config import ExploreConfig
from hmmsim.engine import explore
from hmmsim.scenarios import get

name, variant, max_executions = sys.argv[1], sys.argv[2], int(sys.argv[3])
scenario = get(name)
config = scenario.explore_config(
    ExploreConfig(max_executions=max_executions, shrink=False)
)
result = explore(scenario.program(variant), config)
json.dump(
    {
        "exit_reason": result.exit_reason.name,
        "status": result.status.name,
        "kinds": sorted(result.kinds),
        "executions": result.executions,
    },
    sys.stdout,
)
"""


def _untraced_env() -> dict[str, str]:
    """The environment without coverage's start-up variables and hmmsim's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COVERAGE_", "HMMSIM_"))
    }
    env["HMMSIM_STORE"] = "off"  # no .hmmsim/ in the working tree
    return env


def cli_unmeasured(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hmmsim ARGV`` in an untraced child; return it finished."""
    return subprocess.run(
        [sys.executable, "-m", "hmmsim", *argv],
        cwd=ROOT,
        env=_untraced_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def explore_unmeasured(name: str, variant: str, max_executions: int) -> dict[str, Any]:
    """Explore a built-in scenario variant with DPOR in an untraced child.

    Returns the exit reason and status names, the sorted violation kinds and
    the number of executions.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, name, variant, str(max_executions)],
        cwd=ROOT,
        env=_untraced_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"exploring {name} {variant} failed ({done.returncode}):\n{done.stderr}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


_MUSEUM_CHILD = """
import json, sys
from hmmsim import museum
from hmmsim.service import resolve_config, run

item = museum.exhibit(sys.argv[1])
scenario = museum.scenario_of(item)
config = resolve_config(scenario, overrides={"strategy": "dpor", "stop_on_first": False})
before, after = (run(scenario, v, config=config) for v in (item.before, item.after))
entry = museum.examine(item, before, after)
json.dump(
    {
        "passed": entry.judgement.passed,
        "reason": entry.judgement.reason,
        "before": sorted(before.result.kinds),
        "after": after.status.value,
        "tasks": list(entry.trace.tasks) if entry.trace is not None else [],
    },
    sys.stdout,
)
"""


def museum_unmeasured(slug: str) -> dict[str, Any]:
    """Check one museum exhibit (exhaustive DPOR) in an untraced child.

    Returns whether it holds its pin and why, before's kinds, after's
    outcome and the task names of before's counterexample.
    """
    done = subprocess.run(
        [sys.executable, "-c", _MUSEUM_CHILD, slug],
        cwd=ROOT,
        env=_untraced_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"checking exhibit {slug} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
