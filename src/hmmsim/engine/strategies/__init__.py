"""Exploration strategies and the one registry from name to strategy.

:data:`REGISTRY` is the single list of strategies: the config validates
names against :data:`hmmsim.config.STRATEGY_NAMES` (which a test keeps equal
to its keys, since the config layer sits below the engine), the CLI offers
the ``selectable`` ones as ``--strategy`` choices with their ``summary``, and
:func:`make_strategy` builds from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from hmmsim.config import ExploreConfig
from hmmsim.engine.strategies.base import Strategy
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.randomized import RandomStrategy
from hmmsim.engine.strategies.round_robin import RoundRobinStrategy
from hmmsim.errors import ConfigError

__all__ = [
    "REGISTRY",
    "DfsStrategy",
    "RandomStrategy",
    "RoundRobinStrategy",
    "Strategy",
    "StrategyInfo",
    "make_strategy",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyInfo:
    """One entry of the registry.

    Attributes:
        name: the name used in configs and on the command line.
        summary: one line for ``--help``.
        sampling: it samples schedules rather than enumerating them (it stops
            at the first violation unless told to keep going, and is bounded by
            time rather than by a count).
        selectable: offered by ``hmmsim check --strategy``.
        build: make the strategy from a config (None: needs more than a config).
    """

    name: str
    summary: str
    sampling: bool
    selectable: bool
    build: Callable[[ExploreConfig], Strategy] | None


def _dpor(config: ExploreConfig) -> Strategy:
    from hmmsim.engine.strategies.dpor import DporStrategy  # noqa: PLC0415

    return DporStrategy(preemption_bound=config.preemption_bound)


def _pct(config: ExploreConfig) -> Strategy:
    from hmmsim.engine.strategies.pct import PctStrategy  # noqa: PLC0415

    return PctStrategy(seed=config.seed, depth=config.pct_depth)


REGISTRY: Final[Mapping[str, StrategyInfo]] = {
    info.name: info
    for info in (
        StrategyInfo(
            name="dpor",
            summary="exhaustive, one schedule per class of equivalent ones",
            sampling=False,
            selectable=True,
            build=_dpor,
        ),
        StrategyInfo(
            name="dfs",
            summary="exhaustive, every schedule",
            sampling=False,
            selectable=True,
            build=lambda c: DfsStrategy(preemption_bound=c.preemption_bound),
        ),
        StrategyInfo(
            name="pct",
            summary="sampling with random priorities and change points",
            sampling=True,
            selectable=True,
            build=_pct,
        ),
        StrategyInfo(
            name="random",
            summary="sampling with a uniformly random task at each step",
            sampling=True,
            selectable=True,
            build=lambda c: RandomStrategy(
                seed=c.seed, preemption_bound=c.preemption_bound
            ),
        ),
        StrategyInfo(
            name="replay",
            summary="follow one recorded schedule",
            sampling=False,
            selectable=False,
            build=None,
        ),
        StrategyInfo(
            name="round_robin",
            summary="one fixed schedule, each task in turn",
            sampling=False,
            selectable=False,
            build=lambda c: RoundRobinStrategy(),
        ),
    )
}


def make_strategy(config: ExploreConfig) -> Strategy:
    """Build the strategy named by ``config.strategy``."""
    info = REGISTRY.get(config.strategy)
    if info is None or info.build is None:
        raise ConfigError(
            f"strategy {config.strategy!r} cannot be built from a config "
            "(replay needs a schedule)"
        )
    return info.build(config)
