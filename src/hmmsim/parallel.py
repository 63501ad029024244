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

Ctrl-C: the workers ignore SIGINT; the parent catches it, sets a shared
*stop* event, and each worker ends its exploration after the current
execution with exit reason ``interrupted`` (through the progress callback,
as a KeyboardInterrupt that :func:`hmmsim.engine.explore` turns into that
exit reason) and takes no further unit.  A unit that ends ``interrupted``
on its own (a model that raises KeyboardInterrupt) stops the others too,
as in a serial run.  An error in a worker (a divergent replay, an internal
error) stops the others and is raised again here.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any, Final, Protocol

from hmmsim.engine import ExitReason, ExplorationResult, Trace
from hmmsim.errors import InternalError
from hmmsim.runs import ScenarioRun
from hmmsim.service import Unit, run_unit

__all__ = ["Unit", "UnitEvents", "available_cpus", "can_fork", "explore_units"]

#: Seconds between two progress messages of one worker.
_PROGRESS_EVERY: Final = 0.2


class UnitEvents(Protocol):
    """What the caller is told while units run (progress bars, lines)."""

    def started(self, index: int, unit: Unit) -> None:
        """Unit ``index`` started."""

    def progressed(self, index: int, executions: int) -> None:
        """Unit ``index`` has run ``executions`` executions."""

    def finished(self, index: int, done: ScenarioRun) -> None:
        """Unit ``index`` finished (possibly interrupted)."""


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
    ``("start", i, None)``, ``("progress", i, executions)``,
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
                conn.send(("progress", index, result.executions))

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
) -> None:  # pragma: no cover - runs in a forked worker, tested through work()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

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

    def handle(self, message: tuple[str, int, Any]) -> None:
        kind, index, payload = message
        unit = self.units[index]
        if kind == "start":
            self.events.started(index, unit)
        elif kind == "progress":
            self.events.progressed(index, payload)
        elif kind == "done":
            result, traces = payload
            done = _scenario_run(unit, result, traces)
            self.runs[index] = done
            self.events.finished(index, done)
            if result.exit_reason is ExitReason.INTERRUPTED:
                self.interrupted = True
                self.stop.set()
        else:  # "error"
            if self.error is None:
                self.error = payload
            self.stop.set()


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

        done = run_unit(unit, tick)
        runs.append(done)
        events.finished(index, done)
        if done.result.exit_reason is ExitReason.INTERRUPTED:
            return runs, True
    return runs, False


def explore_units(
    units: Sequence[Unit], events: UnitEvents, *, workers: int
) -> tuple[list[ScenarioRun], bool]:
    """Explore ``units`` with up to ``workers`` processes; return runs in unit order.

    Returns:
        The runs that finished or were interrupted, in unit order (units not
        started are left out), and whether the run was interrupted.

    Raises:
        Whatever exploring a unit raised (the first error, by arrival).
    """
    workers = min(workers, len(units))
    if workers <= 1 or not can_fork():
        return _serial(units, events)
    context = multiprocessing.get_context("fork")
    counter = context.Value("i", 0)
    stop = context.Event()
    readers: list[Connection] = []
    processes = []
    for _ in range(workers):
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker_main, args=(units, counter, stop, writer), daemon=True
        )
        process.start()
        writer.close()
        readers.append(reader)
        processes.append(process)
    collector = _Collector(units=units, events=events, stop=stop, runs={})

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        collector.interrupted = True
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        while readers:
            ready = wait(readers)
            for reader in [r for r in readers if r in ready]:
                try:
                    collector.handle(reader.recv())
                except EOFError:
                    readers.remove(reader)
    finally:
        signal.signal(signal.SIGINT, previous)
        for process in processes:
            process.join()
    if collector.error is not None:
        raise collector.error
    return [collector.runs[i] for i in sorted(collector.runs)], collector.interrupted
