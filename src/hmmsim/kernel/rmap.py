"""Reverse mapping: map counts of pages, and unmapping one page as reclaim does.

Kernel: mm/rmap.c (v5.5): page_add_new_anon_rmap, page_add_file_rmap,
page_dup_rmap (include/linux/rmap.h), page_remove_rmap, PageAnon
(include/linux/page-flags.h), page_mapcount and page_mapped
(include/linux/mm.h), and try_to_unmap / try_to_unmap_one (v5.3), called by
shrink_page_list (kernel.vmscan).  Unlike munmap, it does not take ``mmap_sem``: it
finds the PTE through the page's reverse map and brackets the change with a
*blockable* mmu-notifier invalidation (MMU_NOTIFY_CLEAR).  That makes it the
everyday source of invalidations that run concurrently with a driver holding
``mmap_sem`` for read.  try_to_unmap_one drops the mapping's reference inside
the bracket, but reclaim isolated the page with a reference of its own, so
the page is freed only by shrink_page_list, after try_to_unmap returned and
so after ``invalidate_range_end``.

Deviations:
    * MODEL: only lazily-freed anonymous pages (MADV_FREE, clean) are
      reclaimed, so the page is discarded rather than swapped out: the PTE is
      cleared and the page reference dropped (no swap entry is installed).
    * MODEL: the caller names the (vma, address) pair; the reverse-map walk
      (rmap_walk, anon_vma) is not modelled: try_to_unmap calls
      try_to_unmap_one on that one mapping, and takes no ``ttu_flags``.
    * MODEL: the page lock and the mmu_gather/TLB flush are not modelled.
    * MODEL: the rmap itself (anon_vma chains, i_mmap) is not modelled, only
      the count of PTEs mapping a page (``Page.mapcount``) and
      ``page->mapping``.  A change of the count of a page other mms may map
      is an Op on the page; page_add_new_anon_rmap touches a page nobody
      else can see yet and is no Op.
    * MODEL: try_to_unmap_one imports ``kernel.memory`` inside the function
      (memory.c and rmap.c call each other: an import cycle here).
"""

from __future__ import annotations

from hmmsim.kernel.debug import VM_BUG_ON
from hmmsim.kernel.mm_types import (
    PAGE_MAPPING_ANON,
    Page,
    VmAreaStruct,
    pte_offset_map,
    pte_page,
    pte_present,
)
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
from hmmsim.sync.once import shared_access

__all__ = [
    "PageAnon",
    "page_add_file_rmap",
    "page_add_new_anon_rmap",
    "page_dup_rmap",
    "page_mapcount",
    "page_mapped",
    "page_remove_rmap",
    "try_to_unmap",
    "try_to_unmap_one",
]


def PageAnon(page: Page) -> bool:
    """Return whether ``page`` is anonymous memory.

    Kernel: include/linux/page-flags.h PageAnon().  The caller holds the PTE
    lock of a PTE mapping the page, so ``mapping`` cannot change under it.
    """
    return page.mapping is PAGE_MAPPING_ANON


def page_add_new_anon_rmap(page: Page, vma: VmAreaStruct, address: int) -> None:
    """Account the first mapping of a new anonymous page (not yet visible).

    Kernel: mm/rmap.c page_add_new_anon_rmap().  MODEL: no Op, the page is
    still private to the faulting task (see Deviations).
    """
    del vma, address  # MODEL: no anon_vma to link the page to
    page.mapcount = 1
    page.mapping = PAGE_MAPPING_ANON


async def page_add_file_rmap(page: Page) -> None:
    """Account one more PTE mapping a page-cache page.

    Kernel: mm/rmap.c page_add_file_rmap().
    """
    await shared_access(page, write=True, func="page_add_file_rmap")
    page.mapcount += 1


async def page_dup_rmap(page: Page) -> None:
    """Account a PTE copied at fork that maps ``page`` too.

    Kernel: include/linux/rmap.h page_dup_rmap() (an atomic_inc of _mapcount).
    """
    await shared_access(page, write=True, func="page_dup_rmap")
    page.mapcount += 1


async def page_remove_rmap(page: Page) -> None:
    """Account a PTE that no longer maps ``page``.

    Kernel: mm/rmap.c page_remove_rmap().
    """
    await shared_access(page, write=True, func="page_remove_rmap")
    VM_BUG_ON(page.mapcount <= 0, "page_remove_rmap of an unmapped page")
    page.mapcount -= 1


async def page_mapcount(page: Page) -> int:
    """Return the number of PTEs mapping ``page`` (a racy read).

    Kernel: include/linux/mm.h page_mapcount().
    """
    await shared_access(page, write=False, func="page_mapcount")
    return page.mapcount


async def page_mapped(page: Page) -> bool:
    """Return whether any PTE maps ``page`` (a racy read).

    Kernel: mm/util.c page_mapped() (include/linux/mm.h).
    """
    await shared_access(page, write=False, func="page_mapped")
    return page.mapcount > 0


async def try_to_unmap(page: Page, vma: VmAreaStruct, address: int) -> bool:
    """Unmap ``page`` from every mapping (here: the one the caller names).

    Kernel: mm/rmap.c try_to_unmap() (v5.3).  MODEL: no rmap walk and no
    ``ttu_flags`` (see Deviations): try_to_unmap_one runs on ``vma`` at
    ``address``.

    Returns:
        True when no PTE maps the page any more.
    """
    await try_to_unmap_one(page, vma, address)
    return await page_mapcount(page) == 0


async def try_to_unmap_one(page: Page, vma: VmAreaStruct, address: int) -> bool:
    """Unmap ``page`` from ``vma`` at ``address`` and discard it.

    Kernel: mm/rmap.c try_to_unmap_one() (v5.3, lazyfree path).

    Returns:
        True when the page was unmapped (or was not mapped there any more).
    """
    from hmmsim.kernel.memory import (  # noqa: PLC0415 - see Deviations
        ptep_get_and_clear,
    )

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
    # MODEL: reclaim only unmaps present RAM pages (see Deviations).
    if pte_present(pte) and pte_page(pte) is page:
        await ptep_get_and_clear(mm, address, ptep)
        unmapped = True
    await spin_unlock(mm.page_table_lock)
    if unmapped:
        # The mapping's reference.  Under reclaim it is not the last one: the
        # isolation reference keeps the page until shrink_page_list frees it.
        await page_remove_rmap(page)
        await put_page(page)
    trace(
        "try_to_unmap_one", mm=mm.name, addr=address, page=page.pfn, unmapped=unmapped
    )

    await mmu_notifier_invalidate_range_end(range)
    return True
