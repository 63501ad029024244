"""Sleeping helpers as yield points: msleep, schedule, cond_resched.

Each may sleep (``might_sleep``) and is a scheduling point that touches no
shared object.

Deviations:
    * MODEL: time is not modelled; ``msleep(ms)`` is a yield point whatever
      ``ms`` is.
"""

from __future__ import annotations

from hmmsim.engine.ops import LOCAL, Op, OpKind
from hmmsim.sync.debug import might_sleep

__all__ = ["cond_resched", "msleep", "schedule", "schedule_timeout_idle"]


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
