"""The page allocator: alloc_page, get_page, put_page, free_page, pfn_to_page.

Kernel: mm/page_alloc.c, mm/swap.c (__put_page) and include/linux/mm.h
(get_page, put_page), Linux v5.3.

There is one allocator per execution (the kernel's zones are global), kept in
``current_execution().context["page_allocator"]``.  Freed frames go on a LIFO
free list, so the next allocation hands the most recently freed frame out
again: a device that still maps a freed page then sees someone else's data,
which is what the oracle looks for.

Deviations:
    * MODEL: one zone, order-0 pages only, no per-cpu lists, no watermarks.
      ``max_pages`` bounds the number of frames; an allocation beyond it fails
      (returns None), which handle_mm_fault turns into VM_FAULT_OOM.
    * MODEL: ``free_page`` takes the struct page (the kernel's ``free_page``
      takes an address; ``__free_page`` takes the page).
    * MODEL: an allocation is two Ops: taking a frame off the free list (on
      the allocator) and preparing it (on the page: state, generation,
      zeroing), so every Op's footprint is known before it runs.
    * MODEL: the zero page (``ZERO_PAGE``, a static page of the kernel image
      in C) is made at its first use in an execution, outside the allocator's
      frames, with pfn :data:`ZERO_PFN`; it is never allocated or freed and
      always reads 0.
    * MODEL: ``free_unref_page_list`` takes a Python list of pages (the
      kernel's ``struct list_head`` threaded through ``page->lru``).
    * MODEL: ZONE_DEVICE pages (kernel.memremap) are not the allocator's:
      pfn_to_page finds them in the execution's ``pgmap_array``, and
      put_page hands a device page whose count drops to 0 to
      free_zone_device_folio, as v6.16's __folio_put does (device-private
      pages idle at refcount 0 since v6.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from hmmsim.kernel.debug import VM_BUG_ON
from hmmsim.kernel.memremap import DEVICE_PFN_BASE, free_zone_device_folio, pgmap_array
from hmmsim.kernel.mm_types import Page, PageState
from hmmsim.kernel.trace import trace
from hmmsim.sync import current_execution, new_oid
from hmmsim.sync.once import shared_access

__all__ = [
    "GFP_HIGHUSER_MOVABLE",
    "ZERO_PAGE",
    "ZERO_PFN",
    "PageAllocator",
    "alloc_page",
    "free_page",
    "free_unref_page_list",
    "get_page",
    "get_page_unless_zero",
    "is_zero_pfn",
    "my_zero_pfn",
    "page_allocator",
    "page_count",
    "page_ref_freeze",
    "pfn_to_page",
    "put_page",
]

#: The gfp mask of user pages (only a label in the model).
GFP_HIGHUSER_MOVABLE = 0x6200CA

#: MODEL: the zero page's frame number, above any frame the allocator hands out.
ZERO_PFN = 1 << 20


@dataclass(slots=True, kw_only=True, eq=False)
class PageAllocator:
    """The page frames of the execution and the free list.

    Attributes:
        pages: every frame ever created, indexed by pfn.
        free_list: free frames; the last one is handed out first (LIFO).
        max_pages: bound on the number of frames (None: unbounded).
    """

    pages: list[Page] = field(default_factory=list)
    free_list: list[Page] = field(default_factory=list)
    max_pages: int | None = None
    oid: int = field(default_factory=new_oid)
    name: str = "page_allocator"

    def holders(self) -> tuple[int, ...]:
        """The allocator has no holders."""
        return ()


def page_allocator() -> PageAllocator:
    """Return the running execution's allocator (created on first use)."""
    context = current_execution().context
    allocator = context.get("page_allocator")
    if allocator is None:
        allocator = PageAllocator()
        context["page_allocator"] = allocator
    return cast(PageAllocator, allocator)


def pfn_to_page(pfn: int) -> Page:
    """Return the struct page of frame ``pfn``."""
    if is_zero_pfn(pfn):
        return ZERO_PAGE(0)
    if pfn >= DEVICE_PFN_BASE:
        return pgmap_array()[pfn]
    return page_allocator().pages[pfn]


def ZERO_PAGE(vaddr: int) -> Page:
    """Return the shared zero page (one for every address).

    Kernel: arch ZERO_PAGE() (x86: ``empty_zero_page``).  MODEL: made at its
    first use in the execution (see Deviations); it is never written, so no
    Op is needed to read it.
    """
    del vaddr  # one zero page on x86
    context = current_execution().context
    page = context.get("zero_page")
    if page is None:
        page = Page(pfn=ZERO_PFN, refcount=1, state=PageState.IN_USE, generation=1)
        context["zero_page"] = page
    return cast(Page, page)


