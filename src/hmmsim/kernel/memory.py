"""Page faults and unmapping: handle_mm_fault, unmap_page_range, unmap_vmas.

Kernel: mm/memory.c (Linux v5.3).

A fault on an empty PTE allocates a zeroed page and installs it under the
page-table lock; a write fault on a read-only PTE of a writable VMA makes the
PTE writable.  Zapping clears each PTE under the page-table lock and drops the
page's mapping reference, which frees the page when it was the last one.

Deviations:
    * MODEL: one level of page tables (see mm_types); ``__handle_mm_fault``
      goes straight to ``handle_pte_fault``; PMD/PUD walks are not modelled.
    * MODEL: the access check that the architecture's fault handler (or
      get_user_pages' check_vma_flags) does before handle_mm_fault is folded
      into handle_mm_fault: a write fault on a VMA without VM_WRITE, or any
      fault on a VMA without VM_READ|VM_WRITE, returns VM_FAULT_SIGSEGV.
    * MODEL: no zero page and no page sharing, so a read fault allocates a
      page and a write fault on a read-only PTE always reuses the page
      (do_wp_page -> wp_page_reuse); FAULT_FLAG_ALLOW_RETRY never drops
      mmap_sem (nothing waits on I/O), so VM_FAULT_RETRY never happens.
    * MODEL: no mmu_gather batching: a zapped page's reference is dropped
      right after its PTE is cleared, under the page-table lock (the kernel
      frees it at the next TLB flush, at the latest in tlb_finish_mmu, which
      is after invalidate_range_end).  The ``tlb`` and ``details`` arguments
      are dropped.
    * MODEL: ``unmap_vmas`` takes the list of VMAs starting at the first one
      (the C follows ``vm_next``).
"""

from __future__ import annotations

from collections.abc import Sequence

from hmmsim.kernel.atomic import test_bit
from hmmsim.kernel.debug import lockdep_assert_held
from hmmsim.kernel.mm_types import (
    MmStruct,
    Pte,
    VmAreaStruct,
    mk_pte,
    pte_none,
    pte_offset_map,
    pte_page,
    pte_present,
    pte_write,
)
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init,
)
from hmmsim.kernel.page_alloc import GFP_HIGHUSER_MOVABLE, alloc_page, put_page
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    FAULT_FLAG_WRITE,
    MMF_UNSTABLE,
    MMU_NOTIFY_UNMAP,
    PAGE_MASK,
    PAGE_SIZE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_SIGSEGV,
    VM_FAULT_WRITE,
    VM_READ,
    VM_WRITE,
    FaultFlag,
    VmFault,
)
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    spin_lock,
    spin_unlock,
)

__all__ = [
    "__handle_mm_fault",
    "check_stable_address_space",
    "do_anonymous_page",
    "do_wp_page",
    "handle_mm_fault",
    "handle_pte_fault",
    "ptep_get_and_clear",
    "set_pte_at",
    "unmap_page_range",
    "unmap_single_vma",
    "unmap_vmas",
    "zap_pte_range",
]


async def set_pte_at(mm: MmStruct, addr: int, ptep: Cell[Pte | None], pte: Pte) -> None:
    """Install ``pte`` (the caller holds the page-table lock).

    Kernel: arch set_pte_at().
    """
    lockdep_assert_held(mm.page_table_lock)
    await WRITE_ONCE(ptep, pte)
    trace(
        "set_pte",
        mm=mm.name,
        addr=addr,
        page=pte.page.pfn,
        generation=pte.page.generation,
        write=pte.write,
    )


async def ptep_get_and_clear(
    mm: MmStruct, addr: int, ptep: Cell[Pte | None]
) -> Pte | None:
    """Clear a PTE and return its old value (the caller holds the lock).

    Kernel: arch ptep_get_and_clear().
    """
    lockdep_assert_held(mm.page_table_lock)
    old = ptep.value
    await WRITE_ONCE(ptep, None)
    if old is not None:
        trace(
            "pte_clear",
            mm=mm.name,
            addr=addr,
            page=old.page.pfn,
            generation=old.page.generation,
            write=old.write,
        )
    return old


