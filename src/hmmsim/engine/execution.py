"""One execution: drive task coroutines step by step under a Chooser.

The loop, once per step:

1. compute the enabled tasks (pending Op present and its guard true);
2. if none: every task done (PASSED), or all live tasks blocked (a deadlock,
   or PRUNED when a blocked task sleeps in a timed wait that chose "woken
   before the timeout": that branch is infeasible and the "timeout" branch of
   the same data choice covers it);
3. ask the Chooser which enabled task runs and record the choice;
4. resume that task: the primitive performs its Op's effect and the task runs
   its local code up to its next Op, which becomes its pending Op.

Data choices (``choose``) made during a step are asked from the Chooser and
recorded in the same choice sequence.  Findings reported with ``fatal=True``
stop the execution at once (by unwinding the running task with a private
exception that never escapes the engine); non-fatal findings are recorded
and the execution goes on.  A task that raises an ordinary exception is a
finding of kind ``exception``.  A forgotten ``await`` (a primitive's
coroutine created and dropped) is a bug in the program, raised as
:class:`~hmmsim.errors.ScenarioError`.
"""

from __future__ import annotations

import enum
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, Protocol

from hmmsim.engine.lockdep import LockGraph, LockListener, LockOrderChecker
from hmmsim.engine.ops import Op
from hmmsim.engine.program import Instance, Program, TaskBody
from hmmsim.engine.progress import SOLO_STEPS, ProgressMonitor
from hmmsim.engine.schedule import (
    TASK_CHOICES,
    Choice,
    DataChoice,
    Schedule,
    task_choice,
)
from hmmsim.engine.snapshot import SetupSnapshot, SnapshotCache
from hmmsim.engine.task import Task
from hmmsim.engine.trace import Cause, Event, Finding, Step, Trace
from hmmsim.engine.view import ExecutionView
from hmmsim.errors import HmmsimError, InternalError, ModelError, ScenarioError

__all__ = [
    "ABANDON",
    "BudgetExpired",
    "Chooser",
    "Execution",
    "ExecutionResult",
    "HungTask",
    "LockGraph",
    "MemoryExceeded",
    "Outcome",
    "current_execution",
    "current_task",
    "strict_coroutines",
]

_UNAWAITED: Final = "was never awaited"


class Outcome(enum.Enum):
    """How one execution ended.

    ``REDUNDANT``: the strategy abandoned the execution (``ABANDON``) because
    the executions it explores anyway cover every way to continue it.
    """

    PASSED = "passed"
    VIOLATION = "violation"
    STEP_LIMIT = "step-limit"
    PRUNED = "pruned"
    REDUNDANT = "redundant"


#: Returned by ``Chooser.next_task`` to abandon an execution as redundant (a
#: DPOR sleep-set-blocked state).  A chooser abandons only an execution that
#: has no findings yet: a finding needs the full schedule to be replayed.
ABANDON: Final = -1


class Chooser(Protocol):
    """The part of a Strategy that makes the choices of one execution.

    It sees the execution only through the read-only
    :class:`~hmmsim.engine.view.ExecutionView`.
    """

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Return the id of the enabled task that performs the next step (or ABANDON)."""
        ...

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Return a data choice in ``range(bound)`` (``bound >= 2``) labelled ``label``."""
        ...


class HungTask(BaseException):
    """Raised by the watchdog inside model code that ran ``args[0]`` s without yielding."""


class BudgetExpired(BaseException):
    """Raised by the watchdog inside an execution when the time budget is spent."""


class MemoryExceeded(BaseException):
    """Raised by the watchdog inside an execution when the process uses too much memory.

    ``args``: the resident size and the limit, in bytes.
    """


