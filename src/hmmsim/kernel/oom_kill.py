"""Model of the OOM reaper in ``mm/oom_kill.c`` (Linux v5.3).

After the OOM killer picked a victim, the reaper kthread frees the victim's
anonymous memory without waiting for it to exit.  It may only take
``mmap_sem`` with a trylock and may not sleep in mmu notifiers, so it starts
every invalidation with ``mmu_notifier_invalidate_range_start_nonblock``;
when a subscriber refuses (-EAGAIN) the VMA is skipped, with no end call and
no unmap, and the whole attempt is retried later.  After
``MAX_OOM_REAP_RETRIES`` failed attempts it gives up; either way it sets
``MMF_OOM_SKIP`` so the OOM killer may move on.

Deviations:
    * MODEL: ``oom_reap_task`` takes the retry bound as an argument (default
      ``MAX_OOM_REAP_RETRIES``) so scenarios can lower it; the kernel has the
      constant only.
    * MODEL: the reaper kthread, its victim list, ``oom_lock``,
      trace_*_task_reaping and the rss counters are not modelled; the
      scenario runs ``oom_reap_task`` in a task of its own.  The TLB gather
      is kernel.mmu_gather's: the reaped pages are freed in tlb_finish_mmu,
      after invalidate_range_end.
    * MODEL: ``mark_oom_victim`` keeps only the ``oom_mm`` pointer, its mmgrab
      and ``MMF_OOM_VICTIM`` (no TIF_MEMDIE, no freezer); the mmgrab is never
      dropped (the kernel drops it when the signal struct is freed).
"""

from __future__ import annotations

from typing import Final

from hmmsim.kernel.atomic import set_bit, test_bit
from hmmsim.kernel.fork import mmgrab
from hmmsim.kernel.memory import unmap_page_range
from hmmsim.kernel.mm_types import MmStruct, TaskStruct, VmAreaStruct, vma_is_anonymous
from hmmsim.kernel.mmu_gather import MmuGather, tlb_finish_mmu, tlb_gather_mmu
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start_nonblock,
    mmu_notifier_range_init,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    HZ,
    MMF_OOM_SKIP,
    MMF_OOM_VICTIM,
    MMF_UNSTABLE,
    MMU_NOTIFY_UNMAP,
    VM_HUGETLB,
    VM_LOCKED,
    VM_PFNMAP,
    VM_SHARED,
    err_name,
)
from hmmsim.sync import down_read_trylock, schedule_timeout_idle, up_read

__all__ = [
    "MAX_OOM_REAP_RETRIES",
    "__oom_reap_task_mm",
    "can_madv_dontneed_vma",
    "mark_oom_victim",
    "mm_is_oom_victim",
    "oom_reap_task",
    "oom_reap_task_mm",
]

#: Attempts of oom_reap_task_mm before the reaper gives up on an mm.
MAX_OOM_REAP_RETRIES: Final = 10


def can_madv_dontneed_vma(vma: VmAreaStruct) -> bool:
    """Return whether the reaper may unmap ``vma``.

    Kernel: mm/internal.h can_madv_dontneed_vma().
    """
    return not vma.vm_flags & (VM_LOCKED | VM_HUGETLB | VM_PFNMAP)


async def mm_is_oom_victim(mm: MmStruct) -> bool:
    """Return whether ``mm`` belongs to an OOM victim.

    Kernel: include/linux/oom.h mm_is_oom_victim().
    """
    return await test_bit(MMF_OOM_VICTIM, mm.flags)


async def mark_oom_victim(tsk: TaskStruct) -> None:
    """Mark ``tsk`` as an OOM victim and pin its mm for the reaper.

    Kernel: mm/oom_kill.c mark_oom_victim() (reduced, see Deviations).
    """
    mm = tsk.mm
    assert mm is not None, "[hmmsim internal bug] OOM victim without an mm"
    if tsk.oom_mm is None:
        tsk.oom_mm = mm
        await mmgrab(mm)
        await set_bit(MMF_OOM_VICTIM, mm.flags)
    trace("mark_oom_victim", pid=tsk.pid, mm=mm.name)


