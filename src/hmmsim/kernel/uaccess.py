"""The user task's own memory accesses: cpu_load and cpu_store (MODEL).

Kernel: no single C function; this stands for a user thread executing loads
and stores on its address space: the MMU walks the page table, and a missing
or read-only entry traps into the arch fault handler, which takes
``mmap_sem`` for read, refuses the access if the VMA does not allow it
(arch/x86/mm/fault.c access_error, kernel.fault) and otherwise calls
handle_mm_fault (mm/memory.c, Linux v5.3).

Deviations:
    * MODEL: the whole access is a model function: mmap_sem for read,
      find_vma, a fault if needed, then the load or store as an Op on the
      page under the page-table lock.  Holding that lock stands for the TLB
      shootdown the kernel completes before it frees a page, so the CPU never
      touches a page after its PTE was cleared.
    * MODEL: a fatal fault (no VMA, no permission, OOM, a reaped mm) returns
      -EFAULT instead of raising a signal.
"""

from __future__ import annotations

import errno

from hmmsim.kernel.fault import X86_PF_PROT, X86_PF_USER, X86_PF_WRITE, access_error
from hmmsim.kernel.memory import handle_mm_fault
from hmmsim.kernel.mm_types import (
    MmStruct,
    pte_offset_map,
    pte_page,
    pte_present,
    pte_write,
)
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    FAULT_FLAG_USER,
    FAULT_FLAG_WRITE,
    VM_FAULT_ERROR,
    FaultFlag,
)
from hmmsim.sync import down_read, spin_lock, spin_unlock, up_read
from hmmsim.sync.once import shared_access

__all__ = ["cpu_load", "cpu_store"]


async def _user_access(
    mm: MmStruct, addr: int, write: bool, value: int
) -> tuple[int, int]:
    await down_read(mm.mmap_sem)
    vma = find_vma(mm, addr)
    if vma is None or vma.vm_start > addr:
        await up_read(mm.mmap_sem)
        return -errno.EFAULT, 0
    ptep = pte_offset_map(mm, addr)
    while True:
        await spin_lock(mm.page_table_lock)
        pte = ptep.value
        if pte_present(pte) and (not write or pte_write(pte)):
            page = pte_page(pte)
            await shared_access(
                page, write=write, func="cpu_store" if write else "cpu_load"
            )
            if write:
                page.contents = value
            result = page.contents
            trace(
                "cpu_store" if write else "cpu_load",
                mm=mm.name,
                addr=addr,
                page=page.pfn,
                generation=page.generation,
                value=result,
            )
            await spin_unlock(mm.page_table_lock)
            await up_read(mm.mmap_sem)
            return 0, result
        await spin_unlock(mm.page_table_lock)
        # The trap: do_user_addr_fault checks the VMA before faulting.
        error_code = X86_PF_USER
        if write:
            error_code |= X86_PF_WRITE
        if pte_present(pte):
            error_code |= X86_PF_PROT
        if access_error(error_code, vma):
            # bad_area_access_error: SIGSEGV (MODEL: -EFAULT).
            await up_read(mm.mmap_sem)
            return -errno.EFAULT, 0
        flags = FAULT_FLAG_USER | (FAULT_FLAG_WRITE if write else FaultFlag(0))
        ret = await handle_mm_fault(vma, addr, flags)
        if ret & VM_FAULT_ERROR:
            await up_read(mm.mmap_sem)
            return -errno.EFAULT, 0


async def cpu_load(mm: MmStruct, addr: int) -> tuple[int, int]:
    """Load the word at ``addr`` as the task owning ``mm`` would (MODEL).

    Returns:
        ``(0, value)``, or ``(-EFAULT, 0)`` when the access faults fatally
        (no VMA, no permission, OOM or an address space being reaped).
    """
    return await _user_access(mm, addr, False, 0)


async def cpu_store(mm: MmStruct, addr: int, value: int) -> int:
    """Store ``value`` at ``addr`` as the task owning ``mm`` would (MODEL).

    Returns:
        0, or -EFAULT when the access faults fatally.
    """
    ret, _ = await _user_access(mm, addr, True, value)
    return ret
