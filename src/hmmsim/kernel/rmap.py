"""Reverse-map unmapping of one page, as page reclaim does it (reduced).

Kernel: mm/rmap.c try_to_unmap_one() (v5.3), called by shrink_page_list
through try_to_unmap.  Unlike munmap, it does not take ``mmap_sem``: it
finds the PTE through the page's reverse map and brackets the change with a
*blockable* mmu-notifier invalidation (MMU_NOTIFY_CLEAR).  That makes it the
everyday source of invalidations that run concurrently with a driver holding
``mmap_sem`` for read.

Deviations:
    * MODEL: only lazily-freed anonymous pages (MADV_FREE, clean) are
      reclaimed, so the page is discarded rather than swapped out: the PTE is
      cleared and the page reference dropped (no swap entry is installed).
    * MODEL: the caller names the (vma, address) pair; the reverse-map walk
      (rmap_walk, anon_vma) is not modelled.
    * MODEL: the page lock and the mmu_gather/TLB flush are not modelled.
"""

from __future__ import annotations

from hmmsim.kernel.memory import ptep_get_and_clear
from hmmsim.kernel.mm_types import Page, VmAreaStruct, pte_offset_map, pte_page
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init,
)
from hmmsim.kernel.page_alloc import put_page
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import MMU_NOTIFY_CLEAR, PAGE_MASK, PAGE_SIZE
from hmmsim.sync import spin_lock, spin_unlock

__all__ = ["try_to_unmap_one"]


async def try_to_unmap_one(page: Page, vma: VmAreaStruct, address: int) -> bool:
    """Unmap ``page`` from ``vma`` at ``address`` and discard it.

    Kernel: mm/rmap.c try_to_unmap_one() (v5.3, lazyfree path).

    Returns:
        True when the page was unmapped (or was not mapped there any more).
    """
    mm = vma.vm_mm
    address &= PAGE_MASK
    range = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(
        range, MMU_NOTIFY_CLEAR, 0, vma, mm, address, address + PAGE_SIZE
    )
    await mmu_notifier_invalidate_range_start(range)

    ptep = pte_offset_map(mm, address)
    await spin_lock(mm.page_table_lock)
    pte = ptep.value
    unmapped = False
    if pte is not None and pte_page(pte) is page:
        await ptep_get_and_clear(mm, address, ptep)
        unmapped = True
    await spin_unlock(mm.page_table_lock)
    if unmapped:
        # The mapping's reference; the page is clean and lazily freed.
        await put_page(page)
    trace(
        "try_to_unmap_one", mm=mm.name, addr=address, page=page.pfn, unmapped=unmapped
    )

    await mmu_notifier_invalidate_range_end(range)
    return True
