"""Round robin: one deterministic execution that rotates between tasks.

Useful as a quick smoke run; it never claims to have covered anything.
"""

from __future__ import annotations

from hmmsim.engine.execution import ExecutionResult
from hmmsim.engine.view import ExecutionView

__all__ = ["RoundRobinStrategy"]


class RoundRobinStrategy:
    """Run each enabled task in turn, one step each."""

    name = "round_robin"
    exhaustive = False

    def __init__(self) -> None:
        """Prepare the single execution."""
        self.complete = False
        self.done = False

    def begin_execution(self) -> bool:
        """Run exactly one execution."""
        if self.done:
            return False
        self.done = True
        return True

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Return the first enabled task after the previous one."""
        prev = execution.step_tasks[-1] if execution.step_tasks else -1
        later = [t for t in enabled if t > prev]
        return later[0] if later else enabled[0]

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Data choices take their first value."""
        return 0

    def end_execution(self, result: ExecutionResult) -> None:
        """Nothing to learn."""
