"""Model of ``mm/hmm.c`` and ``include/linux/hmm.h`` of Linux v6.16 (``hmm_range_fault``).

The ``current`` variant's HMM: since v5.8 ``hmm_range_fault(range)`` fills
``range->hmm_pfns``, one ``unsigned long`` per page in the fixed encoding of
:mod:`hmmsim.kernel.hmm_flags` (pfn in the low bits, ``HMM_PFN_VALID`` /
``HMM_PFN_WRITE`` / ``HMM_PFN_ERROR`` on top; on input ``HMM_PFN_REQ_FAULT``
/ ``HMM_PFN_REQ_WRITE``, masked by ``pfn_flags_mask`` and or-ed with
``default_flags``).  It returns 0 or a negative errno, never a page count:

* -EBUSY when ``mmu_interval_check_retry`` says the interval notifier's
  sequence moved past ``range->notifier_seq`` (checked before every walk;
  the driver must mmu_interval_read_begin again);
* -EFAULT when a page asked for cannot be made valid: a hole without VMA,
  a VM_IO/VM_PFNMAP or unreadable VMA, a special page, a failed fault;
* -EPERM when a write is asked for in a VMA without VM_WRITE.

A page that needed a fault is faulted with handle_mm_fault and the walk
restarts from it (the internal -EBUSY of ``hmm_vma_fault``), so the caller
sees only the final state.  The walk reads PTEs without the page-table lock;
the driver's final ``mmu_interval_read_retry`` under its own lock decides
(see :mod:`hmmsim.kernel.drivers.dmirror_current`).

Source read: a v6.16-era mm/hmm.c (gregkh/linux 5c40cd7db64a, search index
id 3516809381: it has v6.16's hmm_dma_map_* helpers and still pte_devmap)
and include/linux/hmm.h of the same series.

Deviations:
    * MODEL: one page-table level (see pagewalk, mm_types): no PMD/PUD,
      huge or hugetlb entries (``hmm_vma_handle_pmd``, ``hmm_vma_walk_pud``,
      ``hmm_vma_walk_hugetlb_entry`` and the order field are not modelled).
      The non-present PTEs are device-private entries (reported with the
      device pfn when their page map's ``owner`` is
      ``range->dev_private_owner``, otherwise faulted, which migrates them
      to RAM) and migration entries (waited for, then -EBUSY re-walks); no
      swap-device, device-exclusive or marker entries.  No
      HMM_PFN_DMA_MAPPED/P2PDMA flags.
    * MODEL: ``hmm_pfns`` entries are Python ints; the pfn is the model
      page's ``pfn``.  ``hmm_pfn_to_page`` looks it up in the model's page
      array.
    * MODEL: ``HMM_PFN_INOUT_FLAGS`` is empty (no DMA-mapping flags), so the
      "keep the sticky input bits" masking is written but keeps nothing.
    * MODEL: the DMA helpers (``hmm_dma_map_alloc`` ...) are not modelled.
    * MODEL: handle_mm_fault never drops ``mmap_lock`` (no
      FAULT_FLAG_ALLOW_RETRY from HMM anyway), and ``pte_none_mostly`` is
      ``pte_none`` (no uffd-wp markers).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Final, cast

from hmmsim.kernel.debug import WARN_ON_ONCE, mmap_assert_locked
from hmmsim.kernel.hmm_flags import (
    HMM_PFN_ERROR,
    HMM_PFN_FLAGS,
    HMM_PFN_INOUT_FLAGS,
    HMM_PFN_ORDER_SHIFT,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
)
from hmmsim.kernel.memory import handle_mm_fault, vm_normal_page
from hmmsim.kernel.memremap import page_pgmap
from hmmsim.kernel.migrate import migration_entry_wait
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    PteVal,
    pte_none,
    pte_offset_map,
    pte_pfn,
    pte_present,
    pte_write,
)
from hmmsim.kernel.mmu_notifier_current import (
    MmuIntervalNotifier,
    mmu_interval_check_retry,
)
from hmmsim.kernel.page_alloc import is_zero_pfn, pfn_to_page
from hmmsim.kernel.pagewalk import MmWalk, walk_page_range
from hmmsim.kernel.swapops import (
    is_device_private_entry,
    is_migration_entry,
    is_writable_device_private_entry,
    non_swap_entry,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
    swp_offset,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    FAULT_FLAG_REMOTE,
    FAULT_FLAG_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_ERROR,
    VM_IO,
    VM_PFNMAP,
    VM_READ,
    VM_WRITE,
    err_name,
)
from hmmsim.sync import READ_ONCE, Cell

__all__ = [
    "HMM_NEED_ALL_BITS",
    "HMM_NEED_FAULT",
    "HMM_NEED_WRITE_FAULT",
    "HMM_RANGE_DEFAULT_TIMEOUT",
    "HmmRange",
    "HmmVmaWalk",
    "hmm_pfn_to_map_order",
    "hmm_pfn_to_page",
    "hmm_pfns_fill",
    "hmm_pte_need_fault",
    "hmm_range_fault",
    "hmm_range_need_fault",
    "hmm_vma_fault",
    "hmm_vma_handle_pte",
    "hmm_vma_walk_hole",
    "hmm_vma_walk_pmd",
    "hmm_vma_walk_test",
    "pte_to_hmm_pfn_flags",
]

#: Default timeout of a driver's retry loop, in milliseconds (include/linux/hmm.h).
HMM_RANGE_DEFAULT_TIMEOUT: Final = 1000

# What a range of entries needs (mm/hmm.c, anonymous enum).
HMM_NEED_FAULT: Final = 1 << 0
HMM_NEED_WRITE_FAULT: Final = 1 << 1
HMM_NEED_ALL_BITS: Final = HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT


@dataclass(slots=True, kw_only=True, eq=False)
class HmmRange:
    """Models ``struct hmm_range`` (include/linux/hmm.h, v6.16).

    Attributes:
        name: name used in reports (MODEL).
        notifier: the interval notifier that covers [start, end).
        notifier_seq: what mmu_interval_read_begin returned.
        start: first address (inclusive).
        end: last address (exclusive).
        hmm_pfns: one entry per page: the request on input, the result on
            output (pfn | HMM_PFN_* flags).
        default_flags: request flags for every page (HMM_PFN_REQ_*).
        pfn_flags_mask: which per-page request bits of ``hmm_pfns`` count.
        dev_private_owner: owner of the device-private pages the caller
            wants reported (the device pfn) instead of faulted back to RAM.
    """

    name: str = "range"
    notifier: MmuIntervalNotifier | None = None
    notifier_seq: int = 0
    start: int = 0
    end: int = 0
    hmm_pfns: list[int] = field(default_factory=list)
    default_flags: int = 0
    pfn_flags_mask: int = 0
    dev_private_owner: object = None

    def __repr__(self) -> str:
        return f"HmmRange({self.name!r}, [{self.start:#x}, {self.end:#x}))"


def hmm_pfn_to_page(hmm_pfn: int) -> Page:
    """Return the page an output entry points to (the caller checked VALID).

    Kernel: include/linux/hmm.h hmm_pfn_to_page() (v6.16).  Call it under
    the driver lock after mmu_interval_read_retry said the entry is current.
    """
    return pfn_to_page(hmm_pfn & ~HMM_PFN_FLAGS)


def hmm_pfn_to_map_order(hmm_pfn: int) -> int:
    """Return the order of the CPU mapping the entry came from (MODEL: 0).

    Kernel: include/linux/hmm.h hmm_pfn_to_map_order() (v6.16).
    """
    return (hmm_pfn >> HMM_PFN_ORDER_SHIFT) & 0x1F


@dataclass(slots=True, kw_only=True, eq=False)
class HmmVmaWalk:
    """Models ``struct hmm_vma_walk`` (v6.16).

    Attributes:
        range: the range being filled.
        last: where to restart the walk after a fault (-EBUSY).
    """

    range: HmmRange
    last: int = 0


def _walk_state(walk: MmWalk) -> HmmVmaWalk:
    return cast(HmmVmaWalk, walk.private)


def hmm_pfns_fill(addr: int, end: int, range: HmmRange, cpu_flags: int) -> int:
    """Set the entries of [addr, end) to ``cpu_flags`` (keeping sticky bits).

    Kernel: mm/hmm.c hmm_pfns_fill() (v6.16).

    Returns:
        0.
    """
    i = (addr - range.start) >> PAGE_SHIFT
    while addr < end:
        range.hmm_pfns[i] &= HMM_PFN_INOUT_FLAGS
        range.hmm_pfns[i] |= cpu_flags
        addr += PAGE_SIZE
        i += 1
    return 0


async def hmm_vma_fault(addr: int, end: int, required_fault: int, walk: MmWalk) -> int:
    """Fault in [addr, end) for the walk, then ask for a re-walk from ``addr``.

    Kernel: mm/hmm.c hmm_vma_fault() (v6.16).

    Returns:
        -EBUSY after the faults (re-walk from ``hmm_vma_walk->last``),
        -EPERM for a write fault in a VMA without VM_WRITE, -EFAULT when a
        fault failed.
    """
    hmm_vma_walk = _walk_state(walk)
    vma = walk.vma
    assert vma is not None, "[hmmsim internal bug] hmm_vma_fault outside a VMA"
    fault_flags = FAULT_FLAG_REMOTE

    WARN_ON_ONCE(not required_fault, "hmm_vma_fault without a fault to do")
    hmm_vma_walk.last = addr

    if required_fault & HMM_NEED_WRITE_FAULT:
        if not vma.vm_flags & VM_WRITE:
            return -errno.EPERM
        fault_flags |= FAULT_FLAG_WRITE

    while addr < end:
        if await handle_mm_fault(vma, addr, fault_flags) & VM_FAULT_ERROR:
            return -errno.EFAULT
        addr += PAGE_SIZE
    return -errno.EBUSY


def hmm_pte_need_fault(
    hmm_vma_walk: HmmVmaWalk, pfn_req_flags: int, cpu_flags: int
) -> int:
    """Return what one entry needs (HMM_NEED_* bits) given the CPU flags.

    Kernel: mm/hmm.c hmm_pte_need_fault() (v6.16).  The per-page request
    counts through ``pfn_flags_mask``, plus the range's ``default_flags``.
    """
    range = hmm_vma_walk.range

    pfn_req_flags &= range.pfn_flags_mask
    pfn_req_flags |= range.default_flags

    # Nothing asked for this page.
    if not pfn_req_flags & HMM_PFN_REQ_FAULT:
        return 0

    # Write asked for, the CPU entry does not allow it.
    if pfn_req_flags & HMM_PFN_REQ_WRITE and not cpu_flags & HMM_PFN_WRITE:
        return HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT

    # The CPU entry is not valid.
    if not cpu_flags & HMM_PFN_VALID:
        return HMM_NEED_FAULT
    return 0


def hmm_range_need_fault(
    hmm_vma_walk: HmmVmaWalk, hmm_pfns: list[int], npages: int, cpu_flags: int
) -> int:
    """Return what ``npages`` entries need together (HMM_NEED_* bits).

    Kernel: mm/hmm.c hmm_range_need_fault() (v6.16).  MODEL: ``hmm_pfns`` is
    the slice the C points into.
    """
    range = hmm_vma_walk.range
    required_fault = 0

    # No default fault and no per-page faults allowed: nothing can need one.
    if not (range.default_flags | range.pfn_flags_mask) & HMM_PFN_REQ_FAULT:
        return 0

    i = 0
    while i < npages:
        required_fault |= hmm_pte_need_fault(hmm_vma_walk, hmm_pfns[i], cpu_flags)
        if required_fault == HMM_NEED_ALL_BITS:
            return required_fault
        i += 1
    return required_fault


async def hmm_vma_walk_hole(addr: int, end: int, walk: MmWalk) -> int:
    """``pte_hole`` callback: [addr, end) has no page table, or no VMA at all.

    Kernel: mm/hmm.c hmm_vma_walk_hole() (v6.16; MODEL: no ``depth``).
    Without a VMA a requested page is -EFAULT, otherwise ERROR; inside a
    VMA a requested page is faulted in.
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range

    i = (addr - range.start) >> PAGE_SHIFT
    npages = (end - addr) >> PAGE_SHIFT
    hmm_pfns = range.hmm_pfns[i : i + npages]
    required_fault = hmm_range_need_fault(hmm_vma_walk, hmm_pfns, npages, 0)
    if walk.vma is None:
        if required_fault:
            return -errno.EFAULT
        return hmm_pfns_fill(addr, end, range, HMM_PFN_ERROR)
    # MODEL: pte_hole is only called outside every VMA (see pagewalk).
    if required_fault:  # pragma: no cover - MODEL: no page-table holes in a VMA
        return await hmm_vma_fault(addr, end, required_fault, walk)
    return hmm_pfns_fill(addr, end, range, 0)  # pragma: no cover - same


