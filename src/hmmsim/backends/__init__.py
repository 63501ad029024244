"""Where DPOR work units run: this process, forked workers, or a Dask cluster.

The engine splits one DPOR exploration into work units and merges their
reports (:mod:`hmmsim.engine.partition`); this layer only moves units to
workers and reports back.  :func:`run_jobs` drives the explorations of
several scenario variants at once through one :class:`Backend`, so the
units of every variant share the workers: idle workers take the next unit
of any variant, and a long variant no longer is the critical path of a
matrix.

Backends (all give the same results, byte for byte, as a serial run of the
same units: only wall-clock time differs):

* :class:`~hmmsim.backends.local.InlineBackend`: this process, one unit at
  a time (``--jobs 1``);
* :class:`~hmmsim.backends.local.ProcessBackend`: ``N`` forked worker
  processes (``--jobs N``); a unit whose worker dies runs again elsewhere;
* :class:`~hmmsim.backends.cluster.DaskBackend`: a Dask ``distributed``
  cluster (``--cluster ADDRESS`` or ``--cluster local:N``; the optional
  extra ``hmmsim[cluster]``); Dask retries a unit whose worker dies.

Layer: imports engine, scenarios, loader, config and errors, never report,
cli or parallel (``tests/whole_repo/test_layering.py``).
"""

from __future__ import annotations

from hmmsim.backends.base import Backend, Job, JobEvents, run_jobs

__all__ = ["Backend", "Job", "JobEvents", "make_backend", "run_jobs"]


def make_backend(*, workers: int, cluster: str | None = None) -> Backend:
    """Return the backend for ``--jobs workers`` and ``--cluster cluster``.

    Raises:
        ConfigError: a bad ``--cluster`` address, or ``distributed`` is not
            installed.
    """
    if cluster is not None:
        from hmmsim.backends.cluster import DaskBackend  # noqa: PLC0415 - optional extra

        return DaskBackend.connect(cluster)
    from hmmsim.backends.local import InlineBackend, ProcessBackend  # noqa: PLC0415

    if workers <= 1:
        return InlineBackend()
    return ProcessBackend(workers)
