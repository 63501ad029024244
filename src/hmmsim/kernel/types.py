"""Constants and flags shared by the model: errno, page size, VM_*, MMF_*, HMM_PFN_*.

Kernel: include/linux/mm.h, include/linux/mm_types.h, include/linux/sched/coredump.h,
include/linux/mmu_notifier.h and include/linux/hmm.h (Linux v5.3).

Names keep the macro spelling.  Flag sets are ``enum.IntFlag`` / ``enum.IntEnum``
members re-exported as module constants, so call sites read like C.

Deviations:
    * MODEL: ``MMF_*`` values are bit numbers (as in C) used with the model's
      ``set_bit`` / ``test_bit`` on ``mm.flags``; the numeric values are the
      v5.3 ones but nothing depends on them.
    * MODEL: ``HZ`` is 1000 and time is not modelled; timeouts are only labels
      for the data choice "the timeout fires".
"""

from __future__ import annotations

import enum
import errno
from typing import Final

__all__ = [
    "FAULT_FLAG_ALLOW_RETRY",
    "FAULT_FLAG_INSTRUCTION",
    "FAULT_FLAG_REMOTE",
    "FAULT_FLAG_USER",
    "FAULT_FLAG_WRITE",
    "HMM_PFN_DEVICE_PRIVATE",
    "HMM_PFN_ERROR",
    "HMM_PFN_FLAG_MAX",
    "HMM_PFN_NONE",
    "HMM_PFN_SPECIAL",
    "HMM_PFN_VALID",
    "HMM_PFN_VALUE_MAX",
    "HMM_PFN_WRITE",
    "HMM_RANGE_DEFAULT_TIMEOUT",
    "HMM_UPDATE_INVALIDATE",
    "HZ",
    "MMF_OOM_SKIP",
    "MMF_OOM_VICTIM",
    "MMF_UNSTABLE",
    "MMU_NOTIFIER_RANGE_BLOCKABLE",
    "MMU_NOTIFY_CLEAR",
    "MMU_NOTIFY_MIGRATE",
    "MMU_NOTIFY_PROTECTION_PAGE",
    "MMU_NOTIFY_PROTECTION_VMA",
    "MMU_NOTIFY_RELEASE",
    "MMU_NOTIFY_SOFT_DIRTY",
    "MMU_NOTIFY_UNMAP",
    "PAGE_ALIGN",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "VM_EXEC",
    "VM_FAULT_ERROR",
    "VM_FAULT_HWPOISON",
    "VM_FAULT_OOM",
    "VM_FAULT_RETRY",
    "VM_FAULT_SIGBUS",
    "VM_FAULT_SIGSEGV",
    "VM_FAULT_WRITE",
    "VM_HUGETLB",
    "VM_IO",
    "VM_LOCKED",
    "VM_MIXEDMAP",
    "VM_NONE",
    "VM_PFNMAP",
    "VM_READ",
    "VM_SHARED",
    "VM_WRITE",
    "FaultFlag",
    "HmmPfnFlag",
    "HmmPfnValue",
    "HmmUpdateEvent",
    "MmfBit",
    "MmuNotifierEvent",
    "VmFault",
    "VmFlags",
    "err_name",
    "hmm_pfn_flag_e",
    "hmm_pfn_value_e",
]

# -- errno --------------------------------------------------------------------


def err_name(ret: int) -> str:
    """Return ``-EAGAIN``-style text for a negative errno, else the number."""
    if ret < 0 and -ret in errno.errorcode:
        return f"-{errno.errorcode[-ret]}"
    return str(ret)


# -- pages and time -------------------------------------------------------------

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
PAGE_MASK: Final = ~(PAGE_SIZE - 1)


def PAGE_ALIGN(addr: int) -> int:
    """Round ``addr`` up to a page boundary (include/linux/mm.h)."""
    return (addr + PAGE_SIZE - 1) & PAGE_MASK


HZ: Final = 1000

# -- vm_area_struct flags (include/linux/mm.h) -----------------------------------


