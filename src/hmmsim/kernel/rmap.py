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

try_to_migrate / try_to_migrate_one (v6.16) replace every mapping of a
locked device-private page by a migration entry, for migrate_device_range
(kernel.migrate_device), whose caller knows the page but not where it is
mapped.  Each mapping is changed inside its own MMU_NOTIFY_CLEAR
invalidation (no owner: every mirror, the page's own driver included,
drops its copy) under the page-table lock; the mapping's map count and
reference go, the caller's reference keeps the page.  Their deviations:

    * MODEL: the anon_vma walk is a per-execution record of the
      device-private PTEs of each device page (:func:`record_device_private_pte`,
      written where such an entry is installed: migrate_vma_insert_page,
      remove_migration_pte with a device destination, fork's copy; erased
      where it is zapped or replaced: zap_nonpresent_ptes,
      migrate_vma_collect_pmd, try_to_migrate_one).  The record has no Op
      of its own: every change is made, under the page-table lock, in the
      step of an Op that writes the page (get_page, page_dup_rmap,
      page_remove_rmap), and the walk reads it in the step of an Op that
      reads the page (the caller's folio_mapped test, then ``rwc->done``),
      so the explorer orders each read against each change.  The walk
      rereads the record after each mapping (a fork may copy an entry
      meanwhile) and checks each PTE under the lock, as
      page_vma_mapped_walk does, so a stale record is harmless.
    * MODEL: only device-private mappings are recorded, so the walk finds
      nothing for a system page (a COW page still mapped by a fork child
      stays mapped and its migration is abandoned, kernel.migrate_device);
      the present-PTE, hugetlb, HWPoison, ``pte_unused`` and TTU_* flag
      branches are left out.  PageAnonExclusive is not modelled (the
      migration entry is readable or writable, never read-exclusive); the
      temporary-stack ``invalid_vma`` test and mlock are not modelled.
"""

from __future__ import annotations

from typing import cast

from hmmsim.kernel.debug import VM_BUG_ON
from hmmsim.kernel.memremap import is_device_private_page, is_zone_device_page
from hmmsim.kernel.mm_types import (
    PAGE_MAPPING_ANON,
    MmStruct,
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
from hmmsim.kernel.swapops import (
    is_device_private_entry,
    is_swap_pte,
    is_writable_device_private_entry,
    make_readable_migration_entry,
    make_writable_migration_entry,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
    swp_entry_to_pte,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import MMU_NOTIFY_CLEAR, PAGE_MASK, PAGE_SIZE
from hmmsim.sync import current_execution, spin_lock, spin_unlock
from hmmsim.sync.once import shared_access

__all__ = [
    "PageAnon",
    "device_private_ptes",
    "forget_device_private_pte",
    "page_add_file_rmap",
    "page_add_new_anon_rmap",
    "page_dup_rmap",
    "page_mapcount",
    "page_mapped",
    "page_remove_rmap",
    "record_device_private_pte",
    "try_to_migrate",
    "try_to_migrate_one",
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


# -- try_to_migrate (mm/rmap.c, v6.16) -----------------------------------------


def _device_private_records() -> dict[int, list[tuple[VmAreaStruct, int]]]:
    context = current_execution().context
    records = context.get("device_private_ptes")
    if records is None:
        records = {}
        context["device_private_ptes"] = records
    return cast("dict[int, list[tuple[VmAreaStruct, int]]]", records)


def record_device_private_pte(page: Page, vma: VmAreaStruct, addr: int) -> None:
    """MODEL: note that ``addr`` of ``vma`` now holds a device-private entry of ``page``.

    Stands for the anon_vma link try_to_migrate's rmap walk follows (see
    Deviations); called under the page-table lock, right after the PTE write.
    """
    records = _device_private_records().setdefault(page.oid, [])
    forget = [r for r in records if r[0].vm_mm is vma.vm_mm and r[1] == addr]
    for record in forget:
        records.remove(record)
    records.append((vma, addr))


def forget_device_private_pte(page: Page, mm: MmStruct, addr: int) -> None:
    """MODEL: the device-private entry of ``page`` at ``addr`` of ``mm`` is gone.

    Called under the page-table lock, where the entry is zapped or replaced.
    """
    records = _device_private_records().get(page.oid)
    if not records:
        return
    records[:] = [r for r in records if not (r[0].vm_mm is mm and r[1] == addr)]


def device_private_ptes(page: Page) -> list[tuple[VmAreaStruct, int]]:
    """MODEL: the (vma, address) pairs recorded for ``page``'s device-private entries."""
    return list(_device_private_records().get(page.oid, ()))


