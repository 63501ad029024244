"""Sleeping helpers as yield points: msleep, schedule, cond_resched; kthread_run.

Each may sleep (``might_sleep``) and is a scheduling point that touches no
shared object.  ``kthread_run`` starts a new task (a kernel thread, or the
kworker of a work item: :mod:`hmmsim.kernel.workqueue`).

Deviations:
    * MODEL: time is not modelled; ``msleep(ms)`` is a yield point whatever
      ``ms`` is.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from hmmsim.engine.ops import LOCAL, Op, OpKind
from hmmsim.sync._base import current_execution
from hmmsim.sync.debug import might_sleep

__all__ = ["cond_resched", "kthread_run", "msleep", "schedule", "schedule_timeout_idle"]


async def msleep(ms: int) -> None:
    """Sleep for ``ms`` milliseconds (a yield point)."""
    del ms  # MODEL: time is not modelled
    might_sleep("msleep")
    await Op(OpKind.SLEEP, LOCAL, False, "msleep")


async def schedule_timeout_idle(timeout: int) -> int:
    """Sleep for ``timeout`` jiffies (a yield point); return 0."""
    del timeout  # MODEL: time is not modelled
    might_sleep("schedule_timeout_idle")
    await Op(OpKind.SLEEP, LOCAL, False, "schedule_timeout_idle")
    return 0


async def schedule() -> None:
    """Give up the CPU (a yield point)."""
    might_sleep("schedule")
    await Op(OpKind.YIELD, LOCAL, False, "schedule")


async def cond_resched() -> None:
    """Yield if needed (a yield point)."""
    might_sleep("cond_resched")
    await Op(OpKind.YIELD, LOCAL, False, "cond_resched")


async def kthread_run(body: Coroutine[Any, Any, object], name: str) -> None:
    """Start a task named ``name`` running ``body`` (include/linux/kthread.h).

    A spawn Op; the new task's code up to its first Op runs at once.
    """
    await Op(OpKind.SPAWN, LOCAL, False, "kthread_run")
    current_execution().spawn(name, body)