async def check_stable_address_space(mm: MmStruct) -> VmFault:
    """Refuse new pages in an address space the OOM reaper is tearing down.

    Kernel: include/linux/oom.h check_stable_address_space().
    """
    if await test_bit(MMF_UNSTABLE, mm.flags):
        return VM_FAULT_SIGBUS
    return VmFault(0)


async def do_anonymous_page(
    vma: VmAreaStruct, address: int, ptep: Cell[Pte | None], flags: FaultFlag
) -> VmFault:
    """Map a new zeroed page at an empty PTE.

    Kernel: mm/memory.c do_anonymous_page() (v5.3).
    """
    del flags  # MODEL: no zero page, read and write faults both allocate
    mm = vma.vm_mm
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
    await set_pte_at(mm, address, ptep, entry)
    await spin_unlock(mm.page_table_lock)
    return VmFault(0)


async def do_wp_page(
    vma: VmAreaStruct, address: int, ptep: Cell[Pte | None], orig_pte: Pte
) -> VmFault:
    """Make a read-only PTE writable after a write fault (lock held; released).

    Kernel: mm/memory.c do_wp_page() -> wp_page_reuse() (v5.3).
    """
    mm = vma.vm_mm
    # MODEL: pages are never shared, so the page is always reused.
    await set_pte_at(mm, address, ptep, mk_pte(pte_page(orig_pte), True))
    await spin_unlock(mm.page_table_lock)
    return VM_FAULT_WRITE


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
        return await do_anonymous_page(vma, address, ptep, flags)

    await spin_lock(mm.page_table_lock)
    entry = ptep.value
    if entry is not orig_pte or entry is None:
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


async def handle_mm_fault(vma: VmAreaStruct, address: int, flags: FaultFlag) -> VmFault:
    """Resolve a page fault at ``address`` in ``vma`` (mmap_sem held).

    Kernel: mm/memory.c handle_mm_fault() (v5.3).

    Returns:
        0 or VM_FAULT_WRITE on success; VM_FAULT_SIGSEGV (access not allowed,
        MODEL), VM_FAULT_SIGBUS (the OOM reaper is tearing the mm down) or
        VM_FAULT_OOM (no page left).
    """
    # MODEL: the access check of the arch fault handler, see Deviations.
    if flags & FAULT_FLAG_WRITE and not vma.vm_flags & VM_WRITE:
        return VM_FAULT_SIGSEGV
    if not vma.vm_flags & (VM_READ | VM_WRITE):
        return VM_FAULT_SIGSEGV
    ret = await __handle_mm_fault(vma, address, flags)
    trace(
        "handle_mm_fault",
        mm=vma.vm_mm.name,
        addr=address,
        write=bool(flags & FAULT_FLAG_WRITE),
        ret=int(ret),
    )
    return ret


async def zap_pte_range(vma: VmAreaStruct, addr: int, end: int) -> None:
    """Clear the PTEs of [addr, end) and drop their pages' references.

    Kernel: mm/memory.c zap_pte_range() (v5.3).
    """
    mm = vma.vm_mm
    await spin_lock(mm.page_table_lock)
    while addr < end:
        ptep = mm.ptes.get(addr)
        if ptep is not None and pte_present(ptep.value):
            ptent = await ptep_get_and_clear(mm, addr, ptep)
            assert ptent is not None, (
                "[hmmsim internal bug] PTE vanished under its lock"
            )
            # MODEL: no mmu_gather: the page goes right away, see Deviations.
            await put_page(pte_page(ptent))
        addr += PAGE_SIZE
    await spin_unlock(mm.page_table_lock)


async def unmap_page_range(vma: VmAreaStruct, addr: int, end: int) -> None:
    """Unmap [addr, end) of ``vma`` (the notifier bracket is the caller's).

    Kernel: mm/memory.c unmap_page_range() (v5.3).
    """
    await zap_pte_range(vma, addr, end)


async def unmap_single_vma(vma: VmAreaStruct, start_addr: int, end_addr: int) -> None:
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
        await unmap_page_range(vma, start, end)


async def unmap_vmas(
    vmas: Sequence[VmAreaStruct], start_addr: int, end_addr: int
) -> None:
    """Unmap [start_addr, end_addr) of a run of VMAs inside a blockable bracket.

    Kernel: mm/memory.c unmap_vmas() (v5.3).
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
        await unmap_single_vma(vma, start_addr, end_addr)
    await mmu_notifier_invalidate_range_end(range)