async def try_to_migrate_one(
    folio: Page, vma: VmAreaStruct, address: int, arg: int
) -> bool:
    """Replace ``folio``'s device-private entry at ``address`` by a migration entry.

    Kernel: mm/rmap.c try_to_migrate_one() (v6.16), the non-present PFN
    swap PTE branch (see Deviations): an MMU_NOTIFY_CLEAR invalidation of
    the page, then under the page-table lock the entry is cleared and
    replaced by a migration entry (writable if the device-private entry
    was), the map count and the mapping's reference dropped.

    Returns:
        True (the walk goes on).
    """
    # MODEL: imported here: mm/memory.c and mm/migrate.c call into this file.
    from hmmsim.kernel.memory import ptep_get_and_clear, set_pte_at  # noqa: PLC0415
    from hmmsim.kernel.migrate import record_migration_pte  # noqa: PLC0415

    del arg  # MODEL: no TTU_* flags (see Deviations)
    mm = vma.vm_mm
    ret = True

    # range.end = vma_address_end(): one page, no large folios.
    range = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(
        range, MMU_NOTIFY_CLEAR, 0, vma, mm, address, address + PAGE_SIZE
    )
    await mmu_notifier_invalidate_range_start(range)

    # page_vma_mapped_walk: under the PTE lock, only a device-private entry
    # of this folio still qualifies (a zap or a migration may have got there
    # first).
    ptep = pte_offset_map(mm, address)
    await spin_lock(mm.page_table_lock)
    pteval = ptep.value
    mapped = False
    if is_swap_pte(pteval):
        swp = pte_to_swp_entry(pteval)
        mapped = is_device_private_entry(swp) and pfn_swap_entry_to_page(swp) is folio
    if mapped:
        subpage = folio
        # MODEL: PageAnonExclusive is not modelled (anon_exclusive false).
        # A PFN swap PTE: clear it, no TLB to flush.
        await ptep_get_and_clear(mm, address, ptep)  # pte_clear
        writable = is_writable_device_private_entry(pte_to_swp_entry(pteval))

        # update_hiwater_rss, arch_unmap_one: MODEL: nothing to do.
        # The fault that finds the migration entry waits for the migration.
        if writable:
            entry = make_writable_migration_entry(subpage)
        else:
            entry = make_readable_migration_entry(subpage)
        swp_pte = swp_entry_to_pte(entry)
        await set_pte_at(mm, address, ptep, swp_pte)
        record_migration_pte(folio, vma, address)
        trace("set_migration_pte", mm=mm.name, addr=address, page=folio.pfn)

        await page_remove_rmap(subpage)  # folio_remove_rmap_pte
        forget_device_private_pte(folio, mm, address)
        # mlock_drain_local: MODEL: no mlock.
        await put_page(folio)
    await spin_unlock(mm.page_table_lock)  # page_vma_mapped_walk ends

    await mmu_notifier_invalidate_range_end(range)
    return ret


async def try_to_migrate(folio: Page, flags: int) -> None:
    """Replace every mapping of the locked ``folio`` by a migration entry.

    Kernel: mm/rmap.c try_to_migrate() (v6.16).  The caller holds the
    folio lock and a reference, and has just tested ``folio_mapped``: the
    first read of the record belongs to that step.  MODEL: the rmap walk
    visits the recorded device-private PTEs of ``folio`` (see Deviations),
    stopping once the folio is no longer mapped (``folio_not_mapped``).
    """
    VM_BUG_ON(flags != 0, "MODEL: no TTU_* flags")
    if is_zone_device_page(folio) and not is_device_private_page(folio):
        return  # pragma: no cover - MODEL: only device-private ZONE_DEVICE pages

    # rmap_walk -> rmap_walk_anon: MODEL: the anon_vma is not modelled; only
    # an anonymous folio has recorded mappings.
    if not PageAnon(folio):
        return
    visited: list[tuple[MmStruct, int]] = []
    while True:
        pending = [
            (vma, address)
            for vma, address in device_private_ptes(folio)
            if (vma.vm_mm, address) not in visited
        ]
        if not pending:
            break
        vma, address = pending[0]
        visited.append((vma.vm_mm, address))
        if not await try_to_migrate_one(folio, vma, address, flags):
            break  # pragma: no cover - try_to_migrate_one always goes on
        if not await page_mapped(folio):  # rwc->done
            break
