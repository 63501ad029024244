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
from hmmsim.engine.lockdep import LockListener, LockOrderChecker
from hmmsim.engine.ops import LOCAL, Op, OpKind, dependent
from hmmsim.engine.program import Instance, PhasedInstance, Program, SimpleInstance
from hmmsim.engine.runner import (
    Counterexample,
    ExitReason,
    ExplorationResult,
    Status,
    explore,
    replay,
)
from hmmsim.engine.schedule import Choice, DataChoice, Schedule, TaskChoice
from hmmsim.engine.snapshot import SnapshotCache
from hmmsim.engine.task import Task, TaskId, TaskState
from hmmsim.engine.trace import Cause, Event, Finding, Step, Trace
from hmmsim.engine.view import ExecutionView

__all__ = [
    "LOCAL",
    "Cause",
    "Choice",
    "Chooser",
    "Counterexample",
    "DataChoice",
    "Event",
    "Execution",
    "ExecutionResult",
    "ExecutionView",
    "ExitReason",
    "ExplorationResult",
    "Finding",
    "Instance",
    "LockGraph",
    "LockListener",
    "LockOrderChecker",
    "Op",
    "OpKind",
    "Outcome",
    "PhasedInstance",
    "Program",
    "Schedule",
    "SimpleInstance",
    "SnapshotCache",
    "Status",
    "Step",
    "Task",
    "TaskChoice",
    "TaskId",
    "TaskState",
    "Trace",
    "current_execution",
    "current_task",
    "dependent",
    "explore",
    "replay",
]
