"""Delayed work: INIT_DELAYED_WORK, schedule_delayed_work, msecs_to_jiffies.

Kernel: include/linux/workqueue.h and kernel/workqueue.c (v5.18), reduced
to what Xen's grant-table unmap queue (kernel.drivers.xen_grant_table)
needs: a work item queued with a delay on the system workqueue, which runs
it in a kworker, and which may queue itself again from its own function
(the retry of ``gnttab_unmap_work``).

Deviations:
    * MODEL: the first queuing of an idle item spawns a task named
      ``kworker`` that runs it; when the function queues the item again,
      the same task runs it again, so an item that keeps re-queuing itself
      is one task going round a ``while`` loop (which the engine's progress
      check can recognise as a hang).  No worker pool, no concurrency
      limits, no flush or cancel.
    * MODEL: time is not modelled: the delay is an ``msleep`` (a yield
      point, :mod:`hmmsim.sync.sched`) before each run, whatever its length.
    * MODEL: WORK_STRUCT_PENDING is a plain flag behind one Op on the item
      (queue, start of a run, end of a run); the timer is not modelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hmmsim.kernel.trace import trace
from hmmsim.sync import kthread_run, msleep, new_oid, shared_access

__all__ = [
    "INIT_DELAYED_WORK",
    "DelayedWork",
    "jiffies_to_msecs",
    "msecs_to_jiffies",
    "schedule_delayed_work",
]

#: MODEL: one jiffy is one millisecond (HZ=1000); only a label anyway.
_MSECS_PER_JIFFY = 1


def msecs_to_jiffies(m: int) -> int:
    """Return ``m`` milliseconds in jiffies (include/linux/jiffies.h)."""
    return m // _MSECS_PER_JIFFY


def jiffies_to_msecs(j: int) -> int:
    """Return ``j`` jiffies in milliseconds (kernel/time/time.c)."""
    return j * _MSECS_PER_JIFFY


@dataclass(slots=True, kw_only=True, eq=False)
class DelayedWork:
    """Models ``struct delayed_work`` (its ``work_struct`` and timer).

    Attributes:
        name: name used in reports.
        func: the work function (``work->func``), called with the item.
        pending: WORK_STRUCT_PENDING: queued and not yet started.
        running: MODEL: a kworker is running ``func`` now.
        delay: the delay of the last queuing, in jiffies.
        container: MODEL: the structure embedding this one (container_of).
    """

    name: str = "dwork"
    func: Callable[[DelayedWork], Awaitable[None]] | None = None
    pending: bool = False
    running: bool = False
    delay: int = 0
    container: object = None
    oid: int = field(default_factory=new_oid)

    def holders(self) -> tuple[int, ...]:
        """A work item has no holders."""
        return ()


def INIT_DELAYED_WORK(
    dwork: DelayedWork, func: Callable[[DelayedWork], Awaitable[None]]
) -> None:
    """Initialise ``dwork`` to run ``func`` (no scheduling point)."""
    dwork.func = func
    dwork.pending = False


async def _kworker(dwork: DelayedWork) -> None:
    # process_one_work, once per queuing (see Deviations).
    while True:
        await msleep(jiffies_to_msecs(dwork.delay))
        await shared_access(dwork, write=True, func="process_one_work")
        dwork.pending = False
        dwork.running = True
        func = dwork.func
        assert func is not None, "[hmmsim internal bug] work without a function"
        await func(dwork)
        await shared_access(dwork, write=True, func="process_one_work:done")
        dwork.running = False
        if not dwork.pending:
            return


async def schedule_delayed_work(dwork: DelayedWork, delay: int) -> bool:
    """Queue ``dwork`` on the system workqueue to run after ``delay`` jiffies.

    Kernel: include/linux/workqueue.h schedule_delayed_work() ->
    queue_delayed_work(system_wq, ...) (v5.18).

    Returns:
        False if the item was already pending, else True.
    """
    # queue_delayed_work_on: test_and_set_bit(WORK_STRUCT_PENDING_BIT, ...)
    await shared_access(dwork, write=True, func="test_and_set_bit")
    if dwork.pending:
        return False
    dwork.pending = True
    dwork.delay = delay
    trace("schedule_delayed_work", work=dwork.name, delay=delay)
    if not dwork.running:
        await kthread_run(_kworker(dwork), "kworker")
    return True
