"""Small helpers to run engine programs in unit tests."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    Execution,
    ExecutionResult,
    ExplorationResult,
    Finding,
    Instance,
    Program,
    Schedule,
    SimpleInstance,
    explore,
    replay,
)
from hmmsim.engine.execution import strict_coroutines
from hmmsim.engine.strategies.replay import ReplayStrategy
from hmmsim.engine.view import ExecutionView

Body = Coroutine[Any, Any, Any]


def tasks(
    *bodies: Body, end: Callable[[], Iterable[Finding]] | None = None
) -> Instance:
    """Return an instance running ``bodies`` as tasks t0, t1, ... (in that order)."""
    task_list = [(f"t{i}", body) for i, body in enumerate(bodies)]
    if end is None:
        return SimpleInstance(task_list=task_list)
    return SimpleInstance(task_list=task_list, end=end)


def sequential(
    program: Program, *prefix: str, max_steps: int = 1_000
) -> ExecutionResult:
    """Run ``program`` along ``prefix`` (``t<N>``/``d<N>``), then without preemption.

    After the prefix the running task goes on while it can, else the lowest
    enabled id runs; data choices take 0.
    """
    schedule = Schedule.from_json({"seed": 0, "choices": list(prefix)})
    return replay(program, schedule, strict=False, max_steps=max_steps)


def along(program: Program, *choices: str, max_steps: int = 1_000) -> ExecutionResult:
    """Replay ``program`` strictly along choices written ``t<N>`` / ``d<N>``."""
    schedule = Schedule.from_json({"seed": 0, "choices": list(choices)})
    return replay(program, schedule, max_steps=max_steps)


def exhaust(program: Program, **overrides: Any) -> ExplorationResult:
    """Explore ``program`` with DFS (no shrinking) and return the result."""
    config = ExploreConfig(strategy="dfs", shrink=False, **overrides)
    return explore(program, config)


def kinds(result: ExecutionResult) -> list[str]:
    """Return the kinds of an execution's findings, in order."""
    return [f.kind for f in result.findings]


class _Spy:
    """A Chooser that records the enabled tasks and delegates to a replay."""

    def __init__(self, schedule: Schedule) -> None:
        self.replay = ReplayStrategy(schedule, strict=False)
        self.replay.begin_execution()
        self.enabled: list[list[int]] = []

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        self.enabled.append(list(enabled))
        return self.replay.next_task(execution, enabled)

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        return self.replay.next_int(execution, bound, label)


def enabled_sets(program: Program, *choices: str) -> list[list[int]]:
    """Run ``program`` leniently along ``choices``; return the enabled ids per step."""
    spy = _Spy(Schedule.from_json({"seed": 0, "choices": list(choices)}))
    with strict_coroutines():
        Execution(program, spy, max_steps=1_000).run()
    return spy.enabled
