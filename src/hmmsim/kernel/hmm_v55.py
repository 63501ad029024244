"""Model of ``mm/hmm.c`` and ``include/linux/hmm.h`` of Linux v5.5 (mirror part).

In v5.5 ``struct hmm``, ``hmm_mirror``, ``hmm_range_register`` and the
per-range ``valid`` flag are gone (Jason Gunthorpe, "mm/hmm: remove
hmm_mirror and related").  A ``struct hmm_range`` names the driver's
``mmu_interval_notifier`` and the sequence value the driver got from
``mmu_interval_read_begin``; ``hmm_range_fault`` walks the CPU page table
under ``mmap_sem`` and gives up with -EBUSY as soon as
``mmu_interval_check_retry`` says the range was invalidated meanwhile.  The
final word belongs to the driver: ``mmu_interval_read_retry`` under its own
lock (see ``kernel.drivers.dmirror``).

Changes from the v5.3 model (``kernel.hmm``), besides the removals:
``hmm_range_fault(range, flags)`` with ``HMM_FAULT_ALLOW_RETRY`` and
``HMM_FAULT_SNAPSHOT`` (snapshot merged into fault in v5.4); no
``page_shift`` (removed in v5.4); a fault in a hole (no VMA) marks the entry
ERROR and returns -EFAULT (Ralph Campbell's v5.4 "hmm_range_fault() NULL
pointer bug" fix) instead of calling handle_mm_fault with a NULL vma; a
write fault in a VMA without VM_WRITE returns -EPERM (his v5.4
"hmm_range_fault() infinite loop" fix, c18ce674d548) instead of looping.

Deviations:
    * MODEL: the page walk has one level (see pagewalk, mm_types): no huge
      pages, no swap, migration or device-private entries, no dev_pagemap,
      no devmap PTEs.  A zero-page PTE is reported like a normal read-only
      page (Ralph Campbell's v5.4 "mm/hmm: allow snapshot of the special
      zero page"); no other special PTE occurs.
    * MODEL: ``hmm_range_dma_map``/``unmap`` and the devmem parts are not
      modelled.
    * MODEL: ``HMM_FAULT_ALLOW_RETRY`` is accepted but handle_mm_fault never
      drops ``mmap_sem`` in the model, so -EAGAIN does not happen.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Final, cast

from hmmsim.kernel.debug import lockdep_assert_held
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.memory import handle_mm_fault
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    Pte,
    PteVal,
    VmAreaStruct,
    pte_none,
    pte_offset_map,
    pte_pfn,
    pte_present_or_none,
    pte_special,
    pte_write,
)
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.mmu_notifier_v55 import MmuIntervalNotifier, mmu_interval_check_retry
from hmmsim.kernel.page_alloc import is_zero_pfn, pfn_to_page
from hmmsim.kernel.pagewalk import MmWalk, walk_page_range
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    FAULT_FLAG_ALLOW_RETRY,
    FAULT_FLAG_REMOTE,
    FAULT_FLAG_WRITE,
    HMM_PFN_DEVICE_PRIVATE,
    HMM_PFN_ERROR,
    HMM_PFN_NONE,
    HMM_PFN_SPECIAL,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_ERROR,
    VM_FAULT_RETRY,
    VM_IO,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    VM_WRITE,
    err_name,
)
from hmmsim.sync import READ_ONCE, Cell

#: "mm/hmm: hmm_range_fault() infinite loop" (v5.4).
C18CE674D548: Final = "c18ce674d548"

__all__ = [
    "HMM_FAULT_ALLOW_RETRY",
    "HMM_FAULT_SNAPSHOT",
    "HMM_RANGE_DEFAULT_TIMEOUT",
    "HmmRange",
    "HmmVmaWalk",
    "hmm_device_entry_from_page",
    "hmm_device_entry_from_pfn",
    "hmm_device_entry_to_page",
    "hmm_device_entry_to_pfn",
    "hmm_pfns_bad",
    "hmm_pfns_clear",
    "hmm_pte_need_fault",
    "hmm_range_fault",
    "hmm_range_need_fault",
    "hmm_vma_do_fault",
    "hmm_vma_handle_pte",
    "hmm_vma_walk_hole",
    "hmm_vma_walk_hole_",
    "hmm_vma_walk_pmd",
    "pte_to_hmm_pfn_flags",
]

#: Let handle_mm_fault drop ``mmap_sem`` and return -EAGAIN (include/linux/hmm.h).
HMM_FAULT_ALLOW_RETRY: Final = 1 << 0
#: Do not fault anything in, only report the current CPU page table.
HMM_FAULT_SNAPSHOT: Final = 1 << 1
#: Default timeout of a driver's retry loop, in milliseconds.
HMM_RANGE_DEFAULT_TIMEOUT: Final = 1000


@dataclass(slots=True, kw_only=True, eq=False)
class HmmRange:
    """Models ``struct hmm_range`` (include/linux/hmm.h, v5.5).

    Attributes:
        notifier: the interval notifier covering [start, end).
        notifier_seq: the value mmu_interval_read_begin returned.
        start: first address (inclusive).
        end: last address (exclusive).
        pfns: one entry per page: the request on input, the result on output.
        flags: encodings of VALID, WRITE, DEVICE_PRIVATE (hmm_pfn_flag_e).
        values: encodings of ERROR, NONE, SPECIAL (hmm_pfn_value_e).
        default_flags: flags requested for every page.
        pfn_flags_mask: which per-page request bits count.
        pfn_shift: shift of the pfn inside an entry.
    """

    name: str = "range"
    notifier: MmuIntervalNotifier | None = None
    notifier_seq: int = 0
    start: int = 0
    end: int = 0
    pfns: list[int] = field(default_factory=list)
    # MODEL: default encodings; drivers pass their own.
    flags: tuple[int, int, int] = (1 << 0, 1 << 1, 1 << 2)
    values: tuple[int, int, int] = (1 << 3, 0, 1 << 4)
    default_flags: int = 0
    pfn_flags_mask: int = 0
    pfn_shift: int = 8

    def __repr__(self) -> str:
        return f"HmmRange({self.name!r}, [{self.start:#x}, {self.end:#x}))"


def hmm_device_entry_to_page(range: HmmRange, entry: int) -> Page | None:
    """Return the page a device entry points to, or None for special values.

    Kernel: include/linux/hmm.h hmm_device_entry_to_page() (v5.5).
    """
    if entry == range.values[HMM_PFN_NONE]:
        return None
    if entry == range.values[HMM_PFN_ERROR]:
        return None
    if entry == range.values[HMM_PFN_SPECIAL]:
        return None
    if not entry & range.flags[HMM_PFN_VALID]:
        return None
    return pfn_to_page(entry >> range.pfn_shift)


def hmm_device_entry_to_pfn(range: HmmRange, pfn: int) -> int:
    """Return the pfn of a device entry, or -1 for special values.

    Kernel: include/linux/hmm.h hmm_device_entry_to_pfn() (v5.5).
    """
    if pfn == range.values[HMM_PFN_NONE]:
        return -1
    if pfn == range.values[HMM_PFN_ERROR]:
        return -1
    if pfn == range.values[HMM_PFN_SPECIAL]:
        return -1
    if not pfn & range.flags[HMM_PFN_VALID]:
        return -1
    return pfn >> range.pfn_shift


def hmm_device_entry_from_page(range: HmmRange, page: Page) -> int:
    """Build a device entry for ``page``.

    Kernel: include/linux/hmm.h hmm_device_entry_from_page() (v5.5).
    """
    return (page.pfn << range.pfn_shift) | range.flags[HMM_PFN_VALID]


def hmm_device_entry_from_pfn(range: HmmRange, pfn: int) -> int:
    """Build a device entry for frame ``pfn``.

    Kernel: include/linux/hmm.h hmm_device_entry_from_pfn() (v5.5).
    """
    return (pfn << range.pfn_shift) | range.flags[HMM_PFN_VALID]


# -- mm/hmm.c ----------------------------------------------------------------------


@dataclass(slots=True, kw_only=True, eq=False)
class HmmVmaWalk:
    """Models ``struct hmm_vma_walk`` (v5.5).

    Attributes:
        range: the range being filled.
        last: where the walk stopped (re-walk from here).
        flags: the ``HMM_FAULT_*`` flags of hmm_range_fault.
    """

    range: HmmRange
    last: int = 0
    flags: int = 0


def _walk_state(walk: MmWalk) -> HmmVmaWalk:
    return cast(HmmVmaWalk, walk.private)


async def hmm_vma_do_fault(walk: MmWalk, addr: int, write_fault: bool, i: int) -> int:
    """Fault in one page for the walk.

    Kernel: mm/hmm.c hmm_vma_do_fault() (v5.5); ``i`` indexes the pfn entry.

    Returns:
        -EBUSY on success (re-walk from here), -EAGAIN when the fault dropped
        ``mmap_sem``, -EFAULT (entry set to ERROR) when there is no VMA or
        the fault failed.
    """
    flags = FAULT_FLAG_REMOTE
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    vma = walk.vma

    if vma is None:
        # goto err (v5.4 fix: a hole has no VMA to fault in)
        range.pfns[i] = range.values[HMM_PFN_ERROR]
        return -errno.EFAULT

    if hmm_vma_walk.flags & HMM_FAULT_ALLOW_RETRY:
        flags |= FAULT_FLAG_ALLOW_RETRY
    if write_fault:
        flags |= FAULT_FLAG_WRITE

    ret = await handle_mm_fault(vma, addr, flags)
    if ret & VM_FAULT_RETRY:
        # handle_mm_fault released mmap_sem.
        return -errno.EAGAIN
    if ret & VM_FAULT_ERROR:
        # goto err
        range.pfns[i] = range.values[HMM_PFN_ERROR]
        return -errno.EFAULT

    return -errno.EBUSY


def hmm_pfns_bad(addr: int, end: int, walk: MmWalk) -> int:
    """Mark [addr, end) as errors.

    Kernel: mm/hmm.c hmm_pfns_bad() (v5.5).
    """
    range = _walk_state(walk).range
    i = (addr - range.start) >> PAGE_SHIFT
    while addr < end:
        range.pfns[i] = range.values[HMM_PFN_ERROR]
        addr += PAGE_SIZE
        i += 1
    return 0


async def hmm_vma_walk_hole_(
    addr: int, end: int, fault: bool, write_fault: bool, walk: MmWalk
) -> int:
    """Fill [addr, end) with NONE and fault the first page if asked.

    Kernel: mm/hmm.c hmm_vma_walk_hole_() (v5.5).  The VM_WRITE test came
    with Ralph Campbell's v5.4 fix "mm/hmm: hmm_range_fault() infinite loop"
    (c18ce674d548): handle_mm_fault does not check the VMA's permissions, so
    without it a write fault on a read-only VMA "succeeds" without making
    the PTE writable and the walk retries for ever (see kernel.hmm, v5.3).
    With c18ce674d548 reverted (:mod:`hmmsim.kernel.fixes`, for the museum)
    the test is left out and v5.5 loops as v5.3 did.

    Returns:
        0 (no fault asked), -EBUSY after a successful fault, -EPERM (a write
        fault in a VMA without VM_WRITE), or the fault error.
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    pfns = range.pfns

    hmm_vma_walk.last = addr
    i = (addr - range.start) >> PAGE_SHIFT

    if (
        fix_applied(walk.mm, C18CE674D548)  # MODEL: patch switch
        and write_fault
        and walk.vma is not None
        and not walk.vma.vm_flags & VM_WRITE
    ):
        return -errno.EPERM

    while addr < end:
        pfns[i] = range.values[HMM_PFN_NONE]
        if fault or write_fault:
            ret = await hmm_vma_do_fault(walk, addr, write_fault, i)
            if ret != -errno.EBUSY:
                return ret
        addr += PAGE_SIZE
        i += 1

    return -errno.EBUSY if (fault or write_fault) else 0


