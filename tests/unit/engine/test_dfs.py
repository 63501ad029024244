"""Tests for `hmmsim.engine.strategies.dfs`."""

from __future__ import annotations

from math import comb

import pytest
from tests.support.harness import exhaust, tasks
from tests.support.toy_programs import (
    ab_ba,
    counter_race,
    independent,
    message_passing,
    timeout_race,
)

from hmmsim.engine import Instance, Status
from hmmsim.errors import ModelError
from hmmsim.sync import READ_ONCE, Cell


class TestExactCounts:
    @pytest.mark.parametrize(("m", "n"), [(0, 3), (1, 1), (2, 3), (3, 3), (4, 2)])
    def test_independent_tasks_give_m_plus_n_choose_n_executions(
        self, m: int, n: int
    ) -> None:
        """DFS on two independent tasks of m and n steps runs C(m+n, n) executions."""
        result = exhaust(lambda: independent(m, n))

        assert comb(m + n, n) == result.executions
        assert Status.VERIFIED == result.status

    def test_two_racing_increments_have_six_interleavings(self) -> None:
        """Two tasks of two steps: C(4, 2) = 6 executions, 4 of them lose an update."""
        result = exhaust(counter_race)

        assert {"passed": 2, "violation": 4} == result.outcomes

    def test_three_racing_increments_have_ninety_interleavings(self) -> None:
        """Three tasks of two steps: 6! / (2! 2! 2!) = 90 executions, 6 serial ones pass."""
        result = exhaust(lambda: counter_race(tasks=3))

        assert {"passed": 6, "violation": 84} == result.outcomes

    def test_message_passing_has_twenty_four_executions(self) -> None:
        """The message-passing program explores 24 executions, all passing."""
        result = exhaust(message_passing)

        assert ({"passed": 24}, Status.VERIFIED) == (result.outcomes, result.status)

    def test_data_choices_are_branches_too(self) -> None:
        """The timeout race's data choices are explored: 74 executions, one bug."""
        result = exhaust(timeout_race)

        assert (74, ["stale-data"]) == (result.executions, result.kinds)
        assert 74 == result.counterexamples[0].execution


class TestFindsBugs:
    def test_dfs_finds_the_lost_update(self) -> None:
        """DFS finds the lost update of two unlocked increments in its 2nd execution."""
        result = exhaust(counter_race)

        assert (["lost-update"], 2) == (
            result.kinds,
            result.counterexamples[0].execution,
        )

    def test_dfs_finds_the_ab_ba_deadlock_and_the_inversion(self) -> None:
        """AB-BA: DFS reports the lock-order inversion and finds the deadlock."""
        result = exhaust(ab_ba)

        assert ["lock-order", "deadlock"] == result.kinds
        assert {"violation": 3, "passed": 3} == result.outcomes

    def test_a_preemption_bound_of_zero_misses_the_race(self) -> None:
        """With no preemption allowed, the lost update is never reached."""
        assert [] == exhaust(lambda: counter_race(tasks=3), preemption_bound=0).kinds

    def test_a_preemption_bound_of_one_finds_the_race(self) -> None:
        """One preemption is enough for the lost update."""
        result = exhaust(lambda: counter_race(tasks=3), preemption_bound=1)

        assert ["lost-update"] == result.kinds
        assert not result.complete


class TestDeterminismCheck:
    def test_a_program_that_changes_between_executions_is_a_model_error(
        self,
    ) -> None:
        """DFS meeting other options when it replays its prefix blames the model (D8)."""
        runs: list[int] = []

        def program() -> Instance:
            runs.append(len(runs))
            cell = Cell("c", 0)

            async def body() -> None:
                await READ_ONCE(cell)
                await READ_ONCE(cell)

            # Uncontrolled nondeterminism: a third task from the 2nd run on.
            count = 2 if len(runs) == 1 else 3
            return tasks(*(body() for _ in range(count)))

        with pytest.raises(
            ModelError, match=r"not deterministic.*dfs replay diverged at choice 0"
        ):
            exhaust(program)
