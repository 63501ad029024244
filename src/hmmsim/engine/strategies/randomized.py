"""Random walk: every choice uniformly at random, from one seeded stream.

Never exhausts: an exploration with it ends on a bound and is reported as
incomplete, never verified.  Deterministic for a given seed.
"""

from __future__ import annotations

import random

from hmmsim.engine.execution import ExecutionResult
from hmmsim.engine.strategies.base import bounded_options
from hmmsim.engine.view import ExecutionView

__all__ = ["RandomStrategy"]


class RandomStrategy:
    """Uniform random scheduling and data choices (seeded)."""

    name = "random"
    exhaustive = False

    def __init__(self, *, seed: int = 0, preemption_bound: int | None = None) -> None:
        """Create the strategy with its own ``random.Random(seed)``."""
        self.rng = random.Random(seed)
        self.preemption_bound = preemption_bound
        self.complete = False

    def begin_execution(self) -> bool:
        """There is always another execution to sample."""
        return True

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Pick an enabled task at random."""
        options, _ = bounded_options(execution, enabled, self.preemption_bound)
        if len(options) == 1:
            return options[0]
        return options[self.rng.randrange(len(options))]

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Pick a value at random."""
        return self.rng.randrange(bound)

    def end_execution(self, result: ExecutionResult) -> None:
        """Nothing to learn."""
