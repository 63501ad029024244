"""Tests for `hmmsim.engine.watchdog`: hung tasks, budgets inside an execution, memory."""

from __future__ import annotations

import signal
import threading

import pytest

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Instance, SimpleInstance, explore, replay
from hmmsim.engine.watchdog import default_memory_limit, resident_bytes, watchdog
from hmmsim.errors import ModelError
from hmmsim.sync import WRITE_ONCE, Cell


def spinning() -> Instance:
    """One task that takes a step, then loops without ever awaiting."""
    cell = Cell("c", 0)

    async def spin() -> None:
        await WRITE_ONCE(cell, 1)
        while cell.value:
            pass

    return SimpleInstance(task_list=[("spin", spin())])


def long_running() -> Instance:
    """Two tasks that take very many steps."""
    cell = Cell("c", 0)

    async def write() -> None:
        for i in range(10**7):
            await WRITE_ONCE(cell, i)

    return SimpleInstance(task_list=[("a", write()), ("b", write())])


def spinning_build() -> Instance:
    """A build function that never returns."""
    cell = Cell("c", 1)
    while cell.value:
        pass
    return spinning()  # pragma: no cover - never reached


class TestHungTask:
    def test_a_task_that_never_yields_is_a_finding(self) -> None:
        """A busy loop without await is a fatal hung-task finding of that task."""
        config = ExploreConfig(strategy="dfs", task_timeout_s=0.1)

        result = explore(spinning, config)

        assert ["hung-task"] == result.kinds
        assert "spin" == result.counterexamples[0].finding.task
        assert ExitReason.FOUND == result.exit_reason

    def test_replay_of_the_hang_reproduces_it(self) -> None:
        """The schedule so far replays into the same hung-task finding."""
        config = ExploreConfig(strategy="dfs", task_timeout_s=0.1)
        schedule = explore(spinning, config).counterexamples[0].schedule

        again = replay(spinning, schedule, task_timeout=0.1)

        assert ["hung-task"] == [f.kind for f in again.findings]

    def test_a_build_that_never_returns_is_a_model_error(self) -> None:
        """A hang outside any task is a ModelError naming the build function."""
        config = ExploreConfig(strategy="dfs", task_timeout_s=0.1)

        with pytest.raises(
            ModelError, match=r"building the world .* without returning"
        ):
            explore(spinning_build, config)


class TestBudgetInsideAnExecution:
    def test_time_budget_stops_a_long_execution(self) -> None:
        """The time budget ends an execution still running, as time-budget (D15)."""
        config = ExploreConfig(
            strategy="dfs", time_budget_s=0.2, max_steps=10**7, task_timeout_s=None
        )

        result = explore(long_running, config)

        assert (ExitReason.TIME_BUDGET, 0) == (result.exit_reason, result.executions)


class TestMemory:
    def test_memory_limit_is_a_model_error_with_partial_counts(self) -> None:
        """Passing the memory limit stops the exploration with a ModelError saying why (D12)."""
        config = ExploreConfig(strategy="dfs", max_steps=10**7, memory_limit_mb=1)

        with pytest.raises(ModelError, match="over the memory limit of 1 MiB") as info:
            explore(long_running, config)
        assert ExitReason.ERROR == info.value.partial.exit_reason  # type: ignore[attr-defined]

    def test_resident_size_and_default_limit_are_known(self) -> None:
        """On Linux the resident size is read and the default limit is a share of RAM."""
        limit = default_memory_limit()

        assert resident_bytes() > 0
        assert limit is not None
        assert limit > 0


class TestArming:
    def test_off_the_main_thread_it_does_nothing(self) -> None:
        """Signals reach only the main thread, so elsewhere the watchdog is off."""
        seen: list[bool] = []

        def body() -> None:
            with watchdog(task_timeout=0.01):
                seen.append(True)

        thread = threading.Thread(target=body)
        thread.start()
        thread.join()

        assert [True] == seen

    def test_nested_use_keeps_the_outer_watchdog(self) -> None:
        """An inner watchdog inside an armed one leaves the outer armed when it ends."""
        with watchdog(task_timeout=5.0):
            with watchdog(task_timeout=0.01):
                pass
            armed = signal.getitimer(signal.ITIMER_VIRTUAL)

        assert armed[1] > 0
        assert (0.0, 0.0) == signal.getitimer(signal.ITIMER_VIRTUAL)
