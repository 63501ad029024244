"""A lock bit with waiters: ``test_and_set_bit_lock`` / ``clear_bit_unlock`` / wait_on_bit.

The kernel builds sleeping locks out of single bits of a flags word (the page
lock ``PG_locked`` is the one the model needs): taking the lock is an atomic
test-and-set of the bit; a task that finds it set sleeps on a (hashed) wait
queue until the holder clears the bit and wakes the waiters.  Others only
wait for the bit to clear without taking it (folio_wait_bit for migration
entries).  The page lock helpers of ``kernel.pagemap`` are built on this.

Kernel: include/asm-generic/bitops/lock.h (test_and_set_bit_lock,
clear_bit_unlock), kernel/sched/wait_bit.c and mm/filemap.c
(folio_wait_bit_common), Linux v6.16.

Deviations:
    * MODEL: the bit is a :class:`BitLock` object, not a bit of a flags word;
      the wait queue is implicit: a blocked acquisition is an ACQUIRE Op the
      engine enables once the bit is clear (as ``struct mutex`` waiters are
      modelled), and a wait without taking is a WAIT Op with the same guard.
      No exclusive hand-off (folio_wake_bit's WQ_FLAG_EXCLUSIVE): any waiter
      may take the bit next.
    * MODEL: the bit records which task set it (``owner``), for reports,
      ``holders()`` and the lock-leak check at task exit; the kernel bit has
      no owner, so clearing it from another task is allowed (the bit moves
      out of the setter's held list).  Clearing a clear bit is a
      ``bad-unlock`` finding (the kernel's VM_BUG_ON_FOLIO in folio_unlock).
      A task that ends with the bit still set is a ``lock-leak``, even if
      another task would clear it later: every model path clears the bits
      it sets itself.
    * MODEL: lockdep does not track bit locks (nor does the kernel's): taking
      one adds no lock-order edge.  A held bit lock is in the task's held
      list, so locks taken under it do get edges from its class.
"""

from __future__ import annotations

from hmmsim.engine import execution as _engine
from hmmsim.engine.ops import Op, OpKind
from hmmsim.sync._base import current_execution, current_task, new_oid, report
from hmmsim.sync.debug import might_sleep

__all__ = [
    "BitLock",
    "clear_bit_unlock",
    "test_and_set_bit_lock",
    "wait_on_bit",
    "wait_on_bit_lock",
]


class BitLock:
    """A lock bit (``PG_locked`` and the like) with its implicit wait queue.

    Attributes:
        name: human name, e.g. ``page#3 PG_locked``.
        lockdep_class: the class reported in other locks' order edges.
        oid: object id used for dependency.
        owner: id of the task that set the bit, or None when it is clear.
        releases: how many times the bit was cleared (MODEL: lets a waiter
            that queued while the bit was set see the wake-up it was owed).
    """

    __slots__ = ("lockdep_class", "name", "oid", "owner", "releases")
    is_spin = False

    def __init__(self, name: str, *, lockdep_class: str = "bit_lock") -> None:
        """Create a clear bit."""
        self.name = name
        self.lockdep_class = lockdep_class
        self.oid = new_oid()
        self.owner: int | None = None
        self.releases = 0

    def holders(self) -> tuple[int, ...]:
        """Return the task that set the bit, if any."""
        return () if self.owner is None else (self.owner,)

    def is_free(self) -> bool:
        """Return whether the bit is clear."""
        return self.owner is None

    def is_locked(self) -> bool:
        """Return whether the bit is set."""
        return self.owner is not None

    def __repr__(self) -> str:
        return f"BitLock({self.name!r}, owner={self.owner})"


def _took(lock: BitLock) -> None:
    execution = _engine._current or current_execution()
    task = execution.current or current_task()
    lock.owner = task.id
    execution.lock_acquired(task, lock)


async def wait_on_bit_lock(lock: BitLock, func: str = "wait_on_bit_lock") -> None:
    """Set the bit, sleeping until it is clear first (a sleeping lock)."""
    might_sleep(func)
    await Op(OpKind.ACQUIRE, lock.oid, True, func, lock, lock.is_free)
    _took(lock)


async def test_and_set_bit_lock(lock: BitLock, func: str) -> bool:
    """Set the bit if it is clear; return whether this call set it (never sleeps)."""
    await Op(OpKind.TRYLOCK, lock.oid, True, func, lock)
    if lock.owner is not None:
        return False
    _took(lock)
    return True


async def clear_bit_unlock(lock: BitLock, func: str = "clear_bit_unlock") -> None:
    """Clear the bit and wake its waiters (any task may clear it, see Deviations)."""
    execution = _engine._current or current_execution()
    await Op(OpKind.RELEASE, lock.oid, True, func, lock)
    owner = lock.owner
    if owner is None:
        task = execution.current or current_task()
        report("bad-unlock", f"{func}({lock.name}) by {task.name}, but it is not set")
        return
    lock.owner = None
    lock.releases += 1
    for task in execution.tasks:
        if task.id == owner:
            execution.lock_released(task, lock)
            break


async def wait_on_bit(
    lock: BitLock, func: str = "wait_on_bit", *, queued_at: int | None = None
) -> None:
    """Sleep until the bit is clear, without setting it.

    ``queued_at`` is ``lock.releases`` as read when the caller queued itself
    (under a lock that kept the bit from being cleared): the wait then also
    ends once the bit was cleared since, even if someone set it again, as
    the kernel's wake-up of the queued waiter does.
    """
    might_sleep(func)
    if queued_at is None:
        await Op(OpKind.WAIT, lock.oid, False, func, lock, lock.is_free)
        return
    since = queued_at
    await Op(
        OpKind.WAIT,
        lock.oid,
        False,
        func,
        lock,
        lambda: lock.owner is None or lock.releases != since,
    )
