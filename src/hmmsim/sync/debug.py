"""Kernel debug checks that report findings: might_sleep, WARN_ON, BUG_ON, lockdep.

Like the kernel's, these checks do not change the model's behaviour
(``WARN_ON`` returns its condition, ``might_sleep`` only complains); they
report findings to the running execution:

* ``might_sleep`` while holding a spinlock or inside ``non_block_start`` ..
  ``non_block_end``: ``sleep-in-nonblockable`` (the execution goes on);
* ``WARN_ON`` / ``WARN_ON_ONCE``: ``warn`` (goes on);
* ``BUG_ON``: ``bug`` (the execution stops, as the kernel would);
* ``lockdep_assert_held``: ``lockdep`` when the task does not hold the lock.

``lockdep_is_held`` and ``lockdep_is_held_type`` answer whether the *running*
task holds a lock.  They read no shared state in the explorer's sense, so
they are plain functions: only the task itself takes or releases its own hold
(another task's release of it is a fatal ``bad-unlock``), so the answer is
the same in every interleaving.  Whether *anybody* holds a lock is shared
state: ask ``mutex_is_locked`` or ``rwsem_is_locked``, which are Ops.
"""

from __future__ import annotations

import os
import sys
from typing import Final, Protocol

from hmmsim.sync._base import current_execution, current_task, report

__all__ = [
    "BUG_ON",
    "WARN_ON",
    "WARN_ON_ONCE",
    "lockdep_assert_held",
    "lockdep_is_held",
    "lockdep_is_held_type",
    "might_sleep",
    "non_block_end",
    "non_block_start",
]


class _Holdable(Protocol):
    @property
    def name(self) -> str: ...

    def holders(self) -> tuple[int, ...]: ...


def might_sleep(where: str = "") -> None:
    """Complain if the running task may not sleep here (atomic or non-blocking)."""
    task = current_task()
    if not (task.atomic or task.non_block):
        return
    reason = (
        f"holding spinlock {', '.join(lk.name for lk in task.held if getattr(lk, 'is_spin', False))}"
        if task.atomic
        else "inside a non-blocking section (non_block_start)"
    )
    site = f" in {where}" if where else ""
    report(
        "sleep-in-nonblockable",
        f"sleeping function called from invalid context{site}: {reason}",
        fatal=False,
    )


def non_block_start() -> None:
    """Enter a section in which sleeping is a bug (v5.4's debugging aid)."""
    current_task().non_block += 1


def non_block_end() -> None:
    """Leave a non-blocking section."""
    task = current_task()
    WARN_ON(task.non_block == 0, "non_block_end without non_block_start")
    task.non_block = max(0, task.non_block - 1)


def WARN_ON(condition: bool, message: str = "") -> bool:
    """Report a ``warn`` finding when ``condition`` holds; return it."""
    if condition:
        report("warn", f"WARN_ON({message or 'condition'}) triggered", fatal=False)
    return condition


def WARN_ON_ONCE(condition: bool, message: str = "") -> bool:
    """Like WARN_ON, but report only the first time per call site and execution."""
    if condition:
        frame = sys._getframe(1)
        key = (frame.f_code.co_filename, frame.f_lineno)
        execution = current_execution()
        seen = execution.warned_once
        if key not in seen:
            seen.add(key)
            report(
                "warn", f"WARN_ON_ONCE({message or 'condition'}) triggered", fatal=False
            )
    return condition


def BUG_ON(condition: bool, message: str = "") -> None:
    """Stop the execution with a ``bug`` finding when ``condition`` holds.

    Without a message, the finding names the model code that called it
    (function, file and line), as the kernel's BUG report names its site.
    """
    if condition:
        report("bug", f"kernel BUG: BUG_ON({message or _call_site()})", fatal=True)


#: The files of BUG_ON and its wrappers (VM_BUG_ON), skipped to find the caller.
_HELPERS: Final = frozenset(
    {
        __file__,
        os.path.join(os.path.dirname(os.path.dirname(__file__)), "kernel", "debug.py"),
    }
)


def _call_site() -> str:
    """Return ``function() at file:line`` of the first caller outside the debug helpers."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename in _HELPERS:
        frame = frame.f_back
    code = frame.f_code
    return f"{code.co_name}() at {code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"


def lockdep_is_held(lock: _Holdable) -> bool:
    """Return whether the running task holds ``lock`` (owner-local: no Op)."""
    return current_task().id in lock.holders()


def lockdep_is_held_type(lock: _Holdable, read: int) -> bool:
    """Return whether the running task holds ``lock`` for write (0) or read (1).

    ``read=-1`` accepts either, as the kernel's does.  Owner-local: no Op.
    """
    tid = current_task().id
    if tid not in lock.holders():
        return False
    if read == -1:
        return True
    writer = getattr(lock, "writer", None)
    readers: list[int] = getattr(lock, "readers", [])
    if read == 0:
        return writer == tid or not hasattr(lock, "readers")
    return tid in readers


def lockdep_assert_held(lock: _Holdable) -> None:
    """Report ``lockdep`` if the running task does not hold ``lock``."""
    task = current_task()
    if task.id not in lock.holders():
        report(
            "lockdep",
            f"lockdep_assert_held({lock.name}) failed in task {task.name}",
            fatal=False,
        )
