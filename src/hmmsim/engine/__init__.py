"""The explorer: runs programs of tasks under controlled schedules.

It knows nothing about HMM or the kernel: it drives task coroutines, records
schedules, detects deadlocks and explores interleavings with a Strategy.
"""

from __future__ import annotations

from hmmsim.engine.execution import (
    Chooser,
    Execution,
    ExecutionResult,
    LockGraph,
    Outcome,
    current_execution,
    current_task,
)
from hmmsim.engine.ops import LOCAL, Op, OpKind, dependent
from hmmsim.engine.program import Instance, Program, SimpleInstance
from hmmsim.engine.runner import (
    Counterexample,
    ExitReason,
    ExplorationResult,
    Status,
    explore,
    replay,
)
from hmmsim.engine.schedule import Schedule
from hmmsim.engine.task import Task, TaskId, TaskState
from hmmsim.engine.trace import Cause, Event, Finding, Step, Trace

__all__ = [
    "LOCAL",
    "Cause",
    "Chooser",
    "Counterexample",
    "Event",
    "Execution",
    "ExecutionResult",
    "ExitReason",
    "ExplorationResult",
    "Finding",
    "Instance",
    "LockGraph",
    "Op",
    "OpKind",
    "Outcome",
    "Program",
    "Schedule",
    "SimpleInstance",
    "Status",
    "Step",
    "Task",
    "TaskId",
    "TaskState",
    "Trace",
    "current_execution",
    "current_task",
    "dependent",
    "explore",
    "replay",
]
