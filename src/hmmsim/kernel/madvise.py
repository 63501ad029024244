"""madvise(MADV_DONTNEED): drop the pages of a range without unmapping it.

Kernel: mm/madvise.c do_madvise() / madvise_dontneed_single_vma() and
mm/memory.c zap_page_range_single() (Linux v6.16).  Unlike munmap, which
needs ``mmap_lock`` for write, MADV_DONTNEED holds it only for read: it can
run while a driver migrates the same range (migrate_vma_setup also holds it
for read).  The PTEs are zapped inside an MMU_NOTIFY_CLEAR bracket, the TLB
is flushed for the PTEs that were present, and the pages are freed after
the flush (kernel.mmu_gather).  The next access of the range faults in a
fresh zero-filled page.

Deviations:
    * MODEL: only MADV_DONTNEED on anonymous memory; ``behavior`` other
      values are -EINVAL.  No userfaultfd, hugetlb or locked-VMA checks,
      no ``madvise_behavior`` batching (one VMA at a time).
    * MODEL: ``zap_page_range_single`` lives here, not in kernel.memory:
      only madvise calls it in the model.
"""

from __future__ import annotations

import errno
from typing import Final

from hmmsim.kernel.memory import unmap_single_vma
from hmmsim.kernel.mm_types import MmStruct, VmAreaStruct
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.mmu_gather import MmuGather, tlb_finish_mmu, tlb_gather_mmu
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import MMU_NOTIFY_CLEAR, PAGE_ALIGN, PAGE_MASK
from hmmsim.sync import down_read, up_read

__all__ = [
    "MADV_DONTNEED",
    "do_madvise",
    "madvise_dontneed_single_vma",
    "zap_page_range_single",
]

#: include/uapi/asm-generic/mman-common.h
MADV_DONTNEED: Final = 4


async def zap_page_range_single(vma: VmAreaStruct, address: int, size: int) -> None:
    """Zap the PTEs of [address, address + size) in one VMA, then flush and free.

    Kernel: mm/memory.c zap_page_range_single() (v6.16; MODEL: no
    ``details``).  The caller holds ``mmap_lock`` (read is enough).
    """
    mm = vma.vm_mm
    end = address + size
    range = MmuNotifierRange(mm=mm)
    tlb = MmuGather(mm=mm)

    # lru_add_drain: MODEL: no LRU.
    mmu_notifier_range_init(range, MMU_NOTIFY_CLEAR, 0, vma, mm, address, end)
    tlb_gather_mmu(tlb, mm, address, end)
    # update_hiwater_rss: MODEL: no rss counters.
    await mmu_notifier_invalidate_range_start(range)
    await unmap_single_vma(tlb, vma, address, end)
    await mmu_notifier_invalidate_range_end(range)
    await tlb_finish_mmu(tlb, address, end)


async def madvise_dontneed_single_vma(vma: VmAreaStruct, start: int, end: int) -> int:
    """MADV_DONTNEED on the part [start, end) of one VMA.

    Kernel: mm/madvise.c madvise_dontneed_single_vma() (v6.16).

    Returns:
        0.
    """
    await zap_page_range_single(vma, start, end - start)
    return 0


async def do_madvise(mm: MmStruct, start: int, len_in: int, behavior: int) -> int:
    """madvise(2) for the process owning ``mm`` (MODEL: MADV_DONTNEED only).

    Kernel: mm/madvise.c do_madvise() (v6.16): MADV_DONTNEED takes
    ``mmap_lock`` for read and walks the VMAs of the range.

    Returns:
        0, -EINVAL (misaligned start, unsupported behaviour) or -ENOMEM (a
        part of the range is not mapped).
    """
    if start & ~PAGE_MASK or behavior != MADV_DONTNEED:
        return -errno.EINVAL
    end = start + PAGE_ALIGN(len_in)
    if end == start:
        return 0

    await down_read(mm.mmap_sem)
    ret = 0
    addr = start
    while addr < end:
        vma = find_vma(mm, addr)
        if vma is None or vma.vm_start > addr:
            ret = -errno.ENOMEM
            break
        part_end = min(end, vma.vm_end)
        ret = await madvise_dontneed_single_vma(vma, addr, part_end)
        if ret:  # pragma: no cover - madvise_dontneed_single_vma returns 0
            break
        addr = part_end
    await up_read(mm.mmap_sem)
    trace("madvise", mm=mm.name, start=start, end=end, behavior=behavior, ret=ret)
    return ret
