"""The architecture's page-fault access check (x86).

Kernel: arch/x86/mm/fault.c (Linux v5.3; v5.5 is the same for what is
modelled).  A CPU access that traps enters do_user_addr_fault, which finds
the VMA under ``mmap_sem`` and, before it calls handle_mm_fault, asks
``access_error`` whether the VMA allows the access at all: a write to a VMA
without VM_WRITE, or a read of a VMA without any of VM_READ, VM_EXEC and
VM_WRITE, is a bad area (SIGSEGV) and never reaches handle_mm_fault.
handle_mm_fault itself checks no VMA permission, so every other caller
(get_user_pages, hmm_range_fault) must check on its own.

Deviations:
    * MODEL: only ``access_error`` and the ``X86_PF_*`` error-code bits it
      reads are modelled; the rest of do_user_addr_fault (the lock, find_vma,
      stack expansion, the retry, the signal) is the CPU access model's
      (kernel.uaccess), which builds the error code from the access and the
      PTE it found.
    * MODEL: no protection keys (X86_PF_PK is never set; see
      memory.arch_vma_access_permitted).
"""

from __future__ import annotations

import enum
from typing import Final

from hmmsim.kernel.memory import arch_vma_access_permitted
from hmmsim.kernel.mm_types import VmAreaStruct
from hmmsim.kernel.types import VM_EXEC, VM_READ, VM_WRITE

__all__ = [
    "X86_PF_INSTR",
    "X86_PF_PK",
    "X86_PF_PROT",
    "X86_PF_USER",
    "X86_PF_WRITE",
    "X86PageFaultError",
    "access_error",
]


class X86PageFaultError(enum.IntFlag):
    """The hardware error code of a page fault (arch/x86/include/asm/traps.h)."""

    X86_PF_PROT = 1 << 0
    X86_PF_WRITE = 1 << 1
    X86_PF_USER = 1 << 2
    X86_PF_INSTR = 1 << 4
    X86_PF_PK = 1 << 5


#: The fault was a protection violation (the PTE is present), not a miss.
X86_PF_PROT: Final = X86PageFaultError.X86_PF_PROT
#: The access was a write.
X86_PF_WRITE: Final = X86PageFaultError.X86_PF_WRITE
#: The access came from user mode.
X86_PF_USER: Final = X86PageFaultError.X86_PF_USER
#: The access was an instruction fetch.
X86_PF_INSTR: Final = X86PageFaultError.X86_PF_INSTR
#: Protection keys refused the access.
X86_PF_PK: Final = X86PageFaultError.X86_PF_PK


def access_error(error_code: X86PageFaultError, vma: VmAreaStruct) -> bool:
    """Return whether ``vma`` forbids the access that faulted (a bad area).

    Kernel: arch/x86/mm/fault.c access_error() (v5.3).  Called by
    do_user_addr_fault before handle_mm_fault.
    """
    # The fault handler only runs for the current mm, never a foreign one.
    foreign = False

    # Protection keys refused it: never fixable by a fault.
    if error_code & X86_PF_PK:
        return True

    # Check the keys on the VMA too, not only after a page is mapped.
    if not arch_vma_access_permitted(
        vma, bool(error_code & X86_PF_WRITE), bool(error_code & X86_PF_INSTR), foreign
    ):
        return True

    if error_code & X86_PF_WRITE:
        # A write, to a present or a missing page.
        return not vma.vm_flags & VM_WRITE

    # A read of a present page that still faulted.
    if error_code & X86_PF_PROT:
        return True

    # A read of a missing page.
    return not vma.vm_flags & (VM_READ | VM_EXEC | VM_WRITE)
