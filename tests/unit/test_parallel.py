"""Tests for `hmmsim.parallel`: units in worker processes, results in unit order."""

from __future__ import annotations

import dataclasses

import pytest
from tests.support.toy_scenarios import COUNTER, CRASH, LOCKS, interrupt_scenario

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, ExplorationResult
from hmmsim.errors import ConfigError, InternalError
from hmmsim.parallel import (
    Unit,
    _Collector,
    _how_it_died,
    _portable,
    available_cpus,
    explore_units,
    work,
)
from hmmsim.report import ScenarioRun
from hmmsim.report import json as json_report

DFS = ExploreConfig(strategy="dfs")


def units() -> list[Unit]:
    """Five toy units: violations, a verified run, a deadlock, an exception."""
    return [
        Unit(scenario=COUNTER, variant="buggy", config=DFS, file=None),
        Unit(scenario=COUNTER, variant="fixed", config=DFS, file=None),
        Unit(scenario=LOCKS, variant="abba", config=DFS, file=None),
        Unit(scenario=CRASH, variant="raise", config=DFS, file=None),
        Unit(scenario=COUNTER, variant="buggy", config=DFS, file="x.py"),
    ]


class Recorder:
    """Records the events of a run, and the messages of a worker."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.messages: list[tuple[str, int, object]] = []

    def started(self, index: int, unit: Unit) -> None:
        del unit
        self.events.append(("started", index))

    def progressed(self, index: int, executions: int) -> None:
        del executions
        self.events.append(("progressed", index))

    def finished(self, index: int, done: ScenarioRun) -> None:
        del done
        self.events.append(("finished", index))

    def send(self, message: tuple[str, int, object]) -> None:
        self.messages.append(message)


def taker(count: int) -> object:
    """Return a take() handing out 0..count-1, then None."""
    indexes = iter(range(count))
    return lambda: next(indexes, None)


class TestWork:
    def test_worker_reports_start_and_done_of_every_unit(self) -> None:
        """In-process, a worker sends start then done for each unit it takes."""
        recorder = Recorder()

        work(units()[:2], taker(2), lambda: False, recorder)  # type: ignore[arg-type]

        kinds = [(kind, i) for kind, i, _ in recorder.messages if kind != "progress"]
        assert [("start", 0), ("done", 0), ("start", 1), ("done", 1)] == kinds

    def test_an_error_is_sent_and_ends_the_worker(self) -> None:
        """An unknown variant is an error message, and the worker takes no more."""
        bad = [Unit(scenario=COUNTER, variant="nosuch", config=DFS, file=None)]
        recorder = Recorder()

        work([*bad, *units()], taker(3), lambda: False, recorder)  # type: ignore[arg-type]

        assert ["start", "error"] == [kind for kind, _, _ in recorder.messages]
        assert isinstance(recorder.messages[-1][2], ConfigError)

    def test_stop_interrupts_the_exploration(self) -> None:
        """Once stopped, the next execution raises and the run ends interrupted."""
        recorder = Recorder()
        calls = iter([False, True])

        work(units(), taker(5), lambda: next(calls, True), recorder)  # type: ignore[arg-type]

        kind, _, payload = recorder.messages[-1]
        assert "done" == kind
        assert isinstance(payload, tuple)
        result = payload[0]
        assert isinstance(result, ExplorationResult)
        assert ExitReason.INTERRUPTED is result.exit_reason

    def test_progress_is_sent_at_most_every_fifth_of_a_second(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With a clock that jumps, every execution sends a progress message."""
        clock = iter(range(0, 10_000, 1))
        monkeypatch.setattr("hmmsim.parallel.time.monotonic", lambda: next(clock))
        recorder = Recorder()

        work(units()[:1], taker(1), lambda: False, recorder)  # type: ignore[arg-type]

        assert any(kind == "progress" for kind, _, _ in recorder.messages)