class VmFlags(enum.IntFlag):
    """The ``VM_*`` flags of ``vma->vm_flags`` that the model uses."""

    VM_NONE = 0x00000000
    VM_READ = 0x00000001
    VM_WRITE = 0x00000002
    VM_EXEC = 0x00000004
    VM_SHARED = 0x00000008
    VM_LOCKED = 0x00002000
    VM_IO = 0x00004000
    VM_PFNMAP = 0x00000400
    VM_HUGETLB = 0x00400000
    VM_MIXEDMAP = 0x10000000


VM_NONE: Final = VmFlags.VM_NONE
VM_READ: Final = VmFlags.VM_READ
VM_WRITE: Final = VmFlags.VM_WRITE
VM_EXEC: Final = VmFlags.VM_EXEC
VM_SHARED: Final = VmFlags.VM_SHARED
VM_LOCKED: Final = VmFlags.VM_LOCKED
VM_IO: Final = VmFlags.VM_IO
VM_PFNMAP: Final = VmFlags.VM_PFNMAP
VM_HUGETLB: Final = VmFlags.VM_HUGETLB
VM_MIXEDMAP: Final = VmFlags.VM_MIXEDMAP

# -- mm->flags bits (include/linux/sched/coredump.h) ------------------------------


class MmfBit(enum.IntEnum):
    """Bit numbers in ``mm->flags``."""

    MMF_OOM_SKIP = 21
    MMF_UNSTABLE = 22
    MMF_OOM_VICTIM = 25


MMF_OOM_SKIP: Final = MmfBit.MMF_OOM_SKIP
MMF_UNSTABLE: Final = MmfBit.MMF_UNSTABLE
MMF_OOM_VICTIM: Final = MmfBit.MMF_OOM_VICTIM

# -- page faults (include/linux/mm.h, mm_types.h) --------------------------------


class FaultFlag(enum.IntFlag):
    """``FAULT_FLAG_*`` passed to handle_mm_fault."""

    FAULT_FLAG_WRITE = 0x01
    FAULT_FLAG_ALLOW_RETRY = 0x04
    FAULT_FLAG_USER = 0x40
    FAULT_FLAG_REMOTE = 0x80
    FAULT_FLAG_INSTRUCTION = 0x100


FAULT_FLAG_WRITE: Final = FaultFlag.FAULT_FLAG_WRITE
FAULT_FLAG_ALLOW_RETRY: Final = FaultFlag.FAULT_FLAG_ALLOW_RETRY
FAULT_FLAG_REMOTE: Final = FaultFlag.FAULT_FLAG_REMOTE
FAULT_FLAG_USER: Final = FaultFlag.FAULT_FLAG_USER
FAULT_FLAG_INSTRUCTION: Final = FaultFlag.FAULT_FLAG_INSTRUCTION


class VmFault(enum.IntFlag):
    """``vm_fault_t`` codes returned by handle_mm_fault."""

    VM_FAULT_OOM = 0x000001
    VM_FAULT_SIGBUS = 0x000002
    VM_FAULT_WRITE = 0x000008
    VM_FAULT_HWPOISON = 0x000010
    VM_FAULT_SIGSEGV = 0x000040
    VM_FAULT_RETRY = 0x000400


VM_FAULT_OOM: Final = VmFault.VM_FAULT_OOM
VM_FAULT_SIGBUS: Final = VmFault.VM_FAULT_SIGBUS
VM_FAULT_WRITE: Final = VmFault.VM_FAULT_WRITE
VM_FAULT_HWPOISON: Final = VmFault.VM_FAULT_HWPOISON
VM_FAULT_SIGSEGV: Final = VmFault.VM_FAULT_SIGSEGV
VM_FAULT_RETRY: Final = VmFault.VM_FAULT_RETRY
#: The codes that mean the fault failed (VM_FAULT_ERROR in mm_types.h).
VM_FAULT_ERROR: Final = (
    VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON
)

# -- mmu notifiers (include/linux/mmu_notifier.h) ---------------------------------


