"""Debug checks used by the kernel model (re-exported from ``hmmsim.sync.debug``).

Kernel: include/asm-generic/bug.h, include/linux/mmdebug.h, include/linux/lockdep.h,
include/linux/kernel.h (might_sleep), Linux v5.3.

Adds the mm-specific ones: ``VM_BUG_ON``, the oops of a NULL pointer
dereference (``null_pointer_dereference``) and the ``mmap_sem`` assertions
(``lockdep_assert_held_write``, ``mmap_assert_locked``,
``mmap_assert_write_locked``; the last two are v5.8 names, kept because the
style guide asks for them).

Deviations:
    * MODEL: ``VM_BUG_ON`` is always enabled (as with CONFIG_DEBUG_VM).
    * MODEL: ``lockdep_assert_held_write`` checks the rwsem's recorded writer;
      lockdep itself is the engine's lock graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hmmsim.sync import current_task, report
from hmmsim.sync.debug import (
    BUG_ON,
    WARN_ON,
    WARN_ON_ONCE,
    lockdep_assert_held,
    lockdep_is_held_type,
    might_sleep,
    non_block_end,
    non_block_start,
)
from hmmsim.sync.rwsem import RwSemaphore

if TYPE_CHECKING:
    from hmmsim.kernel.mm_types import MmStruct

__all__ = [
    "BUG_ON",
    "VM_BUG_ON",
    "WARN_ON",
    "WARN_ON_ONCE",
    "lockdep_assert_held",
    "lockdep_assert_held_write",
    "might_sleep",
    "mmap_assert_locked",
    "mmap_assert_write_locked",
    "non_block_end",
    "non_block_start",
    "null_pointer_dereference",
]


def VM_BUG_ON(condition: bool, message: str = "") -> None:
    """Stop the execution with a ``bug`` finding when ``condition`` holds."""
    BUG_ON(condition, message)


def null_pointer_dereference(what: str) -> None:
    """Stop the execution with a ``null-deref`` finding: the kernel oopses here.

    Kernel: the page-fault handler's "BUG: kernel NULL pointer dereference"
    oops (arch/x86/mm/fault.c), which kills the task.  Model code calls it
    where the C dereferences a pointer that is NULL on this path.
    """
    report("null-deref", f"BUG: kernel NULL pointer dereference, {what}", fatal=True)


def lockdep_assert_held_write(sem: RwSemaphore) -> None:
    """Report ``lockdep`` unless the running task holds ``sem`` for write."""
    task = current_task()
    if not lockdep_is_held_type(sem, 0):
        report(
            "lockdep",
            f"lockdep_assert_held_write({sem.name}) failed in task {task.name}",
            fatal=False,
        )


def mmap_assert_locked(mm: MmStruct) -> None:
    """Report ``lockdep`` unless the running task holds ``mm->mmap_sem``."""
    lockdep_assert_held(mm.mmap_sem)


def mmap_assert_write_locked(mm: MmStruct) -> None:
    """Report ``lockdep`` unless the running task holds ``mm->mmap_sem`` for write."""
    lockdep_assert_held_write(mm.mmap_sem)
