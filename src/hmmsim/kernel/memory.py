"""Page faults, copy-on-write, fork's page-table copy, and unmapping.

Kernel: mm/memory.c (Linux v5.5; the parts used by v5.3 are unchanged).

A read fault on an empty PTE of private anonymous memory maps the shared
zero page read-only; a write fault allocates a zeroed page.  A write fault on
a read-only PTE of a writable VMA reuses the page when this PTE is its only
mapping (do_wp_page -> wp_page_reuse) and otherwise copies it into a new page
inside a blockable MMU_NOTIFY_CLEAR bracket (wp_page_copy); the zero page is
always copied.  Fork copies the PTEs of each VMA (copy_page_range); for a
private (COW) mapping it write-protects the parent's PTEs inside a blockable
MMU_NOTIFY_PROTECTION_PAGE bracket and both mms share the pages.  A fault on
a shared anonymous (shmem) VMA finds its page in the file's page cache
(do_fault).  Zapping clears each PTE under the page-table lock and drops the
page's map count and reference, which frees the page when it was the last.

Deviations:
    * MODEL: one level of page tables (see mm_types); ``__handle_mm_fault``
      goes straight to ``handle_pte_fault``; PMD/PUD walks are not modelled.
      copy_page_range goes straight to copy_pte_range, which copies the whole
      range in one pass (no ``progress``/need_resched break).
    * handle_mm_fault checks no VMA permission, as in C: the callers do
      (kernel.fault's access_error for CPU faults, kernel.gup's
      check_vma_flags for get_user_pages, hmm_range_fault its own tests).
      MODEL: arch_vma_access_permitted is always true (no protection keys).
    * MODEL: FAULT_FLAG_ALLOW_RETRY never drops mmap_sem (nothing waits on
      I/O), so VM_FAULT_RETRY never happens.
    * MODEL: no swap: do_wp_page's reuse test (trylock_page +
      reuse_swap_page) is "the page is anonymous and mapped once"
      (``page_mapcount() == 1``), read with an Op on the page; the page lock
      is not modelled.  No KSM, no mlock, no memcg, no rss counters.
    * MODEL: ``vma->anon_vma`` is not modelled: copy_page_range copies every
      private anonymous VMA (the C skips one without an anon_vma, i.e. one
      never write-faulted, whose only PTEs can be zero-page PTEs; the child
      then gets those zero-page PTEs instead of refaulting them); shared
      anonymous VMAs are skipped, as in C (they never have an anon_vma).
    * MODEL: ``is_cow_mapping`` is "not VM_SHARED": VM_MAYWRITE is not
      modelled and every private mapping may be written (mmap of anonymous
      memory always sets it).
    * MODEL: no private file mappings, so do_cow_fault is not modelled (a
      write fault on a VMA with vm_ops is a shared one).
    * MODEL: set_pte_at_notify is set_pte_at and ptep_clear_flush_notify is
      ptep_get_and_clear: the change_pte and invalidate_range callbacks are
      not modelled; mmu_notifier_invalidate_range_only_end is
      mmu_notifier_invalidate_range_end for the same reason.
    * MODEL: the zap functions take the ``struct mmu_gather`` (kernel.mmu_gather)
      and queue each zapped page's reference on it (``__tlb_remove_page``);
      the caller's ``tlb_finish_mmu``, after invalidate_range_end, frees the
      pages.  The batch never fills, so zap_pte_range never forces an early
      flush (no dirty bit either); the ``details`` argument is dropped.
    * MODEL: ``unmap_vmas`` takes the list of VMAs starting at the first one
      (the C follows ``vm_next``).
    * MODEL: ``struct vm_fault`` is not modelled: the fault handlers take the
      VMA, the address, the PTE cell and, where needed, the PTE value read
      at fault entry (``vmf->orig_pte``) and the page (``vmf->page``).
      Only do_swap_page (v6.16) takes one (``mm_types.VmFaultStruct``), since
      it hands it to a driver's ``migrate_to_ram``.
    * MODEL: swap entries exist only in the ``current`` variant (device
      memory, kernel.memremap): do_swap_page, zap_nonpresent_ptes and the
      swap-entry branch of copy_one_pte follow v6.16; a real swap device is
      not modelled.  do_swap_page imports kernel.migrate inside the function
      (mm/migrate.c uses set_pte_at of this module: an import cycle here).
    * MODEL: zap_nonpresent_ptes and copy_one_pte keep the per-execution
      record of device-private PTEs that stands for try_to_migrate's rmap
      walk (kernel.rmap): a zapped entry is erased from it, the child's copy
      added (with the child's VMA).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from hmmsim.kernel.atomic import test_bit
from hmmsim.kernel.debug import WARN_ON_ONCE, lockdep_assert_held
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.memremap import page_pgmap_checked
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    Pte,
    PteVal,
    SwapPte,
    VmAreaStruct,
    VmFaultStruct,
    mk_pte,
    pte_mkspecial,
    pte_none,
    pte_offset_map,
    pte_page,
    pte_pfn,
    pte_present,
    pte_special,
    pte_write,
    pte_wrprotect,
    vma_is_anonymous,
)
from hmmsim.kernel.mmu_gather import (
    MmuGather,
    __tlb_remove_page,
    tlb_remove_tlb_entry,
)
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init,
)
from hmmsim.kernel.page_alloc import (
    GFP_HIGHUSER_MOVABLE,
    ZERO_PAGE,
    alloc_page,
    get_page,
    is_zero_pfn,
    put_page,
)
from hmmsim.kernel.pagemap import trylock_page, unlock_page
from hmmsim.kernel.rmap import (
    PageAnon,
    forget_device_private_pte,
    page_add_file_rmap,
    page_add_new_anon_rmap,
    page_dup_rmap,
    page_remove_rmap,
    record_device_private_pte,
)
from hmmsim.kernel.swapops import (
    is_device_private_entry,
    is_migration_entry,
    is_swap_pte,
    is_writable_device_private_entry,
    is_writable_migration_entry,
    make_readable_device_private_entry,
    make_readable_migration_entry,
    non_swap_entry,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
    swp_entry_to_pte,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    FAULT_FLAG_INSTRUCTION,
    FAULT_FLAG_REMOTE,
    FAULT_FLAG_WRITE,
    MMF_UNSTABLE,
    MMU_NOTIFY_CLEAR,
    MMU_NOTIFY_PROTECTION_PAGE,
    MMU_NOTIFY_UNMAP,
    PAGE_MASK,
    PAGE_SIZE,
    VM_FAULT_ERROR,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_SIGSEGV,
    VM_FAULT_WRITE,
    VM_HUGETLB,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_SHARED,
    VM_WRITE,
    FaultFlag,
    VmFault,
    VmFlags,
)
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    spin_lock,
    spin_unlock,
)
from hmmsim.sync.once import shared_access

__all__ = [
    "__do_fault",
    "__handle_mm_fault",
    "arch_vma_access_permitted",
    "check_stable_address_space",
    "copy_one_pte",
    "copy_page_range",
    "copy_pte_range",
    "do_anonymous_page",
    "do_fault",
    "do_read_fault",
    "do_shared_fault",
    "do_swap_page",
    "do_wp_page",
    "finish_fault",
    "handle_mm_fault",
    "handle_pte_fault",
    "is_cow_mapping",
    "maybe_mkwrite",
    "mm_forbids_zeropage",
    "ptep_get_and_clear",
    "ptep_set_access_flags",
    "ptep_set_wrprotect",
    "set_pte_at",
    "unmap_page_range",
    "unmap_single_vma",
    "unmap_vmas",
    "vm_normal_page",
    "wp_page_copy",
    "wp_page_reuse",
    "zap_nonpresent_ptes",
    "zap_pte_range",
]


def _pte_trace(name: str, mm: MmStruct, addr: int, pte: Pte | SwapPte) -> None:
    """Trace a PTE change; a swap entry names its page and adds its kind."""
    if isinstance(pte, SwapPte):
        entry = pte.entry
        trace(
            name,
            mm=mm.name,
            addr=addr,
            page=entry.page.pfn,
            generation=entry.page.generation,
            write=is_writable_device_private_entry(entry)
            or is_writable_migration_entry(entry),
            swap=entry.type.value,
        )
        return
    trace(
        name,
        mm=mm.name,
        addr=addr,
        page=pte.page.pfn,
        generation=pte.page.generation,
        write=pte.write,
    )


async def set_pte_at(
    mm: MmStruct, addr: int, ptep: Cell[PteVal], pte: Pte | SwapPte
) -> None:
    """Install ``pte``, present or a swap entry (the caller holds the lock).

    Kernel: arch set_pte_at().  The ``set_pte`` tracepoint of a swap entry
    carries a ``swap`` field with the entry's kind.
    """
    lockdep_assert_held(mm.page_table_lock)
    await WRITE_ONCE(ptep, pte)
    _pte_trace("set_pte", mm, addr, pte)


async def ptep_get_and_clear(mm: MmStruct, addr: int, ptep: Cell[PteVal]) -> PteVal:
    """Clear a PTE and return its old value (the caller holds the lock).

    Kernel: arch ptep_get_and_clear().
    """
    lockdep_assert_held(mm.page_table_lock)
    old = ptep.value
    await WRITE_ONCE(ptep, None)
    if old is not None:
        _pte_trace("pte_clear", mm, addr, old)
    return old


async def ptep_set_wrprotect(mm: MmStruct, addr: int, ptep: Cell[PteVal]) -> None:
    """Clear the write bit of a present PTE (the caller holds the lock).

    Kernel: arch ptep_set_wrprotect().
    """
    lockdep_assert_held(mm.page_table_lock)
    old = ptep.value
    assert pte_present(old), "[hmmsim internal bug] write-protecting a non-present PTE"
    pte = pte_wrprotect(old)
    await WRITE_ONCE(ptep, pte)
    trace(
        "set_pte",
        mm=mm.name,
        addr=addr,
        page=pte.page.pfn,
        generation=pte.page.generation,
        write=pte.write,
    )


async def ptep_set_access_flags(
    vma: VmAreaStruct, address: int, ptep: Cell[PteVal], entry: Pte, dirty: bool
) -> bool:
    """Install ``entry`` if it differs from the PTE (the caller holds the lock).

    Kernel: arch/x86/mm/pgtable.c ptep_set_access_flags().

    Returns:
        Whether the PTE changed.
    """
    mm = vma.vm_mm
    lockdep_assert_held(mm.page_table_lock)
    changed = ptep.value != entry
    if changed and dirty:
        await set_pte_at(mm, address, ptep, entry)
    return changed


def maybe_mkwrite(pte: Pte, vma: VmAreaStruct) -> Pte:
    """Return ``pte`` made writable if the VMA allows writes, else unchanged.

    Kernel: include/linux/mm.h maybe_mkwrite().
    """
    if vma.vm_flags & VM_WRITE:
        return Pte(pte.page, True, pte.special)  # pte_mkwrite
    return pte


def _vm_page_prot_write(vma: VmAreaStruct) -> bool:
    """MODEL: the write bit of ``vma->vm_page_prot``.

    Set for a shared writable mapping (shmem: no dirty accounting, so no
    write-notify), clear for a private one (copy-on-write) or a read-only one.
    """
    return bool(vma.vm_flags & VM_SHARED and vma.vm_flags & VM_WRITE)


def is_cow_mapping(flags: VmFlags) -> bool:
    """Return whether a mapping with ``flags`` is private, i.e. copy-on-write.

    Kernel: mm/internal.h is_cow_mapping().  MODEL: VM_MAYWRITE is not
    modelled and is taken as set (see Deviations).
    """
    return not flags & VM_SHARED


def mm_forbids_zeropage(mm: MmStruct) -> bool:
    """Return whether ``mm`` may not map the zero page.

    Kernel: include/linux/mm.h mm_forbids_zeropage() (0 except on s390 KVM).
    """
    del mm
    return False


def vm_normal_page(vma: VmAreaStruct, addr: int, pte: Pte) -> Page | None:
    """Return the struct page a PTE maps, or None for a special mapping.

    Kernel: mm/memory.c vm_normal_page() (with ARCH_HAS_PTE_SPECIAL).  The
    only special PTEs of the model map the zero page.
    """
    del vma, addr
    if pte_special(pte):
        # MODEL: no VM_PFNMAP/VM_MIXEDMAP or devmap PTEs: it is the zero page.
        assert is_zero_pfn(pte_pfn(pte)), "[hmmsim internal bug] special PTE"
        return None
    return pte_page(pte)


async def check_stable_address_space(mm: MmStruct) -> VmFault:
    """Refuse new pages in an address space the OOM reaper is tearing down.

    Kernel: include/linux/oom.h check_stable_address_space().
    """
    if await test_bit(MMF_UNSTABLE, mm.flags):
        return VM_FAULT_SIGBUS
    return VmFault(0)


async def do_anonymous_page(  # noqa: PLR0911 - the C's exits, in its order
    vma: VmAreaStruct, address: int, ptep: Cell[PteVal], flags: FaultFlag
) -> VmFault:
    """Map the zero page (read fault) or a new zeroed page at an empty PTE.

    Kernel: mm/memory.c do_anonymous_page() (v5.5).
    """
    mm = vma.vm_mm

    # An anonymous VMA may not be shared (a shared one has shmem's vm_ops).
    if vma.vm_flags & VM_SHARED:
        return VM_FAULT_SIGBUS

    # A read maps the zero page, read-only and special.
    if not flags & FAULT_FLAG_WRITE and not mm_forbids_zeropage(mm):
        entry = pte_mkspecial(mk_pte(ZERO_PAGE(address), False))
        await spin_lock(mm.page_table_lock)
        if not pte_none(ptep.value):
            await spin_unlock(mm.page_table_lock)
            return VmFault(0)
        ret = await check_stable_address_space(mm)
        if ret:
            await spin_unlock(mm.page_table_lock)
            return ret
        # goto setpte
        await set_pte_at(mm, address, ptep, entry)
        await spin_unlock(mm.page_table_lock)
        return VmFault(0)

    # A page of our own.  MODEL: anon_vma_prepare is not modelled.
    page = await alloc_page(GFP_HIGHUSER_MOVABLE)
    if page is None:
        return VM_FAULT_OOM
    entry = mk_pte(page, bool(vma.vm_flags & VM_WRITE))

    await spin_lock(mm.page_table_lock)
    if not pte_none(ptep.value):
        # Someone else mapped it first.
        await spin_unlock(mm.page_table_lock)
        await put_page(page)
        return VmFault(0)
    ret = await check_stable_address_space(mm)
    if ret:
        await spin_unlock(mm.page_table_lock)
        await put_page(page)
        return ret
    page_add_new_anon_rmap(page, vma, address)
    await set_pte_at(mm, address, ptep, entry)
    await spin_unlock(mm.page_table_lock)
    return VmFault(0)


async def __do_fault(vma: VmAreaStruct, address: int) -> tuple[VmFault, Page | None]:
    """Ask the VMA's ``->fault`` for the page that ``address`` maps.

    Kernel: mm/memory.c __do_fault() (v5.5).
    """
    assert vma.vm_ops is not None, "[hmmsim internal bug] __do_fault without vm_ops"
    ret, page = await vma.vm_ops.fault(vma, address)
    return VmFault(ret), page


async def finish_fault(
    vma: VmAreaStruct, address: int, ptep: Cell[PteVal], page: Page, write: bool
) -> VmFault:
    """Map a page-cache page at ``address`` unless someone else did first.

    Kernel: mm/memory.c finish_fault() -> alloc_set_pte() (v5.5).  The PTE
    is writable if the shared VMA is writable (its ``vm_page_prot`` allows
    writes: shmem does no dirty accounting), and a write fault makes it
    writable only with VM_WRITE (maybe_mkwrite).
    """
    mm = vma.vm_mm
    await spin_lock(mm.page_table_lock)
    if not pte_none(ptep.value):
        await spin_unlock(mm.page_table_lock)
        await put_page(page)
        return VmFault(0)
    ret = await check_stable_address_space(mm)
    if ret:
        await spin_unlock(mm.page_table_lock)
        await put_page(page)
        return ret
    entry = mk_pte(page, _vm_page_prot_write(vma))
    if write:
        entry = maybe_mkwrite(entry, vma)
    await page_add_file_rmap(page)
    await set_pte_at(mm, address, ptep, entry)
    await spin_unlock(mm.page_table_lock)
    return VmFault(0)


async def do_read_fault(vma: VmAreaStruct, address: int, ptep: Cell[PteVal]) -> VmFault:
    """Map the page-cache page of a read fault.

    Kernel: mm/memory.c do_read_fault() (v5.5; no fault-around).
    """
    ret, page = await __do_fault(vma, address)
    if ret & VM_FAULT_ERROR or page is None:
        return ret
    return await finish_fault(vma, address, ptep, page, False)


async def do_shared_fault(
    vma: VmAreaStruct, address: int, ptep: Cell[PteVal]
) -> VmFault:
    """Map the page-cache page of a write fault on a shared mapping.

    Kernel: mm/memory.c do_shared_fault() (v5.5; shmem has no page_mkwrite,
    dirty tracking is not modelled).
    """
    ret, page = await __do_fault(vma, address)
    if ret & VM_FAULT_ERROR or page is None:
        return ret
    return await finish_fault(vma, address, ptep, page, True)


async def do_fault(
    vma: VmAreaStruct, address: int, ptep: Cell[PteVal], flags: FaultFlag
) -> VmFault:
    """Resolve a fault on an empty PTE of a VMA with ``vm_ops``.

    Kernel: mm/memory.c do_fault() (v5.5).
    """
    if not flags & FAULT_FLAG_WRITE:
        return await do_read_fault(vma, address, ptep)
    if not vma.vm_flags & VM_SHARED:
        # MODEL: do_cow_fault, for private file mappings, is not modelled.
        return VM_FAULT_SIGBUS
    return await do_shared_fault(vma, address, ptep)


async def wp_page_reuse(
    vma: VmAreaStruct, address: int, ptep: Cell[PteVal], orig_pte: Pte
) -> None:
    """Keep the faulting PTE's page, writable if the VMA allows (lock held; released).

    Kernel: mm/memory.c wp_page_reuse() (v5.5).  maybe_mkwrite sets the
    write bit only in a VMA with VM_WRITE: on a read-only VMA (a write fault
    the caller did not check, as v5.3's hmm_range_fault) the PTE stays as it
    was and the fault still "succeeds" with VM_FAULT_WRITE.
    """
    mm = vma.vm_mm
    # MODEL: no young/dirty bits (pte_mkyoung, pte_mkdirty) and no cache flush.
    entry = maybe_mkwrite(orig_pte, vma)
    await ptep_set_access_flags(vma, address, ptep, entry, True)
    await spin_unlock(mm.page_table_lock)


async def wp_page_copy(
    vma: VmAreaStruct,
    address: int,
    ptep: Cell[PteVal],
    orig_pte: Pte,
    old_page: Page | None,
) -> VmFault:
    """Break COW: map a private copy of the page (a zeroed one for the zero page).

    Kernel: mm/memory.c wp_page_copy() (v5.5).  Entered without the PTE
    lock, holding a reference on ``old_page`` (None for the zero page).  The
    PTE is replaced inside a blockable MMU_NOTIFY_CLEAR bracket.

    Returns:
        VM_FAULT_WRITE when the copy was mapped, 0 when the PTE changed
        meanwhile, VM_FAULT_OOM when no page is left.
    """
    mm = vma.vm_mm
    page_copied = False

    # MODEL: anon_vma_prepare is not modelled.
    if is_zero_pfn(pte_pfn(orig_pte)):
        new_page = await alloc_page(GFP_HIGHUSER_MOVABLE)
        if new_page is None:
            return VM_FAULT_OOM
    else:
        assert old_page is not None, "[hmmsim internal bug] COW of no page"
        new_page = await alloc_page(GFP_HIGHUSER_MOVABLE)
        if new_page is None:
            await put_page(old_page)
            return VM_FAULT_OOM
        # cow_user_page: the new page is not visible yet, the old one is read.
        await shared_access(old_page, write=False, func="cow_user_page")
        new_page.contents = old_page.contents

    range = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(
        range,
        MMU_NOTIFY_CLEAR,
        0,
        vma,
        mm,
        address & PAGE_MASK,
        (address & PAGE_MASK) + PAGE_SIZE,
    )
    await mmu_notifier_invalidate_range_start(range)

    # Check the PTE again: the lock was dropped.
    await spin_lock(mm.page_table_lock)
    free_page: Page | None = new_page
    if ptep.value is orig_pte:
        entry = mk_pte(new_page, bool(vma.vm_flags & VM_WRITE))
        # Clear the old entry first, then install the new one.
        await ptep_get_and_clear(mm, address, ptep)
        page_add_new_anon_rmap(new_page, vma, address)
        await set_pte_at(mm, address, ptep, entry)
        if old_page is not None:
            # Only now that the PTE maps the new page may the old page's map
            # count drop: a process seeing it at one could reuse the old page
            # while this PTE still pointed to it.
            await page_remove_rmap(old_page)
        # The old page loses the reference of this mapping.
        free_page = old_page
        page_copied = True

    if free_page is not None:
        await put_page(free_page)

    await spin_unlock(mm.page_table_lock)
    # MODEL: mmu_notifier_invalidate_range_only_end, see Deviations.
    await mmu_notifier_invalidate_range_end(range)
    if old_page is not None:
        # The reference do_wp_page took.
        await put_page(old_page)
    return VM_FAULT_WRITE if page_copied else VmFault(0)


async def do_wp_page(
    vma: VmAreaStruct, address: int, ptep: Cell[PteVal], orig_pte: Pte
) -> VmFault:
    """Handle a write fault on a read-only PTE (lock held; released).

    Kernel: mm/memory.c do_wp_page() (v5.5).  The page is reused when this
    PTE is its only mapping, made writable in place for a shared writable
    mapping, and copied otherwise.
    """
    mm = vma.vm_mm
    page = vm_normal_page(vma, address, orig_pte)
    if page is None:
        # The zero page: always copy.  MODEL: no VM_PFNMAP/VM_MIXEDMAP, so
        # wp_pfn_shared cannot apply.
        await spin_unlock(mm.page_table_lock)
        return await wp_page_copy(vma, address, ptep, orig_pte, None)

    if PageAnon(page):
        # MODEL: trylock_page + reuse_swap_page, see Deviations.
        await shared_access(page, write=False, func="reuse_swap_page")
        if page.mapcount == 1:
            await wp_page_reuse(vma, address, ptep, orig_pte)
            return VM_FAULT_WRITE
    elif vma.vm_flags & (VM_WRITE | VM_SHARED) == VM_WRITE | VM_SHARED:
        # wp_page_shared: shmem has no page_mkwrite, reuse the page.
        await wp_page_reuse(vma, address, ptep, orig_pte)
        return VM_FAULT_WRITE

    # Copy it.
    await get_page(page)
    await spin_unlock(mm.page_table_lock)
    return await wp_page_copy(vma, address, ptep, orig_pte, page)


async def do_swap_page(vmf: VmFaultStruct) -> VmFault:
    """Handle a fault on a non-present PTE (a swap entry).

    Kernel: mm/memory.c do_swap_page() (v6.16), non-swap-entry part.  A
    migration entry waits for the migration to end (migration_entry_wait)
    and returns, so the fault is retried.  A device-private entry calls its
    page map's ``migrate_to_ram``: under the PTE lock the entry is checked
    again, and only if the device page can be locked without waiting is a
    reference taken, the lock dropped and the callback called; otherwise the
    fault returns and is retried (v6.15's 1afaeb8293c9: a busy page is
    being migrated by someone else).

    Patch switch 16ce101db85d (kernel.fixes, CVE-2022-3523): without it the
    callback is called straight from the entry read locklessly at fault
    entry, with neither the PTE lock nor a reference (v6.0), so a
    concurrent migration can free the device page, and its map, while
    ``migrate_to_ram`` runs on it.  MODEL: reverting it also drops
    1afaeb8293c9's page lock, which was added inside the locked section
    16ce101db85d created.  Patch switch 1afaeb8293c9 alone (v6.1 to v6.14):
    the reference but no page lock.

    Returns:
        The callback's VM_FAULT_* code, 0 when the fault must be retried, or
        VM_FAULT_SIGBUS for an entry the model does not know.
    """
    vma = vmf.vma
    mm = vma.vm_mm
    ret = VmFault(0)

    # MODEL: pte_unmap_same() is always true without highmem (x86-64).
    entry = pte_to_swp_entry(vmf.orig_pte)
    if non_swap_entry(entry):
        if is_migration_entry(entry):
            # MODEL: imported here: mm/migrate.c and mm/memory.c call each
            # other (see Deviations).
            from hmmsim.kernel.migrate import migration_entry_wait  # noqa: PLC0415

            await migration_entry_wait(mm, vmf.address)
        elif is_device_private_entry(entry):
            # MODEL: no per-VMA locks, so no FAULT_FLAG_VMA_LOCK retry.
            vmf.page = pfn_swap_entry_to_page(entry)
            if not fix_applied(mm, "16ce101db85d"):
                # v6.0: no PTE lock, no reference, no page lock.
                pgmap = await page_pgmap_checked(vmf.page, "do_swap_page")
                assert pgmap.ops is not None
                ret = await pgmap.ops.migrate_to_ram(vmf)
                trace("do_swap_page", mm=mm.name, addr=vmf.address, ret=int(ret))
                return ret
            ptep = vmf.pte
            assert ptep is not None
            await spin_lock(mm.page_table_lock)
            if ptep.value is not vmf.orig_pte:
                # pte_same() failed: someone else handled it (goto unlock).
                await spin_unlock(mm.page_table_lock)
                return ret
            # A reference while the entry keeps the page from being freed.
            if not fix_applied(mm, "1afaeb8293c9"):
                # v6.1 to v6.14: no page lock, so every fault on the page
                # starts its own migration of it.
                await get_page(vmf.page)
                await spin_unlock(mm.page_table_lock)
                pgmap = await page_pgmap_checked(vmf.page, "do_swap_page")
                assert pgmap.ops is not None
                ret = await pgmap.ops.migrate_to_ram(vmf)
                await put_page(vmf.page)
            elif await trylock_page(vmf.page):
                await get_page(vmf.page)
                await spin_unlock(mm.page_table_lock)
                pgmap = await page_pgmap_checked(vmf.page, "do_swap_page")
                assert pgmap.ops is not None
                ret = await pgmap.ops.migrate_to_ram(vmf)
                await unlock_page(vmf.page)
                await put_page(vmf.page)
            else:
                await spin_unlock(mm.page_table_lock)
        else:  # pragma: no cover - MODEL: no other non-swap entries
            ret = VM_FAULT_SIGBUS
        # goto out
        trace("do_swap_page", mm=mm.name, addr=vmf.address, ret=int(ret))
        return ret
    # MODEL: no swap devices, so no real swap entry reaches this point.
    raise AssertionError(  # pragma: no cover
        f"[hmmsim internal bug] swap entry {entry!r} without swap devices"
    )


async def handle_pte_fault(
    vma: VmAreaStruct, address: int, flags: FaultFlag
) -> VmFault:
    """Resolve a fault at one PTE.

    Kernel: mm/memory.c handle_pte_fault() (v5.3).
    """
    mm = vma.vm_mm
    ptep = pte_offset_map(mm, address)
    # The PTE is read without the lock first, then re-checked under it.
    orig_pte = await READ_ONCE(ptep)
    if pte_none(orig_pte):
        if vma_is_anonymous(vma):
            return await do_anonymous_page(vma, address, ptep, flags)
        return await do_fault(vma, address, ptep, flags)

    if not pte_present(orig_pte):
        vmf = VmFaultStruct(
            vma=vma, address=address, flags=flags, orig_pte=orig_pte, pte=ptep
        )
        return await do_swap_page(vmf)

    await spin_lock(mm.page_table_lock)
    entry = ptep.value
    if entry is not orig_pte or not pte_present(entry):
        # pte_same() failed: someone changed it meanwhile.
        await spin_unlock(mm.page_table_lock)
        return VmFault(0)
    if flags & FAULT_FLAG_WRITE and not pte_write(entry):
        return await do_wp_page(vma, address, ptep, entry)
    await spin_unlock(mm.page_table_lock)
    return VmFault(0)


async def __handle_mm_fault(
    vma: VmAreaStruct, address: int, flags: FaultFlag
) -> VmFault:
    """Walk to the PTE and resolve the fault.

    Kernel: mm/memory.c __handle_mm_fault() (v5.3).
    """
    return await handle_pte_fault(vma, address & PAGE_MASK, flags)


def arch_vma_access_permitted(
    vma: VmAreaStruct, write: bool, execute: bool, foreign: bool
) -> bool:
    """Return whether protection keys allow the access (always, MODEL).

    Kernel: arch/x86/include/asm/mmu_context.h arch_vma_access_permitted()
    (v5.3).  MODEL: no memory protection keys, so every VMA has the default
    key and every access is allowed (as without CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS).
    """
    del vma, write, execute, foreign
    return True


async def handle_mm_fault(vma: VmAreaStruct, address: int, flags: FaultFlag) -> VmFault:
    """Resolve a page fault at ``address`` in ``vma`` (mmap_sem held).

    Kernel: mm/memory.c handle_mm_fault() (v5.3).  It does not check the
    VMA's permissions: its callers do (the arch fault handler's
    access_error, get_user_pages' check_vma_flags, hmm_range_fault's VM_READ
    test and, from v5.4, its VM_WRITE test).  A write fault on a read-only
    VMA therefore "succeeds" without making the PTE writable.

    Returns:
        0 or VM_FAULT_WRITE on success; VM_FAULT_SIGSEGV (protection keys
        refuse it: never, MODEL), VM_FAULT_SIGBUS (the OOM reaper is tearing
        the mm down) or VM_FAULT_OOM (no page left).
    """
    # MODEL: count_vm_event, memcg accounting and check_sync_rss_stat are
    # not modelled.
    if not arch_vma_access_permitted(
        vma,
        bool(flags & FAULT_FLAG_WRITE),
        bool(flags & FAULT_FLAG_INSTRUCTION),
        bool(flags & FAULT_FLAG_REMOTE),
    ):
        return VM_FAULT_SIGSEGV
    # MODEL: no hugetlb_fault (hugetlb VMAs are faulted like others).
    ret = await __handle_mm_fault(vma, address, flags)
    trace(
        "handle_mm_fault",
        mm=vma.vm_mm.name,
        addr=address,
        write=bool(flags & FAULT_FLAG_WRITE),
        ret=int(ret),
    )
    return ret


async def zap_pte_range(tlb: MmuGather, vma: VmAreaStruct, addr: int, end: int) -> int:
    """Clear the PTEs of [addr, end); gather their pages for release.

    Kernel: mm/memory.c zap_pte_range() (v5.3).  The map count drops now;
    the page reference goes to ``tlb`` and is dropped after the TLB flush
    (``tlb_finish_mmu``, after the caller's invalidate_range_end).

    Returns:
        The address where the zap stopped (``end``: MODEL, the batch never
        fills, so there is no early flush and no ``goto again``).
    """
    mm = vma.vm_mm
    await spin_lock(mm.page_table_lock)
    while addr < end:
        ptep = mm.ptes.get(addr)
        if ptep is not None and is_swap_pte(ptep.value):
            await zap_nonpresent_ptes(vma, ptep, addr)
        elif ptep is not None and pte_present(ptep.value):
            ptent = await ptep_get_and_clear(mm, addr, ptep)
            assert pte_present(ptent), (
                "[hmmsim internal bug] PTE vanished under its lock"
            )
            tlb_remove_tlb_entry(tlb, addr)
            page = vm_normal_page(vma, addr, ptent)
            if page is not None:
                # MODEL: no dirty bit, so no forced flush for dirty shared pages.
                await page_remove_rmap(page)
                # MODEL: the batch never fills (see Deviations), so the
                # kernel's force_flush, its early tlb_flush_mmu and the
                # "goto again" never happen.
                __tlb_remove_page(tlb, page)
        addr += PAGE_SIZE
    await spin_unlock(mm.page_table_lock)
    return addr


async def zap_nonpresent_ptes(vma: VmAreaStruct, ptep: Cell[PteVal], addr: int) -> None:
    """Zap one swap entry (the caller holds the page-table lock).

    Kernel: mm/memory.c zap_nonpresent_ptes() (v6.16; MODEL: one entry, no
    ``details``, no rss counters).  A device-private entry holds a map
    count and a reference on its device page: both are dropped now, not
    batched in the mmu_gather, so the last one frees the page through its
    map's ``page_free`` (kernel.memremap).  A migration entry holds
    neither: the migration owns the page and restores or replaces nothing
    once the PTE is gone.
    """
    mm = vma.vm_mm
    entry = pte_to_swp_entry(ptep.value)
    if is_device_private_entry(entry):
        page = pfn_swap_entry_to_page(entry)
        # Device-private memory only backs anonymous memory so far.
        WARN_ON_ONCE(not vma_is_anonymous(vma), "device-private entry in a file VMA")
        await page_remove_rmap(page)
        # MODEL: the record try_to_migrate walks (kernel.rmap), changed in
        # the step that writes the page.
        forget_device_private_pte(page, mm, addr)
        await put_page(page)
    elif is_migration_entry(entry):
        pass  # MODEL: rss counters are not modelled
    else:  # pragma: no cover - MODEL: the model has no other swap entries
        WARN_ON_ONCE(True, f"unknown swap entry {entry!r}")
    # clear_not_present_full_ptes
    await ptep_get_and_clear(mm, addr, ptep)


async def unmap_page_range(
    tlb: MmuGather, vma: VmAreaStruct, addr: int, end: int
) -> None:
    """Unmap [addr, end) of ``vma`` (the notifier bracket is the caller's).

    Kernel: mm/memory.c unmap_page_range() (v5.3).
    """
    # MODEL: one page-table level: zap_pmd_range & co. go straight here.
    await zap_pte_range(tlb, vma, addr, end)


async def unmap_single_vma(
    tlb: MmuGather, vma: VmAreaStruct, start_addr: int, end_addr: int
) -> None:
    """Unmap the part of ``vma`` inside [start_addr, end_addr).

    Kernel: mm/memory.c unmap_single_vma() (v5.3).
    """
    start = max(vma.vm_start, start_addr)
    if start >= vma.vm_end:
        return
    end = min(vma.vm_end, end_addr)
    if end <= vma.vm_start:
        return
    if start != end:
        await unmap_page_range(tlb, vma, start, end)


async def unmap_vmas(
    tlb: MmuGather, vmas: Sequence[VmAreaStruct], start_addr: int, end_addr: int
) -> None:
    """Unmap [start_addr, end_addr) of a run of VMAs inside a blockable bracket.

    Kernel: mm/memory.c unmap_vmas() (v5.3).  The pages stay gathered in
    ``tlb`` until the caller's tlb_finish_mmu.
    """
    if not vmas:
        return
    vma = vmas[0]
    range = MmuNotifierRange(mm=vma.vm_mm)
    mmu_notifier_range_init(
        range, MMU_NOTIFY_UNMAP, 0, vma, vma.vm_mm, start_addr, end_addr
    )
    await mmu_notifier_invalidate_range_start(range)
    for vma in vmas:
        if vma.vm_start >= end_addr:
            break
        await unmap_single_vma(tlb, vma, start_addr, end_addr)
    await mmu_notifier_invalidate_range_end(range)


async def copy_one_pte(
    dst_mm: MmStruct,
    src_mm: MmStruct,
    dst_pte: Cell[PteVal],
    src_pte: Cell[PteVal],
    vma: VmAreaStruct,
    addr: int,
) -> int:
    """Copy one present PTE to the child; COW-protect it in both mms.

    Kernel: mm/memory.c copy_one_pte() (v5.5; both PTE locks held).

    Returns:
        0 (MODEL: no swap entries, so never a swap-count error).
    """
    pte = src_pte.value
    assert pte is not None, "[hmmsim internal bug] copying pte_none"
    if not pte_present(pte):
        # A swap entry (v5.5 copies it here; v6.16's copy_nonpresent_pte).
        entry = pte_to_swp_entry(pte)
        if is_migration_entry(entry):
            if is_writable_migration_entry(entry) and is_cow_mapping(vma.vm_flags):
                # Both mms must fault before writing again: make it a read
                # entry in the parent too.
                pte = swp_entry_to_pte(
                    make_readable_migration_entry(pfn_swap_entry_to_page(entry))
                )
                await set_pte_at(src_mm, addr, src_pte, pte)
        elif is_device_private_entry(entry):
            dpage = pfn_swap_entry_to_page(entry)
            # The child's entry is a mapping like a present one: it takes a
            # reference and a map count (device pages cannot be pinned, so
            # the rmap dup cannot fail).
            await get_page(dpage)
            await page_dup_rmap(dpage)
            # MODEL: the record try_to_migrate walks (kernel.rmap), changed
            # in the step that writes the page; the child's VMA, linked by
            # dup_mmap under its mmap_sem (mm/mmap.c imports this module).
            from hmmsim.kernel.mmap import find_vma  # noqa: PLC0415

            dst_vma = find_vma(dst_mm, addr)
            assert dst_vma is not None, "[hmmsim internal bug] no child VMA"
            record_device_private_pte(dpage, dst_vma, addr)
            if is_writable_device_private_entry(entry) and is_cow_mapping(vma.vm_flags):
                pte = swp_entry_to_pte(make_readable_device_private_entry(dpage))
                await set_pte_at(src_mm, addr, src_pte, pte)
        await set_pte_at(dst_mm, addr, dst_pte, pte)
        return 0
    # A private mapping: write-protect the PTE in the parent and the child.
    if is_cow_mapping(vma.vm_flags) and pte_write(pte):
        await ptep_set_wrprotect(src_mm, addr, src_pte)
        pte = pte_wrprotect(pte)
    page = vm_normal_page(vma, addr, pte)
    if page is not None:
        await get_page(page)
        await page_dup_rmap(page)
    await set_pte_at(dst_mm, addr, dst_pte, pte)
    return 0


async def copy_pte_range(
    dst_mm: MmStruct, src_mm: MmStruct, vma: VmAreaStruct, addr: int, end: int
) -> int:
    """Copy the present PTEs of [addr, end) from ``src_mm`` to ``dst_mm``.

    Kernel: mm/memory.c copy_pte_range() (v5.5): the child's PTE lock, then
    the parent's (spin_lock_nested), held for the whole range.

    Returns:
        0.
    """
    await spin_lock(dst_mm.page_table_lock)
    await spin_lock(src_mm.page_table_lock)  # spin_lock_nested
    while addr < end:
        src_pte = src_mm.ptes.get(addr)
        if src_pte is not None and not pte_none(src_pte.value):
            dst_pte = pte_offset_map(dst_mm, addr)
            await copy_one_pte(dst_mm, src_mm, dst_pte, src_pte, vma, addr)
        addr += PAGE_SIZE
    await spin_unlock(src_mm.page_table_lock)
    await spin_unlock(dst_mm.page_table_lock)
    return 0


async def copy_page_range(dst_mm: MmStruct, src_mm: MmStruct, vma: VmAreaStruct) -> int:
    """Copy the page tables of one VMA at fork (both ``mmap_sem`` held for write).

    Kernel: mm/memory.c copy_page_range() (v5.5).  For a COW mapping the
    parent's PTEs lose their write bit, so secondary MMUs are invalidated
    first (blockable, MMU_NOTIFY_PROTECTION_PAGE over the whole VMA).

    Returns:
        0, or -ENOMEM.
    """
    addr = vma.vm_start
    end = vma.vm_end

    # Skip what a fault will fill in as well: MODEL: "no anon_vma" is "not
    # private anonymous memory" (see Deviations).
    if not vma.vm_flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP) and not (
        vma_is_anonymous(vma) and is_cow_mapping(vma.vm_flags)
    ):
        return 0

    # Only a COW mapping downgrades the parent's PTEs, so only it needs the
    # secondary MMUs invalidated.
    is_cow = is_cow_mapping(vma.vm_flags)
    range = MmuNotifierRange(mm=src_mm)
    if is_cow:
        mmu_notifier_range_init(
            range, MMU_NOTIFY_PROTECTION_PAGE, 0, vma, src_mm, addr, end
        )
        await mmu_notifier_invalidate_range_start(range)

    ret = 0
    if await copy_pte_range(dst_mm, src_mm, vma, addr, end):
        ret = -errno.ENOMEM

    if is_cow:
        await mmu_notifier_invalidate_range_end(range)
    return ret
