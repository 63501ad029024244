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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final, NoReturn, Protocol

from hmmsim.engine.ops import Op
from hmmsim.engine.program import Instance, Program, TaskBody
from hmmsim.engine.progress import SOLO_STEPS, ProgressMonitor
from hmmsim.engine.schedule import Schedule
from hmmsim.engine.task import Task
from hmmsim.engine.trace import Cause, Event, Finding, Step, Trace
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
    """The part of a Strategy that makes the choices of one execution."""

    def next_task(self, execution: Execution, enabled: list[int]) -> int:
        """Return the id of the enabled task that performs the next step (or ABANDON)."""
        ...

    def next_int(self, execution: Execution, bound: int, label: str) -> int:
        """Return a data choice in ``range(bound)`` (``bound >= 2``)."""
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


class LockGraph:
    """Lock-order graph shared by the executions of one exploration (lockdep).

    An edge ``A -> B`` means some task went to take a lock of class B while
    holding one of class A.  An edge that closes a cycle (``B -> A`` when
    ``A -> B`` exists, or any longer cycle) is an inversion, reported once
    per set of classes even if no execution deadlocked.

    Attributes:
        edges: every edge, in the order first seen.
        reported: the class sets of the cycles already reported.
    """

    __slots__ = ("edges", "reported", "successors")

    def __init__(self) -> None:
        """Start with no edges."""
        self.edges: dict[tuple[str, str], Schedule | None] = {}
        self.reported: set[frozenset[str]] = set()
        self.successors: dict[str, list[str]] = {}

    def add(self, first: str, second: str) -> list[str] | None:
        """Add the edge ``first -> second``; return the cycle it closes, if any.

        Returns:
            None if the edge was known or closes no cycle, else the classes
            ``[second, ..., first]`` of a path back from ``second`` to ``first``.
        """
        edge = (first, second)
        if edge in self.edges:
            return None
        self.edges[edge] = None
        self.successors.setdefault(first, []).append(second)
        return self.path(second, first)

    def path(self, start: str, goal: str) -> list[str] | None:
        """Return a shortest path of classes from ``start`` to ``goal``, or None."""
        parents: dict[str, str] = {start: start}
        frontier = [start]
        while frontier:
            later: list[str] = []
            for node in frontier:
                for succ in self.successors.get(node, ()):
                    if succ in parents:
                        continue
                    parents[succ] = node
                    if succ == goal:
                        path = [goal]
                        while path[-1] != start:
                            path.append(parents[path[-1]])
                        return path[::-1]
                    later.append(succ)
            frontier = later
        return None


_current: Execution | None = None


def current_execution() -> Execution:
    """Return the execution that is running (for primitives)."""
    if _current is None:
        raise ScenarioError("a model primitive was used outside an hmmsim execution")
    return _current


def current_task() -> Task:
    """Return the task that is running (for primitives)."""
    task = current_execution().current
    if task is None:
        raise ScenarioError("a model primitive was used outside a task")
    return task


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
        capture: bool = False,
        capture_locations: bool = False,
    ) -> None:
        """Prepare an execution; :meth:`run` performs it.

        ``capture`` records a Trace; ``capture_locations`` adds to each Step
        the model source line that awaited its Op (slow: only for replays).
        """
        self.program = program
        self.chooser = chooser
        self.max_steps = max_steps
        self.seed = seed
        self.lockdep = lockdep if lockdep is not None else LockGraph()
        self.capture = capture
        self.capture_locations = capture and capture_locations
        self._location = ""
        self.tasks: list[Task] = []
        self.current: Task | None = None
        self.step = 0
        self.choices: list[int] = []
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
        #: Lock-order edges first recorded by this execution.
        self._edges_here: set[tuple[str, str]] = set()
        #: Liveness: which tasks spin in a loop that changes nothing (hang).
        self.progress = ProgressMonitor((Execution,))

    # -- services for primitives -------------------------------------------

    def new_oid(self) -> int:
        """Return a fresh object id (deterministic within the execution)."""
        oid = self.next_oid
        self.next_oid = oid + 1
        return oid

    def spawn(self, name: str, body: TaskBody) -> Task:
        """Add a task; its code up to its first Op runs now."""
        if any(t.name == name for t in self.tasks):
            name = f"{name}#{len(self.tasks)}"
        task = Task(len(self.tasks), name, body)
        self.tasks.append(task)
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
        self.choices.append((value << 1) | 1)
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
        """Check the order of ``task`` going to take a lock of ``lock_class`` (lockdep).

        Called before a blocking acquisition waits, as the kernel's
        ``lock_acquire()`` is, so that the execution that deadlocks on an
        AB-BA inversion reports the inversion too.  Trylocks skip it: they
        cannot wait, and lockdep adds no dependency for them.
        """
        graph = self.lockdep
        for held in task.held:
            held_class: str = held.lockdep_class
            if held_class != lock_class:
                edge = (held_class, lock_class)
                if edge in graph.edges:
                    continue
                cycle = graph.add(held_class, lock_class)
                # Remember where the edge came from: an inversion may close
                # with an edge of a later execution, and its report must give
                # the schedule of this one too.
                graph.edges[edge] = Schedule(
                    seed=self.seed, choices=tuple(self.choices)
                )
                self._edges_here.add(edge)
                if cycle is not None:
                    self._report_inversion(held_class, lock_class, cycle)

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

    def _report_inversion(self, held: str, taken: str, cycle: list[str]) -> None:
        # A cycle is reported when its last edge is added, and edges are never
        # removed, so no cycle is reported twice.
        self.lockdep.reported.add(frozenset(cycle))
        elsewhere = ", ".join(
            f"{later} while holding {earlier}" for earlier, later in pairwise(cycle)
        )
        earlier = [e for e in pairwise(cycle) if e not in self._edges_here]
        message = (
            f"possible circular locking dependency: {taken} is taken while "
            f"holding {held}, and elsewhere {elsewhere}"
        )
        detail: tuple[str, ...] = ()
        if earlier:
            # The replay of this execution alone does not show the earlier
            # edges: say so, and give the schedule that does.
            message += (
                " (seen in another execution: this schedule alone does not show it)"
            )
            detail = (
                f"{held} -> {taken}: this execution, step {self.step}",
                *(
                    f"{a} -> {b}: an earlier execution, schedule "
                    f"{_choices_text(self.lockdep.edges.get((a, b)))}"
                    for a, b in earlier
                ),
            )
        self.report("lock-order", message, fatal=False, detail=detail)

    # -- the loop -------------------------------------------------------------

    def run(self) -> ExecutionResult:
        """Perform the execution and return its result."""
        global _current  # noqa: PLW0603 - the engine's one piece of ambient state
        saved = _current
        _current = self
        instance = None
        unspawned: list[tuple[str, TaskBody]] = []
        outcome = Outcome.PASSED
        try:
            with _blamed("building the world (the scenario's build function)"):
                instance = self.program()
                if not callable(getattr(instance, "tasks", None)):
                    raise ModelError(
                        f"{_definition_site(self.program)}the scenario's build "
                        f"function returned {instance!r}, not an Instance (such "
                        "as SimpleInstance)"
                    )
                self.instance = instance
                unspawned = list(instance.tasks())
                while unspawned:
                    name, body = unspawned[0]
                    del unspawned[0]
                    self.spawn(name, body)
            outcome = self._loop()
            if outcome is Outcome.PASSED and not self._has_fatal():
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

    def _has_fatal(self) -> bool:
        return any(f.fatal for f in self.findings)

    def _loop(self) -> Outcome:  # noqa: PLR0912 - one function: the per-step hot path
        tasks = self.tasks
        chooser = self.chooser
        capture = self.capture
        choices = self.choices
        ops = self.ops
        step_tasks = self.step_tasks
        progress = self.progress
        prev = -1
        solo = 0  # steps of the running task since another task's last step
        while True:
            enabled = [
                t.id
                for t in tasks
                if (op := t.pending) is not None and (op.guard is None or op.guard())
            ]
            if not enabled:
                return self._stuck()
            if progress.spinning:
                enabled = progress.runnable(enabled)
                if not enabled:
                    return self._hang()
            if self.step >= self.max_steps:
                return Outcome.STEP_LIMIT
            tid = chooser.next_task(self, enabled)
            if tid not in enabled:
                if tid == ABANDON and not self.findings:
                    return Outcome.REDUNDANT
                raise InternalError(f"strategy chose task {tid}, not in {enabled}")
            if prev != tid:
                if prev in enabled:
                    self.preemptions += 1
                solo = 0
                if progress.spinning:
                    progress.spinning.clear()
            else:
                solo += 1
            prev = tid
            task = tasks[tid]
            op = task.pending
            assert op is not None, "[hmmsim internal bug] enabled task without an Op"
            choices.append(tid << 1)
            ops.append(op)
            step_tasks.append(tid)
            self.current = task
            if capture and self.capture_locations:
                self._location = _await_site(task)
            try:
                self._resume(task)
            finally:
                # A step that ends in a fatal finding is still a step.
                if capture:
                    self._record_step(task, op)
                self.step += 1
            if solo >= SOLO_STEPS:
                progress.after_step(task, self.step - solo)

    def _resume(self, task: Task) -> None:
        try:
            op = task.coro.send(None)
        except StopIteration:
            task.pending = None
            self._task_finished(task)
            return
        except (_StopExecution, HmmsimError):
            # A fatal finding unwinding, or a tool or scenario error (strict
            # replay diverging inside a data choice): never a model exception.
            raise
        except HungTask as exc:
            task.pending = None
            self._task_hung(task, exc)
        except SystemExit as exc:
            raise ModelError(
                f"{_model_site(exc)}task {task.name} called sys.exit({exc.code!r}); "
                "a model reports problems as findings and never exits"
            ) from None
        except Exception as exc:
            task.pending = None
            self._task_raised(task, exc)
        finally:
            if self.unawaited is not None:
                message, self.unawaited = self.unawaited, None
                raise ScenarioError(
                    f"task {task.name!r}: {message} (a forgotten 'await' in the model?)"
                )
        if not isinstance(op, Op):
            task.coro.close()
            raise ScenarioError(
                f"task {task.name!r} awaited {op!r}, which is not an hmmsim primitive "
                "(model tasks may only await hmmsim.sync operations)"
            )
        task.pending = op

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
        with _blamed("the state snapshot (snap)"):
            self._append_step(task, op)

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


def _choices_text(schedule: Schedule | None) -> str:
    """Return ``seed S: t0 t1 d1 ...`` for a schedule in a finding's detail."""
    if schedule is None:  # pragma: no cover - every edge records its schedule
        return "unknown"
    data = schedule.to_json()
    choices = data["choices"]
    assert isinstance(choices, list), "[hmmsim internal bug] schedule JSON"
    return f"seed {schedule.seed}: {' '.join(str(c) for c in choices)}"


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


@contextmanager
def _blamed(what: str) -> Iterator[None]:
    """Turn an exception of model code called outside a task into a ModelError."""
    try:
        yield
    except (
        _StopExecution,
        HmmsimError,
        KeyboardInterrupt,
        BudgetExpired,
        MemoryExceeded,
    ):
        raise
    except HungTask as exc:
        raise ModelError(
            f"{_model_site(exc)}{what} ran for {exc.args[0]:g} s without returning"
        ) from None
    except (Exception, SystemExit) as exc:
        raise ModelError(
            f"{_model_site(exc)}{what} raised {type(exc).__name__}: {exc}"
        ) from None


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
            _current.unawaited = str(exc)
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