class _StopExecution(BaseException):
    """Unwinds the running task after a fatal finding; never escapes the engine."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult:
    """Everything an exploration keeps about one execution."""

    outcome: Outcome
    findings: tuple[Finding, ...]
    schedule: Schedule
    steps: int
    preemptions: int
    final_state: object = None
    trace: Trace | None = None


_current: Execution | None = None


def current_execution() -> Execution:
    """Return the execution that is running (for primitives)."""
    if _current is None:
        raise ScenarioError("a model primitive was used outside an hmmsim execution")
    return _current


def current_task() -> Task:
    """Return the task that is running (for primitives)."""
    running = _current  # one global lookup: primitives call this on every step
    if running is not None:
        task = running.current
        if task is not None:
            return task
        raise ScenarioError("a model primitive was used outside a task")
    raise ScenarioError("a model primitive was used outside an hmmsim execution")


class Execution:
    """One run of a program under a Chooser (see the module docstring)."""

    def __init__(
        self,
        program: Program,
        chooser: Chooser,
        *,
        max_steps: int,
        seed: int = 0,
        lockdep: LockGraph | None = None,
        lock_listeners: Sequence[LockListener] | None = None,
        capture: bool = False,
        capture_locations: bool = False,
        snapshots: SnapshotCache | None = None,
    ) -> None:
        """Prepare an execution; :meth:`run` performs it.

        ``lock_listeners`` are told of every blocking lock acquisition
        (default: one :class:`~hmmsim.engine.lockdep.LockOrderChecker` on
        ``lockdep``, or on a new graph).  ``capture`` records a Trace;
        ``capture_locations`` adds to each Step the model source line that
        awaited its Op (slow: only for replays).  ``snapshots`` lets a
        program with a set-up phase restore the world after its set-up
        instead of running it (:mod:`hmmsim.engine.snapshot`); never while
        capturing.
        """
        self.program = program
        self.chooser = chooser
        self.max_steps = max_steps
        self.seed = seed
        if lock_listeners is None:
            lock_listeners = (LockOrderChecker(lockdep),)
        self.lock_listeners: tuple[LockListener, ...] = tuple(lock_listeners)
        self.capture = capture
        self.capture_locations = capture and capture_locations
        self.snapshots = None if capture else snapshots
        self._location = ""
        self.tasks: list[Task] = []
        #: How many tasks exist, done ones included (the view's ``task_count``).
        self.task_count = 0
        # The pending Op of every task, by id, kept equal to ``Task.pending``
        # (assigned only here): the view's ``pending(tid)`` is then a C-level
        # lookup, called on every step strategies replay.
        self._pending: list[Op | None] = []
        #: The view's ``pending(tid)``: the Op task ``tid`` is about to
        #: perform, None once it is done.
        self.pending: Callable[[int], Op | None] = self._pending.__getitem__
        self.current: Task | None = None
        self.step = 0
        self.choices: list[Choice] = []
        self.ops: list[Op] = []
        self.step_tasks: list[int] = []
        self.findings: list[Finding] = []
        self.preemptions = 0
        self.next_oid = 0
        self.unawaited: str | None = None
        self.warned_once: set[tuple[str, int]] = set()
        #: Per-execution attachments of the program (e.g. the oracle's probes);
        #: the engine never looks inside.
        self.context: dict[str, object] = {}
        self._step_data: list[tuple[str, int]] = []
        self._step_events: list[Event] = []
        self._steps: list[Step] = []
        self.instance: Instance | None = None
        #: Liveness: which tasks spin in a loop that changes nothing (hang).
        self.progress = ProgressMonitor((Execution,))
        # The set-up task of a phased instance while it runs (else None), and
        # the lock events it reported (with the number of choices made by
        # then), for a snapshot.
        self._setup: Task | None = None
        self._setup_locks: list[tuple[int, tuple[str, ...], str]] = []

    # -- the view strategies see (hmmsim.engine.view.ExecutionView) ----------

    # -- services for primitives -------------------------------------------

    def new_oid(self) -> int:
        """Return a fresh object id (deterministic within the execution)."""
        oid = self.next_oid
        self.next_oid = oid + 1
        return oid

    def spawn(self, name: str, body: TaskBody) -> Task:
        """Add a task; its code up to its first Op runs now."""
        for other in self.tasks:  # a loop: a generator costs more for a few tasks
            if other.name == name:
                name = f"{name}#{len(self.tasks)}"
                break
        task = Task(len(self.tasks), name, body)
        self.tasks.append(task)
        self._pending.append(None)
        self.task_count = len(self.tasks)
        saved = self.current
        self.current = task
        try:
            self._resume(task)
        finally:
            self.current = saved
        return task

    def choose(self, bound: int, label: str) -> int:
        """Return a data choice in ``range(bound)``, recorded in the schedule."""
        if bound <= 1:
            return 0
        value = self.chooser.next_int(self, bound, label)
        if not 0 <= value < bound:
            raise InternalError(f"strategy chose {value} outside range({bound})")
        self.choices.append(DataChoice(value, bound, label))
        if self.capture:
            self._step_data.append((label, value))
        return value

    def report(
        self,
        kind: str,
        message: str,
        *,
        fatal: bool = True,
        detail: tuple[str, ...] = (),
        causes: tuple[Cause, ...] = (),
    ) -> None:
        """Record a finding; a fatal one stops the execution at once.

        ``causes`` names the earlier steps that created the bad state, when
        the checker knows them (reports mark them beside the detection).
        """
        task = self.current
        self._record(kind, message, fatal=fatal, detail=detail, causes=causes)
        if fatal and task is not None:
            raise _StopExecution

    def _record(
        self,
        kind: str,
        message: str,
        *,
        fatal: bool,
        detail: tuple[str, ...] = (),
        causes: tuple[Cause, ...] = (),
    ) -> None:
        task = self.current
        self.findings.append(
            Finding(
                kind=kind,
                message=message,
                step=self.step,
                task=task.name if task is not None else "",
                fatal=fatal,
                detail=detail,
                causes=causes,
            )
        )

    def tracepoint(self, name: str, fields: Mapping[str, object]) -> None:
        """Record a tracepoint in the current step (only when capturing)."""
        if self.capture:
            task = self.current
            self._step_events.append(
                Event(
                    name=name,
                    fields=dict(fields),
                    task=task.id if task is not None else -1,
                )
            )

    def lock_acquiring(self, task: Task, lock_class: str) -> None:
        """Tell the lock listeners that ``task`` goes to take a lock of ``lock_class``.

        Called before a blocking acquisition waits, as the kernel's
        ``lock_acquire()`` is, so that the execution that deadlocks on an
        AB-BA inversion reports the inversion too (the lock-order check is
        the :class:`~hmmsim.engine.lockdep.LockOrderChecker` listener).
        Trylocks skip it: they cannot wait, and lockdep adds no dependency
        for them.  Nothing is told when the task holds no lock.
        """
        if not task.held:
            return
        held = tuple(lock.lockdep_class for lock in task.held)
        if task is self._setup:
            self._setup_locks.append((len(self.choices), held, lock_class))
        for listener in self.lock_listeners:
            listener.lock_acquiring(self, held, lock_class)

    def lock_acquired(self, task: Task, lock: Any) -> None:
        """Record that ``task`` holds ``lock`` (for lockdep and might_sleep)."""
        task.held.append(lock)

    def lock_released(self, task: Task, lock: Any) -> bool:
        """Forget that ``task`` holds ``lock``; return False if it did not."""
        held = task.held
        for i in range(len(held) - 1, -1, -1):
            if held[i] is lock:
                del held[i]
                return True
        return False

    # -- the loop -------------------------------------------------------------

    def run(self) -> ExecutionResult:
        """Perform the execution and return its result."""
        global _current  # noqa: PLW0603 - the engine's one piece of ambient state
        saved = _current
        _current = self
        unspawned: list[tuple[str, TaskBody]] = []
        outcome = Outcome.PASSED
        try:
            started = self._start(unspawned)
            outcome = self._loop() if started else Outcome.REDUNDANT
            instance = self.instance
            if (
                outcome is Outcome.PASSED
                and not (self.findings and self._has_fatal())
                and instance is not None
            ):
                self.current = None
                with _blamed("the end-of-execution check (end)"):
                    for finding in instance.check_end():
                        self.findings.append(finding)
        except _StopExecution:
            outcome = Outcome.VIOLATION
        finally:
            for task in self.tasks:
                if task.pending is not None:
                    task.coro.close()
            # A fatal finding while the first tasks spawn leaves the later
            # bodies unstarted: close them now, or a later garbage collection
            # reports them as never awaited inside another execution.
            for _name, body in unspawned:
                body.close()
            self.current = None
            _current = saved
        if self.findings and outcome is not Outcome.PRUNED:
            # A pruned execution is infeasible as a whole (its "timeout" twin
            # covers it): its findings still count, its outcome and final
            # state are not a behaviour of the program.
            outcome = Outcome.VIOLATION
        instance = self.instance
        with _blamed("the final-state summary (state)"):
            final_state = instance.final_state() if instance is not None else None
        trace = None
        if self.capture:
            trace = Trace(
                tasks=tuple(t.name for t in self.tasks), steps=tuple(self._steps)
            )
        return ExecutionResult(
            outcome=outcome,
            findings=tuple(self.findings),
            schedule=Schedule(seed=self.seed, choices=tuple(self.choices)),
            steps=self.step,
            preemptions=self.preemptions,
            final_state=final_state,
            trace=trace,
        )

    def _start(self, unspawned: list[tuple[str, TaskBody]]) -> bool:
        """Build the world (or restore it after its set-up) and spawn the tasks.

        ``unspawned`` holds the bodies not spawned yet (closed by ``run`` if
        a fatal finding stops the spawning).  Returns False if the strategy
        abandoned the execution while the set-up steps of a snapshot were
        replayed to it.
        """
        snapshot = self._usable_snapshot()
        if snapshot is not None:
            return self._restore(snapshot, unspawned)
        with _blamed("building the world (the scenario's build function)"):
            instance = self.program()
            if not callable(getattr(instance, "tasks", None)):
                raise ModelError(
                    f"{_definition_site(self.program)}the scenario's build "
                    f"function returned {instance!r}, not an Instance (such "
                    "as SimpleInstance)"
                )
            self.instance = instance
            phased = getattr(instance, "setup_task", None)
            if phased is not None and hasattr(instance, "actor_tasks"):
                unspawned.append(phased())
                name, body = unspawned.pop()
                self._setup = self.spawn(name, body)
            else:
                unspawned.extend(instance.tasks())
                self._spawn_all(unspawned)
        return True

    def _spawn_all(self, unspawned: list[tuple[str, TaskBody]]) -> None:
        while unspawned:
            name, body = unspawned[0]
            del unspawned[0]
            self.spawn(name, body)

    def _has_fatal(self) -> bool:
        return any(f.fatal for f in self.findings)

    def _loop(self) -> Outcome:  # noqa: PLR0912, PLR0915 - one function: the per-step hot path
        # Everything the loop touches per step is bound to a local first: this
        # is the engine's hot path (bench/engine_speed.py).
        tasks = self.tasks
        next_task = self.chooser.next_task
        capture = self.capture
        locations = capture and self.capture_locations
        add_choice = self.choices.append
        add_op = self.ops.append
        step_tasks = self.step_tasks
        add_step = step_tasks.append
        resume = self._resume
        pending = self._pending
        progress = self.progress
        spinning = progress.spinning
        max_steps = self.max_steps
        shared_choices = TASK_CHOICES
        op_type = Op
        solo_steps = SOLO_STEPS
        shared = len(shared_choices)
        prev = step_tasks[-1] if step_tasks else -1
        solo = 0  # steps of the running task since another task's last step
        others = -1  # the last step at which more than one task could run
        while solo + 1 < len(step_tasks) and step_tasks[-2 - solo] == prev:
            solo += 1  # after a restored set-up: its solo run goes on
        while True:
            # A plain loop: a comprehension is a function call of its own.
            enabled: list[int] = []
            for t in tasks:
                op = t.pending
                if op is not None:
                    guard = op.guard
                    if guard is None or guard():
                        enabled.append(t.id)
            if not enabled:
                return self._stuck()
            step = self.step
            if len(enabled) > 1:
                others = step
            if spinning:
                runnable = progress.runnable(enabled)
                if runnable:
                    enabled = runnable
                elif not progress.yielding:
                    return self._hang()
                # else: another task can run later in the loop's round: go on
            if step >= max_steps:
                return Outcome.STEP_LIMIT
            tid = next_task(self, enabled)
            if tid not in enabled:
                if tid == ABANDON and not self.findings:
                    return Outcome.REDUNDANT
                raise InternalError(f"strategy chose task {tid}, not in {enabled}")
            if prev != tid:
                if prev in enabled:
                    self.preemptions += 1
                solo = 0
                if spinning:
                    spinning.clear()
            else:
                solo += 1
            prev = tid
            task = tasks[tid]
            op = task.pending
            assert op is not None, "[hmmsim internal bug] enabled task without an Op"
            add_choice(shared_choices[tid] if tid < shared else task_choice(tid))
            add_op(op)
            add_step(tid)
            self.current = task
            if capture:
                if locations:
                    self._location = _await_site(task)
                try:
                    resume(task)
                finally:
                    # A step that ends in a fatal finding is still a step.
                    self._record_step(task, op)
                    self.step = step + 1
            else:
                # _resume, inlined: the common case is one send and one store.
                try:
                    next_op = task.coro.send(None)
                except BaseException as exc:  # sorted out by _resume_raised
                    try:
                        self._resume_raised(task, exc)
                    finally:
                        self.step = step + 1
                else:
                    self.step = step + 1
                    if self.unawaited is not None or type(next_op) is not op_type:
                        self._bad_resume(task, next_op)
                    task.pending = pending[tid] = next_op
            if solo >= solo_steps:
                progress.after_step(task, step + 1 - solo, step + 1, others)

    def _resume(self, task: Task) -> None:
        """Run ``task`` up to its next Op (or its end); the loop inlines this."""
        try:
            op = task.coro.send(None)
        except BaseException as exc:  # sorted out by _resume_raised
            self._resume_raised(task, exc)
            return
        if self.unawaited is not None or type(op) is not Op:
            self._bad_resume(task, op)
        task.pending = self._pending[task.id] = op

    def _resume_raised(self, task: Task, exc: BaseException) -> None:
        """The task's coroutine raised ``exc`` instead of awaiting an Op."""
        try:
            if isinstance(exc, StopIteration):
                task.pending = self._pending[task.id] = None
                if task is self._setup:
                    self._setup_done(task)
                self._task_finished(task)
                return
            if isinstance(exc, (_StopExecution, HmmsimError)):
                # A fatal finding unwinding, or a tool or scenario error
                # (strict replay diverging inside a data choice): never a
                # model exception.
                raise exc
            if isinstance(exc, HungTask):
                task.pending = self._pending[task.id] = None
                self._task_hung(task, exc)
            if isinstance(exc, SystemExit):
                raise ModelError(
                    f"{_model_site(exc)}task {task.name} called "
                    f"sys.exit({exc.code!r}); a model reports problems as "
                    "findings and never exits"
                ) from None
            if isinstance(exc, Exception):
                task.pending = self._pending[task.id] = None
                self._task_raised(task, exc)
            raise exc  # KeyboardInterrupt, the watchdog's budget and memory
        finally:
            self._check_unawaited(task)

    def _check_unawaited(self, task: Task) -> None:
        if self.unawaited is not None:
            message, self.unawaited = self.unawaited, None
            raise ScenarioError(
                f"task {task.name!r}: {message} (a forgotten 'await' in the model?)"
            )

    def _bad_resume(self, task: Task, op: object) -> None:
        """The step dropped a coroutine, or the task awaited something not an Op."""
        self._check_unawaited(task)
        if not isinstance(op, Op):
            task.coro.close()
            raise ScenarioError(
                f"task {task.name!r} awaited {op!r}, which is not an hmmsim primitive "
                "(model tasks may only await hmmsim.sync operations)"
            )

    # -- the set-up phase and its snapshot -----------------------------------

    def _setup_done(self, task: Task) -> None:
        """The set-up task returned: snapshot the world if asked, spawn the actors."""
        self._setup = None
        instance = self.instance
        assert instance is not None, "[hmmsim internal bug] set-up without instance"
        cache = self.snapshots
        if cache is not None and cache.wants(self.program):
            reason = self._unsnapshottable(task)
            if reason:
                cache.skip(self.program, reason)
            else:
                cache.take(
                    self.program,
                    root=(instance, self.context, self.warned_once),
                    forbidden=(self, *self.tasks),
                    setup_name=task.name,
                    ops=self.ops,
                    next_oid=self.next_oid,
                    lock_events=self._setup_locks,
                )
        self._setup_locks = []
        actors = list(instance.actor_tasks())  # type: ignore[attr-defined]  # phased
        self._spawn_all(actors)

    def _unsnapshottable(self, task: Task) -> str:
        """Return why the world after this set-up cannot be reused, or ''."""
        if len(self.tasks) != 1:
            return "the set-up spawned a task"
        if len(self.choices) != len(self.step_tasks):
            return "the set-up made a data choice"
        if self.findings:
            return "the set-up reported a finding"
        if task.held or task.atomic or task.non_block:
            return "the set-up task still holds a lock"
        return ""

    def _usable_snapshot(self) -> SetupSnapshot | None:
        cache = self.snapshots
        if cache is None:
            return None
        snapshot = cache.get(self.program)
        if snapshot is None or len(snapshot.ops) > self.max_steps:
            return None
        return snapshot

    def _restore(
        self, snapshot: SetupSnapshot, unspawned: list[tuple[str, TaskBody]]
    ) -> bool:
        """Start from the world after the set-up; False if the strategy abandons.

        The strategy is asked for every set-up step and sees what it would
        see in a full run: the steps so far and task 0's pending Op; the lock
        listeners are told of the set-up's acquisitions at the same points.
        An execution abandoned there keeps the restored world (no built-in
        strategy abandons a lone task).
        """
        instance, context, warned_once = snapshot.load()
        self.instance = instance
        self.context = context
        self.warned_once = warned_once
        self.next_oid = snapshot.next_oid
        task = Task(0, snapshot.setup_name, _FINISHED)
        self.tasks.append(task)
        self._pending.append(None)
        self.task_count = 1
        self.current = task
        chooser = self.chooser
        choices = self.choices
        ops = self.ops
        step_tasks = self.step_tasks
        first = task_choice(0)
        events = snapshot.lock_events
        event = 0
        for j, op in enumerate(snapshot.ops):
            while event < len(events) and events[event][0] == j:
                self._replay_lock_event(events[event])
                event += 1
            task.pending = self._pending[0] = op
            tid = chooser.next_task(self, [0])
            if tid != 0:
                if tid == ABANDON:
                    return False
                raise InternalError(f"strategy chose task {tid}, not in [0]")
            choices.append(first)
            ops.append(op)
            step_tasks.append(0)
            self.step = j
        task.pending = self._pending[0] = None
        for rest in events[event:]:
            self._replay_lock_event(rest)
        unspawned.extend(instance.actor_tasks())
        self._spawn_all(unspawned)
        self._task_finished(task)
        self.step = len(snapshot.ops)
        if self.snapshots is not None:
            self.snapshots.restored += 1
        return True

    def _replay_lock_event(self, event: tuple[int, tuple[str, ...], str]) -> None:
        _, held, lock_class = event
        for listener in self.lock_listeners:
            listener.lock_acquiring(self, held, lock_class)

    def _task_finished(self, task: Task) -> None:
        if task.held:
            names = ", ".join(lock.name for lock in task.held)
            self.report(
                "lock-leak",
                f"task {task.name} ended while holding {names}",
                fatal=True,
            )

    def _task_raised(self, task: Task, exc: Exception) -> NoReturn:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].name}() line {frames[-1].lineno}" if frames else ""
        detail = tuple(
            line.rstrip() for line in traceback.format_exception_only(type(exc), exc)
        )
        self._record(
            "exception",
            f"task {task.name} raised {type(exc).__name__}{where}: {exc}",
            fatal=True,
            detail=detail,
        )
        raise _StopExecution

    def _task_hung(self, task: Task, exc: HungTask) -> NoReturn:
        self._record(
            "hung-task",
            f"{_model_site(exc)}task {task.name} ran for {exc.args[0]:g} s without "
            "reaching an hmmsim operation (a loop with no await?)",
            fatal=True,
        )
        raise _StopExecution

    def _stuck(self) -> Outcome:
        blocked = [t for t in self.tasks if t.pending is not None]
        if not blocked:
            return Outcome.PASSED
        if any(t.pending is not None and t.pending.timed for t in blocked):
            return Outcome.PRUNED
        detail = tuple(self._describe_wait(t) for t in blocked)
        self.current = None
        self.report(
            "deadlock",
            f"deadlock: all {len(blocked)} live tasks are blocked",
            fatal=True,
            detail=detail,
        )
        return Outcome.VIOLATION

    def _hang(self) -> Outcome:
        """End an execution in which every task that can run is spinning."""
        spinning = self.progress.spinning
        live = [t for t in self.tasks if t.pending is not None]
        others = [t for t in live if t.id not in spinning]
        if any(t.pending is not None and t.pending.timed for t in others):
            # A task sleeps in a timed wait that chose "woken": infeasible.
            return Outcome.PRUNED
        detail = tuple(
            self._describe_wait(t)
            if t.id not in spinning
            else f"{t.name} goes round a loop that changes nothing, at "
            f"{_await_site(t) or t.name}"
            for t in live
        )
        names = ", ".join(t.name for t in live if t.id in spinning)
        self.current = None
        self.report(
            "hang",
            f"hang: {names} repeats a loop with no change to any state, "
            "and no other task can run",
            fatal=True,
            detail=detail,
        )
        return Outcome.VIOLATION

    def _describe_wait(self, task: Task) -> str:
        op = task.pending
        assert op is not None, "[hmmsim internal bug] describing a finished task"
        text = f"{task.name} waits in {op.describe()}"
        if op.obj is not None:
            holders = [self.tasks[h].name for h in op.obj.holders()]
            if holders:
                text += f", held by {', '.join(holders)}"
        return text

    def _record_step(self, task: Task, op: Op) -> None:
        # The snapshot observes; it is not the task's code (the shared-state
        # audit must not count its reads as the task's).
        saved, self.current = self.current, None
        try:
            with _blamed("the state snapshot (snap)"):
                self._append_step(task, op)
        finally:
            self.current = saved

    def _append_step(self, task: Task, op: Op) -> None:
        self._steps.append(
            Step(
                index=self.step,
                task=task.id,
                task_name=task.name,
                op=op.describe(),
                kind=op.kind.name,
                data=tuple(self._step_data),
                events=tuple(self._step_events),
                state=dict(self.instance.snapshot())
                if self.instance is not None
                else {},
                location=self._location,
                held={
                    t.name: tuple(lock.name for lock in t.held)
                    for t in self.tasks
                    if t.held
                },
            )
        )
        self._step_data = []
        self._step_events = []


