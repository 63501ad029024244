"""Non-present PTEs: swap entries that name a page (device-private and migration).

Kernel: include/linux/swapops.h (Linux v6.16).  A PTE that is neither empty
nor present holds a ``swp_entry_t``: a type and an offset.  Besides real
swap (not modelled), the kernel uses types above the swap devices for
entries whose offset is a page frame number:

* a *device-private* entry (SWP_DEVICE_READ / SWP_DEVICE_WRITE) maps a
  ZONE_DEVICE page of MEMORY_DEVICE_PRIVATE type (kernel.memremap): the CPU
  cannot access it, so a CPU fault on it calls the page map's
  ``migrate_to_ram`` (do_swap_page); the write type records that the
  mapping allowed writes.  It holds a page reference and a map count, as a
  present PTE does;
* a *migration* entry (SWP_MIGRATION_READ / SWP_MIGRATION_WRITE) replaces a
  PTE while its page is being migrated (mm/migrate_device.c): the page is
  locked, a CPU fault on it waits for the migration to end
  (migration_entry_wait, kernel.memory), and the entry is replaced by the
  new page or restored to the old one.  It holds no reference of its own.

Deviations:
    * MODEL: an entry is a :class:`~hmmsim.kernel.mm_types.SwpEntry` that
      keeps its type and the page itself; ``swp_offset`` returns the page's
      pfn, ``pfn_swap_entry_to_page`` the page.  ``make_*_entry`` take the
      page instead of its pfn (the C callers pass ``page_to_pfn(page)``).
    * MODEL: no swap devices, no read-exclusive migration entries, no
      device-exclusive, hwpoison, marker or PMD entries; ``non_swap_entry``
      is true for every entry the model has.
    * MODEL: the soft-dirty and uffd-wp bits of a swap PTE are not modelled.
"""

from __future__ import annotations

from hmmsim.kernel.mm_types import (
    Page,
    PteVal,
    SwapPte,
    SwpEntry,
    SwpType,
    pte_none,
    pte_present,
)

__all__ = [
    "SWP_DEVICE_READ",
    "SWP_DEVICE_WRITE",
    "SWP_MIGRATION_READ",
    "SWP_MIGRATION_WRITE",
    "is_device_private_entry",
    "is_migration_entry",
    "is_pfn_swap_entry",
    "is_readable_migration_entry",
    "is_swap_pte",
    "is_writable_device_private_entry",
    "is_writable_migration_entry",
    "make_readable_device_private_entry",
    "make_readable_migration_entry",
    "make_writable_device_private_entry",
    "make_writable_migration_entry",
    "non_swap_entry",
    "pfn_swap_entry_to_page",
    "pte_to_swp_entry",
    "swp_entry_to_pte",
    "swp_offset",
    "swp_type",
]

#: A device-private entry whose mapping allowed writes.
SWP_DEVICE_WRITE = SwpType.SWP_DEVICE_WRITE
#: A read-only device-private entry.
SWP_DEVICE_READ = SwpType.SWP_DEVICE_READ
#: A migration entry of a read-only mapping.
SWP_MIGRATION_READ = SwpType.SWP_MIGRATION_READ
#: A migration entry of a writable mapping.
SWP_MIGRATION_WRITE = SwpType.SWP_MIGRATION_WRITE


def is_swap_pte(pte: PteVal) -> bool:
    """Return whether ``pte`` holds a swap entry (neither empty nor present)."""
    return not pte_none(pte) and not pte_present(pte)


def pte_to_swp_entry(pte: PteVal) -> SwpEntry:
    """Return the swap entry a non-present PTE holds.

    Raises:
        AssertionError: ``pte`` is empty or present (the C caller checked
            is_swap_pte first; decoding anything else is a model bug).
    """
    assert isinstance(pte, SwapPte), (
        f"[hmmsim internal bug] pte_to_swp_entry of a non-swap PTE {pte!r}"
    )
    return pte.entry


def swp_entry_to_pte(entry: SwpEntry) -> SwapPte:
    """Return the non-present PTE that holds ``entry``."""
    return SwapPte(entry)


def swp_type(entry: SwpEntry) -> SwpType:
    """Return the entry's type."""
    return entry.type


def swp_offset(entry: SwpEntry) -> int:
    """Return the entry's offset: the pfn of the page it names (MODEL)."""
    return entry.page.pfn


def non_swap_entry(entry: SwpEntry) -> bool:
    """Return whether the entry is not a real swap entry (always, MODEL)."""
    del entry
    return True


def make_readable_device_private_entry(page: Page) -> SwpEntry:
    """Return a read-only device-private entry for ``page`` (MODEL: the page)."""
    return SwpEntry(SWP_DEVICE_READ, page)


def make_writable_device_private_entry(page: Page) -> SwpEntry:
    """Return a writable device-private entry for ``page`` (MODEL: the page)."""
    return SwpEntry(SWP_DEVICE_WRITE, page)


def is_device_private_entry(entry: SwpEntry) -> bool:
    """Return whether ``entry`` maps a device-private page."""
    return entry.type in {SWP_DEVICE_READ, SWP_DEVICE_WRITE}


def is_writable_device_private_entry(entry: SwpEntry) -> bool:
    """Return whether ``entry`` is a device-private entry of a writable mapping."""
    return entry.type is SWP_DEVICE_WRITE


def make_readable_migration_entry(page: Page) -> SwpEntry:
    """Return a migration entry of a read-only mapping of ``page``."""
    return SwpEntry(SWP_MIGRATION_READ, page)


def make_writable_migration_entry(page: Page) -> SwpEntry:
    """Return a migration entry of a writable mapping of ``page``."""
    return SwpEntry(SWP_MIGRATION_WRITE, page)


def is_migration_entry(entry: SwpEntry) -> bool:
    """Return whether ``entry`` is a migration entry (read or write)."""
    return entry.type in {SWP_MIGRATION_READ, SWP_MIGRATION_WRITE}


def is_writable_migration_entry(entry: SwpEntry) -> bool:
    """Return whether ``entry`` is a migration entry of a writable mapping."""
    return entry.type is SWP_MIGRATION_WRITE


def is_readable_migration_entry(entry: SwpEntry) -> bool:
    """Return whether ``entry`` is a migration entry of a read-only mapping."""
    return entry.type is SWP_MIGRATION_READ


def is_pfn_swap_entry(entry: SwpEntry) -> bool:
    """Return whether the entry's offset is a pfn (every entry of the model)."""
    return is_migration_entry(entry) or is_device_private_entry(entry)


def pfn_swap_entry_to_page(entry: SwpEntry) -> Page:
    """Return the page a pfn swap entry names."""
    return entry.page
