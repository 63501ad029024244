"""Model of the parts of ``mm/mmap.c`` the scenarios need (Linux v5.3).

``vm_mmap`` creates an anonymous private mapping, ``sys_munmap`` /
``vm_munmap`` / ``do_munmap`` remove one (splitting VMAs at the edges,
detaching them, then unmapping the pages inside a blockable notifier
bracket; the system call does that part with ``mmap_sem`` downgraded to
read), ``find_vma`` looks one up and ``exit_mmap`` tears the whole address
space down when its last user goes.

Deviations:
    * MODEL: ``vm_mmap`` takes the mm, a fixed address and the ``VM_*`` flags
      directly (the kernel derives them from prot/flags and current->mm, and
      picks the address); an overlap returns -EEXIST as MAP_FIXED_NOREPLACE.
      Only anonymous mappings are created: private ones, and shared ones
      (``VM_SHARED``, MAP_SHARED|MAP_ANONYMOUS) backed by shmem_zero_setup;
      ``vm_flags`` may add e.g. VM_IO or VM_HUGETLB to exercise error paths.
    * MODEL: remove_vma does not fput the VMA's file: shmem files are never
      released (kernel.shmem Deviations).
    * MODEL: ``vm_munmap`` and the munmap system call (``sys_munmap``) take
      the mm as an argument (the kernel uses current->mm) and take
      ``mmap_sem`` with down_write instead of down_write_killable (no signals
      in the model, so never -EINTR).  As in v5.3/v5.5, the system call
      downgrades ``mmap_sem`` to read once the VMAs are detached
      (``__do_munmap(..., downgrade=True)``), so page faults and HMM walks of
      other VMAs run beside the unmapping; ``vm_munmap`` (in-kernel callers)
      keeps it for write.  No VM_GROWSDOWN/VM_GROWSUP VMAs exist, so the
      later (v5.9) refusal to downgrade next to them does not arise.
    * MODEL: no VMA merging, no accounting, no mlock, no uprobes/userfaultfd;
      ``free_pgtables`` is a no-op (page-table cells are never freed).
      unmap_region and exit_mmap gather the zapped pages in an mmu_gather
      and free them in tlb_finish_mmu, after invalidate_range_end, as the
      kernel does (kernel.mmu_gather).
"""

from __future__ import annotations

import errno

from hmmsim.kernel.atomic import set_bit
from hmmsim.kernel.debug import mmap_assert_write_locked
from hmmsim.kernel.memory import unmap_vmas
from hmmsim.kernel.mm_types import MmStruct, VmAreaStruct, pte_offset_map
from hmmsim.kernel.mmu_gather import MmuGather, tlb_finish_mmu, tlb_gather_mmu
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
from hmmsim.sync import down_write, downgrade_write, up_read, up_write

