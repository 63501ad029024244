"""mm/migrate.c (Linux v6.16): waiting for a migration entry, and device migration's helpers.

Kernel: mm/migrate.c migration_entry_wait() and mm/filemap.c
migration_entry_wait_on_locked() (Linux v6.16).  While a page migrates, its
PTEs hold migration entries (kernel.swapops) and the page is locked; a CPU
fault that finds one (do_swap_page, kernel.memory) waits here until the
migration drops the page lock, then returns so that the fault is retried
and finds the new PTE (the new page, or the old one restored).

The wait is queued while the page-table lock is held: the migration must
take that lock to replace the entry and holds a reference on the page until
then, so the page cannot go away before the waiter is queued.

Deviations:
    * MODEL: one page-table level: no ``pmd`` argument; the PTE cell is
      found from the address.  No PMD migration entries
      (pmd_migration_entry_wait).
    * MODEL: the queued waiter is :func:`~hmmsim.sync.wait_on_bit` with the
      release count read under the lock (see hmmsim.sync.bitlock), which
      stands for folio_wait_bit_common's queueing before ``spin_unlock(ptl)``.

The device migration of kernel.migrate_device also uses
``folio_migrate_mapping`` (a page's identity moves to its replacement if no
unexpected reference appeared, else -EAGAIN: the migration of that page
fails) and ``remove_migration_ptes`` (the migration entries of the old page
become PTEs of the new one, or of the old one again when its migration
failed).  Their deviations:

    * MODEL: the reverse map is not modelled (kernel.rmap), so
      ``remove_migration_ptes`` does not walk the anon_vma: the PTEs where
      migration entries of a page were installed are recorded when they are
      installed (:func:`record_migration_pte`, called under the page lock
      and the page-table lock) and the walk visits exactly those, checking
      under the page-table lock, as ``page_vma_mapped_walk`` does, that each
      still holds a migration entry for the page (munmap or MADV_DONTNEED
      may have zapped it meanwhile).  The record is per execution and only
      touched by the holder of the page lock, so it needs no Op.
    * MODEL: ``folio_migrate_mapping`` models the anonymous case only (no
      ``mapping``: no page-cache xarray to update, no swap cache); the
      expected count is the map count plus the caller's extra references
      plus one.  ``folio_migrate_flags`` has no flags to copy (the model's
      pages carry none), so it does nothing.
    * MODEL: no young, dirty, soft-dirty or uffd-wp bits; the new PTE is
      writable when the migration entry was.
    * MODEL: a device-private entry installed by ``remove_migration_pte``
      is recorded for try_to_migrate's walk (kernel.rmap
      :func:`~hmmsim.kernel.rmap.record_device_private_pte`).
"""

from __future__ import annotations

import errno
from typing import cast

