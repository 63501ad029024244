"""Exploration strategies and the registry from CLI name to class."""

from __future__ import annotations

from hmmsim.config import ExploreConfig
from hmmsim.engine.strategies.base import Strategy
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.randomized import RandomStrategy
from hmmsim.engine.strategies.round_robin import RoundRobinStrategy
from hmmsim.errors import ConfigError

__all__ = [
    "DfsStrategy",
    "RandomStrategy",
    "RoundRobinStrategy",
    "Strategy",
    "make_strategy",
]


def make_strategy(config: ExploreConfig) -> Strategy:
    """Build the strategy named by ``config.strategy``."""
    name = config.strategy
    if name == "dfs":
        return DfsStrategy(preemption_bound=config.preemption_bound)
    if name == "random":
        return RandomStrategy(
            seed=config.seed, preemption_bound=config.preemption_bound
        )
    if name == "round_robin":
        return RoundRobinStrategy()
    if name == "dpor":
        from hmmsim.engine.strategies.dpor import DporStrategy  # noqa: PLC0415

        return DporStrategy(preemption_bound=config.preemption_bound)
    if name == "pct":
        from hmmsim.engine.strategies.pct import PctStrategy  # noqa: PLC0415

        return PctStrategy(seed=config.seed, depth=config.pct_depth)
    raise ConfigError(
        f"strategy {name!r} cannot be built from a config (replay needs a schedule)"
    )
