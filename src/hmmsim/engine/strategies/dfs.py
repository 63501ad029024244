"""Naive exhaustive depth-first exploration of every schedule.

Every choice point (task choice or data choice) is a node; the exploration
visits every branch of every node, lowest task id / value first.  Two
independent tasks of m and n steps give exactly C(m+n, n) executions.  It is
the reference the reducing strategies are tested against.

A *prefix* (typed choices, see :mod:`hmmsim.engine.schedule`) restricts
the exploration to the subtree below it: the first ``len(prefix)`` choices
are fixed and never backtracked.  A *horizon* stops branching below a depth
(only the first option is taken there): :mod:`hmmsim.engine.partition` uses
it to enumerate the prefixes of a work split.

Invariant: replaying the recorded prefix meets the same options at each node
(the program is deterministic); a mismatch is an internal error.
"""

from __future__ import annotations

from collections.abc import Sequence

from hmmsim.engine.execution import ExecutionResult
from hmmsim.engine.schedule import Choice, TaskChoice
from hmmsim.engine.strategies.base import NONDETERMINISTIC, bounded_options
from hmmsim.engine.view import ExecutionView
from hmmsim.errors import ModelError

__all__ = ["DfsStrategy"]


class DfsStrategy:
    """Exhaustive DFS over all choices (with an optional preemption bound)."""

    name = "dfs"
    exhaustive = True

    def __init__(
        self,
        *,
        preemption_bound: int | None = None,
        prefix: Sequence[Choice] = (),
        horizon: int | None = None,
    ) -> None:
        """Start before the first execution.

        Args:
            preemption_bound: skip schedules with more preemptions.
            prefix: choices that every execution starts with.
            horizon: branch only at the first ``horizon`` choice points.
        """
        self.preemption_bound = preemption_bound
        self.prefix = tuple(prefix)
        self.horizon = horizon
        self.complete = True
        #: Below a prefix only one subtree is explored: never a verdict on
        #: the whole program (a horizon that cuts a choice clears complete).
        self.partial = bool(self.prefix)
        # Each node: [options, index of the option taken].
        self._stack: list[tuple[list[int], int]] = []
        self._depth = 0
        self._started = False

    def begin_execution(self) -> bool:
        """Advance to the next unexplored branch; False when none is left."""
        if self._started:
            stack = self._stack
            while stack and stack[-1][1] + 1 >= len(stack[-1][0]):
                stack.pop()
            if not stack:
                return False
            options, index = stack[-1]
            stack[-1] = (options, index + 1)
        self._started = True
        self._depth = 0
        return True

    def _pick(self, options: list[int]) -> int:
        depth = self._depth
        self._depth = depth + 1
        prefix = self.prefix
        if depth < len(prefix):
            choice = prefix[depth]
            value = choice.task if isinstance(choice, TaskChoice) else choice.value
            if value not in options:
                raise ModelError(
                    NONDETERMINISTIC
                    + f"dfs prefix diverged at choice {depth}: {value} not in {options}"
                )
            return value
        if self.horizon is not None and depth >= self.horizon:
            if len(options) > 1:
                self.complete = False
            options = options[:1]
        depth -= len(prefix)
        stack = self._stack
        if depth < len(stack):
            known, index = stack[depth]
            if known != options:
                raise ModelError(
                    NONDETERMINISTIC
                    + f"dfs replay diverged at choice {depth}: options {options} != {known}"
                )
            return known[index]
        stack.append((options, 0))
        return options[0]

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Take the next branch of this node."""
        if self.preemption_bound is None:
            return self._pick(enabled)
        options, cut = bounded_options(execution, enabled, self.preemption_bound)
        if cut:
            self.complete = False
        return self._pick(options)

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Take the next value of this data choice."""
        return self._pick(list(range(bound)))

    def end_execution(self, result: ExecutionResult) -> None:
        """Nothing to learn: the stack already holds the branch taken."""
        del self._stack[max(0, self._depth - len(self.prefix)) :]
