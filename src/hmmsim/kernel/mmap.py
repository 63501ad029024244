"""Model of the parts of ``mm/mmap.c`` the scenarios need (Linux v5.3).

``vm_mmap`` creates an anonymous private mapping, ``vm_munmap`` /
``do_munmap`` remove one (splitting VMAs at the edges, unmapping the pages
inside a blockable notifier bracket), ``find_vma`` looks one up and
``exit_mmap`` tears the whole address space down when its last user goes.

Deviations:
    * MODEL: ``vm_mmap`` takes the mm, a fixed address and the ``VM_*`` flags
      directly (the kernel derives them from prot/flags and current->mm, and
      picks the address); an overlap returns -EEXIST as MAP_FIXED_NOREPLACE.
      Only anonymous mappings are created: private ones, and shared ones
      (``VM_SHARED``, MAP_SHARED|MAP_ANONYMOUS) backed by shmem_zero_setup;
      ``vm_flags`` may add e.g. VM_IO or VM_HUGETLB to exercise error paths.
    * MODEL: remove_vma does not fput the VMA's file: shmem files are never
      released (kernel.shmem Deviations).
    * MODEL: munmap keeps ``mmap_sem`` for write throughout; v5.3 downgrades it
      to read after detaching the VMAs (downgrade_write is not modelled).
      The detached VMAs are invisible to readers either way.
    * MODEL: no VMA merging, no accounting, no mlock, no uprobes/userfaultfd;
      ``free_pgtables`` is a no-op (page-table cells are never freed).
"""

from __future__ import annotations

import errno

from hmmsim.kernel.atomic import set_bit
from hmmsim.kernel.debug import mmap_assert_write_locked
from hmmsim.kernel.memory import unmap_vmas
from hmmsim.kernel.mm_types import MmStruct, VmAreaStruct, pte_offset_map
from hmmsim.kernel.mmu_notifier import mmu_notifier_release
from hmmsim.kernel.oom_kill import __oom_reap_task_mm, mm_is_oom_victim
from hmmsim.kernel.shmem import shmem_zero_setup
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    MMF_OOM_SKIP,
    PAGE_ALIGN,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_SHARED,
    VmFlags,
)
from hmmsim.sync import down_write, up_write

__all__ = [
    "__split_vma",
    "do_munmap",
    "exit_mmap",
    "find_vma",
    "insert_vm_struct",
    "remove_vma",
    "unmap_region",
    "vm_mmap",
    "vm_munmap",
]


def find_vma(mm: MmStruct, addr: int) -> VmAreaStruct | None:
    """Return the first VMA ending above ``addr`` (it may start above it).

    Kernel: mm/mmap.c find_vma().  The caller holds ``mmap_sem`` (or is the
    last user of the mm).
    """
    for vma in mm.mmap:
        if vma.vm_end > addr:
            return vma
    return None


def insert_vm_struct(mm: MmStruct, vma: VmAreaStruct) -> int:
    """Link ``vma`` into ``mm`` (mmap_sem held for write).

    Kernel: mm/mmap.c insert_vm_struct().

    Returns:
        0, or -ENOMEM if it overlaps an existing VMA.
    """
    for other in mm.mmap:
        if other.vm_start < vma.vm_end and vma.vm_start < other.vm_end:
            return -errno.ENOMEM
    mm.mmap.append(vma)
    mm.mmap.sort(key=lambda v: v.vm_start)
    return 0


def __split_vma(mm: MmStruct, vma: VmAreaStruct, addr: int, new_below: bool) -> int:
    """Split ``vma`` at ``addr``; the new VMA is the lower part if ``new_below``.

    Kernel: mm/mmap.c __split_vma().
    """
    new = VmAreaStruct(
        vm_mm=mm,
        vm_start=vma.vm_start,
        vm_end=vma.vm_end,
        vm_flags=vma.vm_flags,
        vm_ops=vma.vm_ops,
        vm_pgoff=vma.vm_pgoff,
        vm_file=vma.vm_file,  # MODEL: get_file is not modelled
    )
    if new_below:
        new.vm_end = addr
        vma.vm_pgoff += (addr - new.vm_start) >> PAGE_SHIFT
        vma.vm_start = addr
    else:
        new.vm_start = addr
        new.vm_pgoff += (addr - vma.vm_start) >> PAGE_SHIFT
        vma.vm_end = addr
    mm.mmap.append(new)
    mm.mmap.sort(key=lambda v: v.vm_start)
    return 0


def remove_vma(mm: MmStruct, vma: VmAreaStruct) -> None:
    """Unlink ``vma`` from ``mm`` and free it.

    Kernel: mm/mmap.c remove_vma() (with the unlinking of
    detach_vmas_to_be_unmapped()).
    """
    if vma in mm.mmap:
        mm.mmap.remove(vma)