class TestExploreUnits:
    def test_parallel_runs_equal_serial_runs_in_unit_order(self) -> None:
        """Two workers give the same runs, in the same order, as one."""
        recorder = Recorder()

        serial, stopped = explore_units(units(), recorder, workers=1)
        parallel, stopped_too = explore_units(units(), Recorder(), workers=2)

        assert not stopped
        assert not stopped_too
        assert json_report.dumps(serial, version="t") == json_report.dumps(
            parallel, version="t"
        )
        assert ("finished", 4) == recorder.events[-1]

    def test_an_error_in_a_worker_is_raised_here(self) -> None:
        """A unit that cannot run stops the run and its error is raised."""
        bad = Unit(scenario=COUNTER, variant="nosuch", config=DFS, file=None)

        with pytest.raises(ConfigError, match="nosuch"):
            explore_units([*units()[:2], bad], Recorder(), workers=2)

    def test_an_interrupted_unit_stops_the_run(self) -> None:
        """A unit that ends interrupted makes the whole run interrupted."""
        interrupting = Unit(
            scenario=interrupt_scenario(), variant="buggy", config=DFS, file=None
        )

        runs, interrupted = explore_units(
            [interrupting, units()[1]], Recorder(), workers=2
        )

        assert interrupted
        assert ExitReason.INTERRUPTED is runs[0].result.exit_reason

    def test_serial_interrupt_stops_before_the_next_unit(self) -> None:
        """In one process, the units after an interrupted one are not started."""
        interrupting = Unit(
            scenario=interrupt_scenario(), variant="buggy", config=DFS, file=None
        )

        runs, interrupted = explore_units(
            [interrupting, units()[1]], Recorder(), workers=1
        )

        assert interrupted
        assert 1 == len(runs)


class TestHelpers:
    def test_unpicklable_exceptions_become_internal_errors(self) -> None:
        """An exception that cannot cross the pipe is replaced by one that can."""

        class LocalError(Exception):
            pass

        portable = _portable(LocalError("boom"))

        assert isinstance(portable, InternalError)
        assert "LocalError: boom" in str(portable)
        assert isinstance(_portable(ValueError("x")), ValueError)

    def test_collector_forwards_progress(self) -> None:
        """A progress message becomes a progressed event."""
        recorder = Recorder()
        collector = _Collector(units=units(), events=recorder, stop=None, runs={})

        collector.handle(0, ("progress", 3, (10, None)))

        assert [("progressed", 3)] == recorder.events

    def test_available_cpus_is_positive(self) -> None:
        """There is always at least one CPU."""
        assert available_cpus() >= 1

    def test_units_are_frozen(self) -> None:
        """A Unit cannot be changed once built."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            units()[0].variant = "x"  # type: ignore[misc]


class _Ended:
    """A stand-in for a joined worker process."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode


class TestLostWorkers:
    def test_a_dead_workers_unit_becomes_an_error_row_with_its_count(self) -> None:
        """The unit a worker was exploring when it died is an error row with the executions it reported (D1)."""
        recorder = Recorder()
        collector = _Collector(units=units(), events=recorder, stop=None, runs={})
        collector.handle(1, ("start", 2, None))
        collector.handle(1, ("progress", 2, (7, 3)))

        collector.lost(1, _how_it_died(_Ended(-9)))

        run = collector.runs[2]
        assert "error" == run.status.value
        assert (7, ExitReason.ERROR) == (run.result.executions, run.result.exit_reason)
        assert run.error is not None
        assert "killed by SIGKILL (the OOM killer" in run.error
        assert ("finished", 2) == recorder.events[-1]

    def test_a_terminated_workers_unit_is_interrupted(self) -> None:
        """A worker the parent killed after a stop request leaves an interrupted row."""
        collector = _Collector(units=units(), events=Recorder(), stop=None, runs={})
        collector.handle(0, ("start", 1, None))

        collector.lost(0, None)

        run = collector.runs[1]
        assert (None, ExitReason.INTERRUPTED) == (run.error, run.result.exit_reason)

    def test_a_worker_with_nothing_running_loses_nothing(self) -> None:
        """A worker that ends between units adds no row."""
        collector = _Collector(units=units(), events=Recorder(), stop=None, runs={})

        collector.lost(0, "died: exited with status 0 in the middle of a unit")

        assert {} == collector.runs

    def test_how_a_worker_exited(self) -> None:
        """A nonzero exit status is named as such."""
        assert "exited with status 3" in _how_it_died(_Ended(3))
        assert "killed by SIGTERM" in _how_it_died(_Ended(-15))
