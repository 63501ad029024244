"""Explore several scenario variants at once, in forked worker processes.

``hmmsim check --all`` explores every (scenario, variant) *unit* of the
matrix; the units are independent, so :func:`explore_units` hands them to
``workers`` processes.  Each worker takes the next unit not yet taken (a
shared counter), explores it with :func:`hmmsim.service.run_unit` and sends the
result back through its own pipe.  The caller gets the runs **in unit
order**, whatever order they finished in, and every exploration is
deterministic, so the reports (and the JSON, byte for byte) are the same as
those of a serial run.

Workers are forked (the ``fork`` start method), so they inherit everything
already loaded: the registry in use, scenarios of a user file, test
doubles.  Where ``fork`` does not exist the units run one after the other
in this process.  No thread is started before the workers are forked.

Ctrl-C and SIGTERM: the workers ignore SIGINT; the parent catches both
signals, sets a shared *stop* event, and each worker ends its exploration
after the current execution with exit reason ``interrupted`` (through the
progress callback, as a KeyboardInterrupt that
:func:`hmmsim.engine.explore` turns into that exit reason) and takes no
further unit.  A worker still busy :data:`STOP_GRACE_S` seconds later (a
long execution) is terminated, and its unit is reported ``interrupted``
with the executions it had reported.  A unit that ends ``interrupted`` on
its own (a model that raises KeyboardInterrupt) stops the others too, as in
a serial run.

Results are never lost: a worker that dies (SIGKILL, the OOM killer, a
crash of the interpreter) turns its unit into an ``error`` row that says
how it died and keeps the executions it had reported; the other workers
take the remaining units.  A model error is an ``error`` row already
(:func:`hmmsim.service.run_unit`).  Any other error in a worker (a divergent
replay, an internal error) stops the others and is raised again here.

No orphans: every worker asks the kernel to kill it when the parent dies
(``PR_SET_PDEATHSIG`` on Linux), so even a parent killed with SIGKILL
leaves no worker exploring on its own, and the parent joins every worker
before it returns.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any, Final, Protocol, runtime_checkable

# Imported here, not in the forked worker: a fork may copy an import lock that
# a parent thread holds, and an import in the child would then hang.
from hmmsim.backends.local import die_with_parent
from hmmsim.engine import ExitReason, ExplorationResult, Trace, replay
from hmmsim.engine.partition import Estimate
from hmmsim.errors import InternalError, ModelError
from hmmsim.runs import ScenarioRun
from hmmsim.service import Unit, error_run, run_unit

__all__ = [
    "STOP_GRACE_S",
    "EstimateUnitEvents",
    "StatEvents",
    "Unit",
    "UnitEvents",
    "available_cpus",
    "can_fork",
    "explore_split",
    "explore_units",
]

#: Seconds between two progress messages of one worker.
_PROGRESS_EVERY: Final = 0.2

#: Seconds a worker may take to stop after the parent asked it to.
STOP_GRACE_S: Final = 2.0

#: ``prctl`` option that sends a signal to this process when its parent dies.


class UnitEvents(Protocol):
    """What the caller is told while units run (progress bars, lines)."""

    def started(self, index: int, unit: Unit) -> None:
        """Unit ``index`` started."""

    def progressed(self, index: int, executions: int) -> None:
        """Unit ``index`` has run ``executions`` executions."""

    def finished(self, index: int, done: ScenarioRun) -> None:
        """Unit ``index`` finished (possibly interrupted)."""


@runtime_checkable
class StatEvents(Protocol):
    """Optional for UnitEvents: also told the strategy's open backtrack points."""

    def measured(self, index: int, open_points: int) -> None:
        """Unit ``index`` has ``open_points`` backtrack points left to explore (DPOR)."""


@runtime_checkable
class EstimateUnitEvents(Protocol):
    """Optional for UnitEvents: also told how large a split DPOR run looks."""

    def estimated(self, index: int, unit: Unit, estimate: Estimate) -> None:
        """Unit ``index`` looks this large after its first work unit."""


def _tell_stats(events: object, index: int, open_points: int | None) -> None:
    if open_points is not None and isinstance(events, StatEvents):
        events.measured(index, open_points)


def available_cpus() -> int:
    """Return the number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Return whether worker processes can be forked on this platform."""
    return "fork" in multiprocessing.get_all_start_methods()


class _Sender(Protocol):
    def send(self, obj: Any) -> None: ...


