"""Backends on this machine: this process, or forked worker processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, Final

from hmmsim.backends.base import Failure, Job, Task, failure_of, run_task
from hmmsim.engine import Program, SnapshotCache
from hmmsim.engine.partition import copy_graph
from hmmsim.errors import InternalError

__all__ = ["InlineBackend", "ProcessBackend", "die_with_parent"]

#: A unit whose worker dies is run again, at most this many times.
RETRIES: Final = 2

_PR_SET_PDEATHSIG: Final = 1


def die_with_parent(parent: int) -> None:  # pragma: no cover - in a worker
    """Have the kernel kill this worker process when ``parent`` dies (Linux).

    Without it, workers of a parent killed by SIGKILL (or the OOM killer)
    would run on as orphans.
    """
    try:
        import ctypes  # noqa: PLC0415 - only workers need it

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's join still holds
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class InlineBackend:
    """Run each task in this process when it is awaited (``--jobs 1``)."""

    capacity = 1

    def __init__(self) -> None:
        """Start with no job."""
        self._jobs: Sequence[Job] = ()
        self._programs: dict[int, tuple[Program, SnapshotCache]] = {}
        self._pending: list[Task] = []

    def start(self, jobs: Sequence[Job]) -> None:
        """Remember the jobs."""
        self._jobs = jobs

    def submit(self, task: Task) -> None:
        """Queue ``task``; it runs in :meth:`wait`."""
        self._pending.append(task)

    def wait(self) -> tuple[Task, object]:
        """Run the oldest queued task and return its result (or its Failure)."""
        task = self._pending.pop(0)
        try:
            return task, _run(self._jobs, self._programs, task)
        except (Exception, SystemExit) as exc:
            failure = failure_of(exc)
            if failure is None:
                raise
            return task, failure

    def close(self) -> None:
        """Nothing to stop."""
        self._pending.clear()


def _run(
    jobs: Sequence[Job], programs: dict[int, tuple[Program, SnapshotCache]], task: Task
) -> object:
    job = jobs[task.job]
    known = programs.get(task.job)
    if known is None:
        known = programs[task.job] = (job.program(), SnapshotCache())
    program, snapshots = known
    if task.lockdep is not None:
        # The coordinator keeps the graph a unit starts from.
        task = Task(
            job=task.job,
            index=task.index,
            unit=task.unit,
            lockdep=copy_graph(task.lockdep),
        )
    return run_task(program, job.config, task, snapshots)


def _worker(
    jobs: Sequence[Job], conn: Connection, parent: int
) -> (
    None
):  # pragma: no cover - runs in a forked worker: covered through InlineBackend's _run
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    programs: dict[int, tuple[Program, SnapshotCache]] = {}
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            try:
                result: object = ("ok", _run(jobs, programs, task))
            except (Exception, SystemExit) as exc:
                failure = failure_of(exc)
                result = (
                    ("error", _portable(exc)) if failure is None else ("ok", failure)
                )
            conn.send(result)
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        conn.close()


def _portable(exc: BaseException) -> BaseException:
    import pickle  # noqa: PLC0415 - only on errors

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return InternalError(f"in a worker: {type(exc).__name__}: {exc}")
    return exc


class _Worker:
    __slots__ = ("conn", "process", "task")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.task: Task | None = None


class ProcessBackend:
    """Up to ``workers`` forked processes; each runs one task at a time.

    Idle workers get the next task as soon as they finish one (dynamic load
    balancing).  A worker that dies (killed, out of memory) is replaced and
    its task runs again on the new one, at most :data:`RETRIES` times.
    Workers ignore SIGINT: the parent stops them.
    """

    def __init__(self, workers: int) -> None:
        """Prepare ``workers`` processes (forked by :meth:`start`)."""
        if workers < 1:
            raise InternalError(f"a process backend needs workers, not {workers}")
        self.capacity = workers
        self._jobs: Sequence[Job] = ()
        self._workers: list[_Worker] = []
        self._context = multiprocessing.get_context("fork")
        self._retries: dict[tuple[int, int], int] = {}
        self._failed: list[tuple[Task, Failure]] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for tests that kill one)."""
        return [w.process.pid for w in self._workers]

    def start(self, jobs: Sequence[Job]) -> None:
        """Remember the jobs; workers are forked as tasks need them (they inherit the jobs).

        A run with fewer units than workers (a small scenario) forks only
        as many workers as it has units in flight.
        """
        self._jobs = jobs

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker, args=(self._jobs, child, os.getpid()), daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def submit(self, task: Task) -> None:
        """Send ``task`` to an idle worker."""
        worker = next((w for w in self._workers if w.task is None), None)
        if worker is None and len(self._workers) < self.capacity:
            worker = self._spawn()
            self._workers.append(worker)
        if worker is None:
            raise InternalError("task submitted while every worker is busy")
        worker.task = task
        worker.conn.send(task)

    def wait(self) -> tuple[Task, object]:
        """Return the next finished task; rerun the task of a dead worker."""
        while True:
            if self._failed:
                return self._failed.pop(0)
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                raise InternalError("waiting with no task submitted")
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                task = worker.task
                assert task is not None
                if worker.conn in ready:
                    try:
                        status, payload = worker.conn.recv()
                    except EOFError:
                        self._replace(worker)
                        continue
                    worker.task = None
                    if status == "error":
                        raise payload
                    return task, payload
                if worker.process.sentinel in ready:
                    self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        task = worker.task
        assert task is not None
        worker.conn.close()
        worker.process.join()
        tries = self._retries.get(task.key, 0) + 1
        self._retries[task.key] = tries
        replacement = self._spawn()
        self._workers[self._workers.index(worker)] = replacement
        if tries > RETRIES:
            # Hand the task back as a failure from the fresh, idle worker.
            self._failed.append(
                (
                    task,
                    Failure(
                        f"worker process died {tries} times running unit "
                        f"{task.index} (exit code {worker.process.exitcode})"
                    ),
                )
            )
            return
        replacement.task = task
        replacement.conn.send(task)

    def close(self) -> None:
        """Stop the workers (finish idle ones, terminate busy ones)."""
        for worker in self._workers:
            try:
                if worker.task is None:
                    worker.conn.send(None)
                else:
                    worker.process.terminate()
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():  # pragma: no cover - a stuck worker
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers = []
