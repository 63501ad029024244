"""Tests for `hmmsim.engine.runner.check_determinism` and step source locations."""

from __future__ import annotations

import itertools

import pytest
from tests.support import toy_programs as toys

from hmmsim.cli import EXIT_DIVERGED, main
from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    Instance,
    Schedule,
    SimpleInstance,
    Status,
    explore,
    replay,
)
from hmmsim.engine.runner import check_determinism
from hmmsim.errors import ReplayDiverged
from hmmsim.sync import READ_ONCE, WRITE_ONCE, Cell

_calls = itertools.count()


def _flaky() -> Instance:
    """A program whose second task does one more step every other build."""
    cell = Cell("x", 0)
    extra = next(_calls) % 2

    async def writer() -> None:
        await WRITE_ONCE(cell, 1)

    async def reader() -> None:
        for _ in range(1 + extra):
            await READ_ONCE(cell)

    return SimpleInstance(task_list=[("writer", writer()), ("reader", reader())])


def _renaming() -> Instance:
    """A program that behaves the same but names its cell after a global count."""
    cell = Cell(f"x{next(_calls)}", 0)

    async def writer() -> None:
        await WRITE_ONCE(cell, 1)

    return SimpleInstance(task_list=[("writer", writer())])


class TestCheckDeterminism:
    """Two replays of one schedule must agree."""

    def test_deterministic_program_passes(self) -> None:
        """The counter race replays identically."""
        result = explore(toys.counter_race, ExploreConfig(strategy="dfs", shrink=False))

        check_determinism(
            toys.counter_race, result.counterexamples[0].schedule, max_steps=100
        )

    def test_program_depending_on_outside_state_is_caught(self) -> None:
        """A model that reads a global counter does not replay the same way."""
        schedule = Schedule.parse("t0 t1 t1")

        with pytest.raises(ReplayDiverged, match="non-deterministic model"):
            check_determinism(_flaky, schedule, max_steps=100)

    def test_steps_that_differ_are_named(self) -> None:
        """Same choices, different trace: the first differing step is named."""
        with pytest.raises(ReplayDiverged, match="differ at step 0"):
            check_determinism(_renaming, Schedule.parse("t0"), max_steps=10)

    def test_config_flag_runs_the_check_for_every_counterexample(self) -> None:
        """explore with check_determinism replays each counterexample twice more."""
        config = ExploreConfig(strategy="dfs", check_determinism=True)

        result = explore(toys.counter_race, config)

        assert ["lost-update"] == result.kinds


def _same_name_other_object() -> Instance:
    """Touches one of two cells with the same name, chosen by a global count."""
    cells = [Cell("x", 0), Cell("x", 0)]
    cell = cells[next(_calls) % 2]

    async def writer() -> None:
        await WRITE_ONCE(cell, 1)

    return SimpleInstance(task_list=[("writer", writer())])


class TestCheckDeterminismOfVerifiedRuns:
    """With check_determinism, a run without counterexamples is checked too."""

    def test_a_verified_run_of_a_deterministic_program_stays_verified(self) -> None:
        """Sampled schedules of the independent toy replay identically."""
        config = ExploreConfig(strategy="dfs", shrink=False, check_determinism=True)

        result = explore(lambda: toys.independent(3, 2), config)

        assert Status.VERIFIED == result.status

    def test_a_verified_run_of_a_non_deterministic_program_is_caught(self) -> None:
        """A model whose Ops hit another object on a re-run fails the check."""
        plain = ExploreConfig(strategy="dfs", shrink=False)
        checked = plain.replace(check_determinism=True)

        assert Status.VERIFIED == explore(_same_name_other_object, plain).status
        with pytest.raises(ReplayDiverged, match="differ at step 0"):
            explore(_same_name_other_object, checked)


class TestLocations:
    """Captured steps can name the model line that awaited their Op."""

    def test_locations_name_the_model_code_not_the_primitives(self) -> None:
        """Every step of the counter race points into the toy program."""
        schedule = (
            explore(toys.counter_race, ExploreConfig(strategy="dfs", shrink=False))
            .counterexamples[0]
            .schedule
        )

        result = replay(
            toys.counter_race, schedule, capture=True, capture_locations=True
        )

        assert result.trace is not None
        sites = {step.location.split(":")[0] for step in result.trace.steps}
        assert {"toy_programs.py"} == {site.rsplit("/", 1)[-1] for site in sites}
        assert all(" in incr" in step.location for step in result.trace.steps)

    def test_without_the_flag_there_are_no_locations(self) -> None:
        """Locations cost time, so they are off by default."""
        schedule = Schedule.parse("t0 t0 t1 t1")

        result = replay(toys.counter_race, schedule, capture=True, strict=False)

        assert result.trace is not None
        assert {""} == {step.location for step in result.trace.steps}


class TestCli:
    """The command-line switches."""

    def test_check_determinism_switch_passes_on_a_builtin(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A built-in scenario is deterministic."""
        status = main(["check", "exit-vs-fault", "--check-determinism", "-q"])

        assert 0 == status
        assert "VERIFIED" in capsys.readouterr().out

    def test_replay_locations_point_into_the_kernel_model(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """replay --locations annotates steps with kernel/ source lines."""
        main(["check", "oom-vs-driver-lock", "--variant", "prepatch", "-q"])
        token = next(
            line.split()[-1]
            for line in capsys.readouterr().out.splitlines()
            if "notifier-contract" in line and line.startswith("hmmsim replay")
        )

        status = main(["replay", token, "--locations"])

        assert 0 == status
        assert "@ kernel/hmm_prepatch.py:" in capsys.readouterr().out
        assert EXIT_DIVERGED != status
