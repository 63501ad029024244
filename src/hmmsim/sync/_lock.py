"""Common state of the exclusive locks (spinlock_t, struct mutex)."""

from __future__ import annotations

from typing import Final

from hmmsim.engine import execution as _engine
from hmmsim.engine.ops import Op, OpKind
from hmmsim.sync._base import current_execution, current_task, new_oid, report
from hmmsim.sync.debug import might_sleep

__all__ = ["ExclusiveLock"]

# Module-level copies of the kinds: an enum member is a slow lookup on its
# class (about 50 ns more than a global, on every lock operation).
_ACQUIRE: Final = OpKind.ACQUIRE
_TRYLOCK: Final = OpKind.TRYLOCK
_RELEASE: Final = OpKind.RELEASE


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

    async def _acquire(self, func: str, sleeps: bool = False) -> None:
        """Take the lock for ``func``; ``sleeps``: ``func`` may sleep (might_sleep)."""
        # The task and execution cannot change across the await: look them up
        # once (this is the hottest primitive, bench/engine_speed.py).
        execution = _engine._current or current_execution()
        task = execution.current or current_task()
        if sleeps and (task.atomic or task.non_block):
            might_sleep(func)  # it reports: the task may not sleep here
        if task.held:  # lockdep only orders locks taken while holding one
            execution.lock_acquiring(task, self.lockdep_class)
        await Op(_ACQUIRE, self.oid, True, func, self, self.is_free)
        self.owner = task.id
        if self.is_spin:
            task.atomic += 1
        task.held.append(self)  # execution.lock_acquired, inlined

    async def _try(self, func: str) -> bool:
        execution = _engine._current or current_execution()
        task = execution.current or current_task()
        await Op(_TRYLOCK, self.oid, True, func, self)
        if self.owner is not None:
            return False
        self.owner = task.id
        if self.is_spin:
            task.atomic += 1
        execution.lock_acquired(task, self)
        return True

    async def _release(self, func: str) -> None:
        execution = _engine._current or current_execution()
        task = execution.current or current_task()
        await Op(_RELEASE, self.oid, True, func, self)
        if self.owner != task.id:
            state = "not locked" if self.owner is None else "held by another task"
            report(
                "bad-unlock", f"{func}({self.name}) by {task.name}, but it is {state}"
            )
        self.owner = None
        held = task.held
        if held and held[-1] is self:
            held.pop()  # the common, last-in first-out case
        else:
            execution.lock_released(task, self)
        if self.is_spin:
            task.atomic -= 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, owner={self.owner})"