def hmm_pte_need_fault(
    hmm_vma_walk: HmmVmaWalk,
    pfns: int,
    cpu_flags: int,
    fault: bool,
    write_fault: bool,
) -> tuple[bool, bool]:
    """Decide whether one entry must be faulted (and for write).

    Kernel: mm/hmm.c hmm_pte_need_fault() (v5.5).  MODEL: the two in/out
    pointers become arguments and a returned pair.
    """
    range = hmm_vma_walk.range

    if hmm_vma_walk.flags & HMM_FAULT_SNAPSHOT:
        return fault, write_fault

    # The per-page request bits kept by the mask, plus the range defaults.
    pfns = (pfns & range.pfn_flags_mask) | range.default_flags

    # Nothing asked for this page.
    if not pfns & range.flags[HMM_PFN_VALID]:
        return fault, write_fault
    # Device memory is only faulted back when explicitly asked.
    if cpu_flags & range.flags[HMM_PFN_DEVICE_PRIVATE]:
        if pfns & range.flags[HMM_PFN_DEVICE_PRIVATE]:
            write_fault = bool(pfns & range.flags[HMM_PFN_WRITE])
            fault = True
        return fault, write_fault

    # Fault when the CPU entry is not valid, or write is asked but not given.
    fault = not cpu_flags & range.flags[HMM_PFN_VALID]
    if pfns & range.flags[HMM_PFN_WRITE] and not cpu_flags & range.flags[HMM_PFN_WRITE]:
        write_fault = True
        fault = True
    return fault, write_fault