class MmuNotifierEvent(enum.Enum):
    """``enum mmu_notifier_event`` (v5.2 onwards)."""

    MMU_NOTIFY_UNMAP = 0
    MMU_NOTIFY_CLEAR = 1
    MMU_NOTIFY_PROTECTION_VMA = 2
    MMU_NOTIFY_PROTECTION_PAGE = 3
    MMU_NOTIFY_SOFT_DIRTY = 4
    #: v5.5: the mm is being torn down (mn_itree_release)
    MMU_NOTIFY_RELEASE = 5
    #: v5.9: pages move to or from device memory (migrate_vma_collect);
    #: ``range->owner`` names the device-private owner taking part
    MMU_NOTIFY_MIGRATE = 6


MMU_NOTIFY_UNMAP: Final = MmuNotifierEvent.MMU_NOTIFY_UNMAP
MMU_NOTIFY_CLEAR: Final = MmuNotifierEvent.MMU_NOTIFY_CLEAR
MMU_NOTIFY_PROTECTION_VMA: Final = MmuNotifierEvent.MMU_NOTIFY_PROTECTION_VMA
MMU_NOTIFY_PROTECTION_PAGE: Final = MmuNotifierEvent.MMU_NOTIFY_PROTECTION_PAGE
MMU_NOTIFY_SOFT_DIRTY: Final = MmuNotifierEvent.MMU_NOTIFY_SOFT_DIRTY
MMU_NOTIFY_RELEASE: Final = MmuNotifierEvent.MMU_NOTIFY_RELEASE
MMU_NOTIFY_MIGRATE: Final = MmuNotifierEvent.MMU_NOTIFY_MIGRATE

#: Bit of ``mmu_notifier_range.flags``: the invalidation may sleep.
MMU_NOTIFIER_RANGE_BLOCKABLE: Final = 1 << 0

# -- HMM (include/linux/hmm.h, v5.3) ----------------------------------------------


class HmmPfnFlag(enum.IntEnum):
    """``enum hmm_pfn_flag_e``: indexes into ``range->flags``."""

    HMM_PFN_VALID = 0
    HMM_PFN_WRITE = 1
    HMM_PFN_DEVICE_PRIVATE = 2
    HMM_PFN_FLAG_MAX = 3


class HmmPfnValue(enum.IntEnum):
    """``enum hmm_pfn_value_e``: indexes into ``range->values``."""

    HMM_PFN_ERROR = 0
    HMM_PFN_NONE = 1
    HMM_PFN_SPECIAL = 2
    HMM_PFN_VALUE_MAX = 3


hmm_pfn_flag_e = HmmPfnFlag
hmm_pfn_value_e = HmmPfnValue

HMM_PFN_VALID: Final = HmmPfnFlag.HMM_PFN_VALID
HMM_PFN_WRITE: Final = HmmPfnFlag.HMM_PFN_WRITE
HMM_PFN_DEVICE_PRIVATE: Final = HmmPfnFlag.HMM_PFN_DEVICE_PRIVATE
HMM_PFN_FLAG_MAX: Final = HmmPfnFlag.HMM_PFN_FLAG_MAX
HMM_PFN_ERROR: Final = HmmPfnValue.HMM_PFN_ERROR
HMM_PFN_NONE: Final = HmmPfnValue.HMM_PFN_NONE
HMM_PFN_SPECIAL: Final = HmmPfnValue.HMM_PFN_SPECIAL
HMM_PFN_VALUE_MAX: Final = HmmPfnValue.HMM_PFN_VALUE_MAX


class HmmUpdateEvent(enum.Enum):
    """``enum hmm_update_event`` (only one event exists in v5.3)."""

    HMM_UPDATE_INVALIDATE = 0


HMM_UPDATE_INVALIDATE: Final = HmmUpdateEvent.HMM_UPDATE_INVALIDATE

#: Default timeout of hmm_range_wait_until_valid, in milliseconds.
HMM_RANGE_DEFAULT_TIMEOUT: Final = 1000
