"""Task: one model thread, driven by the engine as a coroutine."""

from __future__ import annotations

import enum
from collections.abc import Coroutine
from typing import Any, NewType

from hmmsim.engine.ops import Op

__all__ = ["Task", "TaskId", "TaskState"]

TaskId = NewType("TaskId", int)


class TaskState(enum.Enum):
    """Where a task is; ``BLOCKED`` is derived from its pending Op's guard."""

    RUNNABLE = "runnable"
    BLOCKED = "blocked"
    DONE = "done"


class Task:
    """A model thread.

    Attributes:
        id: dense id, in spawn order (deterministic).
        name: human name, unique within an execution.
        coro: the coroutine running the task's body.
        pending: the Op the task is about to perform, or None when done.
        held: locks the task holds, in acquisition order (lockdep, might_sleep).
        atomic: how many spinlocks the task holds (atomic context depth).
        non_block: depth of ``non_block_start`` sections.
        woken: set by a wake-up of a wait queue the task sleeps on.
    """

    __slots__ = (
        "atomic",
        "coro",
        "held",
        "id",
        "name",
        "non_block",
        "pending",
        "woken",
    )

    def __init__(self, tid: int, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        """Create a task that has not run yet."""
        self.id = tid
        self.name = name
        self.coro = coro
        self.pending: Op | None = None
        self.held: list[Any] = []
        self.atomic = 0
        self.non_block = 0
        self.woken = False

    @property
    def state(self) -> TaskState:
        """Return the task's current state."""
        if self.pending is None:
            return TaskState.DONE
        guard = self.pending.guard
        if guard is None or guard():
            return TaskState.RUNNABLE
        return TaskState.BLOCKED

    def __repr__(self) -> str:
        return f"Task({self.id}, {self.name!r}, {self.state.value})"
