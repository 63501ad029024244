"""The page lock: lock_page, trylock_page, unlock_page, and waiting for it.

Kernel: include/linux/pagemap.h (lock_page, trylock_page, folio_trylock,
folio_wait_locked) and mm/filemap.c (__folio_lock, folio_unlock,
folio_wait_bit_common), Linux v6.16.  ``PG_locked`` is a bit of
``page->flags``: trylock is an atomic test-and-set of it, lock_page sleeps
until it can set it, unlock_page clears it and wakes the sleepers.  Page
migration (mm/migrate_device.c) holds the lock of every page it migrates
from collection to finalize, a device-private fault holds it across
``migrate_to_ram`` (v6.15+), and a task that finds a migration entry waits
for the lock to be dropped.

Deviations:
    * MODEL: the bit is the page's :class:`~hmmsim.sync.BitLock`
      (``Page.pg_locked``); the hashed folio wait queues are implicit in it
      (see hmmsim.sync.bitlock).  Folios are single pages.
    * MODEL: ``lock_page`` is uninterruptible; the killable and
      ``_or_retry`` variants are not modelled.
"""

from __future__ import annotations

from hmmsim.kernel.mm_types import Page
from hmmsim.sync import (
    clear_bit_unlock,
    test_and_set_bit_lock,
    wait_on_bit,
    wait_on_bit_lock,
)
from hmmsim.sync.once import shared_access

__all__ = [
    "PageLocked",
    "lock_page",
    "trylock_page",
    "unlock_page",
    "wait_on_page_locked",
]


async def trylock_page(page: Page) -> bool:
    """Lock ``page`` if it is unlocked; return whether this call locked it.

    Kernel: include/linux/pagemap.h trylock_page() -> folio_trylock().
    """
    return await test_and_set_bit_lock(page.pg_locked, "trylock_page")


async def lock_page(page: Page) -> None:
    """Lock ``page``, sleeping until its holder unlocks it.

    Kernel: include/linux/pagemap.h lock_page() -> folio_lock() (might_sleep,
    then folio_trylock or __folio_lock, mm/filemap.c).
    """
    await wait_on_bit_lock(page.pg_locked, "lock_page")


async def unlock_page(page: Page) -> None:
    """Unlock ``page`` and wake the tasks waiting for it.

    Kernel: mm/folio-compat.c unlock_page() -> mm/filemap.c folio_unlock().
    Unlocking an unlocked page is a ``bad-unlock`` finding (the C's
    VM_BUG_ON_FOLIO).
    """
    await clear_bit_unlock(page.pg_locked, "unlock_page")


async def PageLocked(page: Page) -> bool:
    """Return whether ``page`` is locked (a racy read: an Op on the bit).

    Kernel: include/linux/page-flags.h PageLocked() / folio_test_locked().
    """
    await shared_access(page.pg_locked, write=False, func="PageLocked")
    return page.pg_locked.is_locked()


async def wait_on_page_locked(page: Page) -> None:
    """Sleep until ``page`` is unlocked, without locking it.

    Kernel: include/linux/pagemap.h folio_wait_locked() (folio_wait_bit of
    PG_locked); migration_entry_wait_on_locked uses the same wait.
    """
    await wait_on_bit(page.pg_locked, "folio_wait_locked")
