"""Model of ``wait_queue_head_t``: wait_event, wait_event_timeout, wake_up_all.

``wait_event(wq, condition)`` follows the kernel macro: check the condition;
if false, queue on ``wq`` (``prepare_to_wait``), check again, sleep until
woken, and repeat.  ``condition`` is an async predicate, so the shared state
it reads is read through Ops (for example ``READ_ONCE`` of a Cell) and the
explorer sees the race between the check and the writer.

``wait_event_timeout`` makes "the timeout fires before any wake-up" a data
choice each time it sleeps.  If it chooses to be woken and no wake-up ever
comes, the execution is pruned as infeasible: the timeout branch of that very
choice covers it.  A timed-out sleep can end at any later step.

Deviations:
    * MODEL: time does not advance; after a wake-up with a false condition
      the full timeout is available again, and the remaining-jiffies return
      value is the timeout passed in.
    * MODEL: no exclusive waiters; every wake-up is ``wake_up_all``.

Footprint (what the explorer sees): ``prepare_to_wait`` reads the queue
and a wake-up writes it.  ``prepare_to_wait`` does add the task to the
queue, but two of them by different tasks commute: each adds only itself,
and since every wake-up wakes all, the order of the waiters is never
observed.  So waiters never race with each other, only with a wake-up (two
waiters and no waker: one execution, not two).

The sleep does not touch the queue: it reads the waiter's own *entry*, an
object of its own (:func:`waiter_oid`) that only a wake-up finding the task
on the queue writes.  A wake-up's footprint is therefore the queue plus the
entries of the tasks it actually woke, known only once it took effect (it
adds them to its Op's ``more_oids``; while it is pending, its footprint is
the queue alone, which orders it against every ``prepare_to_wait``).  So:

* the sleep happens after the wake-up that woke the task, and after no
  other: a later wake-up finds the task off the queue and commutes with the
  sleep (before, each later wake-up raced with it).  One that finds it
  queued again, in a later round of its wait loop, writes the entry the
  sleep read, but it depends directly on the task's new
  ``prepare_to_wait``, after the sleep: not an immediate race;
* the sleep never races with the wake-up that woke it: its guard (the
  ``woken`` flag) was false before that wake-up, so the two are never
  enabled in the other order (like an unlock and the blocked lock; see
  :mod:`hmmsim.engine.strategies.dpor`).  Which wake-up reaches a waiter is
  decided by the order of the wake-ups and ``prepare_to_wait`` on the queue,
  whose races are all explored;
* ``finish_wait`` and a sleep whose timeout fired (``schedule_timeout``)
  touch only the task's own entry and ``woken`` flag: whether a wake-up
  still found the task on the queue then changes nothing that is read, since
  the next ``prepare_to_wait`` resets the flag.  Both are local.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hmmsim.engine.ops import LOCAL, Op, OpKind
from hmmsim.engine.task import Task
from hmmsim.sync._base import current_execution, current_task, new_oid
from hmmsim.sync.debug import might_sleep

__all__ = [
    "WaitQueueHead",
    "init_waitqueue_head",
    "wait_event",
    "wait_event_timeout",
    "waiter_oid",
    "wake_up",
    "wake_up_all",
]

Condition = Callable[[], Awaitable[bool]]


class WaitQueueHead:
    """Models ``wait_queue_head_t``."""

    __slots__ = ("name", "oid", "waiters")

    def __init__(self, name: str) -> None:
        """Create an empty wait queue."""
        self.name = name
        self.oid = new_oid()
        self.waiters: list[Task] = []

    def holders(self) -> tuple[int, ...]:
        """A wait queue has no holders."""
        return ()

    def __repr__(self) -> str:
        return f"WaitQueueHead({self.name!r}, waiters={[t.name for t in self.waiters]})"


def waiter_oid(task: Task) -> int:
    """Return the object id of ``task``'s wait-queue entry (its ``woken`` flag).

    Negative (below ``LOCAL``), so it never collides with an id from
    ``new_oid``; one per task, since a task sleeps on one queue at a time.
    """
    return -2 - task.id


def init_waitqueue_head(wq: WaitQueueHead) -> None:
    """Reset a wait queue to empty."""
    wq.waiters = []


async def _prepare_to_wait(wq: WaitQueueHead) -> Task:
    # Not a write for the explorer: see "Footprint" in the module docstring.
    await Op(OpKind.WRITE, wq.oid, False, "prepare_to_wait", wq)
    task = current_task()
    task.woken = False
    if task not in wq.waiters:
        wq.waiters.append(task)
    return task


def _finish_wait(wq: WaitQueueHead, task: Task) -> None:
    if task in wq.waiters:
        wq.waiters.remove(task)


async def _sleep(
    wq: WaitQueueHead, task: Task, *, timed: bool, timeout_fires: bool
) -> None:
    if timeout_fires:
        await Op(OpKind.WAIT, LOCAL, False, "schedule_timeout", wq, None, (), True)
        return
    entry = waiter_oid(task)
    await Op(OpKind.WAIT, entry, False, "schedule", wq, lambda: task.woken, (), timed)


async def wait_event(wq: WaitQueueHead, condition: Condition) -> None:
    """Sleep on ``wq`` until ``condition`` is true."""
    might_sleep("wait_event")
    if await condition():
        return
    while True:
        task = await _prepare_to_wait(wq)
        if await condition():
            _finish_wait(wq, task)
            return
        await _sleep(wq, task, timed=False, timeout_fires=False)


async def wait_event_timeout(
    wq: WaitQueueHead, condition: Condition, timeout: int
) -> int:
    """Sleep on ``wq`` until ``condition`` is true or the timeout elapses.

    Returns:
        0 if the condition was still false when the timeout elapsed, 1 if it
        was true by then, else the remaining time (``timeout`` in the model).
    """
    might_sleep("wait_event_timeout")
    remaining = max(timeout, 1)
    if await condition():
        return remaining
    while True:
        task = await _prepare_to_wait(wq)
        if await condition():
            _finish_wait(wq, task)
            return remaining
        fires = current_execution().choose(2, f"timeout({wq.name})") == 1
        await _sleep(wq, task, timed=True, timeout_fires=fires)
        _finish_wait(wq, task)
        if fires:
            return 1 if await condition() else 0


async def _wake(wq: WaitQueueHead, func: str) -> None:
    op = Op(OpKind.WAKE, wq.oid, True, func, wq)
    await op
    woken = wq.waiters
    for task in woken:
        task.woken = True
    # The entries this wake-up wrote: see "Footprint" in the module docstring.
    op.more_oids = tuple(waiter_oid(task) for task in woken)
    wq.waiters = []


async def wake_up_all(wq: WaitQueueHead) -> None:
    """Wake every task sleeping on ``wq``."""
    await _wake(wq, "wake_up_all")


async def wake_up(wq: WaitQueueHead) -> None:
    """Wake the tasks sleeping on ``wq`` (all of them: no exclusive waiters)."""
    await _wake(wq, "wake_up")
