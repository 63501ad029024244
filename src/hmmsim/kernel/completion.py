"""Completions: init_completion, complete, wait_for_completion.

Kernel: include/linux/completion.h and kernel/sched/completion.c (v5.18).

Deviations:
    * MODEL: ``done`` is a Cell and the wait is :func:`hmmsim.sync.wait_event`
      on the completion's queue; the C tests and decrements ``done`` under
      ``x->wait.lock`` in one go, the model in two Ops (the read of the wait
      condition, then the decrement), which is the same as long as one task
      waits, as every modelled caller does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hmmsim.sync import (
    READ_ONCE,
    Cell,
    WaitQueueHead,
    shared_access,
    wait_event,
    wake_up_all,
)

__all__ = ["Completion", "complete", "init_completion", "wait_for_completion"]


@dataclass(slots=True, kw_only=True, eq=False)
class Completion:
    """Models ``struct completion``."""

    name: str = "completion"
    done: Cell[int] = field(init=False)
    wait: WaitQueueHead = field(init=False)

    def __post_init__(self) -> None:
        """Make the counter and the queue (init_completion)."""
        init_completion(self)


def init_completion(x: Completion) -> None:
    """Make ``x`` not done (no scheduling point)."""
    x.done = Cell(f"{x.name}.done", 0)
    x.wait = WaitQueueHead(f"{x.name}.wait")


async def complete(x: Completion) -> None:
    """Signal ``x``: one waiter may proceed (kernel/sched/completion.c)."""
    await shared_access(x.done, write=True, func="complete")
    x.done.value += 1
    await wake_up_all(x.wait)


async def wait_for_completion(x: Completion) -> None:
    """Sleep until ``x`` is done, then consume it (kernel/sched/completion.c)."""

    async def completion_done() -> bool:
        return await READ_ONCE(x.done) > 0

    await wait_event(x.wait, completion_done)
    await shared_access(x.done, write=True, func="wait_for_completion")
    x.done.value -= 1
