"""Waiting for a migration entry: migration_entry_wait.

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
"""

from __future__ import annotations

from hmmsim.kernel.mm_types import MmStruct, pte_offset_map
from hmmsim.kernel.swapops import (
    is_migration_entry,
    is_swap_pte,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_MASK
from hmmsim.sync import spin_lock, spin_unlock, wait_on_bit

__all__ = ["migration_entry_wait"]


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
