"""Model of ``mm/migrate_device.c`` (Linux v6.16): migration to and from device memory.

A driver moves the pages of a virtual range of one VMA between system memory
and its own device memory in three calls (Documentation/mm/hmm.rst,
"Migration to and from device memory"):

1. :func:`migrate_vma_setup` collects the pages: under one MMU_NOTIFY_MIGRATE
   invalidation (``range->owner`` = ``pgmap_owner``, so the driver can skip
   its own device-private mappings) it walks the page table, takes a
   reference and the page lock of every page it selects (system pages with
   MIGRATE_VMA_SELECT_SYSTEM, device-private pages of ``pgmap_owner`` with
   MIGRATE_VMA_SELECT_DEVICE_PRIVATE), replaces each PTE by a migration entry
   under the page-table lock, then checks that nobody else holds a
   reference (``migrate_vma_check_page``) and restores the PTEs of the pages
   it cannot move;
2. the driver allocates a destination page for each ``src`` entry with
   MIGRATE_PFN_MIGRATE, copies the data, fills ``dst``, and calls
   :func:`migrate_vma_pages`, which moves the struct-page state
   (``folio_migrate_mapping``: fails if a reference appeared meanwhile) and
   populates empty PTEs with device pages (``migrate_vma_insert_page``);
3. :func:`migrate_vma_finalize` replaces every migration entry by the new
   page (or the old one where the migration failed), unlocks and drops the
   pages; the old page is freed by its last ``put_page``.

A CPU fault on a device-private entry calls the owner's ``migrate_to_ram``,
which runs the same three steps with ``fault_page`` set (see
:mod:`hmmsim.kernel.drivers.dmirror_current`).

A driver that must give its device memory back (unbind, unload,
HMM_DMIRROR_RELEASE) does not know where its pages are mapped: it names a
range of device pfns instead.  :func:`migrate_device_range` takes a
reference on and the lock of every page of the range that is not free, and
the shared :func:`migrate_device_unmap` replaces every mapping of each
page by a migration entry through the reverse map (``try_to_migrate``,
kernel.rmap); the driver allocates system pages, copies, and calls
:func:`migrate_device_pages` and :func:`migrate_device_finalize`, the
vma-less forms of steps 2 and 3.

Deviations:
    * MODEL: one page-table level (mm_types): no PMD, no THP.
      ``migrate_vma_collect_pmd`` handles the whole VMA part handed to it by
      the walker under ``mm->page_table_lock`` (the split PTE lock); the
      ``pmd_none``, ``pmd_trans_huge`` and ``migrate_vma_split_folio``
      branches do not occur, and neither does the ``pte_hole`` callback
      inside a VMA (the walker only reports holes outside every VMA, which
      migrate_vma_setup rules out).  A pte_none entry is handled in the PTE
      loop, with the same result as ``migrate_vma_collect_hole``.
    * MODEL: ``PageAnonExclusive`` is not modelled: a present PTE is cleared
      with ``ptep_get_and_clear`` and replaced by a readable or writable
      migration entry (never the exclusive variant, never
      ``folio_try_share_anon_rmap_pte``).  No dirty, young, soft-dirty or
      uffd-wp bits.
    * MODEL: ``flush_tlb_range`` flushes the TLBs of cached CPU accesses
      (kernel.tlbflush); ordinary accesses have no TLB.  ``flush_cache_page``
      does nothing (x86) and the lazy MMU mode brackets are dropped.
    * MODEL: there is no LRU: ``folio_isolate_lru`` always succeeds and takes
      its reference, ``folio_putback_lru`` drops one, ``folio_add_lru`` and
      ``lru_add_drain*`` do nothing; memcg, mm counters and anon_vma
      preparation are not modelled.
    * MODEL: ``try_to_migrate`` (kernel.rmap) walks a per-execution record
      of device-private PTEs instead of the anon_vma: it finds every mapping
      of a device-private page, but none of a system page, so a system page
      still mapped elsewhere after collection (a COW page shared with a fork
      child) is restored, as the kernel does for a page it failed to unmap.
      The record is written where device-private entries are installed
      (:func:`migrate_vma_insert_page`, remove_migration_pte, fork) and
      erased where they are replaced (:func:`migrate_vma_collect_pmd`) or
      zapped.
    * MODEL: ``remove_migration_ptes`` (kernel.migrate) finds the migration
      entries of a folio in a per-execution record written when they are
      installed, instead of walking the anon_vma.
    * MODEL: only device-private ZONE_DEVICE memory exists (kernel.memremap):
      the device-coherent branches (SELECT_DEVICE_COHERENT, coherent pages
      in collect, pages and insert_page) are left out.
    * MODEL: ``src``/``dst`` are Python lists of ints in the
      ``MIGRATE_PFN_*`` encoding of include/linux/migrate.h; a pfn is the
      model page's ``pfn`` (device-private pages have their own pfn range,
      kernel.memremap).  ``folio_trylock`` / ``folio_unlock`` are
      kernel.pagemap's trylock_page / unlock_page (folios are single pages).  ``migrate_vma_insert_page`` takes the list and the
      index instead of a pointer into it.
"""

