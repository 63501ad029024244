"""Model of ``spinlock_t``: spin_lock / spin_unlock / spin_trylock / _irqsave.

Holding a spinlock puts the task in atomic context: ``might_sleep`` then
reports ``sleep-in-nonblockable``.  A task spinning on a held lock is
modelled as blocked (it makes no progress either way).

Deviations:
    * MODEL: interrupts are not modelled; ``_irqsave`` variants behave like
      the plain ones and the flags value is a dummy.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from hmmsim.sync._lock import ExclusiveLock

__all__ = [
    "SpinLock",
    "spin_lock",
    "spin_lock_init",
    "spin_lock_irqsave",
    "spin_trylock",
    "spin_unlock",
    "spin_unlock_irqrestore",
]


class SpinLock(ExclusiveLock):
    """Models ``spinlock_t``."""

    __slots__ = ()
    is_spin = True


def spin_lock_init(lock: SpinLock) -> None:
    """Reset a spinlock to unlocked (the model's locks start unlocked)."""
    lock.owner = None


def spin_lock(lock: SpinLock) -> Coroutine[Any, Any, None]:
    """Acquire ``lock``, spinning (blocked) while another task holds it (``await`` it).

    A plain function that returns the acquisition's coroutine (as the other
    wrappers here do): one coroutine frame less on every resumption.
    """
    return lock._acquire("spin_lock")


def spin_unlock(lock: SpinLock) -> Coroutine[Any, Any, None]:
    """Release ``lock`` (``await`` it)."""
    return lock._release("spin_unlock")


def spin_trylock(lock: SpinLock) -> Coroutine[Any, Any, bool]:
    """Acquire ``lock`` if it is free; return whether it was taken."""
    return lock._try("spin_trylock")


async def spin_lock_irqsave(lock: SpinLock) -> int:
    """Acquire ``lock``; return the (dummy) saved interrupt flags."""
    await lock._acquire("spin_lock_irqsave")
    return 0  # MODEL: interrupt flags are not modelled


async def spin_unlock_irqrestore(lock: SpinLock, flags: int) -> None:
    """Release ``lock`` and restore the (dummy) flags."""
    del flags  # MODEL: interrupt flags are not modelled
    await lock._release("spin_unlock_irqrestore")