def hmm_range_need_fault(
    hmm_vma_walk: HmmVmaWalk, pfns: list[int], npages: int, cpu_flags: int
) -> tuple[bool, bool]:
    """Decide whether any of ``npages`` entries must be faulted.

    Kernel: mm/hmm.c hmm_range_need_fault() (v5.5).  MODEL: returns the
    (fault, write_fault) pair; ``pfns`` is the slice the C points into.
    """
    if hmm_vma_walk.flags & HMM_FAULT_SNAPSHOT:
        return False, False

    fault = write_fault = False
    for i in range(npages):
        fault, write_fault = hmm_pte_need_fault(
            hmm_vma_walk, pfns[i], cpu_flags, fault, write_fault
        )
        if write_fault:
            return fault, write_fault
    return fault, write_fault


async def hmm_vma_walk_hole(addr: int, end: int, walk: MmWalk) -> int:
    """``pte_hole`` callback: a part of the range outside every VMA.

    Kernel: mm/hmm.c hmm_vma_walk_hole() (v5.5).
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range

    i = (addr - range.start) >> PAGE_SHIFT
    npages = (end - addr) >> PAGE_SHIFT
    pfns = range.pfns[i : i + npages]
    fault, write_fault = hmm_range_need_fault(hmm_vma_walk, pfns, npages, 0)
    return await hmm_vma_walk_hole_(addr, end, fault, write_fault, walk)


def pte_to_hmm_pfn_flags(range: HmmRange, pte: Pte | None) -> int:
    """Return the HMM flags a CPU PTE grants.

    Kernel: mm/hmm.c pte_to_hmm_pfn_flags() (v5.5).
    """
    if pte is None or pte_none(pte):
        return 0
    if pte_write(pte):
        return range.flags[HMM_PFN_VALID] | range.flags[HMM_PFN_WRITE]
    return range.flags[HMM_PFN_VALID]


async def hmm_vma_handle_pte(
    walk: MmWalk, addr: int, end: int, ptep: Cell[PteVal], i: int
) -> int:
    """Fill entry ``i`` from the PTE at ``addr``, faulting if needed.

    Kernel: mm/hmm.c hmm_vma_handle_pte() (v5.5).  The PTE is read without
    the page-table lock, as in C.
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    # MODEL: no swap, migration or device-private entries in v5.5.
    pte = pte_present_or_none(await READ_ONCE(ptep), "hmm_vma_handle_pte")
    orig_pfn = range.pfns[i]

    range.pfns[i] = range.values[HMM_PFN_NONE]
    fault = write_fault = False

    if pte_none(pte):
        fault, write_fault = hmm_pte_need_fault(
            hmm_vma_walk, orig_pfn, 0, fault, write_fault
        )
        if not (fault or write_fault):
            return 0
    else:
        # MODEL: no swap, migration or device-private entries: it is present.
        cpu_flags = pte_to_hmm_pfn_flags(range, pte)
        fault, write_fault = hmm_pte_need_fault(
            hmm_vma_walk, orig_pfn, cpu_flags, fault, write_fault
        )
        if not (fault or write_fault):
            # MODEL: no devmap PTEs.
            assert pte is not None, "[hmmsim internal bug] present PTE is None"
            if pte_special(pte) and not is_zero_pfn(pte_pfn(pte)):
                range.pfns[i] = range.values[HMM_PFN_SPECIAL]
                return -errno.EFAULT
            # The zero page has a struct page: treat it as a normal page.
            range.pfns[i] = hmm_device_entry_from_pfn(range, pte_pfn(pte)) | cpu_flags
            return 0

    # fault:
    return await hmm_vma_walk_hole_(addr, end, fault, write_fault, walk)