def pte_to_hmm_pfn_flags(range: HmmRange, pte: PteVal) -> int:
    """Return the HMM flags a CPU PTE grants.

    Kernel: mm/hmm.c pte_to_hmm_pfn_flags() (v6.16; MODEL: no protnone PTEs).
    """
    del range
    if pte is None or pte_none(pte) or not pte_present(pte):
        return 0
    return HMM_PFN_VALID | HMM_PFN_WRITE if pte_write(pte) else HMM_PFN_VALID


async def hmm_vma_handle_pte(  # noqa: PLR0911 - the C's exits, in its order
    walk: MmWalk, addr: int, end: int, ptep: Cell[PteVal], i: int
) -> int:
    """Fill entry ``i`` from the PTE at ``addr``, or fault from ``addr`` on.

    Kernel: mm/hmm.c hmm_vma_handle_pte() (v6.16).  MODEL: ``i`` indexes
    ``range->hmm_pfns`` (the C passes a pointer); no ``pmdp``.  The PTE is
    read without the page-table lock (ptep_get), as in C.

    Returns:
        0, or what hmm_vma_fault returns, or -EFAULT for a special page that
        was asked for.
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    pte = await READ_ONCE(ptep)
    pfn_req_flags = range.hmm_pfns[i]
    new_pfn_flags = 0

    if pte_none(pte):  # pte_none_mostly, MODEL
        required_fault = hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, 0)
        if required_fault:
            return await _fault(walk, addr, end, required_fault)
        return _out(range, i, new_pfn_flags)

    if not pte_present(pte):
        entry = pte_to_swp_entry(pte)

        # The caller's own device-private pages are reported, not faulted
        # back to RAM.  MODEL: the page map never changes, so reading it
        # from the lockless entry needs no Op (as in C).
        if (
            is_device_private_entry(entry)
            and page_pgmap(pfn_swap_entry_to_page(entry)).owner
            is range.dev_private_owner
        ):
            cpu_flags: int = HMM_PFN_VALID
            if is_writable_device_private_entry(entry):
                cpu_flags |= HMM_PFN_WRITE
            new_pfn_flags = swp_offset(entry) | cpu_flags
            return _out(range, i, new_pfn_flags)

        required_fault = hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, 0)
        if not required_fault:
            return _out(range, i, new_pfn_flags)

        # MODEL: every entry of the model is a non-swap entry.
        if not non_swap_entry(entry):  # pragma: no cover - no swap devices
            return await _fault(walk, addr, end, required_fault)

        # Another owner's device page: the fault migrates it to RAM.
        if is_device_private_entry(entry):
            return await _fault(walk, addr, end, required_fault)

        if is_migration_entry(entry):
            hmm_vma_walk.last = addr
            await migration_entry_wait(walk.mm, addr)
            return -errno.EBUSY

        # Report an error for everything else.
        return -errno.EFAULT  # pragma: no cover - MODEL: no other entries

    cpu_flags = pte_to_hmm_pfn_flags(range, pte)
    required_fault = hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, cpu_flags)
    if required_fault:
        return await _fault(walk, addr, end, required_fault)

    # A PTE without a struct page (other than the zero page, which has one
    # on every architecture) cannot be mirrored.
    assert walk.vma is not None
    special = vm_normal_page(walk.vma, addr, pte) is None
    if special and not is_zero_pfn(pte_pfn(pte)):  # pragma: no cover - MODEL: none
        if hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, 0):
            return -errno.EFAULT
        new_pfn_flags = HMM_PFN_ERROR
        return _out(range, i, new_pfn_flags)

    new_pfn_flags = pte_pfn(pte) | cpu_flags
    return _out(range, i, new_pfn_flags)


def _out(range: HmmRange, i: int, new_pfn_flags: int) -> int:
    """The ``out:`` label of hmm_vma_handle_pte: store the entry."""
    range.hmm_pfns[i] = (range.hmm_pfns[i] & HMM_PFN_INOUT_FLAGS) | new_pfn_flags
    return 0


async def _fault(walk: MmWalk, addr: int, end: int, required_fault: int) -> int:
    """The ``fault:`` label of hmm_vma_handle_pte: fault every address asked."""
    return await hmm_vma_fault(addr, end, required_fault, walk)


async def hmm_vma_walk_pmd(start: int, end: int, walk: MmWalk) -> int:
    """``pmd_entry`` callback: walk the PTEs of [start, end) inside a VMA.

    Kernel: mm/hmm.c hmm_vma_walk_pmd() (v6.16; MODEL: no pmd level, so the
    pmd_none / migration / huge / bad cases do not occur).
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    i = (start - range.start) >> PAGE_SHIFT
    addr = start

    while addr < end:
        ptep = pte_offset_map(walk.mm, addr)
        r = await hmm_vma_handle_pte(walk, addr, end, ptep, i)
        if r:
            return r
        addr += PAGE_SIZE
        i += 1
    return 0


