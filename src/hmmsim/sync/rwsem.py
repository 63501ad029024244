"""Model of ``struct rw_semaphore``: down_read / down_write / trylocks / up_*.

``down_read`` and ``down_write`` may sleep (``might_sleep``); the trylocks
never do.  Readers share the lock; a writer excludes everyone.
``downgrade_write`` turns the caller's write hold into a read hold without
letting a writer in between (kernel/locking/rwsem.c, as munmap uses it).

The read-side Ops (down_read, down_read_trylock, up_read) are *read-mode*
Ops of the semaphore: two readers' operations commute (neither can block or
change the outcome of the other), so the explorer does not order them; every
write-side Op writes the semaphore and is ordered against all of them.

Deviations:
    * MODEL: a waiting writer does not hold back new readers (the kernel's
      rwsem does, for fairness); deadlocks that need that rule (recursive
      read against a queued writer) are not found.
"""

from __future__ import annotations

from hmmsim.engine.ops import Op, OpKind
from hmmsim.sync._base import current_execution, current_task, new_oid, report
from hmmsim.sync.debug import might_sleep

__all__ = [
    "RwSemaphore",
    "down_read",
    "down_read_trylock",
    "down_write",
    "down_write_trylock",
    "downgrade_write",
    "init_rwsem",
    "rwsem_is_locked",
    "up_read",
    "up_write",
]


class RwSemaphore:
    """Models ``struct rw_semaphore``.

    Attributes:
        name: human name, e.g. ``mm->mmap_sem``.
        lockdep_class: lock class for the lock-order check.
        oid: object id used for dependency.
        writer: id of the task holding it for write, or None.
        readers: ids of the tasks holding it for read (a task may appear twice).
    """

    __slots__ = ("lockdep_class", "name", "oid", "readers", "writer")
    is_spin = False

    def __init__(self, name: str, *, lockdep_class: str | None = None) -> None:
        """Create an unlocked semaphore."""
        self.name = name
        self.lockdep_class = lockdep_class or name
        self.oid = new_oid()
        self.writer: int | None = None
        self.readers: list[int] = []

    def holders(self) -> tuple[int, ...]:
        """Return the writer or the readers."""
        if self.writer is not None:
            return (self.writer,)
        return tuple(sorted(set(self.readers)))

    def can_read(self) -> bool:
        """Return whether a reader may enter now."""
        return self.writer is None

    def can_write(self) -> bool:
        """Return whether a writer may enter now."""
        return self.writer is None and not self.readers

    def __repr__(self) -> str:
        return (
            f"RwSemaphore({self.name!r}, writer={self.writer}, readers={self.readers})"
        )


def init_rwsem(sem: RwSemaphore) -> None:
    """Reset a semaphore to unlocked."""
    sem.writer = None
    sem.readers = []


async def rwsem_is_locked(sem: RwSemaphore) -> bool:
    """Return whether anybody holds the semaphore.

    A write-mode Op of the semaphore, although it changes nothing: its answer
    depends on readers coming and going, and read-side Ops commute with each
    other, so only a write-mode Op is ordered against ``down_read`` and
    ``up_read``.  To ask whether the *running* task holds it, use
    ``lockdep_is_held`` (owner-local, no Op needed).
    """
    await Op(OpKind.READ, sem.oid, True, "rwsem_is_locked", sem)
    return sem.writer is not None or bool(sem.readers)


def _acquiring(sem: RwSemaphore) -> None:
    current_execution().lock_acquiring(current_task(), sem.lockdep_class)


def _took_read(sem: RwSemaphore) -> None:
    task = current_task()
    sem.readers.append(task.id)
    current_execution().lock_acquired(task, sem)


def _took_write(sem: RwSemaphore) -> None:
    task = current_task()
    sem.writer = task.id
    current_execution().lock_acquired(task, sem)


async def down_read(sem: RwSemaphore) -> None:
    """Take ``sem`` for read, sleeping while a writer holds it."""
    might_sleep("down_read")
    _acquiring(sem)
    # Read-side Ops of different tasks commute: read mode (see module docs).
    await Op(OpKind.ACQUIRE, sem.oid, False, "down_read", sem, sem.can_read)
    _took_read(sem)


async def down_read_trylock(sem: RwSemaphore) -> bool:
    """Take ``sem`` for read if no writer holds it; return whether taken."""
    await Op(OpKind.TRYLOCK, sem.oid, False, "down_read_trylock", sem)
    if not sem.can_read():
        return False
    _took_read(sem)
    return True


async def up_read(sem: RwSemaphore) -> None:
    """Release a read hold of ``sem``."""
    await Op(OpKind.RELEASE, sem.oid, False, "up_read", sem)
    task = current_task()
    if task.id not in sem.readers:
        report(
            "bad-unlock",
            f"up_read({sem.name}) by {task.name}, which does not hold it for read",
        )
        return  # pragma: no cover - report() above is fatal and does not return
    sem.readers.remove(task.id)
    current_execution().lock_released(task, sem)


async def down_write(sem: RwSemaphore) -> None:
    """Take ``sem`` for write, sleeping while anybody holds it."""
    might_sleep("down_write")
    _acquiring(sem)
    await Op(OpKind.ACQUIRE, sem.oid, True, "down_write", sem, sem.can_write)
    _took_write(sem)


async def down_write_trylock(sem: RwSemaphore) -> bool:
    """Take ``sem`` for write if it is free; return whether taken."""
    await Op(OpKind.TRYLOCK, sem.oid, True, "down_write_trylock", sem)
    if not sem.can_write():
        return False
    _took_write(sem)
    return True


async def up_write(sem: RwSemaphore) -> None:
    """Release the write hold of ``sem``."""
    await Op(OpKind.RELEASE, sem.oid, True, "up_write", sem)
    task = current_task()
    if sem.writer != task.id:
        report(
            "bad-unlock",
            f"up_write({sem.name}) by {task.name}, which does not hold it for write",
        )
        return  # pragma: no cover - report() above is fatal and does not return
    sem.writer = None
    current_execution().lock_released(task, sem)


async def downgrade_write(sem: RwSemaphore) -> None:
    """Turn the caller's write hold of ``sem`` into a read hold, atomically.

    Kernel: kernel/locking/rwsem.c downgrade_write().  Waiting readers may
    enter from now on; no writer can slip in between the two holds.  The
    lock stays in the task's held list (lockdep keeps the same hold).
    """
    # A write-mode Op: it changes what other tasks' down_read may do.
    await Op(OpKind.RELEASE, sem.oid, True, "downgrade_write", sem)
    task = current_task()
    if sem.writer != task.id:
        report(
            "bad-unlock",
            f"downgrade_write({sem.name}) by {task.name}, which does not hold it "
            "for write",
        )
        return  # pragma: no cover - report() above is fatal and does not return
    sem.writer = None
    sem.readers.append(task.id)
