"""Tests for `hmmsim.engine.snapshot` and the set-up phase of `Execution`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    Execution,
    ExecutionResult,
    ExplorationResult,
    Finding,
    LockGraph,
    Outcome,
    Program,
    current_execution,
    explore,
    replay,
)
from hmmsim.engine.snapshot import SnapshotCache
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    mutex_lock,
    mutex_unlock,
)

Body = Coroutine[Any, Any, Any]


class Marker:
    """A module-level object the world refers to: it must not be copied."""


MARKER = Marker()

#: A module-level string sentinel, tested with ``is`` (as the mm model does).
SENTINEL: object = "SENTINEL"


@dataclass(slots=True, kw_only=True, eq=False)
class _World:
    counter: Cell[int]
    lock: Mutex
    other: Mutex
    log: list[str] = field(default_factory=list)
    marker: Marker = MARKER
    mapping: object = None


@dataclass(slots=True, kw_only=True, eq=False)
class _Phased:
    """A toy instance with a set-up phase (engine-only, like the HMM worlds)."""

    world: _World
    setup: Callable[[], Body]
    actors: Sequence[tuple[str, Callable[[], Body]]]
    spawned: list[str] = field(default_factory=list)

    def tasks(self) -> Sequence[tuple[str, Body]]:
        async def run() -> None:
            await self.setup()
            for name, body in self.actor_tasks():
                current_execution().spawn(name, body)

        return [("setup", run())]

    def setup_task(self) -> tuple[str, Body]:
        return ("setup", self.setup())

    def actor_tasks(self) -> Sequence[tuple[str, Body]]:
        return [(name, make()) for name, make in self.actors]

    def check_end(self) -> Iterable[Finding]:
        if self.world.counter.value != 2:
            yield Finding(kind="lost-update", message="lost", step=-1)

    def final_state(self) -> object:
        return (self.world.counter.value, tuple(self.world.log))

    def snapshot(self) -> Mapping[str, object]:
        return {"counter": self.world.counter.value}


def phased(*, nested_setup: bool = False, locked: bool = False) -> _Phased:
    """Set-up writes the counter and takes locks; two actors race on it."""
    world = _World(counter=Cell("counter", 0), lock=Mutex("A"), other=Mutex("B"))

    async def setup() -> None:
        await WRITE_ONCE(world.counter, 0)
        if nested_setup:
            await mutex_lock(world.lock)
            await mutex_lock(world.other)
            await mutex_unlock(world.other)
            await mutex_unlock(world.lock)
        world.log.append("setup")
        world.mapping = SENTINEL

    def actor(name: str) -> Callable[[], Body]:
        async def body() -> None:
            world.log.append(name)
            if locked:
                await mutex_lock(world.other)
                await mutex_lock(world.lock)
            value = await READ_ONCE(world.counter)
            await WRITE_ONCE(world.counter, value + 1)
            if locked:
                await mutex_unlock(world.lock)
                await mutex_unlock(world.other)

        return body

    return _Phased(
        world=world, setup=setup, actors=[("a", actor("a")), ("b", actor("b"))]
    )


def _summary(result: ExplorationResult) -> object:
    return (
        result.executions,
        result.steps,
        result.exit_reason,
        sorted(result.outcomes.items()),
        [
            (c.kind, c.execution, c.schedule.to_json(), c.steps, c.findings)
            for c in result.counterexamples
        ],
    )


def _run(program: Program, cache: SnapshotCache, **kwargs: Any) -> ExecutionResult:
    strategy = DfsStrategy()
    strategy.begin_execution()
    return Execution(program, strategy, max_steps=100, snapshots=cache, **kwargs).run()


class TestSameResults:
    @pytest.mark.parametrize("strategy", ["dfs", "dpor", "pct", "random"])
    def test_explorations_agree_with_and_without_snapshots(self, strategy: str) -> None:
        """Every strategy explores a phased program identically with snapshots."""
        config = ExploreConfig(strategy=strategy, max_executions=200, seed=3)
        with_snapshots = explore(phased, config)
        without = explore(phased, config, snapshots=False)

        assert _summary(without) == _summary(with_snapshots)
        assert ["lost-update"] == with_snapshots.kinds

    def test_final_states_agree_execution_by_execution(self) -> None:
        """Each execution of a DFS ends in the same state whether restored or not."""
        finals: dict[bool, list[object]] = {}
        for use in (True, False):
            strategy = DfsStrategy()
            cache = SnapshotCache() if use else None
            finals[use] = []
            while strategy.begin_execution():
                result = Execution(
                    phased, strategy, max_steps=100, snapshots=cache
                ).run()
                strategy.end_execution(result)
                finals[use].append((result.schedule, result.final_state))

        assert finals[False] == finals[True]
        assert 6 == len(finals[True])

    def test_every_execution_after_the_first_is_restored(self) -> None:
        """DPOR restores the world for every execution but the first."""
        cache = SnapshotCache()
        strategy = DporStrategy()
        count = 0
        while strategy.begin_execution():
            result = Execution(phased, strategy, max_steps=100, snapshots=cache).run()
            strategy.end_execution(result)
            count += 1

        assert (count - 1, "") == (cache.restored, cache.skipped)
        assert count > 1


class TestRestoredWorld:
    def test_module_level_objects_keep_their_identity(self) -> None:
        """A module-level object stays the same object; the world is a copy."""
        cache = SnapshotCache()
        instances: list[_Phased] = []

        def program() -> _Phased:
            instance = phased()
            instances.append(instance)
            return instance

        _run(program, cache)
        snapshot = cache.get(program)
        assert snapshot is not None
        instance, _, _ = snapshot.load()

        assert instance.world.marker is MARKER
        assert instance.world.mapping is SENTINEL
        assert instance.world is not instances[0].world
        assert ["setup"] == instance.world.log

    def test_actors_run_on_the_restored_world(self) -> None:
        """The actors' closures see the restored world, not the first one."""
        cache = SnapshotCache()
        first = _run(phased, cache)
        second = _run(phased, cache)

        assert 1 == cache.restored
        assert first.final_state == second.final_state == (2, ("setup", "a", "b"))
        assert first.schedule == second.schedule
        assert first.steps == second.steps

    def test_a_snapshot_serves_only_its_program(self) -> None:
        """Another program in the same cache builds its own world."""
        cache = SnapshotCache()
        _run(phased, cache)

        def other() -> _Phased:
            return phased()

        assert cache.get(other) is None
        _run(other, cache)
        assert (0, other) == (cache.restored, cache.program)

    def test_set_up_lock_order_reaches_a_fresh_lock_graph(self) -> None:
        """Lock edges of a skipped set-up are replayed to each execution's listener."""
        cache = SnapshotCache()

        def program() -> _Phased:
            return phased(nested_setup=True, locked=True)

        _run(program, cache, lockdep=LockGraph())
        graph = LockGraph()
        result = _run(program, cache, lockdep=graph)

        assert 1 == cache.restored
        assert ("A", "B") in graph.edges
        assert ["lock-order"] == [f.kind for f in result.findings]

    def test_capture_runs_the_set_up(self) -> None:
        """A captured replay never uses the snapshot: its trace shows the set-up."""
        cache = SnapshotCache()
        _run(phased, cache)
        strategy = DfsStrategy()
        strategy.begin_execution()
        result = Execution(
            phased, strategy, max_steps=100, snapshots=cache, capture=True
        ).run()

        assert 0 == cache.restored
        assert result.trace is not None
        assert "setup" == result.trace.steps[0].task_name

    def test_a_step_limit_below_the_set_up_runs_it(self) -> None:
        """With fewer steps allowed than the set-up has, the set-up really runs."""
        cache = SnapshotCache()
        _run(phased, cache)
        strategy = DfsStrategy()
        strategy.begin_execution()
        result = Execution(phased, strategy, max_steps=0, snapshots=cache).run()

        assert (Outcome.STEP_LIMIT, 0) == (result.outcome, cache.restored)


