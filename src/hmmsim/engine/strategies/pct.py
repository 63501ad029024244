"""PCT: randomized priority scheduling with a probabilistic guarantee.

Burckhardt, Kothari, Musuvathi and Nagarakatte, "A Randomized Scheduler with
Probabilistic Guarantees of Finding Bugs", ASPLOS 2010.

Each execution gives every task a distinct random priority and always runs
the enabled task with the highest priority.  Before the execution, ``d - 1``
*priority change points* are drawn uniformly from the steps ``1..k``; when
the execution reaches the i-th of them (in step order), the task about to
run drops to priority ``d - i``, below every priority handed out before, and
the highest-priority enabled task runs instead.  For a program of ``n``
tasks and ``k`` steps, one execution finds a bug of *depth* ``d`` (one that
needs ``d`` ordering constraints between steps) with probability at least
``1 / (n * k**(d - 1))``.

Deviations from the paper:
    * ``k`` is not known in advance; it is estimated as the largest number of
      counted steps of the previous executions.  The first execution
      therefore has no change point (it runs by priority alone and measures
      ``k``).
    * Only steps at which two or more tasks are enabled are counted (as in
      shuttle's and Coyote's PCT): a change point on a step with a single
      choice would be wasted.
    * ``n`` is not fixed: a task is given its priority when the strategy
      first sees it, inserted at a uniformly random rank among the tasks not
      yet lowered.  For the tasks present at the start this draws a uniformly
      random permutation, as the paper does; tasks spawned later
      (``call_srcu`` callbacks) get random priorities too.
    * Data choices (``next_int``) are uniformly random, drawn from the same
      seeded ``random.Random``, so an exploration is deterministic for its
      seed.

Invariants (checked with ``assert``):
    * every task the strategy has seen is either ranked (not lowered) or
      lowered, never both;
    * lowered priorities are in ``1..d-1``, below every ranked task.
"""

from __future__ import annotations

import random

from hmmsim.engine.execution import ExecutionResult
from hmmsim.engine.view import ExecutionView
from hmmsim.errors import ConfigError

__all__ = ["PctStrategy"]


class PctStrategy:
    """Probabilistic Concurrency Testing (see the module docstring).

    Args:
        seed: seed of the strategy's own ``random.Random``.
        depth: the bug depth ``d`` searched for; ``d - 1`` change points per
            execution.  Depth 1 never preempts a task by choice.
    """

    name = "pct"
    exhaustive = False

    def __init__(self, *, seed: int = 0, depth: int = 3) -> None:
        """Create the strategy; no execution has run yet."""
        checked: object = depth  # callers may pass anything
        if isinstance(checked, bool) or not isinstance(checked, int) or checked < 1:
            raise ConfigError(f"pct depth must be an integer >= 1, got {depth!r}")
        self.rng = random.Random(seed)
        self.depth = depth
        self.complete = False
        #: Estimate of k: the most counted steps seen in one execution.
        self.steps_estimate = 0
        # Ranked tasks, lowest priority first: task ranked[i] has priority d + i.
        self._ranked: list[int] = []
        # Tasks whose priority was lowered at a change point: tid -> 1..d-1.
        self._lowered: dict[int, int] = {}
        self._seen = 0
        # Counted step number -> the priority the running task drops to.
        self._change_points: dict[int, int] = {}
        self._counted = 0

    @property
    def change_points(self) -> tuple[int, ...]:
        """The counted step numbers of this execution's change points, in order."""
        return tuple(sorted(self._change_points))

    def begin_execution(self) -> bool:
        """Draw the change points of the next execution; there is always one."""
        self._ranked = []
        self._lowered = {}
        self._seen = 0
        self._counted = 0
        k = self.steps_estimate
        count = min(self.depth - 1, k)
        points = sorted(self.rng.sample(range(1, k + 1), count))
        self._change_points = {
            point: self.depth - i for i, point in enumerate(points, start=1)
        }
        return True

    def _admit(self, total: int) -> None:
        """Give each task not seen yet a random rank among the ranked tasks."""
        ranked = self._ranked
        for tid in range(self._seen, total):
            ranked.insert(self.rng.randrange(len(ranked) + 1), tid)
        self._seen = total

    def _priority(self, tid: int) -> int:
        lowered = self._lowered.get(tid)
        if lowered is not None:
            return lowered
        return self.depth + self._ranked.index(tid)

    def _highest(self, enabled: list[int]) -> int:
        return max(enabled, key=self._priority)

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Run the highest-priority enabled task, after any change point."""
        if self._seen < execution.task_count:
            self._admit(execution.task_count)
        if len(enabled) == 1:
            return enabled[0]
        self._counted += 1
        best = self._highest(enabled)
        drop_to = self._change_points.get(self._counted)
        if drop_to is not None:
            assert 1 <= drop_to < self.depth, "[hmmsim internal bug] pct priority"
            if best not in self._lowered:
                self._ranked.remove(best)
            self._lowered[best] = drop_to
            assert len(self._ranked) + len(self._lowered) == self._seen, (
                "[hmmsim internal bug] pct lost track of a task"
            )
            best = self._highest(enabled)
        return best

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Pick a data value uniformly at random (same seeded stream)."""
        return self.rng.randrange(bound)

    def end_execution(self, result: ExecutionResult) -> None:
        """Update the estimate of k with this execution's counted steps."""
        self.steps_estimate = max(self.steps_estimate, self._counted)
