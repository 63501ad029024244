"""Tests for hmmsim.backends: the same results on every backend, and dead workers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hmmsim.backends import Job, make_backend, run_jobs
from hmmsim.backends.cluster import parse_cluster
from hmmsim.backends.local import InlineBackend, ProcessBackend
from hmmsim.engine import ExitReason, ExplorationResult
from hmmsim.errors import ConfigError
from hmmsim.loader import load_file
from hmmsim.scenarios import get
from hmmsim.service import resolve_config

KILLER = textwrap.dedent(  # a user model file
    '''
    import os, signal
    from hmmsim.api import READ_ONCE, WRITE_ONCE, Cell, Finding, SimpleInstance, scenario

    MARKER = {marker!r}

    @scenario(name="killer", title="Kills its worker once", variants=("racy",))
    def killer(variant: str) -> SimpleInstance:
        """Three racing increments; the first run in a worker kills it."""
        cell = Cell("counter", 0)

        async def incr() -> None:
            value = await READ_ONCE(cell)
            await WRITE_ONCE(cell, value + 1)

        async def first() -> None:
            try:
                fd = os.open(MARKER, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                if os.getpid() != {parent}:
                    os.kill(os.getpid(), signal.SIGKILL)
            await incr()

        def end() -> list[Finding]:
            if cell.value == 3:
                return []
            return [Finding(kind="lost-update", message="lost", step=-1)]

        return SimpleInstance(
            task_list=[("a", first()), ("b", incr()), ("c", incr())], end=end
        )
    '''
)


class _Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.reasons: list[str] = []
        self.partials: list[ExplorationResult] = []

    def started(self, index: int) -> None:
        self.log.append(("started", index))

    def progressed(self, index: int, executions: int) -> None:
        del executions

    def finished(self, index: int, result: ExplorationResult) -> None:
        del result
        self.log.append(("finished", index))

    def failed(self, index: int, reason: str, partial: ExplorationResult) -> None:
        self.log.append(("failed", index))
        self.reasons.append(reason)
        self.partials.append(partial)


def _jobs(*names: str) -> list[Job]:
    jobs = []
    for name in names:
        scenario_name, variant = name.split("/")
        scenario = get(scenario_name)
        jobs.append(
            Job(scenario=scenario, variant=variant, config=resolve_config(scenario))
        )
    return jobs


def _summary(results: dict[int, ExplorationResult]) -> list[tuple[object, ...]]:
    return [
        (
            r.exit_reason,
            r.executions,
            r.steps,
            sorted(r.outcomes.items()),
            [(c.kind, c.execution, c.schedule.choices) for c in r.counterexamples],
        )
        for _, r in sorted(results.items())
    ]


def _killer_job(tmp_path: Path, parent: int) -> Job:
    path = tmp_path / "killer.py"
    path.write_text(KILLER.format(marker=str(tmp_path / "killed"), parent=parent))
    (scenario,) = load_file(path)
    config = resolve_config(scenario).replace(shrink=False)
    return Job(scenario=scenario, variant="racy", config=config, file=str(path))


class TestLocalBackends:
    """Forked workers give what this process gives."""

    def test_process_pool_matches_inline(self) -> None:
        """Two workers, one in-process run: the same results, job by job."""
        jobs = _jobs("fault-vs-oom-reap/v5.3", "exit-vs-fault/v5.3")
        jobs.append(
            Job(
                scenario=jobs[1].scenario,
                variant="v5.5",
                config=jobs[1].config.replace(strategy="pct", max_executions=20),
            )
        )
        events = _Events()
        inline, interrupted = run_jobs(jobs, InlineBackend(), events)
        assert not interrupted
        pooled, _ = run_jobs(jobs, ProcessBackend(2), _Events())
        assert _summary(inline) == _summary(pooled)
        assert "device-use-after-free" in inline[0].kinds
        assert ("finished", 2) in events.log

    def test_a_killed_worker_is_replaced_and_its_unit_rerun(
        self, tmp_path: Path
    ) -> None:
        """A worker that dies mid-unit does not change the result."""
        import os  # noqa: PLC0415

        job = _killer_job(tmp_path, os.getpid())
        expected, _ = run_jobs([job], InlineBackend(), _Events())
        (tmp_path / "killed").unlink()
        results, _ = run_jobs([job], ProcessBackend(2), _Events())
        assert (tmp_path / "killed").exists()
        assert _summary(results) == _summary(expected)
        assert results[0].kinds == ["lost-update"]

    def test_make_backend_and_bad_cluster_values(self) -> None:
        """--jobs 1 runs inline; local: needs a positive count."""
        assert isinstance(make_backend(workers=1), InlineBackend)
        assert isinstance(make_backend(workers=3), ProcessBackend)
        assert parse_cluster("local:2") == ("local", 2)
        assert parse_cluster("tcp://10.0.0.1:8786") == ("tcp://10.0.0.1:8786", 0)
        for bad in ("local", "local:0", "local:x", " "):
            with pytest.raises(ConfigError):
                parse_cluster(bad)
        with pytest.raises(ConfigError, match="no job"):
            run_jobs([], InlineBackend(), _Events())


class TestDaskBackend:
    """A real LocalCluster (processes) gives the same results and survives a kill."""

    def test_local_cluster_matches_inline_and_survives_a_killed_worker(
        self, tmp_path: Path
    ) -> None:
        """Identical results; a worker process killed mid-unit is retried by Dask."""
        pytest.importorskip("distributed")
        import os  # noqa: PLC0415

        from hmmsim.backends.cluster import DaskBackend  # noqa: PLC0415

        jobs = [*_jobs("fault-vs-oom-reap/v5.3"), _killer_job(tmp_path, os.getpid())]
        expected, _ = run_jobs(jobs, InlineBackend(), _Events())
        (tmp_path / "killed").unlink()
        backend = DaskBackend.connect("local:2")
        results, interrupted = run_jobs(jobs, backend, _Events())
        assert not interrupted
        assert (tmp_path / "killed").exists()
        assert _summary(results) == _summary(expected)
        assert results[1].exit_reason is ExitReason.EXHAUSTED


class _Interrupting(_Events):
    def progressed(self, index: int, executions: int) -> None:
        del index, executions
        raise KeyboardInterrupt


def test_ctrl_c_stops_handing_out_units_and_keeps_what_was_merged() -> None:
    """An interrupt while units run gives an interrupted result, not an error."""
    jobs = _jobs("fault-vs-oom-reap/v5.3")
    results, interrupted = run_jobs(jobs, ProcessBackend(2), _Interrupting())
    assert interrupted
    assert results[0].exit_reason is ExitReason.INTERRUPTED
    assert results[0].executions > 0


def test_a_worker_that_always_dies_fails_its_job_only(tmp_path: Path) -> None:
    """A unit that kills every worker it runs on fails its job after the retries."""
    job = _killer_job(tmp_path, parent=-1)
    marker = tmp_path / "killed"

    class _Again(_Events):
        def started(self, index: int) -> None:
            super().started(index)

    # The marker is created by the first worker, so remove it from a thread-free
    # loop: with parent -1 every worker that finds no marker kills itself.
    backend = ProcessBackend(1)
    original = backend._replace

    def replace_and_reset(worker: object) -> None:
        marker.unlink(missing_ok=True)
        original(worker)  # type: ignore[arg-type]

    backend._replace = replace_and_reset  # type: ignore[method-assign]
    events = _Again()
    other = _jobs("exit-vs-fault/v5.3")[0]

    results, interrupted = run_jobs([job, other], backend, events)

    assert not interrupted
    assert ("failed", 0) in events.log
    assert ("finished", 1) in events.log
    assert "died 3 times" in events.reasons[0]
    assert ExitReason.ERROR is results[0].exit_reason
    assert ExitReason.EXHAUSTED is results[1].exit_reason


FAILING = textwrap.dedent(  # a user model file whose tasks misbehave
    """
    import sys
    from hmmsim.api import READ_ONCE, WRITE_ONCE, Cell, SimpleInstance, scenario

    @scenario(name="exits", title="A task calls sys.exit", variants=("v",))
    def exits(variant: str) -> SimpleInstance:
        cell = Cell("c", 0)

        async def a() -> None:
            await WRITE_ONCE(cell, 1)

        async def b() -> None:
            if await READ_ONCE(cell):
                sys.exit(7)

        return SimpleInstance(task_list=[("a", a()), ("b", b())])

    @scenario(name="raises", title="The build raises", variants=("v",))
    def raises(variant: str) -> SimpleInstance:
        raise ValueError("bad build")
    """
)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("name", "reason"),
    [("exits", "sys.exit(7)"), ("raises", "bad build")],
)
def test_a_model_that_exits_or_raises_fails_its_job_as_data(
    tmp_path: Path, workers: int, name: str, reason: str
) -> None:
    """sys.exit or a model error in a split job is a failed job, never a crash."""
    path = tmp_path / "model.py"
    path.write_text(FAILING)
    (scenario,) = (s for s in load_file(str(path)) if s.name == name)
    job = Job(
        scenario=scenario,
        variant="v",
        config=resolve_config(scenario),
        file=str(path),
    )
    events = _Events()

    results, interrupted = run_jobs(
        [job, *_jobs("exit-vs-fault/v5.3")], make_backend(workers=workers), events
    )

    assert not interrupted
    assert [("failed", 0)] == [e for e in events.log if e[1] == 0 and e[0] != "started"]
    assert reason in events.reasons[0]
    assert ExitReason.ERROR is results[0].exit_reason
    assert ExitReason.EXHAUSTED is results[1].exit_reason


def test_an_unreachable_scheduler_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--cluster ADDRESS with nobody listening fails with one line, quickly."""
    pytest.importorskip("distributed")
    from hmmsim.backends import cluster  # noqa: PLC0415

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    with pytest.raises(ConfigError, match=r"--cluster tcp://127\.0\.0\.1:9"):
        make_backend(workers=1, cluster="tcp://127.0.0.1:9")
