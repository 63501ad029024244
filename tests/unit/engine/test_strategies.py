"""Tests for `hmmsim.engine.strategies` (the registry) and its `base` module."""

from __future__ import annotations

import pytest
from tests.support.toy_programs import counter_race

from hmmsim.config import ExploreConfig
from hmmsim.engine import Execution, Schedule
from hmmsim.engine.strategies import (
    DfsStrategy,
    RandomStrategy,
    RoundRobinStrategy,
    make_strategy,
)
from hmmsim.engine.strategies.base import bounded_options
from hmmsim.engine.strategies.pct import PctStrategy
from hmmsim.engine.strategies.replay import ReplayStrategy
from hmmsim.errors import ConfigError


class TestMakeStrategy:
    @pytest.mark.parametrize(
        ("name", "cls"),
        [
            ("dfs", DfsStrategy),
            ("random", RandomStrategy),
            ("round_robin", RoundRobinStrategy),
            ("pct", PctStrategy),
        ],
    )
    def test_names_map_to_classes(self, name: str, cls: type) -> None:
        """Each CLI name builds its strategy class, which reports that name."""
        strategy = make_strategy(ExploreConfig(strategy=name))

        assert isinstance(strategy, cls)
        assert name == strategy.name

    def test_pct_gets_seed_and_depth_from_the_config(self) -> None:
        """make_strategy passes pct_depth and seed to PctStrategy."""
        strategy = make_strategy(ExploreConfig(strategy="pct", pct_depth=5, seed=4))

        assert isinstance(strategy, PctStrategy)
        assert 5 == strategy.depth

    def test_replay_cannot_be_built_from_a_config(self) -> None:
        """The replay strategy needs a schedule: ConfigError names it."""
        with pytest.raises(ConfigError, match="strategy 'replay' cannot be built"):
            make_strategy(ExploreConfig(strategy="replay"))


class TestBoundedOptions:
    def _execution(self, tasks: list[int], preemptions: int) -> Execution:
        execution = Execution(counter_race, ReplayStrategy(Schedule()), max_steps=1)
        execution.step_tasks = tasks
        execution.preemptions = preemptions
        return execution

    def test_no_bound_allows_everything(self) -> None:
        """Without a bound every enabled task is allowed."""
        assert ([0, 1], False) == bounded_options(self._execution([0], 5), [0, 1], None)

    def test_the_first_step_is_free(self) -> None:
        """Before any step there is nothing to preempt."""
        assert ([0, 1], False) == bounded_options(self._execution([], 0), [0, 1], 0)

    def test_under_the_bound_everything_is_allowed(self) -> None:
        """With preemptions left, every enabled task is allowed."""
        assert ([0, 1], False) == bounded_options(self._execution([0], 0), [0, 1], 1)

    def test_at_the_bound_the_previous_task_must_run_on(self) -> None:
        """With no preemption left and the last task enabled, only it is allowed."""
        assert ([0], True) == bounded_options(self._execution([0], 1), [0, 1], 1)
        assert ([0], False) == bounded_options(self._execution([0], 1), [0], 1)

    def test_a_blocked_previous_task_frees_the_choice(self) -> None:
        """If the last task cannot run, switching is not a preemption."""
        assert ([1, 2], False) == bounded_options(self._execution([0], 1), [1, 2], 1)


class TestRegistry:
    def test_registry_is_the_config_list_of_names(self) -> None:
        """The one strategy registry names exactly the strategies a config accepts."""
        from hmmsim.config import STRATEGY_NAMES  # noqa: PLC0415
        from hmmsim.engine.strategies import REGISTRY  # noqa: PLC0415

        assert STRATEGY_NAMES == tuple(REGISTRY)

    def test_cli_offers_the_selectable_strategies(self) -> None:
        """``--strategy`` choices come from the registry, with a summary each."""
        from hmmsim.cli import _strategies  # noqa: PLC0415

        names, text = _strategies()

        assert ["dpor", "dfs", "pct", "random"] == names
        assert all(f"{name}: " in text for name in names)