from __future__ import annotations

import builtins
import errno
from dataclasses import dataclass, field
from typing import Final

from hmmsim.kernel.debug import VM_BUG_ON, WARN_ON_ONCE
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.memory import (
    check_stable_address_space,
    ptep_get_and_clear,
    set_pte_at,
    vm_normal_page,
)
from hmmsim.kernel.memremap import (
    is_device_private_page,
    is_zone_device_page,
    page_pgmap,
)
from hmmsim.kernel.migrate import (
    folio_migrate_flags,
    folio_migrate_mapping,
    record_migration_pte,
    remove_migration_ptes,
)
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    Pte,
    VmAreaStruct,
    mk_pte,
    pte_none,
    pte_offset_map,
    pte_pfn,
    pte_present,
    pte_write,
    vma_is_anonymous,
)
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init_owner,
)
from hmmsim.kernel.page_alloc import (
    get_page,
    get_page_unless_zero,
    is_zero_pfn,
    pfn_to_page,
    put_page,
)
from hmmsim.kernel.pagemap import PageLocked, trylock_page, unlock_page
from hmmsim.kernel.pagewalk import MmWalk, walk_page_range
from hmmsim.kernel.rmap import (
    PageAnon,
    forget_device_private_pte,
    page_add_new_anon_rmap,
    page_mapped,
    page_remove_rmap,
    record_device_private_pte,
    try_to_migrate,
)
from hmmsim.kernel.swapops import (
    is_device_private_entry,
    is_writable_device_private_entry,
    make_readable_device_private_entry,
    make_readable_migration_entry,
    make_writable_device_private_entry,
    make_writable_migration_entry,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
    swp_entry_to_pte,
)
from hmmsim.kernel.tlbflush import flush_tlb_range
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    MMU_NOTIFY_MIGRATE,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_HUGETLB,
    VM_IO,
    VM_PFNMAP,
    VM_WRITE,
)
from hmmsim.sync import shared_access, spin_lock, spin_unlock

__all__ = [
    "MIGRATE_PFN_MIGRATE",
    "MIGRATE_PFN_SHIFT",
    "MIGRATE_PFN_VALID",
    "MIGRATE_PFN_WRITE",
    "MIGRATE_VMA_SELECT_DEVICE_COHERENT",
    "MIGRATE_VMA_SELECT_DEVICE_PRIVATE",
    "MIGRATE_VMA_SELECT_SYSTEM",
    "MigrateVma",
    "__migrate_device_finalize",
    "__migrate_device_pages",
    "migrate_device_finalize",
    "migrate_device_pages",
    "migrate_device_pfn_lock",
    "migrate_device_range",
    "migrate_device_unmap",
    "migrate_pfn",
    "migrate_pfn_to_page",
    "migrate_vma_check_page",
    "migrate_vma_collect",
    "migrate_vma_collect_hole",
    "migrate_vma_collect_pmd",
    "migrate_vma_collect_skip",
    "migrate_vma_finalize",
    "migrate_vma_insert_page",
    "migrate_vma_pages",
    "migrate_vma_setup",
    "migrate_vma_unmap",
]

# include/linux/migrate.h (v6.16): the src/dst entry encoding.
MIGRATE_PFN_VALID: Final = 1 << 0
MIGRATE_PFN_MIGRATE: Final = 1 << 1
MIGRATE_PFN_WRITE: Final = 1 << 3
MIGRATE_PFN_SHIFT: Final = 6

# enum migrate_vma_direction (include/linux/migrate.h, v6.16).
MIGRATE_VMA_SELECT_SYSTEM: Final = 1 << 0
MIGRATE_VMA_SELECT_DEVICE_PRIVATE: Final = 1 << 1
MIGRATE_VMA_SELECT_DEVICE_COHERENT: Final = 1 << 2

#: The VM_SPECIAL flags migrate_vma_setup refuses (MODEL: VM_DONTEXPAND and
#: VM_MIXEDMAP are not modelled).
_VM_SPECIAL: Final = VM_IO | VM_PFNMAP

#: Commit of "mm/migrate: Trylock device page in do_swap_page" (kernel.fixes).
TRYLOCK_FAULT_PAGE: Final = "1afaeb8293c9"