from hmmsim.kernel.memremap import is_device_private_page
from hmmsim.kernel.mm_types import MmStruct, Page, VmAreaStruct, mk_pte, pte_offset_map
from hmmsim.kernel.page_alloc import get_page
from hmmsim.kernel.rmap import page_dup_rmap, record_device_private_pte
from hmmsim.kernel.swapops import (
    is_migration_entry,
    is_swap_pte,
    is_writable_migration_entry,
    make_readable_device_private_entry,
    make_writable_device_private_entry,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
    swp_entry_to_pte,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_MASK
from hmmsim.sync import (
    current_execution,
    shared_access,
    spin_lock,
    spin_unlock,
    wait_on_bit,
)

__all__ = [
    "folio_migrate_flags",
    "folio_migrate_mapping",
    "migration_entry_wait",
    "migration_ptes",
    "record_migration_pte",
    "remove_migration_pte",
    "remove_migration_ptes",
]


async def migration_entry_wait(mm: MmStruct, address: int) -> None:
    """Wait until the migration that owns the entry at ``address`` ends.

    Kernel: mm/migrate.c migration_entry_wait() (v6.16; MODEL: no ``pmd``)
    and mm/filemap.c migration_entry_wait_on_locked().  Returns at once if
    the PTE no longer holds a migration entry.
    """
    address &= PAGE_MASK
    ptep = pte_offset_map(mm, address)
    await spin_lock(mm.page_table_lock)
    pte = ptep.value
    if not is_swap_pte(pte):
        await spin_unlock(mm.page_table_lock)
        return
    entry = pte_to_swp_entry(pte)
    if not is_migration_entry(entry):
        await spin_unlock(mm.page_table_lock)
        return

    # migration_entry_wait_on_locked: queue on the page's lock bit while the
    # PTL keeps the migration from finishing, then drop the PTL and sleep.
    page = pfn_swap_entry_to_page(entry)
    lock = page.pg_locked
    queued_at = lock.releases
    await spin_unlock(mm.page_table_lock)
    trace("migration_entry_wait", mm=mm.name, addr=address, page=page.pfn)
    await wait_on_bit(lock, "migration_entry_wait_on_locked", queued_at=queued_at)


def _records() -> dict[int, list[tuple[VmAreaStruct, int]]]:
    context = current_execution().context
    records = context.get("migration_ptes")
    if records is None:
        records = {}
        context["migration_ptes"] = records
    return cast(dict[int, list[tuple[VmAreaStruct, int]]], records)


def record_migration_pte(folio: Page, vma: VmAreaStruct, addr: int) -> None:
    """MODEL: note that ``addr`` of ``vma`` now holds a migration entry for ``folio``.

    Stands for the anon_vma link the rmap walk would follow (see Deviations).
    """
    _records().setdefault(folio.oid, []).append((vma, addr))


def migration_ptes(folio: Page) -> list[tuple[VmAreaStruct, int]]:
    """MODEL: the (vma, address) pairs recorded for ``folio``'s migration entries."""
    return list(_records().get(folio.oid, ()))


async def remove_migration_pte(
    folio: Page, vma: VmAreaStruct, addr: int, old: Page
) -> bool:
    """Replace the migration entry of ``old`` at ``addr`` by a PTE of ``folio``.

    Kernel: mm/migrate.c remove_migration_pte() (v6.16; MODEL: one address,
    found through the record instead of page_vma_mapped_walk).  A device-
    private ``folio`` gets a device-private entry, writable if the migration
    entry was.

    Returns:
        True (the rmap walk goes on).
    """
    # MODEL: imported here: mm/memory.c and mm/migrate.c call each other.
    from hmmsim.kernel.memory import set_pte_at  # noqa: PLC0415

    mm = vma.vm_mm
    ptep = pte_offset_map(mm, addr)
    await spin_lock(mm.page_table_lock)
    old_pte = ptep.value
    # page_vma_mapped_walk: only a migration entry of ``old`` qualifies.
    if not is_swap_pte(old_pte):
        await spin_unlock(mm.page_table_lock)
        return True
    entry = pte_to_swp_entry(old_pte)
    if not is_migration_entry(entry) or pfn_swap_entry_to_page(entry) is not old:
        await spin_unlock(mm.page_table_lock)
        return True

    await get_page(folio)
    write = is_writable_migration_entry(entry)
    pte: object = mk_pte(folio, write)
    if is_device_private_page(folio):
        if write:
            dev_entry = make_writable_device_private_entry(folio)
        else:
            dev_entry = make_readable_device_private_entry(folio)
        pte = swp_entry_to_pte(dev_entry)

    # folio_add_anon_rmap_pte: one more mapping of the page.
    await page_dup_rmap(folio)
    if is_device_private_page(folio):
        # MODEL: the record try_to_migrate walks (kernel.rmap), changed in
        # the step that writes the page.
        record_device_private_pte(folio, vma, addr)
    await set_pte_at(mm, addr, ptep, pte)  # type: ignore[arg-type]
    # update_mmu_cache: MODEL: no-op.
    await spin_unlock(mm.page_table_lock)
    trace("remove_migration_pte", mm=mm.name, addr=addr, old=old.pfn, new=folio.pfn)
    return True


async def remove_migration_ptes(src: Page, dst: Page, flags: int) -> None:
    """Replace every migration entry of ``src`` by a PTE of ``dst``.

    Kernel: mm/migrate.c remove_migration_ptes() (v6.16).  ``dst`` is
    ``src`` itself when the migration of that page failed (the mapping is
    restored).  ``flags`` (RMP_LOCKED / RMP_USE_SHARED_ZEROPAGE) are not
    modelled; the callers here pass 0.
    """
    del flags
    records = _records()
    for vma, addr in records.pop(src.oid, []):
        if not await remove_migration_pte(dst, vma, addr, src):
            break  # pragma: no cover - remove_migration_pte always goes on


async def folio_migrate_mapping(
    mapping: object, newfolio: Page, folio: Page, extra_count: int
) -> int:
    """Hand ``folio``'s identity to ``newfolio`` unless someone holds a reference.

    Kernel: mm/migrate.c folio_migrate_mapping() and __folio_migrate_mapping()
    (v6.16), anonymous case (see Deviations): the count must be exactly the
    map count plus ``extra_count`` plus the migration's own reference.

    Returns:
        0 (MIGRATEPAGE_SUCCESS), or -EAGAIN when the reference count is not
        the expected one (a reference was taken meanwhile).
    """
    del mapping
    await shared_access(folio, write=False, func="folio_ref_count")
    expected_count = folio.mapcount + extra_count + 1
    if folio.refcount != expected_count:
        trace(
            "folio_migrate_mapping",
            page=folio.pfn,
            refcount=folio.refcount,
            expected=expected_count,
            ret=-errno.EAGAIN,
        )
        return -errno.EAGAIN
    # No mapping: only the anon page's identity moves.
    newfolio.mapping = folio.mapping
    trace(
        "folio_migrate_mapping",
        page=folio.pfn,
        refcount=folio.refcount,
        expected=expected_count,
        ret=0,
    )
    return 0


def folio_migrate_flags(newfolio: Page, folio: Page) -> None:
    """Copy the page flags to the new page (MODEL: pages carry no flags).

    Kernel: mm/migrate.c folio_migrate_flags() (v6.16).
    """
    del newfolio, folio