async def _finished() -> None:
    """The body of a restored set-up task, which has already returned."""


#: A closed coroutine standing for the body of a restored set-up task.
_FINISHED: Final = _finished()
_FINISHED.close()


#: Source files of the engine and the primitives: an await site is reported at
#: the first frame outside them (the model code that called the primitive).
_MECHANISM_DIRS: Final = (
    f"{os.sep}hmmsim{os.sep}engine{os.sep}",
    f"{os.sep}hmmsim{os.sep}sync{os.sep}",
)


def _model_site(exc: BaseException) -> str:
    """Return ``file:line: `` of the innermost model frame of ``exc``'s traceback."""
    site = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if not any(part in frame.filename for part in _MECHANISM_DIRS):
            site = f"{frame.filename}:{frame.lineno}: "
    return site


def _definition_site(program: Program) -> str:
    """Return ``file:line: `` where the build function behind ``program`` starts."""
    func = getattr(program, "func", program)  # Scenario.program is a partial
    code = getattr(func, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}: " if code is not None else ""


class _blamed:  # noqa: N801 - used like the function it replaces: with _blamed(...)
    """Turn an exception of model code called outside a task into a ModelError.

    A class rather than a generator-based context manager: the engine enters
    it for every execution (building the world, the end check, the final
    state).
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: object, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        if exc is None or isinstance(
            exc,
            (
                _StopExecution,
                HmmsimError,
                KeyboardInterrupt,
                BudgetExpired,
                MemoryExceeded,
            ),
        ):
            return False
        if isinstance(exc, HungTask):
            raise ModelError(
                f"{_model_site(exc)}{self.what} ran for {exc.args[0]:g} s "
                "without returning"
            ) from None
        if isinstance(exc, (Exception, SystemExit)):
            raise ModelError(
                f"{_model_site(exc)}{self.what} raised {type(exc).__name__}: {exc}"
            ) from None
        return False


def _await_site(task: Task) -> str:
    """Return ``file:line in function`` of the model code awaiting ``task``'s Op.

    Walks the chain of suspended coroutines from the task's body to the Op
    and keeps the innermost frame outside the engine and the primitives.
    """
    site = ""
    link: Any = task.coro
    while link is not None:
        frame = getattr(link, "cr_frame", None) or getattr(link, "gi_frame", None)
        if frame is not None:
            filename = frame.f_code.co_filename
            if not any(part in filename for part in _MECHANISM_DIRS):
                short = filename.split(f"{os.sep}hmmsim{os.sep}")[-1]
                site = f"{short}:{frame.f_lineno} in {frame.f_code.co_name}"
        link = getattr(link, "cr_await", None) or getattr(link, "gi_yieldfrom", None)
    return site


def _called_as(coro: object) -> str:
    """Return `` (called as func())`` for a dropped coroutine of a primitive.

    The lock wrappers (``mutex_lock``, ``spin_unlock`` ...) are plain
    functions that return the coroutine of a shared method, whose name alone
    would not say which one the model forgot to await; the method's ``func``
    argument does.
    """
    frame = getattr(coro, "cr_frame", None)
    func = frame.f_locals.get("func") if frame is not None else None
    return f" (called as {func}())" if isinstance(func, str) else ""


@contextmanager
def strict_coroutines() -> Iterator[None]:
    """Turn a dropped, never-awaited coroutine into a ScenarioError.

    CPython reports such a coroutine when it is deallocated, which for a
    dropped primitive call happens at once, inside the step.  The warning is
    made an error and routed to the running execution, which raises after the
    step.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if (
            _current is not None
            and isinstance(exc, RuntimeWarning)
            and _UNAWAITED in str(exc)
        ):
            _current.unawaited = str(exc) + _called_as(unraisable.object)
            return
        previous(unraisable)

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "error", message=".*" + _UNAWAITED, category=RuntimeWarning
        )
        sys.unraisablehook = hook
        try:
            yield
        finally:
            sys.unraisablehook = previous