def _portable(exc: BaseException) -> BaseException:
    """Return ``exc`` if it survives pickling, else an InternalError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return InternalError(f"in a worker: {type(exc).__name__}: {exc}")
    return exc


def work(
    units: Sequence[Unit],
    take: Callable[[], int | None],
    stopped: Callable[[], bool],
    conn: _Sender,
) -> None:
    """Explore units until none is left or ``stopped()``; report through ``conn``.

    The body of a worker process, callable in-process for tests.  Messages:
    ``("start", i, None)``, ``("progress", i, (executions, open_points))``,
    ``("done", i, (result, traces))`` and ``("error", i, exception)``.

    Args:
        units: every unit of the run.
        take: return the index of the next unit to explore (None: no more).
        stopped: whether the parent asked the workers to stop.
        conn: where to send the messages.
    """
    while not stopped():
        index = take()
        if index is None:
            return
        conn.send(("start", index, None))
        last = time.monotonic()

        def tick(result: ExplorationResult, index: int = index) -> None:
            nonlocal last
            if stopped():
                raise KeyboardInterrupt
            now = time.monotonic()
            if now - last >= _PROGRESS_EVERY:
                last = now
                conn.send(("progress", index, (result.executions, result.open_points)))

        try:
            done = run_unit(units[index], tick)
        except Exception as exc:
            conn.send(("error", index, _portable(exc)))
            return
        conn.send(("done", index, (done.result, done.traces)))
        if done.result.exit_reason is ExitReason.INTERRUPTED:
            return


def _worker_main(
    units: Sequence[Unit],
    counter: Any,
    stop: Any,
    conn: Connection,
    parent: int,
) -> None:  # pragma: no cover - runs in a forked worker, tested through work()
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def take() -> int | None:
        with counter.get_lock():
            index = int(counter.value)
            if index >= len(units):
                return None
            counter.value = index + 1
            return index

    try:
        work(units, take, stop.is_set, conn)
    finally:
        conn.close()


@dataclass(slots=True)
class _Collector:
    """The parent's side: turns messages into runs and events."""

    units: Sequence[Unit]
    events: UnitEvents
    stop: Any
    runs: dict[int, ScenarioRun]
    error: BaseException | None = None
    interrupted: bool = False
    #: When the parent asked the workers to stop (monotonic), if it did.
    stopping: float | None = None
    #: The unit each worker (by its reader) is exploring, and its last count.
    current: dict[int, int] = field(default_factory=dict)
    executions: dict[int, int] = field(default_factory=dict)

    def request_stop(self) -> None:
        """Ask every worker to stop after its current execution."""
        if self.stopping is None:
            self.stopping = time.monotonic()
        self.stop.set()

    def handle(self, worker: int, message: tuple[str, int, Any]) -> None:
        kind, index, payload = message
        unit = self.units[index]
        if kind == "start":
            self.current[worker] = index
            self.events.started(index, unit)
        elif kind == "progress":
            executions, open_points = payload
            self.executions[index] = executions
            self.events.progressed(index, executions)
            _tell_stats(self.events, index, open_points)
        elif kind == "done":
            result, traces = payload
            self._finish(index, _scenario_run(unit, result, traces))
            if result.exit_reason is ExitReason.INTERRUPTED:
                self.interrupted = True
                self.request_stop()
        else:  # "error"
            self.current.pop(worker, None)
            if self.error is None:
                self.error = payload
            self.request_stop()

    def _finish(self, index: int, done: ScenarioRun) -> None:
        self.runs[index] = done
        self.current = {w: i for w, i in self.current.items() if i != index}
        self.events.finished(index, done)

    def lost(self, worker: int, how: str | None) -> None:
        """The worker's pipe closed: report its unfinished unit, if any.

        Args:
            worker: the worker.
            how: how its process ended (None: the parent terminated it on
                purpose, after a stop request).
        """
        index = self.current.pop(worker, None)
        if index is None or index in self.runs:
            return
        unit = self.units[index]
        partial = ExplorationResult(
            strategy=unit.config.strategy,
            exit_reason=ExitReason.INTERRUPTED if how is None else ExitReason.ERROR,
            executions=self.executions.get(index, 0),
            complete=False,
        )
        if how is None:
            self._finish(index, _scenario_run(unit, partial, ()))
        else:
            self._finish(index, error_run(unit, f"worker process {how}", partial))


def _how_it_died(process: Any) -> str:
    """Say how a worker process ended (after it was joined)."""
    code = process.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (the OOM killer sends it when memory runs out)" if code == -9 else ""
        return f"died: killed by {name}{hint}"
    return f"died: exited with status {code} in the middle of a unit"


def _scenario_run(
    unit: Unit, result: ExplorationResult, traces: tuple[Trace | None, ...]
) -> ScenarioRun:
    return ScenarioRun(
        scenario=unit.scenario,
        variant=unit.variant,
        config=unit.config,
        result=result,
        traces=traces,
        file=unit.file,
    )


