"""Replay a recorded schedule, checking that the program follows it.

In strict mode the execution must meet exactly the recorded choices: a
recorded task that is not enabled, a data choice where a task choice was
recorded (or the reverse), or choices left over at the end raise
:class:`~hmmsim.errors.ReplayDiverged`.  In lenient mode (used by the
shrinker) the schedule is a prefix: an impossible choice ends the prefix, and
after it the execution continues without preemption (the previous task runs
on while enabled, else the lowest enabled id; data choices take 0).
"""

from __future__ import annotations

from hmmsim.engine.execution import ExecutionResult
from hmmsim.engine.schedule import Schedule, TaskChoice
from hmmsim.engine.view import ExecutionView
from hmmsim.errors import ReplayDiverged

__all__ = ["ReplayStrategy"]


class ReplayStrategy:
    """Follow one schedule once."""

    name = "replay"
    exhaustive = False

    def __init__(self, schedule: Schedule, *, strict: bool = True) -> None:
        """Replay ``schedule`` (strictly, or as a lenient prefix)."""
        self.schedule = schedule
        self.strict = strict
        self.complete = False
        self.done = False
        self._pos = 0
        self._off_script = False

    def begin_execution(self) -> bool:
        """Run exactly one execution."""
        if self.done:
            return False
        self.done = True
        self._pos = 0
        self._off_script = False
        return True

    def _next(
        self, want_task: bool, allowed: list[int] | range, where: str
    ) -> int | None:
        if self._off_script:
            return None
        choices = self.schedule.choices
        if self._pos >= len(choices):
            if self.strict:
                raise ReplayDiverged(
                    f"schedule ended before the execution did ({where})"
                )
            self._off_script = True
            return None
        choice = choices[self._pos]
        is_task = isinstance(choice, TaskChoice)
        value = choice.task if isinstance(choice, TaskChoice) else choice.value
        if is_task != want_task or value not in allowed:
            if self.strict:
                wanted = f"task {value}" if is_task else f"data value {value}"
                raise ReplayDiverged(
                    f"choice {self._pos}: schedule says {wanted}, but the execution "
                    f"offers {where} {list(allowed)}"
                )
            self._off_script = True
            return None
        self._pos += 1
        return value

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Return the recorded task (or continue without preemption)."""
        value = self._next(True, enabled, "tasks")
        if value is not None:
            return value
        prev = execution.step_tasks[-1] if execution.step_tasks else -1
        return prev if prev in enabled else enabled[0]

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Return the recorded data value (or 0 off script)."""
        value = self._next(False, range(bound), f"values for {label}:")
        return 0 if value is None else value

    def end_execution(self, result: ExecutionResult) -> None:
        """In strict mode, every recorded choice must have been used."""
        if self.strict and self._pos != len(self.schedule.choices):
            raise ReplayDiverged(
                f"execution ended after {self._pos} of {len(self.schedule.choices)} choices"
            )