async def hmm_vma_walk_test(start: int, end: int, walk: MmWalk) -> int:
    """``test_walk`` callback: can this VMA be mirrored at all?

    Kernel: mm/hmm.c hmm_vma_walk_test() (v6.16).  A VM_IO/VM_PFNMAP VMA has
    no struct pages; an unreadable one is taken as unwritable too (HMM does
    not support write-only mappings).  Such a VMA is -EFAULT if a fault is
    asked for in it, else its entries become ERROR and the walk goes on.

    Returns:
        0 (walk it), 1 (skip it, entries set to ERROR) or -EFAULT.
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    vma = walk.vma
    assert vma is not None

    if not vma.vm_flags & (VM_IO | VM_PFNMAP) and vma.vm_flags & VM_READ:
        return 0

    i = (start - range.start) >> PAGE_SHIFT
    npages = (end - start) >> PAGE_SHIFT
    if hmm_range_need_fault(hmm_vma_walk, range.hmm_pfns[i : i + npages], npages, 0):
        return -errno.EFAULT

    hmm_pfns_fill(start, end, range, HMM_PFN_ERROR)

    # Skip this VMA and go on with the next one.
    return 1


def _range_mm(range: HmmRange) -> MmStruct:
    notifier = range.notifier
    assert notifier is not None, "[hmmsim internal bug] hmm_range without notifier"
    assert notifier.mm is not None, "[hmmsim internal bug] notifier not inserted"
    return notifier.mm


async def hmm_range_fault(range: HmmRange) -> int:
    """Fill ``range->hmm_pfns``, faulting in what the request asks for.

    Kernel: mm/hmm.c hmm_range_fault() (v6.16).  The caller holds
    ``mmap_lock`` (read) and got ``range->notifier_seq`` from
    mmu_interval_read_begin.  When a fault made the walk return -EBUSY, the
    walk restarts at ``hmm_vma_walk.last``: entries before it hold their
    output, entries from it on still hold their input.

    Returns:
        0, or -EBUSY (the range was invalidated: read_begin again), -EFAULT
        (a requested page cannot be made valid), -EPERM (write asked in a
        read-only VMA).
    """
    hmm_vma_walk = HmmVmaWalk(range=range, last=range.start)
    mm = _range_mm(range)
    notifier = range.notifier
    assert notifier is not None
    walk = MmWalk(
        mm=mm,
        private=hmm_vma_walk,
        pmd_entry=hmm_vma_walk_pmd,
        pte_hole=hmm_vma_walk_hole,
        test_walk=hmm_vma_walk_test,
    )

    mmap_assert_locked(mm)

    while True:
        # The range was invalidated: make the caller retry.
        if await mmu_interval_check_retry(notifier, range.notifier_seq):
            ret = -errno.EBUSY
            trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
            return ret
        ret = await walk_page_range(hmm_vma_walk.last, range.end, walk)
        if ret != -errno.EBUSY:
            break

    trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
    return ret