#: Commit of "mm/migrate_device.c: flush TLB while holding PTL" (kernel.fixes).
TLB_FLUSH_UNDER_PTL: Final = "60bae7370896"


def migrate_pfn(pfn: int) -> int:
    """Return the src/dst entry of page frame ``pfn`` (VALID, no other flag).

    Kernel: include/linux/migrate.h migrate_pfn().
    """
    return (pfn << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID


def migrate_pfn_to_page(mpfn: int) -> Page | None:
    """Return the page of a src/dst entry, or None if it holds none.

    Kernel: include/linux/migrate.h migrate_pfn_to_page().
    """
    if not mpfn & MIGRATE_PFN_VALID:
        return None
    return pfn_to_page(mpfn >> MIGRATE_PFN_SHIFT)


@dataclass(slots=True, kw_only=True, eq=False)
class MigrateVma:
    """Models ``struct migrate_vma`` (include/linux/migrate.h, v6.16).

    Attributes:
        vma: the VMA the range lies in.
        src: one entry per page: what was collected (MIGRATE_PFN_*).
        dst: one entry per page: the destination the driver allocated.
        npages: entries filled by the collection.
        start: first address (page-aligned by migrate_vma_setup).
        end: end of the range (exclusive).
        cpages: pages collected, then pages unmapped and ready to migrate.
        pgmap_owner: the device-private owner for MMU_NOTIFY_MIGRATE and for
            SELECT_DEVICE_PRIVATE / SELECT_DEVICE_COHERENT.
        flags: the MIGRATE_VMA_SELECT_* bits.
        fault_page: the locked device-private page a CPU fault is migrating
            back (migrate_to_ram), else None.
    """

    vma: VmAreaStruct | None = None
    src: list[int] = field(default_factory=list)
    dst: list[int] = field(default_factory=list)
    npages: int = 0
    start: int = 0
    end: int = 0
    cpages: int = 0
    pgmap_owner: object = None
    flags: int = 0
    fault_page: Page | None = None


def _migrate(walk: MmWalk) -> MigrateVma:
    migrate = walk.private
    assert isinstance(migrate, MigrateVma), "[hmmsim internal bug] not a migrate"
    return migrate


def _fix_1afaeb(mm: MmStruct) -> bool:
    return fix_applied(mm, TRYLOCK_FAULT_PAGE)


async def migrate_vma_collect_skip(start: int, end: int, walk: MmWalk) -> int:
    """Record [start, end) as not migrating (src and dst entries 0).

    Kernel: mm/migrate_device.c migrate_vma_collect_skip() (v6.16).
    """
    migrate = _migrate(walk)
    addr = start
    while addr < end:
        migrate.dst[migrate.npages] = 0
        migrate.src[migrate.npages] = 0
        migrate.npages += 1
        addr += PAGE_SIZE
    return 0


async def migrate_vma_collect_hole(start: int, end: int, walk: MmWalk) -> int:
    """``pte_hole`` callback: an unpopulated part of anonymous memory may migrate.

    Kernel: mm/migrate_device.c migrate_vma_collect_hole() (v6.16).  MODEL:
    never reached inside a VMA (see Deviations); kept for the walk ops.
    """
    migrate = _migrate(walk)
    # Only anonymous memory may be populated.
    if walk.vma is None or not vma_is_anonymous(walk.vma):
        return await migrate_vma_collect_skip(start, end, walk)
    addr = start  # pragma: no cover - MODEL: holes inside a VMA never reach here
    while addr < end:  # pragma: no cover - same
        migrate.src[migrate.npages] = MIGRATE_PFN_MIGRATE
        migrate.dst[migrate.npages] = 0
        migrate.npages += 1
        migrate.cpages += 1
        addr += PAGE_SIZE
    return 0  # pragma: no cover - same


async def migrate_vma_collect_pmd(  # noqa: PLR0912, PLR0915 - the C's shape
    start: int, end: int, walk: MmWalk
) -> int:
    """``pmd_entry`` callback: collect, lock and unmap the pages of [start, end).

    Kernel: mm/migrate_device.c migrate_vma_collect_pmd() (v6.16).  Under the
    page-table lock, each page that may migrate gets a reference; if its
    lock can be taken without waiting (or it is the fault page, already
    locked by do_swap_page) its PTE becomes a migration entry and its map
    count drops.  The TLB is flushed before the lock is released (60bae7370896).
    """
    migrate = _migrate(walk)
    fault_folio = migrate.fault_page
    vma = walk.vma
    assert vma is not None, "[hmmsim internal bug] collect_pmd outside a VMA"
    mm = vma.vm_mm
    addr = start
    unmapped = 0

    # again: MODEL: no pmd level, so pmd_none / pmd_trans_huge never apply.
    await spin_lock(mm.page_table_lock)  # pte_offset_map_lock

    while addr < end:
        ptep = pte_offset_map(mm, addr)
        mpfn = 0
        page: Page | None = None
        pte = ptep.value  # ptep_get, under the lock

        if pte_none(pte):
            if vma_is_anonymous(vma):
                mpfn = MIGRATE_PFN_MIGRATE
                migrate.cpages += 1
            _next(migrate, mpfn)
            addr += PAGE_SIZE
            continue

        assert pte is not None
        if not pte_present(pte):
            # Only device-private entries can migrate; other swap entries
            # (migration entries of another migration, swapped pages) are
            # left alone.
            entry = pte_to_swp_entry(pte)
            if not is_device_private_entry(entry):
                _next(migrate, mpfn)
                addr += PAGE_SIZE
                continue
            page = pfn_swap_entry_to_page(entry)
            pgmap = page_pgmap(page)
            if (
                not migrate.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE
                or pgmap.owner is not migrate.pgmap_owner
            ):
                _next(migrate, mpfn)
                addr += PAGE_SIZE
                continue
            mpfn = migrate_pfn(page.pfn) | MIGRATE_PFN_MIGRATE
            if is_writable_device_private_entry(entry):
                mpfn |= MIGRATE_PFN_WRITE
        else:
            assert isinstance(pte, Pte)
            pfn = pte_pfn(pte)
            if is_zero_pfn(pfn) and migrate.flags & MIGRATE_VMA_SELECT_SYSTEM:
                mpfn = MIGRATE_PFN_MIGRATE
                migrate.cpages += 1
                _next(migrate, mpfn)
                addr += PAGE_SIZE
                continue
            page = vm_normal_page(vma, addr, pte)
            if (
                page is not None
                and not is_zone_device_page(page)
                and not migrate.flags & MIGRATE_VMA_SELECT_SYSTEM
            ):
                _next(migrate, mpfn)
                addr += PAGE_SIZE
                continue
            # MODEL: no device-coherent memory (kernel.memremap), so the
            # SELECT_DEVICE_COHERENT branch never applies.
            # MODEL: no large folios, so no migrate_vma_split_folio.
            mpfn = migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE
            mpfn |= MIGRATE_PFN_WRITE if pte_write(pte) else 0

        # FIXME upstream: no THP support.  MODEL: the mapping is read under
        # the PTE lock that keeps the page mapped.
        if page is None or page.mapping is None:
            mpfn = 0
            _next(migrate, mpfn)
            addr += PAGE_SIZE
            continue

        # The reference pins the page: nothing else can migrate it, and the
        # PTE stays as it is.  A system page's reference is traded for the
        # LRU isolation's later; a device page keeps it.
        folio = page
        await get_page(folio)

        # A trylock, not a lock: two migrations each waiting for the other's
        # page lock would deadlock; migration is best effort, so a busy page
        # is simply skipped.  Once locked, its migration entry can be set up
        # here directly (the common case: mapped once, in this process).
        if _fix_1afaeb(mm):
            locked = fault_folio is folio or await trylock_page(folio)
        else:
            locked = await trylock_page(folio)
        if locked:
            # flush_cache_page: MODEL: no-op.
            # MODEL: PageAnonExclusive is not modelled (see Deviations).
            pte = await ptep_get_and_clear(mm, addr, ptep)

            migrate.cpages += 1

            # Set up the special migration page table entry.
            if mpfn & MIGRATE_PFN_WRITE:
                entry = make_writable_migration_entry(page)
            else:
                entry = make_readable_migration_entry(page)
            swp_pte = swp_entry_to_pte(entry)
            await set_pte_at(mm, addr, ptep, swp_pte)
            # MODEL: the record of remove_migration_ptes (see Deviations).
            record_migration_pte(folio, vma, addr)

            # Like an unmap: drop the rmap and the mapping's reference.  The
            # page stays, held by the reference taken above.
            await page_remove_rmap(folio)
            if not pte_present(pte):
                # MODEL: the record try_to_migrate walks, changed in the
                # step that writes the page (see Deviations).
                forget_device_private_pte(folio, mm, addr)
            await put_page(folio)

            if pte_present(pte):
                unmapped += 1
        else:
            await put_page(folio)
            mpfn = 0

        _next(migrate, mpfn)
        addr += PAGE_SIZE

    # Flush the TLB only if some entry was changed.  The flush must come
    # before the lock is dropped: a zap that takes the lock next and finds a
    # migration entry flushes nothing, so a CPU could otherwise keep using
    # the old page after munmap or MADV_DONTNEED returned (60bae7370896).
    if fix_applied(mm, TLB_FLUSH_UNDER_PTL):
        if unmapped:
            await flush_tlb_range(vma, start, end)
        await spin_unlock(mm.page_table_lock)  # pte_unmap_unlock
    else:
        await spin_unlock(mm.page_table_lock)  # pte_unmap_unlock
        if unmapped:
            await flush_tlb_range(vma, start, end)

    trace(
        "migrate_vma_collect_pmd",
        mm=mm.name,
        start=start,
        end=end,
        cpages=migrate.cpages,
        unmapped=unmapped,
    )
    return 0


def _next(migrate: MigrateVma, mpfn: int) -> None:
    """The ``next:`` label of migrate_vma_collect_pmd: record one entry."""
    migrate.dst[migrate.npages] = 0
    migrate.src[migrate.npages] = mpfn
    migrate.npages += 1


async def migrate_vma_collect(migrate: MigrateVma) -> None:
    """Walk the CPU page table of the range, collecting pages and unmapping them.

    Kernel: mm/migrate_device.c migrate_vma_collect() (v6.16).  The
    invalidation carries ``pgmap_owner`` so the owning driver can skip the
    device-private mappings that are not being migrated.
    """
    vma = migrate.vma
    assert vma is not None
    mm = vma.vm_mm
    range = MmuNotifierRange(mm=mm)

    mmu_notifier_range_init_owner(
        range,
        MMU_NOTIFY_MIGRATE,
        0,
        mm,
        migrate.start,
        migrate.end,
        migrate.pgmap_owner,
    )
    await mmu_notifier_invalidate_range_start(range)

    walk = MmWalk(
        mm=mm,
        private=migrate,
        pmd_entry=migrate_vma_collect_pmd,
        pte_hole=migrate_vma_collect_hole,
    )
    await walk_page_range(migrate.start, migrate.end, walk)

    await mmu_notifier_invalidate_range_end(range)
    migrate.end = migrate.start + (migrate.npages << PAGE_SHIFT)


async def migrate_vma_check_page(page: Page, fault_page: Page | None) -> bool:
    """Return whether ``page`` is not pinned: no reference beyond the expected ones.

    Kernel: mm/migrate_device.c migrate_vma_check_page() (v6.16).  One extra
    reference is the caller's (LRU isolation or collection), one more the
    fault's (do_swap_page) when ``page`` is the fault page, and one more for
    ZONE_DEVICE pages.  MODEL: no large folios; a shmem page's mapping adds
    one (no private data).
    """
    folio = page
    extra = 1 + (1 if page is fault_page else 0)

    # Device pages have one more reference.
    if is_zone_device_page(folio):
        extra += 1

    # A page-cache page: its mapping holds one.
    await shared_access(folio, write=False, func="folio_ref_count")
    if folio.mapping is not None and not _is_anon(folio):
        extra += 1

    return not folio.refcount - extra > folio.mapcount


def _is_anon(page: Page) -> bool:
    """``folio_test_anon`` (MODEL: PageAnon of the single-page folio)."""
    return PageAnon(page)


async def migrate_device_unmap(
    src_pfns: list[int], npages: int, fault_page: Page | None, *, mm: MmStruct | None
) -> int:
    """Isolate the collected pages, unmap them, and put back those that cannot migrate.

    Kernel: mm/migrate_device.c migrate_device_unmap() (v6.16).  A page
    still mapped (migrate_device_range's pages, or a page mapped in another
    mm too) goes through ``try_to_migrate``, which replaces its mappings by
    migration entries.  MODEL: ``mm`` is the address space whose kernel
    build the patch switch of 1afaeb8293c9 is read from (kernel.fixes;
    None: no address space, the fixed kernel's behaviour); before it, the
    fault page was locked by the collection like any other page, so it is
    unlocked here too.

    Returns:
        The number of entries still marked MIGRATE.
    """
    fault_folio = fault_page
    restore = 0
    unmapped = 0

    # lru_add_drain: MODEL: no LRU.
    for i in range(npages):
        page = migrate_pfn_to_page(src_pfns[i])
        if page is None:
            if src_pfns[i] & MIGRATE_PFN_MIGRATE:
                unmapped += 1
            continue

        folio = page
        # ZONE_DEVICE pages are not on the LRU.
        if not is_zone_device_page(folio):
            # folio_isolate_lru: MODEL: always succeeds, with its reference.
            await get_page(folio)
            # Drop the reference collect took.
            await put_page(folio)

        if await page_mapped(folio):  # folio_mapped
            await try_to_migrate(folio, 0)

        if await page_mapped(folio) or not await migrate_vma_check_page(
            page, fault_page
        ):
            if not is_zone_device_page(folio):
                await get_page(folio)
                await put_page(folio)  # folio_putback_lru drops isolation's
            src_pfns[i] &= ~MIGRATE_PFN_MIGRATE
            restore += 1
            continue

        unmapped += 1

    i = 0
    while i < npages and restore:
        page = migrate_pfn_to_page(src_pfns[i])
        if page is None or src_pfns[i] & MIGRATE_PFN_MIGRATE:
            i += 1
            continue
        folio = page
        await remove_migration_ptes(folio, folio, 0)

        src_pfns[i] = 0
        if mm is None or not _fix_1afaeb(mm) or fault_folio is not folio:
            await unlock_page(folio)
        await put_page(folio)
        restore -= 1
        i += 1

    return unmapped


async def migrate_vma_unmap(migrate: MigrateVma) -> None:
    """Unmap the collected pages; keep the count of those that can migrate.

    Kernel: mm/migrate_device.c migrate_vma_unmap() (v6.16).
    """
    assert migrate.vma is not None
    migrate.cpages = await migrate_device_unmap(
        migrate.src, migrate.npages, migrate.fault_page, mm=migrate.vma.vm_mm
    )


async def migrate_vma_setup(args: MigrateVma) -> int:  # noqa: PLR0911 - the C's checks
    """Collect and unmap the pages of [args.start, args.end) for migration.

    Kernel: mm/migrate_device.c migrate_vma_setup() (v6.16).  The caller
    holds ``mmap_lock`` for read.  On return the pages with MIGRATE in
    ``src`` are locked and unmapped (migration entries in the page table),
    so their contents are stable while the driver copies them.

    Returns:
        0 (also when no page could be collected), or -EINVAL for a bad
        range or VMA, a fault page that is not device-private, or (since
        1afaeb8293c9) a fault page that is not locked.
    """
    nr_pages = (args.end - args.start) >> PAGE_SHIFT

    args.start &= PAGE_MASK
    args.end &= PAGE_MASK
    vma = args.vma
    if vma is None or vma.vm_flags & VM_HUGETLB or vma.vm_flags & _VM_SPECIAL:
        return -errno.EINVAL
    if nr_pages <= 0:
        return -errno.EINVAL
    if args.start < vma.vm_start or args.start >= vma.vm_end:
        return -errno.EINVAL
    if args.end <= vma.vm_start or args.end > vma.vm_end:
        return -errno.EINVAL
    if len(args.src) < nr_pages or len(args.dst) < nr_pages:  # !src || !dst
        return -errno.EINVAL
    if args.fault_page is not None and not is_device_private_page(args.fault_page):
        return -errno.EINVAL
    if (
        _fix_1afaeb(vma.vm_mm)
        and args.fault_page is not None
        and not await PageLocked(args.fault_page)
    ):
        return -errno.EINVAL

    args.src[:nr_pages] = [0] * nr_pages
    args.cpages = 0
    args.npages = 0

    await migrate_vma_collect(args)

    if args.cpages:
        await migrate_vma_unmap(args)

    # The collected pages are locked and unmapped: their contents are stable
    # and the driver may copy them.
    trace(
        "migrate_vma_setup",
        mm=vma.vm_mm.name,
        start=args.start,
        end=args.end,
        npages=args.npages,
        cpages=args.cpages,
    )
    return 0


async def migrate_vma_insert_page(
    migrate: MigrateVma, addr: int, page: Page, src: list[int], i: int
) -> None:
    """Map a new (device) page where the CPU page table had nothing (or the zero page).

    Kernel: mm/migrate_device.c migrate_vma_insert_page() (v6.16), which
    follows do_anonymous_page.  MODEL: ``src[i]`` stands for the C's
    ``*src``; no page-table allocation, anon_vma, memcg or userfaultfd.
    """
    folio = page
    vma = migrate.vma
    assert vma is not None
    mm = vma.vm_mm
    flush = False

    # Only anonymous memory can be populated.
    if not vma_is_anonymous(vma):
        src[i] &= ~MIGRATE_PFN_MIGRATE  # goto abort
        return

    # __folio_mark_uptodate: MODEL: the copy is complete (sequential memory).
    entry: object
    if is_device_private_page(folio):
        if vma.vm_flags & VM_WRITE:
            swp_entry = make_writable_device_private_entry(page)
        else:
            swp_entry = make_readable_device_private_entry(page)
        entry = swp_entry_to_pte(swp_entry)
    else:
        if is_zone_device_page(folio):  # pragma: no cover - MODEL: none other
            src[i] &= ~MIGRATE_PFN_MIGRATE
            return
        entry = mk_pte(page, bool(vma.vm_flags & VM_WRITE))

    ptep = pte_offset_map(mm, addr)
    await spin_lock(mm.page_table_lock)
    orig_pte = ptep.value

    if await check_stable_address_space(mm):
        await spin_unlock(mm.page_table_lock)  # unlock_abort
        src[i] &= ~MIGRATE_PFN_MIGRATE
        return

    if pte_present(orig_pte):
        assert isinstance(orig_pte, Pte)
        if not is_zero_pfn(pte_pfn(orig_pte)):
            await spin_unlock(mm.page_table_lock)  # unlock_abort
            src[i] &= ~MIGRATE_PFN_MIGRATE
            return
        flush = True
    elif not pte_none(orig_pte):
        await spin_unlock(mm.page_table_lock)  # unlock_abort
        src[i] &= ~MIGRATE_PFN_MIGRATE
        return

    # userfaultfd_missing: MODEL: no userfaultfd.
    # inc_mm_counter: MODEL: no rss counters.
    page_add_new_anon_rmap(folio, vma, addr)
    # folio_add_lru_vma: MODEL: no LRU.
    await get_page(folio)
    if is_device_private_page(folio):
        # MODEL: the record try_to_migrate walks (kernel.rmap), changed in
        # the step that writes the page.
        record_device_private_pte(folio, vma, addr)

    if flush:
        # flush_cache_page + ptep_clear_flush: MODEL: a clear (no TLB).
        await ptep_get_and_clear(mm, addr, ptep)
    await set_pte_at(mm, addr, ptep, entry)
    # update_mmu_cache: MODEL: no-op.

    await spin_unlock(mm.page_table_lock)
    src[i] = MIGRATE_PFN_MIGRATE


async def __migrate_device_pages(
    src_pfns: list[int],
    dst_pfns: list[int],
    npages: int,
    migrate: MigrateVma | None,
) -> None:
    """Move the struct-page state of every migrating page to its destination.

    Kernel: mm/migrate_device.c __migrate_device_pages() (v6.16).  An entry
    whose ``folio_migrate_mapping`` fails (someone took a reference since
    the collection) loses MIGRATE and is restored by finalize.
    """
    range = None
    notified = False

    # MODEL: the notifier range is called ``range`` as in C, hence builtins.
    for i in builtins.range(npages):
        newpage = migrate_pfn_to_page(dst_pfns[i])
        page = migrate_pfn_to_page(src_pfns[i])
        extra_cnt = 0

        if newpage is None:
            src_pfns[i] &= ~MIGRATE_PFN_MIGRATE
            continue

        if page is None:
            if not src_pfns[i] & MIGRATE_PFN_MIGRATE:
                continue
            # No VMA only for migrate_device_coherent_folio, which never
            # gets here with an unmapped page.
            VM_BUG_ON(migrate is None, "inserting a page without a vma")
            assert migrate is not None
            assert migrate.vma is not None
            addr = migrate.start + i * PAGE_SIZE
            if not notified:
                notified = True
                range = MmuNotifierRange(mm=migrate.vma.vm_mm)
                mmu_notifier_range_init_owner(
                    range,
                    MMU_NOTIFY_MIGRATE,
                    0,
                    migrate.vma.vm_mm,
                    addr,
                    migrate.end,
                    migrate.pgmap_owner,
                )
                await mmu_notifier_invalidate_range_start(range)
            await migrate_vma_insert_page(migrate, addr, newpage, src_pfns, i)
            continue

        newfolio = newpage
        folio = page
        mapping = None if _is_anon(folio) else folio.mapping  # folio_mapping

        # MODEL: no device-coherent memory (kernel.memremap).
        if is_device_private_page(newfolio):
            if mapping is not None:
                # Only anonymous memory moves to device memory.  MODEL: no
                # swap cache, so folio_free_swap has nothing to free.
                src_pfns[i] &= ~MIGRATE_PFN_MIGRATE
                continue
        elif is_zone_device_page(newfolio):  # pragma: no cover - MODEL: none
            # Other ZONE_DEVICE types are not supported.
            src_pfns[i] &= ~MIGRATE_PFN_MIGRATE
            continue

        # BUG_ON(folio_test_writeback): MODEL: no writeback.
        if migrate is not None and migrate.fault_page is page:
            extra_cnt = 1
        r = await folio_migrate_mapping(mapping, newfolio, folio, extra_cnt)
        if r:
            src_pfns[i] &= ~MIGRATE_PFN_MIGRATE
        else:
            folio_migrate_flags(newfolio, folio)

    if notified:
        assert range is not None
        await mmu_notifier_invalidate_range_end(range)


async def migrate_device_pages(
    src_pfns: list[int], dst_pfns: list[int], npages: int
) -> None:
    """migrate_vma_pages for pages found by pfn (migrate_device_range).

    Kernel: mm/migrate_device.c migrate_device_pages() (v6.16).
    """
    await __migrate_device_pages(src_pfns, dst_pfns, npages, None)


async def migrate_vma_pages(migrate: MigrateVma) -> None:
    """Move the struct-page state of the collected pages to their destinations.

    Kernel: mm/migrate_device.c migrate_vma_pages() (v6.16).
    """
    await __migrate_device_pages(migrate.src, migrate.dst, migrate.npages, migrate)


async def __migrate_device_finalize(
    src_pfns: list[int],
    dst_pfns: list[int],
    npages: int,
    fault_page: Page | None,
    *,
    mm: MmStruct | None,
) -> None:
    """Replace each migration entry by the new page, or the old one; drop the pages.

    Kernel: mm/migrate_device.c __migrate_device_finalize() (v6.16).  MODEL:
    ``mm`` as for migrate_device_unmap (None: no address space, the fixed
    kernel's behaviour).
    """
    fault_folio = fault_page

    for i in range(npages):
        dst: Page | None = None
        newpage = migrate_pfn_to_page(dst_pfns[i])
        page = migrate_pfn_to_page(src_pfns[i])

        if newpage is not None:
            dst = newpage

        if page is None:
            if dst is not None:
                WARN_ON_ONCE(fault_folio is dst, "finalize: dst is the fault page")
                await unlock_page(dst)
                await put_page(dst)
            continue

        src = page

        if not src_pfns[i] & MIGRATE_PFN_MIGRATE or dst is None:
            if dst is not None:
                WARN_ON_ONCE(fault_folio is dst, "finalize: dst is the fault page")
                await unlock_page(dst)
                await put_page(dst)
            dst = src

        # folio_add_lru: MODEL: no LRU.
        await remove_migration_ptes(src, dst, 0)
        if mm is None or not _fix_1afaeb(mm) or fault_folio is not src:
            await unlock_page(src)
        await put_page(src)

        if dst is not src:
            WARN_ON_ONCE(fault_folio is dst, "finalize: dst is the fault page")
            await unlock_page(dst)
            await put_page(dst)


async def migrate_device_finalize(
    src_pfns: list[int], dst_pfns: list[int], npages: int
) -> None:
    """migrate_vma_finalize for pages found by pfn (migrate_device_range).

    Kernel: mm/migrate_device.c migrate_device_finalize() (v6.16).
    """
    await __migrate_device_finalize(src_pfns, dst_pfns, npages, None, mm=None)


async def migrate_vma_finalize(migrate: MigrateVma) -> None:
    """Point the CPU page table at the new pages (or back at the old ones).

    Kernel: mm/migrate_device.c migrate_vma_finalize() (v6.16).  Unlocks
    every page and drops the collection's references; a migrated source
    page is freed by its last put (a device page through page_free).
    """
    assert migrate.vma is not None
    await __migrate_device_finalize(
        migrate.src,
        migrate.dst,
        migrate.npages,
        migrate.fault_page,
        mm=migrate.vma.vm_mm,
    )


async def migrate_device_pfn_lock(pfn: int) -> int:
    """Reference and lock device page ``pfn`` for migration; return its src entry.

    Kernel: mm/migrate_device.c migrate_device_pfn_lock() (v6.16).  A free
    page (count 0) and a page someone else holds locked are skipped.

    Returns:
        ``migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE``, or 0 for a skipped page.
    """
    # folio_get_nontail_page: MODEL: no large folios, so no tail pages.
    folio = pfn_to_page(pfn)
    if not await get_page_unless_zero(folio):
        return 0

    if not await trylock_page(folio):
        await put_page(folio)
        return 0

    return migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE


async def migrate_device_range(src_pfns: list[int], start: int, npages: int) -> int:
    """Collect device pages by pfn (not by address) and unmap them for migration.

    Kernel: mm/migrate_device.c migrate_device_range() (v6.16): the
    migrate_vma_setup of a driver that must move its device memory back
    to system memory without knowing where the pages are mapped.  On
    return the pages with MIGRATE in ``src_pfns`` are locked and mapped by
    migration entries only; the driver then allocates, copies, and calls
    migrate_device_pages and migrate_device_finalize.

    Returns:
        0.
    """
    pfn = start
    for i in range(npages):
        src_pfns[i] = await migrate_device_pfn_lock(pfn)
        pfn += 1

    await migrate_device_unmap(src_pfns, npages, None, mm=None)

    trace("migrate_device_range", start=start, npages=npages)
    return 0
