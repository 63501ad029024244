"""The Strategy protocol shared by every exploration policy."""

from __future__ import annotations

from typing import Final, Protocol

from hmmsim.engine.execution import ExecutionResult
from hmmsim.engine.view import ExecutionView

__all__ = ["NONDETERMINISTIC", "Strategy", "bounded_options"]

#: How a strategy's ModelError starts when re-running a known prefix of
#: choices takes another path: the fault is the model's, not hmmsim's.
NONDETERMINISTIC: Final = (
    "the model is not deterministic (it must depend only on the schedule: no "
    "random, time, hash order or state kept between executions): "
)


class Strategy(Protocol):
    """Policy that makes the choices of successive executions.

    The runner calls ``begin_execution`` before each execution (False means
    there is nothing left to explore), the Execution calls ``next_task`` at
    every step and ``next_int`` at every data choice, and the runner calls
    ``end_execution`` with the result.

    Attributes:
        name: CLI name of the strategy.
        exhaustive: whether exhausting it means every behaviour was covered.
        complete: False once some choice was skipped because of a bound
            (preemption bound), so that "exhausted" does not read as verified.
    """

    name: str
    exhaustive: bool
    complete: bool

    def begin_execution(self) -> bool:
        """Prepare the next execution; return False when exhausted."""
        ...

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Pick the task that performs the next step."""
        ...

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Pick a data choice in ``range(bound)``."""
        ...

    def end_execution(self, result: ExecutionResult) -> None:
        """Learn from the finished execution."""
        ...


def bounded_options(
    execution: ExecutionView, enabled: list[int], preemption_bound: int | None
) -> tuple[list[int], bool]:
    """Restrict ``enabled`` to the choices allowed by a preemption bound.

    Returns:
        The allowed task ids and whether any enabled task was cut off.
    """
    if preemption_bound is None or not execution.step_tasks:
        return enabled, False
    prev = execution.step_tasks[-1]
    if execution.preemptions < preemption_bound or prev not in enabled:
        return enabled, False
    return [prev], len(enabled) > 1
