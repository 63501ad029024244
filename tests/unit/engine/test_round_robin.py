"""Tests for `hmmsim.engine.strategies.round_robin`."""

from __future__ import annotations

from tests.support.harness import tasks
from tests.support.toy_programs import counter_race

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Instance, current_execution, explore
from hmmsim.sync import msleep


class TestRoundRobin:
    def test_round_robin_rotates_between_tasks(self) -> None:
        """Three two-step tasks run t0 t1 t2 t0 t1 t2 in the single execution."""
        result = explore(
            lambda: counter_race(tasks=3),
            ExploreConfig(strategy="round_robin", shrink=False),
        )
        example = result.counterexamples[0]

        assert (1, ExitReason.EXHAUSTED) == (result.executions, result.exit_reason)
        assert ["t0", "t1", "t2", "t0", "t1", "t2"] == example.schedule.to_json()[
            "choices"
        ]

    def test_data_choices_take_their_first_value(self) -> None:
        """Round robin answers every data choice with 0."""
        values: list[int] = []

        def program() -> Instance:
            async def body() -> None:
                await msleep(1)
                values.append(current_execution().choose(3, "pick"))

            return tasks(body())

        explore(program, ExploreConfig(strategy="round_robin"))

        assert [0] == values
