"""Common state of the exclusive locks (spinlock_t, struct mutex)."""

from __future__ import annotations

from hmmsim.engine.ops import Op, OpKind
from hmmsim.sync._base import current_execution, current_task, new_oid, report

__all__ = ["ExclusiveLock"]


class ExclusiveLock:
    """An exclusive lock with an owner (base of SpinLock and Mutex).

    Attributes:
        name: human name, e.g. ``hmm->ranges_lock``.
        lockdep_class: lock class for the lock-order check (defaults to name).
        oid: object id used for dependency.
        owner: id of the holding task, or None.
    """

    __slots__ = ("lockdep_class", "name", "oid", "owner")
    is_spin = False

    def __init__(self, name: str, *, lockdep_class: str | None = None) -> None:
        """Create an unlocked lock."""
        self.name = name
        self.lockdep_class = lockdep_class or name
        self.oid = new_oid()
        self.owner: int | None = None

    def holders(self) -> tuple[int, ...]:
        """Return the owner, if any."""
        return () if self.owner is None else (self.owner,)

    def is_free(self) -> bool:
        """Return whether nobody holds the lock."""
        return self.owner is None

    def is_locked(self) -> bool:
        """Return whether somebody holds the lock."""
        return self.owner is not None

    async def _acquire(self, func: str) -> None:
        current_execution().lock_acquiring(current_task(), self.lockdep_class)
        await Op(OpKind.ACQUIRE, self.oid, True, func, self, self.is_free)
        self._took()

    async def _try(self, func: str) -> bool:
        await Op(OpKind.TRYLOCK, self.oid, True, func, self)
        if self.owner is not None:
            return False
        self._took()
        return True

    def _took(self) -> None:
        task = current_task()
        self.owner = task.id
        if self.is_spin:
            task.atomic += 1
        current_execution().lock_acquired(task, self)

    async def _release(self, func: str) -> None:
        await Op(OpKind.RELEASE, self.oid, True, func, self)
        task = current_task()
        if self.owner != task.id:
            state = "not locked" if self.owner is None else "held by another task"
            report(
                "bad-unlock", f"{func}({self.name}) by {task.name}, but it is {state}"
            )
        self.owner = None
        current_execution().lock_released(task, self)
        if self.is_spin:
            task.atomic -= 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, owner={self.owner})"
