"""get_user_pages' permission check of a VMA.

Kernel: mm/gup.c check_vma_flags() (Linux v5.3; v5.5 is the same).
__get_user_pages calls it for each VMA before it faults anything in:
handle_mm_fault checks no VMA permission itself (see kernel.fault).

Deviations:
    * MODEL: only ``check_vma_flags`` and the ``FOLL_*`` flags it reads are
      modelled; the callers (the KVM-style MMU's page lookup) do the rest of
      the page walk themselves.  FOLL_FORCE is accepted, but VM_MAYREAD /
      VM_MAYWRITE are not modelled: a forced access is allowed wherever a
      private mapping could be written or any mapping read.
    * MODEL: no protection keys (memory.arch_vma_access_permitted).
"""

from __future__ import annotations

import enum
import errno
from typing import Final

from hmmsim.kernel.memory import arch_vma_access_permitted, is_cow_mapping
from hmmsim.kernel.mm_types import VmAreaStruct, vma_is_anonymous
from hmmsim.kernel.types import VM_IO, VM_PFNMAP, VM_READ, VM_WRITE

__all__ = [
    "FOLL_ANON",
    "FOLL_FORCE",
    "FOLL_REMOTE",
    "FOLL_WRITE",
    "FollFlags",
    "check_vma_flags",
]


class FollFlags(enum.IntFlag):
    """The ``FOLL_*`` flags of get_user_pages (include/linux/mm.h, v5.3)."""

    FOLL_WRITE = 0x01
    FOLL_FORCE = 0x10
    FOLL_REMOTE = 0x2000
    FOLL_ANON = 0x8000


#: The caller will write to the pages.
FOLL_WRITE: Final = FollFlags.FOLL_WRITE
#: Access even without the VMA's read/write permission (ptrace).
FOLL_FORCE: Final = FollFlags.FOLL_FORCE
#: The pages belong to another process's mm.
FOLL_REMOTE: Final = FollFlags.FOLL_REMOTE
#: Only anonymous memory may be returned.
FOLL_ANON: Final = FollFlags.FOLL_ANON


def check_vma_flags(  # noqa: PLR0911 - the C's exits, in its order
    vma: VmAreaStruct, gup_flags: FollFlags
) -> int:
    """Return whether get_user_pages may fault pages of ``vma`` in.

    Kernel: mm/gup.c check_vma_flags() (v5.3).

    Returns:
        0, or -EFAULT (an I/O or PFN mapping, a non-anonymous VMA with
        FOLL_ANON, or no permission for the access).
    """
    vm_flags = vma.vm_flags
    write = bool(gup_flags & FOLL_WRITE)
    foreign = bool(gup_flags & FOLL_REMOTE)

    if vm_flags & (VM_IO | VM_PFNMAP):
        return -errno.EFAULT

    if gup_flags & FOLL_ANON and not vma_is_anonymous(vma):
        return -errno.EFAULT

    if write:
        if not vm_flags & VM_WRITE:
            if not gup_flags & FOLL_FORCE:
                return -errno.EFAULT
            # A forced write only where the C allows it: a COW mapping.
            # MODEL: VM_MAYWRITE is taken as set (see Deviations).
            if not is_cow_mapping(vm_flags):
                return -errno.EFAULT
    elif not vm_flags & VM_READ:  # noqa: SIM102 - the C's nesting
        if not gup_flags & FOLL_FORCE:
            return -errno.EFAULT
        # MODEL: VM_MAYREAD is taken as set (see Deviations).

    # Protection keys (never refuse in the model).
    if not arch_vma_access_permitted(vma, write, False, foreign):
        return -errno.EFAULT
    return 0
