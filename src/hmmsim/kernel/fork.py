"""mm_struct lifetime: mm_alloc, mmget, mmget_not_zero, mmput, mmgrab, mmdrop.

Kernel: kernel/fork.c (mm_alloc, mmput, __mmput, __mmdrop) and
include/linux/sched/mm.h (mmgrab, mmdrop, mmget, mmget_not_zero), Linux v5.3.

``mm_users`` counts users of the address space: when the last one goes,
``__mmput`` tears the address space down with ``exit_mmap``.  ``mm_count``
counts references to the ``struct mm_struct`` itself (one is held on behalf
of all users); when it drops to zero the struct is freed.

Deviations:
    * MODEL: ``__mmput`` only calls ``exit_mmap`` and drops the users'
      ``mm_count``; uprobes, aio, ksm, khugepaged, exe_file and the mmlist are
      not modelled.
    * MODEL: ``__mmdrop`` destroys the notifier structure and marks the mm
      freed (ghost flag); page directories and contexts are not modelled.
    * MODEL: ``mm_alloc`` builds the mm synchronously (no Op): it is not yet
      visible to any other task.
    * MODEL: ``__mmput`` and ``__mmdrop`` import mmap / mmu_notifier inside
      the function, to break the C files' mutual calls (an import cycle here).
"""

from __future__ import annotations

from hmmsim.kernel.atomic import (
    atomic_dec_and_test,
    atomic_inc,
    atomic_inc_not_zero,
)
from hmmsim.kernel.debug import VM_BUG_ON, might_sleep
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.trace import trace
from hmmsim.sync import Cell, RwSemaphore, SpinLock

__all__ = [
    "__mmdrop",
    "__mmput",
    "mm_alloc",
    "mmdrop",
    "mmget",
    "mmget_not_zero",
    "mmgrab",
    "mmput",
]


def mm_alloc(name: str = "mm") -> MmStruct:
    """Allocate an empty address space with one user and one mm_count.

    Kernel: kernel/fork.c mm_alloc() -> mm_init().
    """
    return MmStruct(
        name=name,
        mm_users=Cell(f"{name}->mm_users", 1),
        mm_count=Cell(f"{name}->mm_count", 1),
        mmap_sem=RwSemaphore(f"{name}->mmap_sem", lockdep_class="mmap_sem"),
        page_table_lock=SpinLock(
            f"{name}->page_table_lock", lockdep_class="page_table_lock"
        ),
        flags=Cell(f"{name}->flags", 0),
    )


async def mmgrab(mm: MmStruct) -> None:
    """Pin the ``struct mm_struct`` (not the address space).

    Kernel: include/linux/sched/mm.h mmgrab().
    """
    value = await atomic_inc(mm.mm_count)
    trace("mm_count", mm=mm.name, value=value, func="mmgrab")


async def mmdrop(mm: MmStruct) -> None:
    """Drop a ``mm_count`` reference; free the struct with the last one.

    Kernel: include/linux/sched/mm.h mmdrop().
    """
    last = await atomic_dec_and_test(mm.mm_count)
    trace("mm_count", mm=mm.name, value=mm.mm_count.value, func="mmdrop")
    if last:
        await __mmdrop(mm)


async def __mmdrop(mm: MmStruct) -> None:
    """Free the ``struct mm_struct`` once nothing references it.

    Kernel: kernel/fork.c __mmdrop().
    """
    from hmmsim.kernel.mmu_notifier import (  # noqa: PLC0415 - see Deviations
        mmu_notifier_mm_destroy,
    )

    await mmu_notifier_mm_destroy(mm)
    # MODEL: free_mm() only marks the struct freed (ghost flag).
    mm.freed = True
    trace("mm_free", mm=mm.name)


async def mmget(mm: MmStruct) -> None:
    """Take a ``mm_users`` reference (the caller already holds one).

    Kernel: include/linux/sched/mm.h mmget().
    """
    value = await atomic_inc(mm.mm_users)
    trace("mm_users", mm=mm.name, value=value, func="mmget")


async def mmget_not_zero(mm: MmStruct) -> bool:
    """Take a ``mm_users`` reference unless the address space is already dying.

    Kernel: include/linux/sched/mm.h mmget_not_zero().

    Returns:
        True if the reference was taken.
    """
    taken = await atomic_inc_not_zero(mm.mm_users)
    trace(
        "mm_users",
        mm=mm.name,
        value=mm.mm_users.value,
        func="mmget_not_zero",
        taken=taken,
    )
    return taken


async def mmput(mm: MmStruct) -> None:
    """Drop a ``mm_users`` reference; the last one tears the address space down.

    Kernel: kernel/fork.c mmput().
    """
    might_sleep("mmput")
    last = await atomic_dec_and_test(mm.mm_users)
    trace("mm_users", mm=mm.name, value=mm.mm_users.value, func="mmput")
    if last:
        await __mmput(mm)


async def __mmput(mm: MmStruct) -> None:
    """Tear down an address space that has no users left.

    Kernel: kernel/fork.c __mmput().
    """
    from hmmsim.kernel.mmap import exit_mmap  # noqa: PLC0415 - see Deviations

    # The value cannot change any more: mmget_not_zero refuses a zero count.
    VM_BUG_ON(mm.mm_users.value != 0, "__mmput with users left")
    await exit_mmap(mm)
    await mmdrop(mm)
