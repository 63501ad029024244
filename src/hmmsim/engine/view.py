"""ExecutionView: what a strategy may see of the running execution.

Strategies (:mod:`hmmsim.engine.strategies`) receive this read-only view, not
the :class:`~hmmsim.engine.execution.Execution`: the steps taken so far (the
task and the Op of each), the pending Op of every task, the preemptions and
the findings.  They cannot resume tasks, record choices or report findings;
the execution does that with the answers they give.  Anything that provides
these members can drive a strategy (a test double, a replayed prefix), which
is what lets an exploration be split into work units.

The view is a structural type: :class:`~hmmsim.engine.execution.Execution`
implements it without a wrapper object, so looking at the execution costs a
strategy no more than an attribute access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hmmsim.engine.ops import Op
from hmmsim.engine.trace import Finding

__all__ = ["ExecutionView"]


class ExecutionView(Protocol):
    """Read-only view of one execution for strategies (see the module docstring)."""

    @property
    def step_tasks(self) -> Sequence[int]:
        """The task id of every step taken so far, in order."""
        ...

    @property
    def ops(self) -> Sequence[Op]:
        """The Op performed by every step taken so far, in order."""
        ...

    @property
    def preemptions(self) -> int:
        """Switches away from a task that was still enabled, so far."""
        ...

    @property
    def findings(self) -> Sequence[Finding]:
        """The findings reported so far."""
        ...

    @property
    def task_count(self) -> int:
        """How many tasks exist (ids ``0 .. task_count - 1``, done ones included)."""
        ...

    def pending(self, tid: int) -> Op | None:
        """Return the Op task ``tid`` is about to perform (None once it is done)."""
        ...
