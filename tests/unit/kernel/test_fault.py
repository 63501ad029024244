"""Tests of the permission checks before handle_mm_fault: x86 access_error, gup's check_vma_flags."""

from __future__ import annotations

import errno

import pytest

from hmmsim.kernel.fault import (
    X86_PF_INSTR,
    X86_PF_PK,
    X86_PF_PROT,
    X86_PF_USER,
    X86_PF_WRITE,
    X86PageFaultError,
    access_error,
)
from hmmsim.kernel.fork import mm_alloc
from hmmsim.kernel.gup import (
    FOLL_ANON,
    FOLL_FORCE,
    FOLL_REMOTE,
    FOLL_WRITE,
    FollFlags,
    check_vma_flags,
)
from hmmsim.kernel.memory import arch_vma_access_permitted
from hmmsim.kernel.mm_types import VmAreaStruct, VmOperationsStruct
from hmmsim.kernel.types import (
    VM_EXEC,
    VM_IO,
    VM_NONE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VmFlags,
)


def vma(flags: VmFlags, *, anonymous: bool = True) -> VmAreaStruct:
    """A one-page VMA with ``flags`` (built outside any execution)."""
    ops = None if anonymous else VmOperationsStruct(name="shmem", fault=_no_fault)
    return VmAreaStruct(
        vm_mm=mm_alloc(), vm_start=0x10000, vm_end=0x11000, vm_flags=flags, vm_ops=ops
    )


async def _no_fault(v: VmAreaStruct, addr: int) -> tuple[int, None]:
    raise AssertionError("not called")  # pragma: no cover - never faulted


USER = X86_PF_USER
RW = VM_READ | VM_WRITE


@pytest.mark.parametrize(
    ("error_code", "flags", "bad"),
    [
        (USER | X86_PF_WRITE, RW, False),
        (USER | X86_PF_WRITE, VM_READ, True),
        (USER | X86_PF_WRITE | X86_PF_PROT, VM_READ, True),
        (USER, VM_READ, False),
        (USER, VM_EXEC, False),
        (USER, VM_WRITE, False),
        (USER, VM_NONE, True),
        (USER | X86_PF_PROT, RW, True),
        (USER | X86_PF_PK, RW, True),
        (USER | X86_PF_INSTR, VM_READ, False),
    ],
)
def test_access_error(error_code: X86PageFaultError, flags: VmFlags, bad: bool) -> None:
    """access_error refuses writes without VM_WRITE, reads of inaccessible VMAs,
    faulting reads of present pages and protection-key faults."""
    assert bad == access_error(error_code, vma(flags))


@pytest.mark.parametrize(
    ("flags", "gup_flags", "anonymous", "ret"),
    [
        (RW, FOLL_WRITE, True, 0),
        (VM_READ, FOLL_WRITE, True, -errno.EFAULT),
        (VM_READ, FOLL_WRITE | FOLL_FORCE, True, 0),
        (VM_READ | VM_SHARED, FOLL_WRITE | FOLL_FORCE, False, -errno.EFAULT),
        (VM_READ, FollFlags(0), True, 0),
        (VM_NONE, FollFlags(0), True, -errno.EFAULT),
        (VM_NONE, FOLL_FORCE, True, 0),
        (RW | VM_IO, FollFlags(0), True, -errno.EFAULT),
        (RW | VM_PFNMAP, FOLL_REMOTE, True, -errno.EFAULT),
        (RW | VM_SHARED, FOLL_ANON, False, -errno.EFAULT),
        (RW, FOLL_ANON | FOLL_REMOTE, True, 0),
    ],
)
def test_check_vma_flags(
    flags: VmFlags, gup_flags: FollFlags, anonymous: bool, ret: int
) -> None:
    """get_user_pages refuses I/O/PFN mappings, non-anonymous VMAs for FOLL_ANON and
    accesses the VMA does not allow unless forced (and forced writes need COW)."""
    assert ret == check_vma_flags(vma(flags, anonymous=anonymous), gup_flags)


def test_no_protection_keys() -> None:
    """Without protection keys every access is permitted."""
    assert arch_vma_access_permitted(vma(VM_NONE), True, True, True)
