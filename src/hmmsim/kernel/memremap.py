"""ZONE_DEVICE page maps: struct dev_pagemap, memremap_pages, device-private pages.

Kernel: mm/memremap.c and include/linux/memremap.h (Linux v6.16), plus the
ZONE_DEVICE branch of __folio_put (mm/swap.c).

A driver with device memory the CPU cannot address (a GPU's VRAM, dmirror's
emulated device memory) describes it with a ``struct dev_pagemap`` of type
MEMORY_DEVICE_PRIVATE and calls ``memremap_pages``, which creates a
``struct page`` for every page of the range, each pointing back at the map
(``page->pgmap``).  The map's ``ops`` are the driver's callbacks: the
``page_free`` the mm calls when a device page's last reference is dropped,
and the ``migrate_to_ram`` a CPU fault on a device-private PTE calls
(kernel.memory do_swap_page).  ``owner`` identifies the driver, so that
hmm_range_fault reports the driver's own pages instead of faulting them
back (``range->dev_private_owner``).

Reference counts (the convention since v6.1, "mm: free device private pages
have zero refcount"): a free device-private page has refcount 0 and
belongs to the driver's allocator; the driver hands one out with
``zone_device_page_init``, which takes a reference on the page map, sets
the count to 1 and locks the page (the migration destination must be
locked).  Mappings (device-private PTEs) and users hold references like
any page's; when the count drops to 0, put_page calls
``free_zone_device_folio``, which clears ``mapping``, calls
``pgmap->ops->page_free`` (the page goes back to the driver) and drops the
page-map reference.  (Before v6.1 the idle count was 1 and the free ran at
the drop to 1.)

Deviations:
    * MODEL: only MEMORY_DEVICE_PRIVATE maps are modelled (no coherent,
      fs-dax, generic or p2pdma memory, no altmap, one range per map).
    * MODEL: the physical range is a run of pfns from a per-execution
      counter above every RAM pfn (:data:`DEVICE_PFN_BASE`); pfn_to_page
      (kernel.page_alloc) finds the pages in the execution's
      ``pgmap_array`` (the C's xarray of the same name).  ``range`` holds
      physical addresses (end inclusive), as in C.
    * MODEL: ``memremap_pages`` returns 0 or a negative errno instead of
      the mapped address or an ERR_PTR (a device-private range has no
      usable kernel mapping; the callers only test IS_ERR).  No
      ``devm_memremap_pages`` (devres is not modelled).
    * MODEL: ``pgmap->ref`` (a percpu_ref) is an int in the map changed
      with Ops on the map; ``percpu_ref_kill`` drops the initial reference
      and marks the map dying, and memunmap_pages waits on ``done`` until
      the count is 0.  memunmap_pages then marks the map freed (a ghost
      flag the KASAN-style check of :func:`page_pgmap_checked` reads): in C
      the struct pages themselves go away with the memory section.
    * MODEL: folios are single pages: ``free_zone_device_folio`` takes the
      page; mem_cgroup_uncharge and PG_anon_exclusive are not modelled.
    * MODEL: the ghost page state follows the refcount: FREE while the
      driver's allocator owns the page (before zone_device_page_init, after
      page_free), IN_USE in between; ``generation`` counts the hand-outs.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from hmmsim.kernel.debug import WARN_ON, WARN_ON_ONCE
from hmmsim.kernel.mm_types import Page, PageState, VmFaultStruct
from hmmsim.kernel.pagemap import lock_page
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_SHIFT, VmFault
from hmmsim.sync import WaitQueueHead, current_execution, new_oid, report, wait_event
from hmmsim.sync.once import shared_access
from hmmsim.sync.waitqueue import wake_up_all

__all__ = [
    "DEVICE_PFN_BASE",
    "MEMORY_DEVICE_PRIVATE",
    "DevPagemap",
    "DevPagemapOps",
    "MemoryType",
    "Range",
    "free_zone_device_folio",
    "is_device_private_page",
    "is_zone_device_page",
    "memremap_pages",
    "memunmap_pages",
    "page_pgmap",
    "page_pgmap_checked",
    "pgmap_array",
    "put_dev_pagemap",
    "zone_device_page_init",
]

#: MODEL: the first pfn of device memory (above every RAM pfn and ZERO_PFN).
DEVICE_PFN_BASE: Final = 1 << 24


class MemoryType(enum.Enum):
    """Models ``enum memory_type`` (only the device-private kind)."""

    MEMORY_DEVICE_PRIVATE = 1


#: Device memory the CPU cannot access; mapped by device-private swap entries.
MEMORY_DEVICE_PRIVATE: Final = MemoryType.MEMORY_DEVICE_PRIVATE


class DevPagemapOps(Protocol):
    """Models ``struct dev_pagemap_ops`` (the driver's callbacks)."""

    async def page_free(self, page: Page) -> None:
        """The last reference on a device page was dropped: take it back."""
        ...

    async def migrate_to_ram(self, vmf: VmFaultStruct) -> VmFault:
        """A CPU fault hit a device-private entry: migrate the page to RAM.

        Called by do_swap_page with ``mmap_lock`` held for read and, since
        16ce101db85d, a reference on ``vmf->page`` (since 1afaeb8293c9 also
        its lock).  Returns a VM_FAULT_* code (0 when the fault is handled or
        should simply be retried).
        """
        ...


@dataclass(frozen=True, slots=True)
class Range:
    """Models ``struct range``: physical addresses, ``end`` inclusive."""

    start: int
    end: int


@dataclass(slots=True, kw_only=True, eq=False)
class DevPagemap:
    """Models ``struct dev_pagemap`` (include/linux/memremap.h, v6.16).

    Attributes:
        name: name used in reports (MODEL).
        type: the kind of device memory.
        ops: the driver's callbacks (page_free, migrate_to_ram).
        owner: the driver's cookie, matched against
            ``hmm_range->dev_private_owner``.
        range: the physical range (set by memremap_pages if left empty).
        nr_range: number of ranges (always 1, MODEL).
        nr_pages: MODEL: how many pages memremap_pages creates (the C
            derives it from the range the driver requested).
        ref: ``pgmap->ref``: 1 for the map plus 1 per page handed out.
        dying: MODEL: percpu_ref_kill ran (tryget_live fails).
        done: ``pgmap->done``: woken when ``ref`` drops to 0 once dying.
        pages: MODEL: the struct pages of the range (the C's vmemmap).
        freed: ghost: memunmap_pages removed the pages.
        oid: object id; reference changes are Ops on it.
    """

    name: str = "pgmap"
    type: MemoryType = MEMORY_DEVICE_PRIVATE
    ops: DevPagemapOps | None = None
    owner: object = None
    range: Range | None = None
    nr_range: int = 1
    nr_pages: int = 1
    ref: int = 0
    dying: bool = False
    done: WaitQueueHead = field(default_factory=lambda: WaitQueueHead("pgmap->done"))
    pages: list[Page] = field(default_factory=list)
    freed: bool = False
    oid: int = field(default_factory=new_oid)

    def holders(self) -> tuple[int, ...]:
        """A page map has no holders."""
        return ()

    def __repr__(self) -> str:
        return f"DevPagemap({self.name!r}, pages={len(self.pages)}, ref={self.ref})"


def pgmap_array() -> dict[int, Page]:
    """Return the execution's device pages by pfn (the C's ``pgmap_array``)."""
    context = current_execution().context
    return cast("dict[int, Page]", context.setdefault("pgmap_array", {}))


def _device_pfns(nr_pages: int) -> int:
    """MODEL: reserve ``nr_pages`` device pfns; return the first."""
    context = current_execution().context
    first = cast("int", context.get("device_pfn_next", DEVICE_PFN_BASE))
    context["device_pfn_next"] = first + nr_pages
    return first


def memremap_pages(pgmap: DevPagemap, nid: int) -> int:
    """Create the struct pages of ``pgmap``'s device memory.

    Kernel: mm/memremap.c memremap_pages() (v6.16).  A device-private map
    needs ``ops`` with both callbacks and an ``owner``.  Every page starts
    free (refcount 0, ``page->pgmap`` set); ``pgmap->ref`` starts at 1.
    MODEL: no Op: the pages are new and nobody can see them yet.

    Returns:
        0, or -EINVAL (missing callback or owner, no pages).
    """
    del nid  # MODEL: one NUMA node
    if pgmap.type is MEMORY_DEVICE_PRIVATE:
        if pgmap.ops is None or not hasattr(pgmap.ops, "migrate_to_ram"):
            WARN_ON(True, "Missing migrate_to_ram method")
            return -errno.EINVAL
        if not hasattr(pgmap.ops, "page_free"):
            WARN_ON(True, "Missing page_free method")
            return -errno.EINVAL
        if pgmap.owner is None:
            WARN_ON(True, "Missing owner")
            return -errno.EINVAL
    if pgmap.nr_pages <= 0:
        return -errno.EINVAL

    # percpu_ref_init: the map's own reference.
    pgmap.ref = 1
    pgmap.dying = False
    first = _device_pfns(pgmap.nr_pages)
    pgmap.range = Range(
        first << PAGE_SHIFT, ((first + pgmap.nr_pages) << PAGE_SHIFT) - 1
    )
    array = pgmap_array()
    for pfn in range(first, first + pgmap.nr_pages):
        # memmap_init_zone_device -> __init_zone_device_page: a device-private
        # page starts free, with a zero count.
        page = Page(pfn=pfn, pgmap=pgmap)
        pgmap.pages.append(page)
        array[pfn] = page
    trace("memremap_pages", pgmap=pgmap.name, first=first, nr_pages=pgmap.nr_pages)
    return 0


async def put_dev_pagemap(pgmap: DevPagemap) -> None:
    """Drop a reference on the page map; wake memunmap_pages at the last.

    Kernel: include/linux/memremap.h put_dev_pagemap() (percpu_ref_put; the
    release callback completes ``pgmap->done``).
    """
    await shared_access(pgmap, write=True, func="put_dev_pagemap")
    WARN_ON(pgmap.ref <= 0, f"{pgmap.name} reference underflow")
    pgmap.ref -= 1
    if pgmap.ref == 0:
        await wake_up_all(pgmap.done)


async def memunmap_pages(pgmap: DevPagemap) -> None:
    """Tear the page map down once every page handed out came back.

    Kernel: mm/memremap.c memunmap_pages() (v6.16): percpu_ref_kill (no new
    page may be handed out), wait for ``done`` (every page freed), then the
    pages are removed.  MODEL: marks the map and its pages gone (ghost).
    """
    await shared_access(pgmap, write=True, func="percpu_ref_kill")
    pgmap.dying = True
    pgmap.ref -= 1
    if pgmap.ref == 0:
        await wake_up_all(pgmap.done)

    async def released() -> bool:
        await shared_access(pgmap, write=False, func="wait_for_completion")
        return pgmap.ref == 0

    await wait_event(pgmap.done, released)
    array = pgmap_array()
    for page in pgmap.pages:
        array.pop(page.pfn, None)
    pgmap.freed = True
    trace("memunmap_pages", pgmap=pgmap.name)


def is_zone_device_page(page: Page) -> bool:
    """Return whether ``page`` is ZONE_DEVICE memory.

    Kernel: include/linux/mm.h is_zone_device_page().  ``pgmap`` is set at
    memremap time and never changes, so reading it needs no Op.
    """
    return page.pgmap is not None


def is_device_private_page(page: Page) -> bool:
    """Return whether ``page`` is device-private memory.

    Kernel: include/linux/memremap.h is_device_private_page().
    """
    return page.pgmap is not None and page.pgmap.type is MEMORY_DEVICE_PRIVATE


def page_pgmap(page: Page) -> DevPagemap:
    """Return the page map of a ZONE_DEVICE page.

    Kernel: include/linux/mmzone.h page_pgmap() (v6.15+).
    """
    pgmap = page.pgmap
    assert pgmap is not None, f"[hmmsim internal bug] page_pgmap of RAM {page!r}"
    return pgmap


async def page_pgmap_checked(page: Page, what: str) -> DevPagemap:
    """A driver's load of ``page->pgmap`` / ``zone_device_data`` (an Op), KASAN-checked.

    MODEL: stands for every dereference of a device page's struct page by a
    driver callback (``migrate_to_ram`` reading ``vmf->page``).  The load is
    a read Op on the page, so the explorer orders it against the free; it
    reports ``use-after-free`` when the page is free (its count dropped to 0
    and page_free gave it back: its fields are stale) or its map was torn
    down (memunmap_pages: the struct page is gone), as CVE-2022-3523's
    commit describes.
    """
    await shared_access(page, write=False, func=what)
    pgmap = page_pgmap(page)
    if pgmap.freed:
        report(
            "use-after-free",
            f"KASAN: use-after-free in {what}: {page.name} belongs to "
            f"{pgmap.name}, which memunmap_pages removed",
        )
    elif page.state is PageState.FREE:
        report(
            "use-after-free",
            f"KASAN: use-after-free in {what}: {page.name} was freed "
            f"(refcount 0, {pgmap.name}->ops->page_free ran) while this task "
            "still used it",
        )
    return pgmap


async def zone_device_page_init(page: Page) -> None:
    """Hand a free device page out: take a map reference, count 1, lock it.

    Kernel: mm/memremap.c zone_device_page_init() (v6.16): drivers must not
    allocate after memunmap_pages (WARN_ON_ONCE when the map's reference
    cannot be taken live).
    """
    pgmap = page_pgmap(page)
    await shared_access(pgmap, write=True, func="percpu_ref_tryget_live")
    live = not pgmap.dying and pgmap.ref > 0
    if live:
        pgmap.ref += 1
    WARN_ON_ONCE(not live, f"zone_device_page_init on dying {pgmap.name}")
    await shared_access(page, write=True, func="zone_device_page_init")
    WARN_ON(page.refcount != 0, f"zone_device_page_init of {page.name} in use")
    page.refcount = 1  # set_page_count
    page.state = PageState.IN_USE
    page.generation += 1
    trace("zone_device_page_init", page=page.pfn, generation=page.generation)
    await lock_page(page)


async def free_zone_device_folio(page: Page) -> None:
    """The last reference on a ZONE_DEVICE page is gone: give it to its driver.

    Kernel: mm/memremap.c free_zone_device_folio() (v6.16), called from
    __folio_put (mm/swap.c) for a zone-device folio.  The caller's put made
    the count 0 (an Op on the page).
    """
    pgmap = page.pgmap
    if WARN_ON_ONCE(pgmap is None, "free_zone_device_folio without pgmap"):
        return
    assert pgmap is not None

    # MODEL: no memcg, no PG_anon_exclusive (see Deviations).
    # A stale anonymous mapping would make a later migration think the
    # page is anonymous already: clear it.
    page.mapping = None
    page.state = PageState.FREE
    trace("page_free", page=page.pfn, generation=page.generation)

    if pgmap.type is MEMORY_DEVICE_PRIVATE:
        if WARN_ON_ONCE(pgmap.ops is None, "device-private page without page_free"):
            return
        assert pgmap.ops is not None
        await pgmap.ops.page_free(page)
        await put_dev_pagemap(pgmap)