async def vm_mmap(mm: MmStruct, addr: int, len: int, vm_flags: VmFlags) -> int:
    """Map ``len`` bytes of anonymous memory (shared if VM_SHARED) at ``addr``.

    Kernel: mm/util.c vm_mmap() -> mm/mmap.c do_mmap() / mmap_region()
    (reduced, see Deviations).

    Returns:
        ``addr``, or -EINVAL (bad alignment or length) or -EEXIST (overlap).
    """
    if addr & ~PAGE_MASK or len <= 0:
        return -errno.EINVAL
    len = PAGE_ALIGN(len)
    await down_write(mm.mmap_sem)
    vma = VmAreaStruct(vm_mm=mm, vm_start=addr, vm_end=addr + len, vm_flags=vm_flags)
    if vm_flags & VM_SHARED:
        # mmap_region: shared anonymous memory is a shmem file.
        shmem_zero_setup(vma)
    if insert_vm_struct(mm, vma):
        await up_write(mm.mmap_sem)
        return -errno.EEXIST
    # MODEL: page-table cells of the new area are made now (empty).
    for page_addr in range(addr, addr + len, PAGE_SIZE):
        pte_offset_map(mm, page_addr)
    await up_write(mm.mmap_sem)
    trace("vm_mmap", mm=mm.name, start=addr, end=addr + len, vm_flags=int(vm_flags))
    return addr


async def unmap_region(
    mm: MmStruct, vmas: list[VmAreaStruct], start: int, end: int
) -> None:
    """Unmap the pages of detached VMAs in [start, end).

    Kernel: mm/mmap.c unmap_region() (v5.3; no TLB gather, no page tables).
    """
    del mm  # MODEL: no mmu_gather to set up
    await unmap_vmas(vmas, start, end)


async def do_munmap(mm: MmStruct, start: int, len: int) -> int:
    """Remove the mappings in [start, start+len); mmap_sem held for write.

    Kernel: mm/mmap.c do_munmap() -> __do_munmap() (v5.3).

    Returns:
        0, or -EINVAL for a misaligned or empty range.
    """
    mmap_assert_write_locked(mm)
    if start & ~PAGE_MASK or len <= 0:
        return -errno.EINVAL
    len = PAGE_ALIGN(len)
    end = start + len

    vma = find_vma(mm, start)
    if vma is None or vma.vm_start >= end:
        return 0

    # Split the first and the last VMA at the edges of the range.
    if start > vma.vm_start:
        __split_vma(mm, vma, start, False)
    last = find_vma(mm, end)
    if last is not None and last.vm_start < end:
        __split_vma(mm, last, end, True)

    # Detach the VMAs inside, then unmap and free them.
    detached = [v for v in mm.mmap if v.vm_start >= start and v.vm_end <= end]
    for v in detached:
        remove_vma(mm, v)
    trace("do_munmap", mm=mm.name, start=start, end=end)
    await unmap_region(mm, detached, start, end)
    return 0


async def vm_munmap(mm: MmStruct, start: int, len: int) -> int:
    """munmap(2): take ``mmap_sem`` for write and remove the mappings.

    Kernel: mm/mmap.c vm_munmap() -> __vm_munmap() (v5.3, see Deviations).
    """
    await down_write(mm.mmap_sem)
    ret = await do_munmap(mm, start, len)
    await up_write(mm.mmap_sem)
    return ret


async def exit_mmap(mm: MmStruct) -> None:
    """Tear down the address space of ``mm``; its last user is gone.

    Kernel: mm/mmap.c exit_mmap() (v5.3).
    """
    trace("exit_mmap", mm=mm.name)
    # The last user is gone: tell the secondary MMUs first.
    await mmu_notifier_release(mm)

    if await mm_is_oom_victim(mm):
        # Reap it here, as the reaper would; no notifier is left to refuse.
        # Then make the reaper skip this mm, and use the mmap_sem write
        # cycle as a barrier: a reaper that saw MMF_OOM_SKIP clear under its
        # read lock has finished before we go on freeing page tables.
        await __oom_reap_task_mm(mm)

        await set_bit(MMF_OOM_SKIP, mm.flags)
        await down_write(mm.mmap_sem)
        await up_write(mm.mmap_sem)

    vmas = list(mm.mmap)
    if not vmas:
        return

    await unmap_vmas(vmas, 0, 1 << 64)
    # MODEL: free_pgtables is a no-op.

    # Now free the VMAs themselves.
    for vma in vmas:
        remove_vma(mm, vma)
    trace("exit_mmap_done", mm=mm.name)