class TestNotSnapshotted:
    def _skipped(self, program: Program) -> str:
        cache = SnapshotCache()
        _run(program, cache)
        _run(program, cache)
        assert 0 == cache.restored
        return cache.skipped

    def test_a_set_up_with_a_data_choice(self) -> None:
        """A set-up that makes a data choice is run in every execution."""

        def program() -> _Phased:
            instance = phased()

            async def setup() -> None:
                current_execution().choose(2, "coin")
                await WRITE_ONCE(instance.world.counter, 0)

            instance.setup = setup
            return instance

        assert "the set-up made a data choice" == self._skipped(program)

    def test_a_set_up_that_spawns(self) -> None:
        """A set-up that spawns a task is run in every execution."""

        def program() -> _Phased:
            instance = phased()

            async def helper() -> None:
                await WRITE_ONCE(instance.world.counter, 0)

            async def setup() -> None:
                current_execution().spawn("helper", helper())
                await WRITE_ONCE(instance.world.counter, 0)

            instance.setup = setup
            return instance

        assert "the set-up spawned a task" == self._skipped(program)

    def test_a_set_up_that_keeps_a_lock(self) -> None:
        """A set-up task that returns holding a lock is a finding, not a snapshot."""

        def program() -> _Phased:
            instance = phased()

            async def setup() -> None:
                await mutex_lock(instance.world.lock)

            instance.setup = setup
            return instance

        cache = SnapshotCache()
        result = _run(program, cache)

        assert "the set-up task still holds a lock" == cache.skipped
        assert ["lock-leak"] == [f.kind for f in result.findings]

    def test_a_set_up_with_a_finding(self) -> None:
        """A set-up that reports a finding is run in every execution."""

        def program() -> _Phased:
            instance = phased()

            async def setup() -> None:
                current_execution().report("odd", "odd", fatal=False)
                await WRITE_ONCE(instance.world.counter, 0)

            instance.setup = setup
            return instance

        assert "the set-up reported a finding" == self._skipped(program)

    def test_a_world_that_cannot_be_pickled(self) -> None:
        """A world holding a generator is not snapshotted, and says why."""

        def program() -> _Phased:
            instance = phased()
            instance.world.log.append(x for x in range(3))  # type: ignore[arg-type]
            return instance

        assert self._skipped(program).startswith("the world cannot be pickled")

    def test_a_world_that_refers_to_the_execution(self) -> None:
        """A world that keeps the Execution itself is not snapshotted."""

        def program() -> _Phased:
            instance = phased()
            instance.world.log.append(current_execution())  # type: ignore[arg-type]
            return instance

        assert "Execution" in self._skipped(program)


def test_replay_of_a_counterexample_matches_the_exploration() -> None:
    """A counterexample found from a restored world replays without snapshots."""
    result = explore(phased, ExploreConfig(strategy="dpor", shrink=True))
    example = result.counterexamples[0]
    again = replay(phased, example.schedule, capture=True)

    assert ["lost-update"] == [f.kind for f in again.findings]
    assert example.steps == again.steps