__all__ = [
    "__do_munmap",
    "__split_vma",
    "__vm_munmap",
    "detach_vmas_to_be_unmapped",
    "do_munmap",
    "exit_mmap",
    "find_vma",
    "insert_vm_struct",
    "remove_vma",
    "sys_munmap",
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
    """Free ``vma``.

    Kernel: mm/mmap.c remove_vma().  MODEL: a VMA still linked (exit_mmap
    frees them without detaching) is unlinked from ``mm.mmap`` here.
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

    Kernel: mm/mmap.c unmap_region() (v5.3).  The pages are freed by
    tlb_finish_mmu, after unmap_vmas' invalidate_range_end.
    """
    tlb = MmuGather(mm=mm)
    # MODEL: lru_add_drain and update_hiwater_rss are not modelled.
    tlb_gather_mmu(tlb, mm, start, end)
    await unmap_vmas(tlb, vmas, start, end)
    # MODEL: free_pgtables is a no-op (page-table cells are never freed).
    await tlb_finish_mmu(tlb, start, end)


def detach_vmas_to_be_unmapped(
    mm: MmStruct, start: int, end: int
) -> list[VmAreaStruct]:
    """Unlink the VMAs inside [start, end) from ``mm`` and return them.

    Kernel: mm/mmap.c detach_vmas_to_be_unmapped() (v5.3).  After this no
    find_vma sees them; the caller unmaps and frees them.  MODEL: the VMAs
    are picked by address (the caller split the edges) instead of following
    ``vm_next`` from the first one.
    """
    detached = [v for v in mm.mmap if v.vm_start >= start and v.vm_end <= end]
    for v in detached:
        mm.mmap.remove(v)
    return detached


async def __do_munmap(mm: MmStruct, start: int, len: int, downgrade: bool) -> int:
    """Remove the mappings in [start, start+len); mmap_sem held for write.

    Kernel: mm/mmap.c __do_munmap() (v5.3; v5.5 is the same).  With
    ``downgrade`` the write hold of ``mmap_sem`` becomes a read hold once
    the VMAs are detached, before their pages are unmapped.

    Returns:
        1 if ``mmap_sem`` was downgraded (the caller must up_read), else 0;
        or -EINVAL for a misaligned or empty range.
    """
    mmap_assert_write_locked(mm)
    if start & ~PAGE_MASK or len <= 0:
        return -errno.EINVAL
    len = PAGE_ALIGN(len)
    end = start + len

    # MODEL: arch_unmap (MPX) is not modelled.
    vma = find_vma(mm, start)
    if vma is None or vma.vm_start >= end:
        return 0

    # Split the first and the last VMA at the edges of the range.
    if start > vma.vm_start:
        __split_vma(mm, vma, start, False)
    last = find_vma(mm, end)
    if last is not None and last.vm_start < end:
        __split_vma(mm, last, end, True)

    # MODEL: no mlocked VMAs to munlock first (locked_vm is always 0).

    # Detach the VMAs from the tree: from now on nobody finds them.
    detached = detach_vmas_to_be_unmapped(mm, start, end)
    trace("do_munmap", mm=mm.name, start=start, end=end)

    if downgrade:
        await downgrade_write(mm.mmap_sem)

    await unmap_region(mm, detached, start, end)

    # Fix up all other VM information: free the detached VMAs.
    for v in detached:
        remove_vma(mm, v)

    return 1 if downgrade else 0


async def do_munmap(mm: MmStruct, start: int, len: int) -> int:
    """Remove the mappings in [start, start+len); mmap_sem held for write.

    Kernel: mm/mmap.c do_munmap() (v5.3): __do_munmap without downgrade.

    Returns:
        0, or -EINVAL for a misaligned or empty range.
    """
    return await __do_munmap(mm, start, len, False)


async def __vm_munmap(mm: MmStruct, start: int, len: int, downgrade: bool) -> int:
    """Take ``mmap_sem`` for write and remove the mappings.

    Kernel: mm/mmap.c __vm_munmap() (v5.3; see Deviations).
    """
    await down_write(mm.mmap_sem)  # MODEL: down_write_killable, never -EINTR
    ret = await __do_munmap(mm, start, len, downgrade)
    # 1 means __do_munmap downgraded mmap_sem; munmap returns 0 then.
    if ret == 1:
        await up_read(mm.mmap_sem)
        ret = 0
    else:
        await up_write(mm.mmap_sem)
    # MODEL: userfaultfd_unmap_complete is not modelled.
    return ret


async def vm_munmap(mm: MmStruct, start: int, len: int) -> int:
    """Remove mappings for an in-kernel caller (``mmap_sem`` stays write-held).

    Kernel: mm/mmap.c vm_munmap() (v5.3): __vm_munmap(start, len, false).
    """
    return await __vm_munmap(mm, start, len, False)


async def sys_munmap(mm: MmStruct, addr: int, len: int) -> int:
    """munmap(2): remove mappings, downgrading ``mmap_sem`` before the unmap.

    Kernel: mm/mmap.c SYSCALL_DEFINE2(munmap) (v5.3):
    __vm_munmap(addr, len, true).  MODEL: takes the mm (current->mm in C).

    Returns:
        0, or -EINVAL for a misaligned or empty range.
    """
    # MODEL: untagged_addr and profile_munmap are not modelled.
    return await __vm_munmap(mm, addr, len, True)


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

    # MODEL: lru_add_drain and flush_cache_mm are not modelled.
    tlb = MmuGather(mm=mm)
    tlb_gather_mmu(tlb, mm, 0, 1 << 64)
    # Use -1 (all ones) as the end so every VMA is unmapped.
    await unmap_vmas(tlb, vmas, 0, 1 << 64)
    # MODEL: free_pgtables is a no-op.
    await tlb_finish_mmu(tlb, 0, 1 << 64)

    # Now free the VMAs themselves.
    for vma in vmas:
        remove_vma(mm, vma)
    trace("exit_mmap_done", mm=mm.name)
