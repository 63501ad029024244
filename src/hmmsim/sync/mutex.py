"""Model of ``struct mutex``: mutex_lock / mutex_trylock / mutex_unlock.

``mutex_lock`` calls ``might_sleep`` first, as the kernel does, so taking a
mutex in atomic or non-blocking context is reported even when it is free.
``mutex_trylock`` never sleeps.

Deviations:
    * MODEL: no optimistic spinning, no handoff; a waiter is simply blocked
      until the mutex is free (any waiter may get it next).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from hmmsim.engine.ops import Op, OpKind
from hmmsim.sync._lock import ExclusiveLock

__all__ = [
    "Mutex",
    "mutex_init",
    "mutex_is_locked",
    "mutex_lock",
    "mutex_trylock",
    "mutex_unlock",
]


class Mutex(ExclusiveLock):
    """Models ``struct mutex``."""

    __slots__ = ()


def mutex_init(lock: Mutex) -> None:
    """Reset a mutex to unlocked."""
    lock.owner = None


async def mutex_is_locked(lock: Mutex) -> bool:
    """Return whether somebody holds the mutex.

    A read Op of the mutex: the answer depends on other tasks' lock and unlock,
    so the explorer orders it against them.  To ask whether the *running* task
    holds it, use ``lockdep_is_held`` (owner-local, no Op needed).
    """
    await Op(OpKind.READ, lock.oid, False, "mutex_is_locked", lock)
    return lock.owner is not None


def mutex_lock(lock: Mutex) -> Coroutine[Any, Any, None]:
    """Acquire ``lock``, sleeping while another task holds it (``await`` it).

    A plain function that returns the acquisition's coroutine, as the other
    lock and unlock wrappers here do: a coroutine of its own would add a frame
    to every resumption of the task (they are the commonest steps).  The
    acquisition calls ``might_sleep`` first.
    """
    return lock._acquire("mutex_lock", True)


def mutex_trylock(lock: Mutex) -> Coroutine[Any, Any, bool]:
    """Acquire ``lock`` if it is free, without sleeping; return 1/0 as bool."""
    return lock._try("mutex_trylock")


def mutex_unlock(lock: Mutex) -> Coroutine[Any, Any, None]:
    """Release ``lock`` (``await`` it)."""
    return lock._release("mutex_unlock")
