"""Tests for `hmmsim.engine.task`."""

from __future__ import annotations

from hmmsim.engine import LOCAL, Op, OpKind, Task, TaskState
from hmmsim.sync import msleep


def _task() -> Task:
    return Task(3, "worker", msleep(1))


class TestTaskState:
    def test_a_task_without_a_pending_op_is_done(self) -> None:
        """A task with no pending Op is DONE."""
        task = _task()
        task.coro.close()

        assert TaskState.DONE == task.state
        assert "Task(3, 'worker', done)" == repr(task)

    def test_the_guard_decides_runnable_or_blocked(self) -> None:
        """An unguarded or true-guarded Op is RUNNABLE; a false guard is BLOCKED."""
        task = _task()
        task.coro.close()
        gate = [False]
        task.pending = Op(OpKind.ACQUIRE, 1, True, "lock", guard=lambda: gate[0])
        blocked = task.state
        gate[0] = True
        runnable = task.state
        task.pending = Op(OpKind.YIELD, LOCAL, False, "schedule")

        assert (TaskState.BLOCKED, TaskState.RUNNABLE, TaskState.RUNNABLE) == (
            blocked,
            runnable,
            task.state,
        )

    def test_a_new_task_holds_nothing(self) -> None:
        """A new task holds no locks and is in no atomic or non-block section."""
        task = _task()
        task.coro.close()

        assert ([], 0, 0, False) == (
            task.held,
            task.atomic,
            task.non_block,
            task.woken,
        )
