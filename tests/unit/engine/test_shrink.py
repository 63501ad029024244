"""Tests for `hmmsim.engine.shrink`."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.harness import kinds, tasks
from tests.support.toy_programs import ab_ba, counter_race, half_published, timeout_race

from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    Execution,
    ExecutionResult,
    Finding,
    Instance,
    Program,
    Schedule,
    current_execution,
    explore,
    replay,
)
from hmmsim.engine.execution import strict_coroutines
from hmmsim.engine.schedule import DataChoice, task_choice
from hmmsim.engine.shrink import DEFAULT_MAX_REPLAYS, ReplayMemo, Shrinker, shrink
from hmmsim.engine.strategies import RandomStrategy
from hmmsim.sync import READ_ONCE, WRITE_ONCE, Cell


def _schedule(*tasks_: int) -> Schedule:
    return Schedule.of(task_choice(t) for t in tasks_)


def _first_schedule(config: ExploreConfig) -> Schedule:
    """The schedule of the first torn read DFS finds, unshrunk."""
    found = explore(half_published, config.replace(shrink=False))
    return found.counterexamples[0].schedule


def _race3() -> Instance:
    return counter_race(tasks=3)


def spin_then_stale() -> Instance:
    """t0 spins until a flag is set, then reads data; t1 sets the flag too early."""
    flag = Cell("flag", 0)
    data = Cell("data", 0)
    seen: list[int] = []

    async def reader() -> None:
        while not await READ_ONCE(flag):
            pass
        seen.append(await READ_ONCE(data))

    async def writer() -> None:
        await WRITE_ONCE(flag, 1)
        await WRITE_ONCE(data, 1)

    def end() -> Iterable[Finding]:
        if seen != [1]:
            yield Finding(kind="stale", message=f"read {seen}", step=-1)

    return tasks(reader(), writer(), end=end)


def race_with_a_coin() -> Instance:
    """The two-task counter race, where t0 also flips an irrelevant coin."""
    counter = Cell("counter", 0)

    async def incr(flip: bool) -> None:
        value = await READ_ONCE(counter)
        if flip:
            current_execution().choose(2, "coin")
        await WRITE_ONCE(counter, value + 1)

    def end() -> Iterable[Finding]:
        if counter.value != 2:
            yield Finding(kind="lost-update", message="lost", step=-1)

    return tasks(incr(True), incr(False), end=end)


class TestPasses:
    def test_round_robin_race_shrinks_to_one_preemption(self) -> None:
        """Three round-robin increments (3 preemptions) shrink to one preemption."""
        shrunk = shrink(_race3, _schedule(0, 1, 2, 0, 1, 2), "lost-update", 100)
        result = replay(_race3, shrunk)

        assert (6, 1) == (result.steps, result.preemptions)
        assert ["t1", "t1", "t0", "t2", "t2", "t0"] == shrunk.to_json()["choices"]

    def test_alternating_depth_two_bug_shrinks_to_one_preemption(self) -> None:
        """A torn read found by strict alternation (9 preemptions) needs only one."""
        shrunk = shrink(half_published, _schedule(*[0, 1] * 5, 0), "torn-read", 100)

        assert ["t0"] * 5 + ["t1"] * 5 + ["t0"] == shrunk.to_json()["choices"]

    def test_wasted_spin_iterations_are_deleted(self) -> None:
        """A reader that spun four times before the early flag write spins no more."""
        original = _schedule(0, 0, 0, 0, 1, 0, 0, 1)
        before = replay(spin_then_stale, original)

        shrunk = shrink(spin_then_stale, original, "stale", 100)
        after = replay(spin_then_stale, shrunk)

        assert (["stale"], 8) == (kinds(before), before.steps)
        assert (["stale"], 4) == (kinds(after), after.steps)

    def test_an_irrelevant_data_choice_is_lowered_to_zero(self) -> None:
        """A coin flip of 1 that the race does not need becomes 0."""
        original = Schedule.from_json(
            {"seed": 0, "choices": ["t0", "d1", "t1", "t0", "t1"]}
        )
        before = replay(race_with_a_coin, original)

        shrunk = shrink(race_with_a_coin, original, "lost-update", 100)

        assert ["lost-update"] == kinds(before)
        assert ["t0", "d0", "t1", "t1", "t0"] == shrunk.to_json()["choices"]

    def test_a_needed_data_choice_is_kept(self) -> None:
        """The timeout race needs its timeout to fire: d1 stays."""
        found = explore(timeout_race, ExploreConfig(strategy="dfs", shrink=False))
        original = found.counterexamples[0].schedule

        shrunk = shrink(timeout_race, original, "stale-data", 100)

        assert DataChoice(1) in shrunk.choices
        assert ["stale-data"] == kinds(replay(timeout_race, shrunk))

    def test_data_choices_before_the_first_step_are_kept(self) -> None:
        """A data choice made before any step (in a task's prelude) survives."""

        def program() -> Instance:
            counter = Cell("counter", 0)

            async def incr(first: bool) -> None:
                if first:
                    current_execution().choose(2, "prelude")
                value = await READ_ONCE(counter)
                await WRITE_ONCE(counter, value + 1)

            def end() -> Iterable[Finding]:
                if counter.value != 2:
                    yield Finding(kind="lost-update", message="lost", step=-1)

            return tasks(incr(True), incr(False), end=end)

        original = Schedule.from_json(
            {"seed": 0, "choices": ["d1", "t0", "t1", "t1", "t0"]}
        )

        shrunk = shrink(program, original, "lost-update", 100)

        assert ["d0", "t0", "t1", "t1", "t0"] == shrunk.to_json()["choices"]

    def test_a_deadlock_keeps_its_two_steps(self) -> None:
        """The AB-BA deadlock is already minimal: two steps, one preemption."""
        shrunk = shrink(ab_ba, _schedule(0, 1), "deadlock", 100)

        assert ["t0", "t1"] == shrunk.to_json()["choices"]


class TestContract:
    def test_a_schedule_that_does_not_show_the_kind_is_returned_unchanged(
        self,
    ) -> None:
        """Shrinking a passing schedule returns it as given, after one replay."""
        schedule = _schedule(0, 0, 1, 1)
        shrinker = Shrinker(counter_race, "lost-update", max_steps=100)

        assert schedule is shrinker.shrink(schedule)
        assert (1, 0) == (shrinker.replays, shrinker.accepted)

    def test_the_replay_budget_is_respected(self) -> None:
        """With max_replays=1 only the input is replayed, and returned as replayed."""
        original = _schedule(0, 1, 2, 0, 1, 2)
        shrinker = Shrinker(_race3, "lost-update", max_steps=100, max_replays=1)

        assert original == shrinker.shrink(original)
        assert 1 == shrinker.replays

    @pytest.mark.parametrize("budget", [2, 3, 5, 8])
    def test_a_small_budget_stops_early_but_still_shrinks_validly(
        self, budget: int
    ) -> None:
        """Whatever the budget, at most that many replays and a valid result."""
        shrinker = Shrinker(
            half_published, "torn-read", max_steps=100, max_replays=budget
        )
        shrunk = shrinker.shrink(_schedule(*[0, 1] * 5, 0))

        assert shrinker.replays <= budget
        assert ["torn-read"] == kinds(replay(half_published, shrunk))

    def test_the_default_budget_is_a_thousand_replays(self) -> None:
        """DEFAULT_MAX_REPLAYS documents the default budget."""
        assert 1_000 == DEFAULT_MAX_REPLAYS
        assert DEFAULT_MAX_REPLAYS == Shrinker(_race3, "k", max_steps=1).max_replays

    def test_shrinking_is_deterministic(self) -> None:
        """The same input shrinks to the same output with the same replays."""
        runs = []
        for _ in range(2):
            shrinker = Shrinker(half_published, "torn-read", max_steps=100)
            runs.append((shrinker.shrink(_schedule(*[0, 1] * 5, 0)), shrinker.replays))

        assert runs[0] == runs[1]

    def test_a_shared_memo_runs_each_schedule_once(self) -> None:
        """A second shrink with the same memo replays nothing and gives the same result."""
        memo = ReplayMemo()
        start = _schedule(*[0, 1] * 5, 0)
        first = Shrinker(half_published, "torn-read", max_steps=100, memo=memo)
        shrunk = first.shrink(start)
        ran, hits = len(memo.runs), memo.hits
        second = Shrinker(half_published, "torn-read", max_steps=100, memo=memo)

        assert shrunk == second.shrink(start)
        assert (ran, first.replays) == (len(memo.runs), second.replays)
        assert second.replays == memo.hits - hits
        assert memo.result_of(shrunk, max_steps=100) is not None
        assert memo.result_of(start, max_steps=99) is None

    def test_the_runner_reuses_the_shrinkers_replay(self) -> None:
        """An exploration's counterexamples are those of separate shrink and replay."""
        config = ExploreConfig(strategy="dfs", max_steps=100)
        result = explore(half_published, config)
        example = result.counterexamples[0]
        alone = shrink(half_published, _first_schedule(config), "torn-read", 100)
        again = replay(half_published, alone, max_steps=100)

        assert (alone, again.steps, again.findings) == (
            example.schedule,
            example.steps,
            example.findings,
        )

    def test_the_seed_is_kept(self) -> None:
        """The shrunk schedule carries the input's seed."""
        shrunk = shrink(
            _race3, Schedule.parse("t0 t1 t2 t0 t1 t2", seed=42), "lost-update", 50
        )

        assert 42 == shrunk.seed


PROGRAMS: dict[str, tuple[Program, str]] = {
    "counter_race(3)": (_race3, "lost-update"),
    "ab_ba": (ab_ba, "deadlock"),
    "timeout_race": (timeout_race, "stale-data"),
    "half_published": (half_published, "torn-read"),
}


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PROGRAMS)), seed=st.integers(0, 2**32))
def test_shrinking_keeps_the_kind_and_never_lengthens(name: str, seed: int) -> None:
    """A random-walk counterexample shrinks to one that shows the kind, no longer."""
    program, kind = PROGRAMS[name]
    example = _first_failing(program, kind, seed)

    shrunk = shrink(program, example.schedule, kind, 1_000)
    result = replay(program, shrunk)

    assert kind in kinds(result)
    assert (result.steps, result.preemptions) <= (example.steps, example.preemptions)


def _first_failing(program: Program, kind: str, seed: int) -> ExecutionResult:
    """Return the first random-walk execution (at ``seed``) that shows ``kind``."""
    strategy = RandomStrategy(seed=seed)
    while True:
        strategy.begin_execution()
        with strict_coroutines():
            result = Execution(program, strategy, max_steps=1_000).run()
        if kind in kinds(result):
            return result
