"""The Dask backend: DPOR work units as tasks on a ``distributed`` cluster.

Needs the optional extra ``hmmsim[cluster]`` (docs/cluster.md).  Each task
carries the job by name (scenario, variant, user file) and config, plus the
unit; a worker finds the scenario in its own registry (or imports the user
file, which must exist at the same path there) and caches the program.
Dask balances the load (work stealing) and reruns a task whose worker died;
the coordinator, here, merges the reports in unit order, so the result is
the same as with any other backend.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any, Final

from hmmsim.backends.base import Job, JobSpec, Task, failure_of, run_task
from hmmsim.engine import Program, SnapshotCache
from hmmsim.errors import ConfigError

__all__ = ["DaskBackend", "parse_cluster"]

#: Tasks kept submitted per worker, so that Dask has work to balance.
PER_WORKER: Final = 3
#: Seconds to wait for a scheduler at ``--cluster ADDRESS``.
CONNECT_TIMEOUT: Final = 30

_programs: dict[JobSpec, tuple[Program, SnapshotCache]] = {}


def _remote(spec: JobSpec, task: Task) -> object:  # pragma: no cover - on a worker
    # Runs on a Dask worker process: the same code as run_task, tested there.
    known = _programs.get(spec)
    if known is None:
        known = _programs[spec] = (spec.program(), SnapshotCache())
    return run_task(known[0], spec.config, task, known[1])


def _distributed() -> Any:
    """Import ``distributed`` (the optional extra), untyped."""
    return importlib.import_module("distributed")


def parse_cluster(value: str) -> tuple[str, int]:
    """Parse ``--cluster``: ``("local", N)`` for ``local:N``, else ``(address, 0)``.

    Raises:
        ConfigError: ``local:`` without a positive worker count, or an empty value.
    """
    if value.startswith("local"):
        _, sep, count = value.partition(":")
        if not sep or not count.isdigit() or int(count) < 1:
            raise ConfigError(
                f"--cluster {value}: write local:N with N worker processes, e.g. local:2"
            )
        return "local", int(count)
    if not value.strip():
        raise ConfigError("--cluster needs a scheduler address or local:N")
    return value, 0


class DaskBackend:
    """Run tasks on a Dask cluster through a ``distributed.Client``.

    Attributes:
        client: the client.
        cluster: the LocalCluster this backend started, if any.
    """

    def __init__(self, client: Any, cluster: Any = None) -> None:
        """Use ``client`` (and close ``cluster`` with it, if given)."""
        self.client = client
        self.cluster = cluster
        workers = len(client.scheduler_info().get("workers", {})) or 1
        self.capacity = PER_WORKER * workers
        self._specs: list[JobSpec] = []
        self._futures: dict[Any, Task] = {}
        self._completed: Any = None
        self._run = uuid.uuid4().hex[:8]
        self._count = 0

    @classmethod
    def connect(cls, value: str) -> DaskBackend:
        """Start a LocalCluster (``local:N``) or connect to a scheduler address.

        Raises:
            ConfigError: ``distributed`` is missing, the value is bad, or no
                scheduler answers at the address.
        """
        address, workers = parse_cluster(value)
        try:
            distributed = _distributed()
        except ImportError:
            raise ConfigError(
                "--cluster needs the optional extra: pip install 'hmmsim[cluster]'"
            ) from None
        if address == "local":
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            return cls(distributed.Client(cluster), cluster)
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise ConfigError(f"--cluster {address}: {exc}") from None
        return cls(client)

    def start(self, jobs: Sequence[Job]) -> None:
        """Describe the jobs by name for the workers."""
        self._specs = [job.spec() for job in jobs]
        self._completed = _distributed().as_completed()

    def submit(self, task: Task) -> None:
        """Submit ``task`` as a Dask task (rerun by Dask if its worker dies)."""
        self._count += 1
        future = self.client.submit(
            _remote,
            self._specs[task.job],
            task,
            key=f"hmmsim-{self._run}-{task.job}-{task.index}-{self._count}",
            pure=False,
            retries=0,
        )
        self._futures[future] = task
        self._completed.add(future)

    def wait(self) -> tuple[Task, object]:
        """Return the next finished task and its result (or its Failure)."""
        future = next(self._completed)
        task = self._futures.pop(future)
        try:
            result = future.result()
        except (Exception, SystemExit) as exc:
            failure = failure_of(exc)
            if failure is None:
                raise
            result = failure
        finally:
            future.release()
        return task, result

    def close(self) -> None:
        """Cancel what is left, close the client and the cluster it started."""
        if self._futures:
            self.client.cancel(list(self._futures))
            self._futures.clear()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
