"""The backend interface and the driver that runs jobs through one backend."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    ExitReason,
    ExplorationResult,
    Program,
    SnapshotCache,
    explore,
)
from hmmsim.engine.execution import LockGraph
from hmmsim.engine.partition import (
    SLICE_EXECUTIONS,
    DporCoordinator,
    DporUnit,
    Estimate,
    UnitReport,
    explore_dpor_unit,
)
from hmmsim.errors import ConfigError, ModelError
from hmmsim.scenarios import Scenario, get

__all__ = [
    "Backend",
    "EstimateEvents",
    "Failure",
    "Job",
    "JobEvents",
    "Task",
    "failure_of",
    "run_jobs",
    "run_task",
]


@dataclass(frozen=True, slots=True)
class Failure:
    """A task that could not finish: the result a backend hands back instead.

    A model error (a non-deterministic model, a build that raises), a model
    that called ``sys.exit``, or a worker that kept dying.  The driver turns
    it into an ``error`` row for the task's job and stops that job only;
    the other jobs go on (results are never lost).

    Attributes:
        reason: one line saying what went wrong, for the error row.
    """

    reason: str


def failure_of(exc: BaseException) -> Failure | None:
    """Return the :class:`Failure` that ``exc``, raised by a task, stands for.

    None: ``exc`` is not the model's fault (an internal error, Ctrl-C), and
    the caller re-raises it.
    """
    if isinstance(exc, ModelError):
        return Failure(f"model error: {exc}")
    if isinstance(exc, SystemExit):
        return Failure(f"model error: the model called sys.exit({exc.code!r})")
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One scenario variant to explore, with its resolved config.

    Attributes:
        scenario: the scenario (a worker that does not share this process's
            memory finds it again by name, or in ``file``).
        variant: the variant.
        config: the resolved config.
        file: the user file that defines the scenario, if any.
    """

    scenario: Scenario
    variant: str
    config: ExploreConfig
    file: str | None = None

    @property
    def split(self) -> bool:
        """Whether the job splits into DPOR work units (else it is one task)."""
        return self.config.strategy == "dpor"

    def program(self) -> Program:
        """Return the job's program."""
        return self.scenario.program(self.variant)

    def spec(self) -> JobSpec:
        """Return what a worker on another machine needs to find the job."""
        return JobSpec(
            name=self.scenario.name,
            variant=self.variant,
            config=self.config,
            file=self.file,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A job by name, for workers that do not share this process's memory."""

    name: str
    variant: str
    config: ExploreConfig
    file: str | None = None

    def program(self) -> Program:
        """Find the scenario (registry or user file) and return its program."""
        if self.file is None:
            return get(self.name).program(self.variant)
        from hmmsim.loader import load_file, select  # noqa: PLC0415 - rarely needed

        (scenario,) = select(load_file(self.file), self.name, self.file)
        return scenario.program(self.variant)


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One piece of work: a DPOR unit of a job, or a whole job (``unit`` None)."""

    job: int
    index: int
    unit: DporUnit | None = None
    lockdep: LockGraph | None = None

    @property
    def key(self) -> tuple[int, int]:
        """Identify the task (job, unit number; -1: the whole job)."""
        return (self.job, self.index)


def run_task(
    program: Program,
    config: ExploreConfig,
    task: Task,
    snapshots: SnapshotCache | None = None,
) -> object:
    """Run ``task`` of a job of ``program`` and return its result (in a worker).

    ``snapshots``: the set-up snapshot cache a worker keeps per program, so
    that its units restore one post-set-up world instead of each taking its own.

    Returns:
        A :class:`~hmmsim.engine.partition.UnitReport` for a DPOR unit, an
        :class:`~hmmsim.engine.ExplorationResult` for a whole job.
    """
    if task.unit is None:
        return explore(program, config)
    return explore_dpor_unit(
        program,
        task.unit,
        config,
        lockdep=task.lockdep,
        slice_executions=SLICE_EXECUTIONS,
        snapshots=snapshots,
    )


class Backend(Protocol):
    """Runs tasks somewhere and hands back their results.

    Attributes:
        capacity: how many tasks to keep submitted at once (the number of
            workers for a pool; more for a cluster that balances load itself).
    """

    capacity: int

    def start(self, jobs: Sequence[Job]) -> None:
        """Prepare for ``jobs`` (fork workers, connect...)."""

    def submit(self, task: Task) -> None:
        """Start ``task``."""

    def wait(self) -> tuple[Task, object]:
        """Return a finished task and its result (raise what the task raised)."""
        ...

    def close(self) -> None:
        """Stop every worker this backend started."""


@runtime_checkable
class EstimateEvents(Protocol):
    """Optional for JobEvents: also told the estimated size of a split job."""

    def estimated(self, index: int, estimate: Estimate) -> None:
        """Job ``index`` looks this large after its first unit (once per job)."""


class JobEvents(Protocol):
    """What the caller is told while jobs run."""

    def started(self, index: int) -> None:
        """Job ``index`` got its first task."""

    def progressed(self, index: int, executions: int) -> None:
        """Job ``index`` has ``executions`` executions merged so far."""

    def finished(self, index: int, result: ExplorationResult) -> None:
        """Job ``index`` is done (possibly interrupted)."""

    def failed(self, index: int, reason: str, partial: ExplorationResult) -> None:
        """Job ``index`` stopped on a :class:`Failure`; ``partial`` is what it merged."""


class _Run:
    """The driver's state: one coordinator per split job, a queue of tasks."""

    def __init__(self, jobs: Sequence[Job], events: JobEvents) -> None:
        self.jobs = jobs
        self.events = events
        self.coordinators: list[DporCoordinator | None] = []
        self.results: dict[int, ExplorationResult] = {}
        # Tasks by (job, unit number): idle workers take the earliest job's
        # next unit, so jobs finish in order (one at a time in this process)
        # and a later job only fills workers the earlier ones cannot use yet.
        self.queue: list[tuple[int, int, Task]] = []
        self.started: set[int] = set()
        self.failed: set[int] = set()
        for index, job in enumerate(jobs):
            if job.split:
                coordinator = DporCoordinator(job.config)
                self.coordinators.append(coordinator)
                self._enqueue(index, coordinator)
            else:
                self.coordinators.append(None)
                self._push(Task(job=index, index=-1))

    def _push(self, task: Task) -> None:
        heapq.heappush(self.queue, (task.job, task.index, task))

    def _enqueue(self, index: int, coordinator: DporCoordinator) -> None:
        for i, unit, graph in coordinator.take():
            self._push(Task(job=index, index=i, unit=unit, lockdep=graph))

    def next_task(self) -> Task | None:
        while self.queue:
            _, _, task = heapq.heappop(self.queue)
            coordinator = self.coordinators[task.job]
            if task.job in self.failed or (
                coordinator is not None and coordinator.is_done()
            ):
                continue  # the job stopped (a violation with stop_on_first ...)
            if task.job not in self.started:
                self.started.add(task.job)
                self.events.started(task.job)
            return task
        return None

    def finish(self, index: int) -> None:
        coordinator = self.coordinators[index]
        assert coordinator is not None, "[hmmsim internal bug] finishing a whole job"
        result = coordinator.finish(self.jobs[index].program())
        self.results[index] = result
        self.events.finished(index, result)

    def fail(self, index: int, failure: Failure) -> None:
        """Stop job ``index`` on ``failure``; keep what it merged so far."""
        self.failed.add(index)
        coordinator = self.coordinators[index]
        partial = ExplorationResult(
            strategy=self.jobs[index].config.strategy,
            exit_reason=ExitReason.ERROR,
            complete=False,
        )
        if coordinator is not None:
            # Keep the counts merged so far; the counterexamples are left out
            # (replaying them for a report could fail the same way).
            coordinator.interrupt()
            partial.executions = coordinator.result.executions
            partial.steps = coordinator.result.steps
            partial.outcomes = dict(coordinator.result.outcomes)
        self.results[index] = partial
        self.events.failed(index, failure.reason, partial)

    def accept(self, task: Task, payload: object) -> None:
        if task.job in self.failed:
            return  # a unit still running when its job failed
        if isinstance(payload, Failure):
            self.fail(task.job, payload)
            return
        coordinator = self.coordinators[task.job]
        if coordinator is None:
            assert isinstance(payload, ExplorationResult), "[hmmsim internal bug]"
            self.results[task.job] = payload
            self.events.finished(task.job, payload)
            return
        if coordinator.is_done():
            return  # a unit still running when its job stopped
        assert isinstance(payload, UnitReport), "[hmmsim internal bug]"
        estimated = coordinator.estimate
        coordinator.accept(task.index, payload)
        if (
            estimated is None
            and coordinator.estimate is not None
            and isinstance(self.events, EstimateEvents)
        ):
            self.events.estimated(task.job, coordinator.estimate)
        self.events.progressed(task.job, coordinator.result.executions)
        if coordinator.is_done():
            self.finish(task.job)
        else:
            self._enqueue(task.job, coordinator)

    def interrupt(self) -> None:
        for index, coordinator in enumerate(self.coordinators):
            if index in self.results or index not in self.started:
                continue
            if coordinator is None:
                result = ExplorationResult(
                    strategy=self.jobs[index].config.strategy,
                    exit_reason=ExitReason.INTERRUPTED,
                    complete=False,
                )
                self.results[index] = result
                self.events.finished(index, result)
            else:
                coordinator.interrupt()
                self.finish(index)


def run_jobs(
    jobs: Sequence[Job], backend: Backend, events: JobEvents
) -> tuple[dict[int, ExplorationResult], bool]:
    """Explore ``jobs`` through ``backend``; return results by job and interrupted.

    Jobs that never started (after an interrupt) have no result.  The
    backend is closed on return.

    Raises:
        Whatever a task raised (a divergent replay, an internal error).
    """
    if not jobs:
        raise ConfigError("no job to run")
    run = _Run(jobs, events)
    interrupted = False
    in_flight = 0
    try:
        backend.start(jobs)
        while True:
            while in_flight < backend.capacity:
                task = run.next_task()
                if task is None:
                    break
                backend.submit(task)
                in_flight += 1
            if not in_flight:
                break
            task, payload = backend.wait()
            in_flight -= 1
            run.accept(task, payload)
            if any(
                r.exit_reason is ExitReason.INTERRUPTED for r in run.results.values()
            ):
                raise KeyboardInterrupt  # a unit was interrupted: stop them all
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM, through the caller): stop handing out units; each
        # started job keeps what its processed units found.
        interrupted = True
        run.interrupt()
    finally:
        backend.close()
    return run.results, interrupted
