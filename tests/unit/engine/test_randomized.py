"""Tests for `hmmsim.engine.strategies.randomized`."""

from __future__ import annotations

from tests.support.harness import tasks
from tests.support.toy_programs import counter_race, half_published, timeout_race

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Instance, Status, current_execution, explore
from hmmsim.engine.strategies import RandomStrategy
from hmmsim.sync import msleep


def _random(**overrides: object) -> ExploreConfig:
    return ExploreConfig(strategy="random", shrink=False, **overrides)  # type: ignore[arg-type]


class TestRandomStrategy:
    def test_random_finds_the_counter_race_at_a_fixed_seed(self) -> None:
        """Seed 3 finds the two-task lost update in execution 7."""
        result = explore(counter_race, _random(seed=3, stop_on_first=True))

        assert (["lost-update"], 7) == (
            result.kinds,
            result.counterexamples[0].execution,
        )

    def test_random_finds_the_depth_two_bug_at_a_fixed_seed(self) -> None:
        """Seed 0 finds the torn read of half_published in execution 30."""
        result = explore(half_published, _random(seed=0, stop_on_first=True))

        assert 30 == result.counterexamples[0].execution

    def test_random_makes_random_data_choices(self) -> None:
        """The timeout race needs a data choice of 1: seed 0 finds it in execution 534."""
        result = explore(timeout_race, _random(seed=0, stop_on_first=True))

        assert (["stale-data"], 534) == (
            result.kinds,
            result.counterexamples[0].execution,
        )

    def test_the_same_seed_gives_the_same_exploration(self) -> None:
        """Two runs with one seed make the same choices; another seed differs."""
        schedules: dict[int, list[tuple[int, ...]]] = {0: [], 1: []}

        def make(seed: int) -> RandomStrategy:
            strategy = RandomStrategy(seed=seed)
            original = strategy.end_execution

            def record(result: object) -> None:
                schedules[seed].append(result.schedule.choices)  # type: ignore[attr-defined]
                original(result)  # type: ignore[arg-type]

            strategy.end_execution = record  # type: ignore[method-assign]
            return strategy

        config = _random(max_executions=20)
        explore(lambda: counter_race(tasks=3), config, strategy=make(0))
        first = list(schedules[0])
        schedules[0].clear()
        explore(lambda: counter_race(tasks=3), config, strategy=make(0))
        explore(lambda: counter_race(tasks=3), config, strategy=make(1))

        assert first == schedules[0]
        assert first != schedules[1]

    def test_a_preemption_bound_of_zero_never_preempts(self) -> None:
        """With preemption_bound=0 the random walk never loses an update."""
        result = explore(counter_race, _random(preemption_bound=0, max_executions=50))

        assert ({"passed": 50}, []) == (result.outcomes, result.kinds)

    def test_random_never_exhausts(self) -> None:
        """A random exploration ends on its bound and is incomplete."""
        result = explore(counter_race, _random(max_executions=3))

        assert (ExitReason.MAX_EXECUTIONS, Status.VIOLATION) == (
            result.exit_reason,
            result.status,
        )

    def test_single_choices_use_no_randomness(self) -> None:
        """One enabled task is chosen without drawing from the stream."""

        def program() -> Instance:
            async def body() -> None:
                await msleep(1)
                current_execution().choose(1, "forced")

            return tasks(body())

        strategy = RandomStrategy(seed=9)
        state = strategy.rng.getstate()
        explore(program, _random(max_executions=2), strategy=strategy)

        assert state == strategy.rng.getstate()