def _serial(
    units: Sequence[Unit], events: UnitEvents
) -> tuple[list[ScenarioRun], bool]:
    runs: list[ScenarioRun] = []
    for index, unit in enumerate(units):
        events.started(index, unit)

        def tick(result: ExplorationResult, index: int = index) -> None:
            events.progressed(index, result.executions)
            _tell_stats(events, index, result.open_points)

        done = run_unit(unit, tick)
        runs.append(done)
        events.finished(index, done)
        if done.result.exit_reason is ExitReason.INTERRUPTED:
            return runs, True
    return runs, False


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """In this process, let SIGTERM interrupt an exploration as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def explore_units(
    units: Sequence[Unit], events: UnitEvents, *, workers: int
) -> tuple[list[ScenarioRun], bool]:
    """Explore ``units`` with up to ``workers`` processes; return runs in unit order.

    Returns:
        The runs that finished, were interrupted or ended in an error, in
        unit order (units not started after an interrupt are left out), and
        whether the run was interrupted.

    Raises:
        Whatever exploring a unit raised, other than a model error (the
        first error, by arrival).
    """
    workers = min(workers, len(units))
    if workers <= 1 or not can_fork():
        with _sigterm_interrupts():
            return _serial(units, events)
    context = multiprocessing.get_context("fork")
    counter = context.Value("i", 0)
    stop = context.Event()
    collector = _Collector(units=units, events=events, stop=stop, runs={})
    readers: dict[Connection, int] = {}
    processes = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        collector.interrupted = True
        collector.request_stop()

    previous = {
        signum: signal.signal(signum, on_signal)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        for number in range(workers):
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_main,
                args=(units, counter, stop, writer, os.getpid()),
                daemon=True,
            )
            process.start()
            writer.close()
            readers[reader] = number
            processes.append(process)
        _collect(collector, readers, processes)
    finally:
        for process in processes:
            if process.is_alive():  # only after an error escaped the loop
                process.kill()
            process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if collector.error is not None:
        raise collector.error
    if not collector.interrupted:
        for index, unit in enumerate(units):
            if index not in collector.runs:  # every worker died before it
                collector.runs[index] = error_run(
                    unit, "not explored: its worker process died"
                )
    return [collector.runs[i] for i in sorted(collector.runs)], collector.interrupted


def _collect(
    collector: _Collector, readers: dict[Connection, int], processes: list[Any]
) -> None:
    """Read the workers' messages until every pipe is closed."""
    terminated: set[int] = set()
    while readers:
        for reader in wait(list(readers), timeout=0.2):
            assert isinstance(reader, Connection), "[hmmsim internal bug] reader"
            number = readers[reader]
            try:
                collector.handle(number, reader.recv())
            except (EOFError, OSError):
                del readers[reader]
                process = processes[number]
                process.join(STOP_GRACE_S)
                how = None if number in terminated else _how_it_died(process)
                collector.lost(number, how)
        stopping = collector.stopping
        if stopping is not None and time.monotonic() - stopping > STOP_GRACE_S:
            for number in readers.values():
                if processes[number].is_alive() and number not in terminated:
                    terminated.add(number)
                    processes[number].kill()


# -- DPOR work units on a backend (hmmsim.backends) ----------------------------


class _JobEvents:
    """Adapts the backends' job events to the caller's unit events."""

    def __init__(self, units: Sequence[Unit], events: UnitEvents) -> None:
        self.units = units
        self.events = events
        self.runs: dict[int, ScenarioRun] = {}

    def started(self, index: int) -> None:
        self.events.started(index, self.units[index])

    def progressed(self, index: int, executions: int) -> None:
        self.events.progressed(index, executions)

    def estimated(self, index: int, estimate: Estimate) -> None:
        if isinstance(self.events, EstimateUnitEvents):
            self.events.estimated(index, self.units[index], estimate)

    def failed(self, index: int, reason: str, partial: ExplorationResult) -> None:
        done = error_run(self.units[index], reason, partial)
        self.runs[index] = done
        self.events.finished(index, done)

    def finished(self, index: int, result: ExplorationResult) -> None:
        unit = self.units[index]
        config = unit.config
        try:
            program = unit.scenario.program(unit.variant)
            traces = tuple(
                replay(
                    program,
                    cx.schedule,
                    capture=True,
                    capture_locations=config.capture_locations,
                    max_steps=max(config.max_steps, len(cx.schedule.tasks)),
                    task_timeout=config.task_timeout_s,
                ).trace
                for cx in result.counterexamples
            )
        except ModelError as exc:  # as in service.run: an error row, counts kept
            self.failed(index, f"model error: {exc}", result)
            return
        done = _scenario_run(unit, result, traces)
        self.runs[index] = done
        self.events.finished(index, done)


def explore_split(
    units: Sequence[Unit],
    events: UnitEvents,
    *,
    workers: int,
    cluster: str | None = None,
) -> tuple[list[ScenarioRun], bool]:
    """Explore ``units``, each DPOR exploration split into work units.

    The work units of every scenario variant share ``workers`` processes
    (``--jobs``), or the Dask cluster ``cluster`` (``--cluster``); the
    results are the same for every number of workers and every backend
    (:mod:`hmmsim.engine.partition`).  Other strategies run as one task each.

    Returns:
        The runs in unit order (units not started after an interrupt are
        left out), and whether the run was interrupted.

    Raises:
        ConfigError: a bad ``--cluster`` value, or its extra is missing.
        Whatever exploring a unit raised.
    """
    from hmmsim.backends import Job, make_backend, run_jobs  # noqa: PLC0415

    if not units:  # every run was answered by the store's saved schedules
        return [], False
    backend = make_backend(workers=workers, cluster=cluster)
    jobs = [
        Job(scenario=u.scenario, variant=u.variant, config=u.config, file=u.file)
        for u in units
    ]
    adapter = _JobEvents(units, events)
    with _sigterm_interrupts():
        _, interrupted = run_jobs(jobs, backend, adapter)
    return [adapter.runs[i] for i in sorted(adapter.runs)], interrupted
