"""CPU TLBs that can hold stale translations, and ``flush_tlb_range`` (MODEL).

Kernel: arch/x86/mm/tlb.c flush_tlb_mm_range() behind ``flush_tlb_range``
(arch/x86/include/asm/tlbflush.h), Linux v6.16, and the hardware TLB.  A CPU
that translated an address keeps the translation in its TLB; clearing the
PTE does not remove it, so until the kernel flushes the TLB of every CPU
that may cache it, a thread on that CPU still reaches the old page without
faulting.  The rule every PTE change follows: the flush completes before
anybody may rely on the old translation being gone, which in practice
means before the page-table lock that serialised the change is released
(another path that takes the lock next, and finds the PTE already changed,
sees nothing left to flush).  Commit 60bae7370896 fixed
``migrate_vma_collect_pmd``, which flushed after dropping the lock.

The rest of the model has no TLB (kernel.uaccess walks the PTE under the
lock at every access; kernel.mmu_gather).  This module adds one only for the
accesses that ask for it, :func:`cpu_load_cached` / :func:`cpu_store_cached`,
made by a task standing for a CPU that keeps its translations.

Deviations:
    * MODEL: only accesses through :func:`cpu_load_cached` and
      :func:`cpu_store_cached` fill TLB entries; one TLB per task (a task is
      a CPU), holding (mm, address) -> (page, write bit).  A hit uses the
      page without looking at the PTE; a miss walks the PTE under the
      page-table lock (the hardware walker) and fills the entry, or takes the
      ordinary fault path (kernel.uaccess) when the PTE does not allow the
      access, then retries.
    * MODEL: the flushes that empty these TLBs are ``flush_tlb_range`` (a
      synchronous shootdown of every CPU's entries of the range, as x86
      waits for the other CPUs' acknowledgements) and the mmu_gather flush
      of a zap that cleared present PTEs (kernel.mmu_gather
      ``tlb_flush_mmu_tlbonly``).  Other PTE changes (mprotect, COW,
      reclaim's ptep_clear_flush) do not flush them: a world that uses
      cached accesses must not rely on those paths.
    * MODEL: no ASIDs/PCIDs, no lazy TLB mode, no flush batching.
    * MODEL: the cached accesses import kernel.uaccess inside the function
      (uaccess -> memory -> mmu_gather -> tlbflush: an import cycle here).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import cast

from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    VmAreaStruct,
    pte_offset_map,
    pte_present,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_MASK
from hmmsim.sync import (
    current_execution,
    current_task,
    new_oid,
    spin_lock,
    spin_unlock,
)
from hmmsim.sync.once import shared_access

__all__ = [
    "CpuTlbs",
    "TlbEntry",
    "cpu_load_cached",
    "cpu_store_cached",
    "cpu_tlbs",
    "flush_tlb_mm_range",
    "flush_tlb_range",
]


@dataclass(frozen=True, slots=True)
class TlbEntry:
    """One cached translation: the page and whether it allows writes."""

    page: Page
    write: bool


@dataclass(slots=True, kw_only=True, eq=False)
class CpuTlbs:
    """The TLBs of the CPUs (tasks) that made cached accesses to one mm.

    Attributes:
        name: name used in reports.
        entries: (task id, page-aligned address) -> the cached translation.
        oid: object id: fills, hits and flushes are Ops on it.
    """

    name: str
    entries: dict[tuple[int, int], TlbEntry] = field(default_factory=dict)
    oid: int = field(default_factory=new_oid)

    def holders(self) -> tuple[int, ...]:
        """The TLBs have no holders."""
        return ()


def cpu_tlbs(mm: MmStruct) -> CpuTlbs:
    """Return the TLBs caching translations of ``mm`` (created on first use)."""
    context = current_execution().context
    all_tlbs = cast(dict[str, CpuTlbs], context.setdefault("cpu_tlbs", {}))
    tlbs = all_tlbs.get(mm.name)
    if tlbs is None:
        tlbs = CpuTlbs(name=f"{mm.name} TLBs")
        all_tlbs[mm.name] = tlbs
    return tlbs


async def flush_tlb_range(vma: VmAreaStruct, start: int, end: int) -> None:
    """Flush every CPU's translations of [start, end) in ``vma``'s mm.

    Kernel: arch/x86/include/asm/tlbflush.h flush_tlb_range() (v6.16).
    """
    await flush_tlb_mm_range(vma.vm_mm, start, end)


async def flush_tlb_mm_range(mm: MmStruct, start: int, end: int) -> None:
    """Flush every CPU's translations of [start, end) in ``mm``.

    Kernel: arch/x86/mm/tlb.c flush_tlb_mm_range() (v6.16): returns once
    every CPU that may cache them has dropped them.  MODEL: no stride or
    freed-tables arguments.
    """
    context = current_execution().context
    all_tlbs = cast(dict[str, CpuTlbs], context.get("cpu_tlbs", {}))
    tlbs = all_tlbs.get(mm.name)
    if tlbs is None:
        # Nobody ever cached a translation of this mm: nothing to shoot down.
        return
    await shared_access(tlbs, write=True, func="flush_tlb_range")
    gone = [key for key in tlbs.entries if start <= key[1] < end]
    for key in gone:
        del tlbs.entries[key]
    trace("flush_tlb_range", mm=mm.name, start=start, end=end, flushed=len(gone))


async def _cached_access(
    mm: MmStruct, addr: int, write: bool, value: int
) -> tuple[int, int]:
    addr &= PAGE_MASK
    tlbs = cpu_tlbs(mm)
    cpu = current_task().id
    while True:
        await shared_access(tlbs, write=False, func="tlb_lookup")
        hit = tlbs.entries.get((cpu, addr))
        if hit is not None and (not write or hit.write):
            page = hit.page
            await shared_access(
                page, write=write, func="cpu_store" if write else "cpu_load"
            )
            if write:
                page.contents = value
            trace(
                "cpu_tlb_access",
                mm=mm.name,
                addr=addr,
                page=page.pfn,
                generation=page.generation,
                write=write,
                value=page.contents,
            )
            return 0, page.contents
        # Miss: the hardware walks the page table and fills the TLB.
        ptep = pte_offset_map(mm, addr)
        await spin_lock(mm.page_table_lock)
        pte = ptep.value
        filled = False
        if pte_present(pte) and (not write or pte.write):
            await shared_access(tlbs, write=True, func="tlb_fill")
            tlbs.entries[(cpu, addr)] = TlbEntry(pte.page, pte.write)
            filled = True
        await spin_unlock(mm.page_table_lock)
        if filled:
            continue
        # No usable translation: the ordinary access faults and retries.
        from hmmsim.kernel.uaccess import cpu_load, cpu_store  # noqa: PLC0415

        if write:
            ret = await cpu_store(mm, addr, value)
            result = value if ret == 0 else 0
        else:
            ret, result = await cpu_load(mm, addr)
        if ret:
            return -errno.EFAULT, 0
        # The fault path made the access; the TLB is filled on the next one.
        return 0, result


async def cpu_load_cached(mm: MmStruct, addr: int) -> tuple[int, int]:
    """Load the word at ``addr`` through this CPU's TLB (MODEL).

    Returns:
        ``(0, value)``, or ``(-EFAULT, 0)`` when the access faults fatally.
    """
    return await _cached_access(mm, addr, False, 0)


async def cpu_store_cached(mm: MmStruct, addr: int, value: int) -> int:
    """Store ``value`` at ``addr`` through this CPU's TLB (MODEL).

    Returns:
        0, or -EFAULT when the access faults fatally.
    """
    ret, _ = await _cached_access(mm, addr, True, value)
    return ret
