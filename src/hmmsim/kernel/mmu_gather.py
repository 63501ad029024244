"""The TLB gather: pages unmapped by a zap are freed only after the TLB flush.

Kernel: mm/mmu_gather.c and include/asm-generic/tlb.h (Linux v5.3; v5.5 is
the same for what is modelled).

A caller that tears down page-table entries (munmap's unmap_region,
exit_mmap, the OOM reaper) sets up a ``struct mmu_gather`` with
``tlb_gather_mmu`` before the notifier bracket and finishes it with
``tlb_finish_mmu`` after ``invalidate_range_end``.  ``zap_pte_range`` clears
each PTE and drops the page's map count at once, but hands the page's
reference to the gather (``__tlb_remove_page``) instead of putting it: a CPU
may still hold a stale TLB entry for the page until the TLB is flushed, so
the page may only be freed after the flush.  ``tlb_finish_mmu`` flushes the
TLB and then releases every gathered page.  So in these paths a page is
freed after ``invalidate_range_end``, not inside the bracket.

Deviations:
    * MODEL: the batch never fills (``__tlb_remove_page`` always returns
      false): the kernel flushes early when a batch page cannot be
      allocated or the batch is full (``force_flush`` in zap_pte_range), and
      for dirty shared pages; the model has no dirty bit and no batch limit,
      so every gathered page is released in ``tlb_finish_mmu``.
    * MODEL: for ordinary accesses the CPU TLB is the PTE itself (a CPU
      access reads the PTE under the page-table lock, see kernel.uaccess);
      the TLBs of cached accesses (kernel.tlbflush) are flushed by
      ``tlb_flush_mmu_tlbonly`` for the range the zap widened with
      ``tlb_remove_tlb_entry`` (present PTEs only: a cleared swap entry
      needs no flush).  The ``->invalidate_range`` notifier callback that
      ``tlb_flush_mmu_tlbonly`` calls (mmu_notifier_invalidate_range) is not
      modelled (kernel.mmu_notifier Deviations).
    * MODEL: the gather is local to the task that set it up (on its stack in
      C), so its batch needs no Op; releasing a page is the ``put_page`` Op.
      ``tlb_flush_pending`` (inc/dec_tlb_flush_pending,
      mm_tlb_flush_nested), the flush range, page-table freeing
      (free_pgtables, tlb_remove_table) and the swap cache
      (free_pages_and_swap_cache) are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hmmsim.kernel.mm_types import MmStruct, Page
from hmmsim.kernel.page_alloc import put_page
from hmmsim.kernel.tlbflush import flush_tlb_mm_range
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_SIZE

__all__ = [
    "MmuGather",
    "__tlb_remove_page",
    "release_pages",
    "tlb_batch_pages_flush",
    "tlb_finish_mmu",
    "tlb_flush_mmu",
    "tlb_flush_mmu_free",
    "tlb_flush_mmu_tlbonly",
    "tlb_gather_mmu",
    "tlb_remove_tlb_entry",
]


@dataclass(slots=True, kw_only=True, eq=False)
class MmuGather:
    """Models ``struct mmu_gather``.

    Attributes:
        mm: the address space being torn down.
        start: first address of the range (``tlb_gather_mmu``'s argument).
        end: end of the range (exclusive).
        fullmm: whether the whole address space goes (exit_mmap).
        pages: the gathered pages whose reference is still to be dropped
            (MODEL: one list for the kernel's chain of page batches).
        flush_start: first address whose TLB entry must be flushed (the
            kernel's ``tlb->start`` as widened by __tlb_adjust_range; MODEL:
            ``start``/``end`` keep the v5.3 gather range).
        flush_end: end of that range; 0 when nothing needs a flush.
    """

    mm: MmStruct
    start: int = 0
    end: int = 0
    fullmm: bool = False
    pages: list[Page] = field(default_factory=list)
    flush_start: int = 0
    flush_end: int = 0


def tlb_gather_mmu(tlb: MmuGather, mm: MmStruct, start: int, end: int) -> None:
    """Set up ``tlb`` for tearing down [start, end) of ``mm``.

    Kernel: mm/mmu_gather.c tlb_gather_mmu() (v5.3).  ``end`` of -1 (the
    model passes ``1 << 64``) with ``start`` 0 marks a full-mm teardown.
    """
    tlb.mm = mm
    # Is it the whole address space, from 0 to ~0?
    tlb.fullmm = start == 0 and end >= 1 << 64
    tlb.pages = []
    tlb.start = start
    tlb.end = end
    # MODEL: inc_tlb_flush_pending is not modelled.


def __tlb_remove_page(tlb: MmuGather, page: Page) -> bool:
    """Queue ``page``'s reference for release after the TLB flush.

    Kernel: include/asm-generic/tlb.h __tlb_remove_page() ->
    mm/mmu_gather.c __tlb_remove_page_size() (v5.3).

    Returns:
        Whether the batch is full and must be flushed now (MODEL: never).
    """
    tlb.pages.append(page)
    return False


def tlb_remove_tlb_entry(tlb: MmuGather, address: int) -> None:
    """Note that the translation of ``address`` must be flushed.

    Kernel: include/asm-generic/tlb.h tlb_remove_tlb_entry() ->
    __tlb_adjust_range (v6.16; MODEL: no ``ptep`` argument).
    """
    if not tlb.flush_end:
        tlb.flush_start, tlb.flush_end = address, address + PAGE_SIZE
    else:
        tlb.flush_start = min(tlb.flush_start, address)
        tlb.flush_end = max(tlb.flush_end, address + PAGE_SIZE)


async def tlb_flush_mmu_tlbonly(tlb: MmuGather) -> None:
    """Flush the TLB for the range the zap recorded, if any.

    Kernel: include/asm-generic/tlb.h tlb_flush_mmu_tlbonly() (v5.3;
    v6.16's ``if (!tlb->end) return``).  MODEL: flushes the TLBs of cached
    accesses (kernel.tlbflush); no ->invalidate_range callback.
    """
    if not tlb.flush_end:
        return
    await flush_tlb_mm_range(tlb.mm, tlb.flush_start, tlb.flush_end)
    tlb.flush_start = tlb.flush_end = 0  # __tlb_reset_range


async def release_pages(pages: list[Page]) -> None:
    """Drop one reference on each page, freeing those that reach zero.

    Kernel: mm/swap.c release_pages() (v5.3).  MODEL: a put_page per page
    (no LRU or memcg handling, no batched free list).
    """
    for page in pages:
        await put_page(page)


async def tlb_batch_pages_flush(tlb: MmuGather) -> None:
    """Release the gathered pages and empty the batch.

    Kernel: mm/mmu_gather.c tlb_batch_pages_flush() (v5.3) ->
    free_pages_and_swap_cache() (MODEL: no swap cache) -> release_pages().
    """
    pages, tlb.pages = tlb.pages, []
    if pages:
        trace("tlb_release_pages", mm=tlb.mm.name, nr=len(pages))
    await release_pages(pages)


async def tlb_flush_mmu_free(tlb: MmuGather) -> None:
    """Free what was gathered (page tables are not modelled, pages are).

    Kernel: mm/mmu_gather.c tlb_flush_mmu_free() (v5.3).
    """
    # MODEL: tlb_table_flush: no page tables to free.
    await tlb_batch_pages_flush(tlb)


async def tlb_flush_mmu(tlb: MmuGather) -> None:
    """Flush the TLB, then free the gathered pages.

    Kernel: mm/mmu_gather.c tlb_flush_mmu() (v5.3).
    """
    await tlb_flush_mmu_tlbonly(tlb)
    await tlb_flush_mmu_free(tlb)


async def tlb_finish_mmu(tlb: MmuGather, start: int, end: int) -> None:
    """Finish the teardown: flush the TLB and free the gathered pages.

    Kernel: mm/mmu_gather.c tlb_finish_mmu() (v5.3).  Called after the
    notifier bracket's ``invalidate_range_end``.
    """
    del start, end  # MODEL: no nested-flush range adjustment (see Deviations)
    await tlb_flush_mmu(tlb)
    # MODEL: check_pgt_cache, tlb_batch_list_free and dec_tlb_flush_pending
    # are not modelled.
