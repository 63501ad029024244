"""mm_struct lifetime and fork: mm_alloc, dup_mm, mmget, mmput, mmgrab, mmdrop.

Kernel: kernel/fork.c (mm_alloc, dup_mm, dup_mmap, mmput, __mmput, __mmdrop)
and include/linux/sched/mm.h (mmgrab, mmdrop, mmget, mmget_not_zero), Linux
v5.3 (dup_mm and dup_mmap as in v5.5, unchanged in what is modelled).

Fork copies the address space: dup_mm makes a new mm and dup_mmap copies
every VMA, with both ``mmap_sem`` held for write, and the page tables of
each (copy_page_range: private memory becomes copy-on-write in both mms,
shared anonymous memory is refaulted from its shmem file by the child).

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
    * MODEL: ``__mmput``, ``__mmdrop`` and ``dup_mmap`` import mmap / memory /
      mmu_notifier inside the function, to break the C files' mutual calls
      (an import cycle here).
    * MODEL: ``dup_mm`` names the new mm after the task (``tsk.comm``) and
      gives it the notifier core of the parent (mm_types Deviations); the
      parent's notifier subscriptions are not inherited (mm_init clears
      them, as in C).  ``dup_mmap`` skips uprobes, ksm, khugepaged,
      userfaultfd, accounting, mempolicy and VM_DONTCOPY/VM_WIPEONFORK (not
      modelled flags); VM_LOCKED is cleared in the child as in C; a failed
      copy_page_range leaves the copied VMAs to the caller's mmput, as in C.
"""

from __future__ import annotations

from hmmsim.kernel.atomic import (
    atomic_dec_and_test,
    atomic_inc,
    atomic_inc_not_zero,
)
from hmmsim.kernel.debug import VM_BUG_ON, might_sleep
from hmmsim.kernel.mm_types import MmStruct, TaskStruct, VmAreaStruct
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import VM_LOCKED, VmFlags
from hmmsim.sync import Cell, RwSemaphore, SpinLock, down_write, up_write

__all__ = [
    "__mmdrop",
    "__mmput",
    "dup_mm",
    "dup_mmap",
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


async def dup_mmap(mm: MmStruct, oldmm: MmStruct) -> int:
    """Copy the VMAs and page tables of ``oldmm`` into the new ``mm``.

    Kernel: kernel/fork.c dup_mmap() (v5.5, reduced: see Deviations).

    Returns:
        0, or the error of copy_page_range (-ENOMEM).
    """
    from hmmsim.kernel.memory import copy_page_range  # noqa: PLC0415
    from hmmsim.kernel.mmap import insert_vm_struct  # noqa: PLC0415

    await down_write(oldmm.mmap_sem)
    # The new mm is not linked anywhere yet: no deadlock possible.
    await down_write(mm.mmap_sem)  # down_write_nested

    retval = 0
    for mpnt in list(oldmm.mmap):
        # vm_area_dup: the child's copy shares vm_ops and the file.
        tmp = VmAreaStruct(
            vm_mm=mm,
            vm_start=mpnt.vm_start,
            vm_end=mpnt.vm_end,
            vm_flags=VmFlags(mpnt.vm_flags & ~VM_LOCKED),
            vm_ops=mpnt.vm_ops,
            vm_pgoff=mpnt.vm_pgoff,
            vm_file=mpnt.vm_file,  # MODEL: get_file is not modelled
        )
        # Link in the new VMA, then copy its page-table entries.
        insert_vm_struct(mm, tmp)
        retval = await copy_page_range(mm, oldmm, mpnt)
        if retval:
            break

    await up_write(mm.mmap_sem)
    await up_write(oldmm.mmap_sem)
    trace("dup_mmap", mm=mm.name, oldmm=oldmm.name, ret=retval)
    return retval


async def dup_mm(tsk: TaskStruct, oldmm: MmStruct) -> MmStruct | None:
    """Make a copy of ``oldmm`` for the new task ``tsk`` (fork without CLONE_VM).

    Kernel: kernel/fork.c dup_mm() (v5.5).

    Returns:
        The new mm (one user, one mm_count), or None when the copy failed.
    """
    # allocate_mm + memcpy + mm_init: a fresh mm, no notifiers inherited.
    mm = mm_alloc(tsk.comm)
    mm.notifier_core = oldmm.notifier_core  # MODEL: see Deviations
    mm.reverted_fixes = oldmm.reverted_fixes  # MODEL: the same kernel build

    err = await dup_mmap(mm, oldmm)
    if err:
        # free_pt: the partly copied address space goes with its only user.
        await mmput(mm)
        return None
    return mm