async def __oom_reap_task_mm(mm: MmStruct) -> bool:
    """Unmap every reapable private VMA of ``mm`` without blocking.

    Kernel: mm/oom_kill.c __oom_reap_task_mm() (v5.3).  A VMA whose
    non-blocking invalidation is refused is skipped: no unmap and no
    invalidate_range_end for it.

    Returns:
        True if every candidate VMA was unmapped, False if some was skipped.
    """
    ret = True

    # Page faults from now on fail with SIGBUS instead of mapping new pages
    # into memory that is being torn down (check_stable_address_space).
    await set_bit(MMF_UNSTABLE, mm.flags)

    for vma in list(mm.mmap):
        if not can_madv_dontneed_vma(vma):
            continue

        # Only private memory: shared and file pages do not go away by
        # unmapping, and waiting on them is not an option here.
        if vma_is_anonymous(vma) or not vma.vm_flags & VM_SHARED:
            range = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(
                range, MMU_NOTIFY_UNMAP, 0, vma, mm, vma.vm_start, vma.vm_end
            )
            tlb = MmuGather(mm=mm)
            tlb_gather_mmu(tlb, mm, range.start, range.end)
            rc = await mmu_notifier_invalidate_range_start_nonblock(range)
            trace(
                "oom_reap_vma",
                mm=mm.name,
                start=range.start,
                end=range.end,
                ret=rc,
                err=err_name(rc),
                reaped=rc == 0,
            )
            if rc:
                await tlb_finish_mmu(tlb, range.start, range.end)
                ret = False
                continue
            await unmap_page_range(tlb, vma, range.start, range.end)
            await mmu_notifier_invalidate_range_end(range)
            # The pages go only now, after the end of the bracket.
            await tlb_finish_mmu(tlb, range.start, range.end)

    return ret


async def oom_reap_task_mm(tsk: TaskStruct, mm: MmStruct) -> bool:
    """One attempt to reap ``mm``.

    Kernel: mm/oom_kill.c oom_reap_task_mm() (v5.3).

    Returns:
        False if ``mmap_sem`` was contended or some VMA was skipped (retry
        later), True otherwise (including when exit_mmap took over).
    """
    ret = True

    if not await down_read_trylock(mm.mmap_sem):
        trace("oom_reap_task_mm", pid=tsk.pid, mm=mm.name, ret=False, why="mmap_sem")
        return False

    # exit_mmap sets MMF_OOM_SKIP once it reaps the mm itself; the check is
    # made under mmap_sem because exit_mmap's down_write/up_write pair orders
    # it against us.
    if await test_bit(MMF_OOM_SKIP, mm.flags):
        trace("oom_reap_task_mm", pid=tsk.pid, mm=mm.name, ret=True, why="skip")
        # goto out_unlock
        await up_read(mm.mmap_sem)
        return ret

    # Part of the address space could not be reaped: try again later.
    ret = await __oom_reap_task_mm(mm)
    trace("oom_reap_task_mm", pid=tsk.pid, mm=mm.name, ret=ret, why="reaped")
    # out_finish: / out_unlock:
    await up_read(mm.mmap_sem)
    return ret


async def oom_reap_task(
    tsk: TaskStruct, max_retries: int = MAX_OOM_REAP_RETRIES
) -> None:
    """Reap the victim's mm, retrying a bounded number of times.

    Kernel: mm/oom_kill.c oom_reap_task() (v5.3).  ``max_retries`` is
    MAX_OOM_REAP_RETRIES in the kernel (MODEL: scenarios may lower it).
    """
    attempts = 0
    mm = tsk.oom_mm
    assert mm is not None, "[hmmsim internal bug] reaping a task that is no victim"

    # Retry a few times, sleeping HZ/10 after each failed attempt.
    while True:
        attempts += 1
        if not (attempts <= max_retries and not await oom_reap_task_mm(tsk, mm)):
            break
        await schedule_timeout_idle(HZ // 10)

    gave_up = not (attempts <= max_retries or await test_bit(MMF_OOM_SKIP, mm.flags))
    # done: hide this mm from the OOM killer, reaped or not.
    await set_bit(MMF_OOM_SKIP, mm.flags)
    trace(
        "oom_reap_task",
        pid=tsk.pid,
        mm=mm.name,
        attempts=min(attempts, max_retries),
        gave_up=gave_up,
    )