def my_zero_pfn(addr: int) -> int:
    """Return the frame number of the zero page for ``addr``.

    Kernel: include/asm-generic/pgtable.h my_zero_pfn().
    """
    del addr
    return ZERO_PFN


def is_zero_pfn(pfn: int) -> bool:
    """Return whether ``pfn`` is the zero page.

    Kernel: include/asm-generic/pgtable.h is_zero_pfn().
    """
    return pfn == ZERO_PFN


async def alloc_page(gfp_mask: int = GFP_HIGHUSER_MOVABLE) -> Page | None:
    """Allocate one zeroed page with a reference count of 1.

    Kernel: include/linux/gfp.h alloc_page() (and the zeroing of
    alloc_zeroed_user_highpage_movable()).

    Returns:
        The page, or None when no frame is left (``max_pages``).
    """
    del gfp_mask  # MODEL: one zone, every allocation may use it
    allocator = page_allocator()
    await shared_access(allocator, write=True, func="rmqueue")
    if allocator.free_list:
        page = allocator.free_list.pop()
    elif allocator.max_pages is None or len(allocator.pages) < allocator.max_pages:
        page = Page(pfn=len(allocator.pages))
        allocator.pages.append(page)
    else:
        return None
    await shared_access(page, write=True, func="prep_new_page")
    VM_BUG_ON(page.state is not PageState.FREE, "allocating a page in use")
    page.state = PageState.IN_USE
    page.generation += 1
    page.refcount = 1
    page.contents = 0
    trace("page_alloc", page=page.pfn, generation=page.generation)
    return page


async def free_page(page: Page) -> None:
    """Return ``page`` to the free list (its reference count is zero).

    Kernel: mm/page_alloc.c __free_pages() / free_unref_page().
    """
    allocator = page_allocator()
    await shared_access(page, allocator, write=True, func="free_page")
    VM_BUG_ON(page.state is not PageState.IN_USE, "freeing a free page")
    page.state = PageState.FREE
    page.mapping = None  # free_pages_prepare() clears page->mapping
    allocator.free_list.append(page)
    trace("page_free", page=page.pfn, generation=page.generation)


async def get_page(page: Page) -> None:
    """Take a reference on ``page``.

    Kernel: include/linux/mm.h get_page().
    """
    await shared_access(page, write=True, func="get_page")
    VM_BUG_ON(page.refcount <= 0, "get_page on a page with no reference")
    page.refcount += 1


async def put_page(page: Page) -> None:
    """Drop a reference on ``page``; free it when it was the last one.

    Kernel: include/linux/mm.h put_page() -> mm/swap.c __put_page() (v5.3);
    a ZONE_DEVICE page goes to free_zone_device_folio instead, as in v6.16's
    __folio_put (the model's variants only have device pages in ``current``).
    """
    await shared_access(page, write=True, func="put_page")
    VM_BUG_ON(page.refcount <= 0, "put_page on a page with no reference")
    page.refcount -= 1
    if page.refcount == 0:
        if page.pgmap is not None:
            await free_zone_device_folio(page)
            return
        await free_page(page)


async def page_count(page: Page) -> int:
    """Return ``page``'s reference count (a read Op).

    Kernel: include/linux/mm.h page_count() (an atomic read of
    ``_refcount``; a pin by pin_user_pages counts GUP_PIN_COUNTING_BIAS).
    """
    await shared_access(page, write=False, func="page_ref_count")
    return page.refcount


async def get_page_unless_zero(page: Page) -> bool:
    """Take a reference on ``page`` unless its count already dropped to zero.

    Kernel: include/linux/mm.h get_page_unless_zero() (page_ref_add_unless).

    Returns:
        True when the reference was taken.
    """
    await shared_access(page, write=True, func="get_page_unless_zero")
    if page.refcount == 0:
        return False
    page.refcount += 1
    return True


async def page_ref_freeze(page: Page, count: int) -> bool:
    """Drop ``page``'s count to zero if it is exactly ``count``.

    Kernel: include/linux/page_ref.h page_ref_freeze() (a cmpxchg of
    ``_refcount`` from ``count`` to 0).

    Returns:
        True when the count was ``count`` and is now zero.
    """
    await shared_access(page, write=True, func="page_ref_freeze")
    if page.refcount != count:
        return False
    page.refcount = 0
    return True


async def free_unref_page_list(pages: list[Page]) -> None:
    """Free every page of ``pages``; their reference counts are already zero.

    Kernel: mm/page_alloc.c free_unref_page_list() (v5.3).
    """
    for page in pages:
        await free_page(page)
