"""Page reclaim of one lazily-freed anonymous page: isolate, unmap, free.

Kernel: mm/vmscan.c (v5.3; v5.5 is the same for what is modelled):
shrink_inactive_list, isolate_lru_pages, shrink_page_list and
putback_inactive_pages.

Reclaim first isolates pages from the LRU, taking a reference on each
(``get_page_unless_zero`` in ``__isolate_lru_page``).  ``shrink_page_list``
then unmaps each page through the reverse map (``try_to_unmap``, whose
``try_to_unmap_one`` brackets the PTE clear with a blockable mmu-notifier
invalidation and drops the mapping's reference inside the bracket).  Because
the isolation reference is still held, that ``put_page`` never frees the
page: ``shrink_page_list`` frees it afterwards, once ``try_to_unmap`` has
returned, by freezing the count at the isolation reference
(``page_ref_freeze(page, 1)``) and handing it to ``free_unref_page_list``.
So a reclaimed page is freed after ``invalidate_range_end``, never inside the
bracket.  A page someone else still holds a reference on is kept and put
back (``putback_inactive_pages``), which drops the isolation reference; the
last holder frees it.

The current kernel keeps this order with folios (``shrink_folio_list``,
``try_to_unmap`` returning void and the caller checking ``folio_mapped``,
``folio_ref_freeze``), so the model serves v5.3, v5.5 and ``current``.

Deviations:
    * MODEL: the LRU scan (``isolate_lru_pages`` over ``nr_to_scan`` pages of
      an lruvec) is reduced to the one page the caller names, with the
      mapping (vma, address) that try_to_unmap unmaps (no rmap walk, see
      kernel.rmap).  The page lists are Python lists.
    * MODEL: ``PageLRU`` is "the page still has a reference": a freed page
      has left the LRU, so isolation is ``get_page_unless_zero`` alone
      (no ``lru_lock``, no ``ClearPageLRU``, no LRU list moves, no
      statistics, no ``scan_control``).
    * MODEL: only the clean lazily-freed anonymous page (MADV_FREE,
      ``PageAnon && !PageSwapBacked``) is modelled: no page lock
      (``trylock_page``), no dirty bit (the ``PageDirty`` recheck after the
      freeze), no writeback, no swap cache or ``add_to_swap``, no page
      references check (``page_check_references``), no ``__remove_mapping``
      for file pages, no THP, no mlock.
    * MODEL: a page that stays mapped after try_to_unmap (another mapping
      the model does not walk) goes to ``activate_locked``, which here is the
      same as ``keep``: it is put back with the isolation reference dropped.
"""

from __future__ import annotations

from hmmsim.kernel.mm_types import Page, VmAreaStruct
from hmmsim.kernel.page_alloc import (
    free_unref_page_list,
    get_page_unless_zero,
    page_ref_freeze,
    put_page,
)
from hmmsim.kernel.rmap import page_mapped, try_to_unmap
from hmmsim.kernel.trace import trace

__all__ = [
    "isolate_lru_pages",
    "putback_inactive_pages",
    "shrink_inactive_list",
    "shrink_page_list",
]


async def isolate_lru_pages(page: Page, dst: list[Page]) -> int:
    """Isolate ``page`` onto ``dst``, taking reclaim's reference on it.

    Kernel: mm/vmscan.c isolate_lru_pages() -> __isolate_lru_page() (v5.3).
    MODEL: one page, named by the caller (see Deviations).

    Returns:
        The number of pages isolated (0 when the page was already freed).
    """
    if not await get_page_unless_zero(page):
        return 0
    dst.append(page)
    return 1


async def shrink_page_list(
    page_list: list[Page], vma: VmAreaStruct, address: int
) -> int:
    """Unmap and free the isolated pages; the ones kept stay on ``page_list``.

    Kernel: mm/vmscan.c shrink_page_list() (v5.3), lazyfree path.  Each page
    carries reclaim's isolation reference.  The freeing happens after
    try_to_unmap returned, that is after its ``invalidate_range_end``.

    Returns:
        The number of pages reclaimed (freed).
    """
    ret_pages: list[Page] = []
    free_pages: list[Page] = []
    nr_reclaimed = 0
    while page_list:
        page = page_list.pop(0)
        # MODEL: no trylock_page, references check or swap (see Deviations).
        if await page_mapped(page) and not await try_to_unmap(page, vma, address):
            ret_pages.append(page)  # activate_locked (MODEL: same as keep)
            continue
        # The clean lazily-freed anonymous page: follow __remove_mapping,
        # only the isolation reference may be left.
        if not await page_ref_freeze(page, 1):
            ret_pages.append(page)  # keep_locked
            continue
        nr_reclaimed += 1
        free_pages.append(page)
    await free_unref_page_list(free_pages)
    page_list.extend(ret_pages)
    trace("shrink_page_list", nr_reclaimed=nr_reclaimed, kept=len(ret_pages))
    return nr_reclaimed


async def putback_inactive_pages(page_list: list[Page]) -> None:
    """Drop the isolation reference of every kept page.

    Kernel: mm/vmscan.c putback_inactive_pages() (v5.3): each page goes back
    on the LRU and loses the isolation reference; a page whose count drops
    to zero there is freed (``put_page_testzero`` and
    ``free_unref_page_list`` in the caller).  MODEL: no LRU, so the put and
    the free are ``put_page``.
    """
    while page_list:
        await put_page(page_list.pop(0))


async def shrink_inactive_list(page: Page, vma: VmAreaStruct, address: int) -> int:
    """Reclaim ``page`` (mapped at ``address`` in ``vma``) as kswapd does.

    Kernel: mm/vmscan.c shrink_inactive_list() (v5.3): isolate_lru_pages,
    shrink_page_list, putback_inactive_pages.  MODEL: one page named by the
    caller (see Deviations).

    Returns:
        The number of pages reclaimed (0 or 1).
    """
    page_list: list[Page] = []
    if not await isolate_lru_pages(page, page_list):
        return 0
    nr_reclaimed = await shrink_page_list(page_list, vma, address)
    await putback_inactive_pages(page_list)
    return nr_reclaimed