async def hmm_vma_walk_pmd(start: int, end: int, walk: MmWalk) -> int:
    """``pmd_entry`` callback: walk the PTEs of [start, end) inside a VMA.

    Kernel: mm/hmm.c hmm_vma_walk_pmd() (v5.5; MODEL: no pmd level).
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    addr = start

    i = (addr - range.start) >> PAGE_SHIFT
    while addr < end:
        ptep = pte_offset_map(walk.mm, addr)
        r = await hmm_vma_handle_pte(walk, addr, end, ptep, i)
        if r:
            # hmm_vma_handle_pte() stopped at addr.
            hmm_vma_walk.last = addr
            return r
        addr += PAGE_SIZE
        i += 1

    hmm_vma_walk.last = addr
    return 0


def hmm_pfns_clear(range: HmmRange, i: int, addr: int, end: int) -> None:
    """Set the entries from ``i`` on, for [addr, end), to NONE.

    Kernel: mm/hmm.c hmm_pfns_clear() (v5.5; ``i`` stands for the pointer).
    """
    while addr < end:
        range.pfns[i] = range.values[HMM_PFN_NONE]
        addr += PAGE_SIZE
        i += 1


def _range_mm(range: HmmRange) -> MmStruct:
    notifier = range.notifier
    assert notifier is not None, "[hmmsim internal bug] hmm_range without notifier"
    assert notifier.mm is not None, "[hmmsim internal bug] notifier not inserted"
    return notifier.mm


async def hmm_range_fault(range: HmmRange, flags: int) -> int:
    """Fill ``range->pfns``, faulting pages in unless HMM_FAULT_SNAPSHOT.

    Kernel: mm/hmm.c hmm_range_fault() (v5.5).  The caller holds
    ``mmap_sem`` for read and took ``range->notifier_seq`` from
    mmu_interval_read_begin.  On error the entries from the failing address
    on are set to NONE (the failing one may be ERROR).

    Returns:
        The number of valid entries from ``range->start`` (may be 0), or
        -EBUSY (the range was invalidated: mmu_interval_read_begin again),
        -EFAULT (no VMA, a device VMA, or the fault failed), -EPERM (VMA
        not readable, or a write asked in a VMA without VM_WRITE), -EAGAIN
        (``mmap_sem`` was dropped; not reachable in the model), -ENOMEM (not
        reachable in the model).
    """
    device_vma = VM_IO | VM_PFNMAP | VM_MIXEDMAP
    start = range.start
    mm = _range_mm(range)
    notifier = range.notifier
    assert notifier is not None
    hmm_vma_walk = HmmVmaWalk(range=range)

    lockdep_assert_held(mm.mmap_sem)

    while True:
        # Force a retry when the range was invalidated.
        if await mmu_interval_check_retry(notifier, range.notifier_seq):
            ret = -errno.EBUSY
            trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
            return ret

        vma: VmAreaStruct | None = find_vma(mm, start)
        if vma is None or vma.vm_flags & device_vma:
            trace("hmm_range_fault", range=range.name, ret=-errno.EFAULT)
            return -errno.EFAULT

        if not vma.vm_flags & VM_READ:
            # No read access means no write access either (HMM does not
            # support write-only mappings).
            hmm_pfns_clear(range, 0, range.start, range.end)
            trace("hmm_range_fault", range=range.name, ret=-errno.EPERM)
            return -errno.EPERM

        hmm_vma_walk.last = start
        hmm_vma_walk.flags = flags
        hmm_vma_walk.range = range
        end = min(range.end, vma.vm_end)
        mm_walk = MmWalk(
            mm=vma.vm_mm,
            private=hmm_vma_walk,
            vma=vma,
            pmd_entry=hmm_vma_walk_pmd,
            pte_hole=hmm_vma_walk_hole,
        )

        while True:
            ret = await walk_page_range(start, end, mm_walk)
            start = hmm_vma_walk.last

            # Keep trying while the range is valid.
            if not (
                ret == -errno.EBUSY
                and not await mmu_interval_check_retry(notifier, range.notifier_seq)
            ):
                break

        if ret:
            i = (hmm_vma_walk.last - range.start) >> PAGE_SHIFT
            hmm_pfns_clear(range, i, hmm_vma_walk.last, range.end)
            trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
            return ret
        start = end

        if not start < range.end:
            break

    ret = (hmm_vma_walk.last - range.start) >> PAGE_SHIFT
    trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
    return ret
