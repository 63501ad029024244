"""Tests for `hmmsim.engine.strategies.replay`."""

from __future__ import annotations

import pytest
from tests.support.harness import tasks
from tests.support.toy_programs import ab_ba, counter_race, timeout_race

from hmmsim.engine import Instance, Schedule, current_execution, replay
from hmmsim.engine.schedule import DataChoice
from hmmsim.engine.strategies.replay import ReplayStrategy
from hmmsim.errors import ReplayDiverged
from hmmsim.sync import msleep


def _choosing() -> Instance:
    async def body() -> None:
        await msleep(1)
        current_execution().choose(3, "pick")
        await msleep(1)

    return tasks(body())


class TestStrict:
    def test_strict_replay_follows_data_choices(self) -> None:
        """A recorded data value is returned again."""
        result = replay(_choosing, Schedule.parse("t0 d2 t0"))

        assert ["t0", "d2", "t0"] == result.schedule.to_json()["choices"]

    def test_a_data_value_out_of_range_diverges(self) -> None:
        """A recorded data value the program cannot take raises ReplayDiverged."""
        with pytest.raises(ReplayDiverged, match="schedule says data value 3"):
            replay(_choosing, Schedule.parse("t0 d3 t0"))

    def test_a_strategy_replays_one_execution_only(self) -> None:
        """begin_execution is True once, then False."""
        strategy = ReplayStrategy(Schedule())

        assert (True, False) == (strategy.begin_execution(), strategy.begin_execution())


class TestLenient:
    def test_off_script_the_previous_task_runs_on(self) -> None:
        """After the prefix, the task that ran last goes on while it can."""
        result = replay(counter_race, Schedule.parse("t0 t1"), strict=False)

        assert (0, 1, 1, 0) == result.schedule.tasks

    def test_an_impossible_choice_ends_the_prefix(self) -> None:
        """A recorded task that is blocked ends the script; the rest runs on."""
        result = replay(ab_ba, Schedule.parse("t0 t0 t1 t1 t1"), strict=False)

        # t1 cannot take B while t0 holds it: t0 runs on, then t1.
        assert (0, 0, 0, 0, 1, 1, 1, 1) == result.schedule.tasks

    def test_off_script_data_choices_take_zero(self) -> None:
        """Past the end of the schedule every data choice is 0."""
        result = replay(_choosing, Schedule.parse("t0"), strict=False)

        assert ["t0", "d0", "t0"] == result.schedule.to_json()["choices"]

    def test_a_kind_mismatch_ends_the_prefix(self) -> None:
        """A task choice where a data choice comes ends the script, without error."""
        result = replay(timeout_race, Schedule.parse("t1 t1 t1 t1 t1"), strict=False)

        assert 0 == result.schedule.choices.count(DataChoice(1))
