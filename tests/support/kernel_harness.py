"""Helpers to run model code in an engine execution (shared by the kernel tests).

``run_tasks(setup)`` builds the world inside a fresh execution (``setup`` is
called by the program factory and returns the tasks) and runs it with a
sequential strategy: the lowest-numbered enabled task always runs, so one
task runs to completion (or until it blocks) before the next starts.  Data
choices are taken from ``data`` in order, then 0 ("the timeout does not fire").
Every tracepoint is recorded through the ``"*"`` probe.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hmmsim.engine import Execution, ExecutionResult, Instance, SimpleInstance
from hmmsim.engine.execution import strict_coroutines
from hmmsim.kernel.trace import register_probe

TaskBody = Coroutine[Any, Any, Any]


class SequentialStrategy:
    """Run the lowest enabled task; answer data choices from a script."""

    name = "sequential"
    exhaustive = False

    def __init__(self, data: Sequence[int] = ()) -> None:
        self.complete = False
        self.data = list(data)
        self.labels: list[str] = []

    def begin_execution(self) -> bool:
        return True

    def next_task(self, execution: Execution, enabled: list[int]) -> int:
        return enabled[0]

    def next_int(self, execution: Execution, bound: int, label: str) -> int:
        self.labels.append(label)
        return self.data.pop(0) if self.data else 0

    def end_execution(self, result: ExecutionResult) -> None:
        pass


@dataclass
class Run:
    """What one sequential execution did."""

    result: ExecutionResult
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self.result.findings]

    def named(self, name: str) -> list[dict[str, object]]:
        return [fields for event, fields in self.events if event == name]


def run_tasks(
    setup: Callable[[], Sequence[tuple[str, TaskBody]]],
    *,
    data: Sequence[int] = (),
    max_steps: int = 50_000,
) -> Run:
    """Run the tasks ``setup`` returns, sequentially, and report what happened."""
    events: list[tuple[str, dict[str, object]]] = []

    def record(name: str, fields: Mapping[str, object]) -> None:
        events.append((name, dict(fields)))

    def program() -> Instance:
        register_probe("*", record)
        return SimpleInstance(task_list=list(setup()))

    with strict_coroutines():
        execution = Execution(program, SequentialStrategy(data), max_steps=max_steps)
        result = execution.run()
    return Run(result=result, events=events)


def run_one(body: Callable[[], TaskBody], **kwargs: Any) -> Run:
    """Run one task whose body builds its own world."""
    return run_tasks(lambda: [("task", body())], **kwargs)
