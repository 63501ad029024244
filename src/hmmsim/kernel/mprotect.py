"""Model of ``mm/mprotect.c`` (Linux v5.3): changing the protection of a range.

Removing write permission write-protects every present PTE of the range
inside a blockable ``MMU_NOTIFY_PROTECTION_VMA`` notifier bracket.  Adding
write permission to private memory leaves the PTEs read-only; the next write
fault makes them writable.  A writable migration or device-private entry
(``current`` only) becomes a read one in either case (v5.3 and v6.16 alike).

Deviations:
    * MODEL: ``do_mprotect_pkey`` takes the mm and the new ``VM_READ`` /
      ``VM_WRITE`` bits directly (no prot translation, no pkeys, no
      PROT_GROWSDOWN, current->mm is explicit).
    * MODEL: one level of page tables: ``change_pmd_range``'s lazily
      initialised bracket always opens (the "pmd" is never empty) around the
      whole range.
    * MODEL: no VMA merging and no commit accounting.
"""

from __future__ import annotations

import errno

from hmmsim.kernel.debug import mmap_assert_write_locked
from hmmsim.kernel.memory import ptep_get_and_clear, set_pte_at
from hmmsim.kernel.mm_types import MmStruct, VmAreaStruct, pte_present, pte_wrprotect
from hmmsim.kernel.mmap import __split_vma, find_vma
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init,
)
from hmmsim.kernel.swapops import (
    is_swap_pte,
    is_writable_device_private_entry,
    is_writable_migration_entry,
    make_readable_device_private_entry,
    make_readable_migration_entry,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
    swp_entry_to_pte,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    MMU_NOTIFY_PROTECTION_VMA,
    PAGE_ALIGN,
    PAGE_MASK,
    PAGE_SIZE,
    VM_READ,
    VM_WRITE,
    VmFlags,
)
from hmmsim.sync import down_write, spin_lock, spin_unlock, up_write

__all__ = [
    "change_protection",
    "change_pte_range",
    "do_mprotect_pkey",
    "mprotect_fixup",
]


async def change_pte_range(
    vma: VmAreaStruct, addr: int, end: int, newflags: VmFlags
) -> int:
    """Write-protect the present PTEs of [addr, end) if writes are now denied.

    Kernel: mm/mprotect.c change_pte_range() (v5.3).

    Returns:
        The number of PTEs changed.
    """
    mm = vma.vm_mm
    pages = 0
    await spin_lock(mm.page_table_lock)
    while addr < end:
        ptep = mm.ptes.get(addr)
        oldpte = None if ptep is None else ptep.value
        if ptep is not None and pte_present(oldpte) and not newflags & VM_WRITE:
            oldpte = await ptep_get_and_clear(mm, addr, ptep)
            assert pte_present(oldpte), (
                "[hmmsim internal bug] PTE vanished under its lock"
            )
            await set_pte_at(mm, addr, ptep, pte_wrprotect(oldpte))
            pages += 1
        elif ptep is not None and is_swap_pte(oldpte):
            # A swap entry names no permission the fault could check later:
            # a writable migration or device-private entry becomes a read
            # one whatever the new protection (the fault upgrades it again).
            entry = pte_to_swp_entry(oldpte)
            newpte = None
            if is_writable_migration_entry(entry):
                newpte = swp_entry_to_pte(
                    make_readable_migration_entry(pfn_swap_entry_to_page(entry))
                )
            elif is_writable_device_private_entry(entry):
                newpte = swp_entry_to_pte(
                    make_readable_device_private_entry(pfn_swap_entry_to_page(entry))
                )
            if newpte is not None:
                await set_pte_at(mm, addr, ptep, newpte)
                pages += 1
        addr += PAGE_SIZE
    await spin_unlock(mm.page_table_lock)
    return pages


async def change_protection(
    vma: VmAreaStruct, start: int, end: int, newflags: VmFlags
) -> int:
    """Apply the new protection to the PTEs of [start, end) of ``vma``.

    Kernel: mm/mprotect.c change_protection() -> change_pmd_range() (v5.3).
    """
    mm = vma.vm_mm
    range = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(range, MMU_NOTIFY_PROTECTION_VMA, 0, vma, mm, start, end)
    await mmu_notifier_invalidate_range_start(range)
    pages = await change_pte_range(vma, start, end, newflags)
    await mmu_notifier_invalidate_range_end(range)
    return pages


async def mprotect_fixup(
    vma: VmAreaStruct, start: int, end: int, newflags: VmFlags
) -> int:
    """Give [start, end) of ``vma`` the flags ``newflags`` (mmap_sem held for write).

    Kernel: mm/mprotect.c mprotect_fixup() (v5.3).
    """
    mm = vma.vm_mm
    mmap_assert_write_locked(mm)
    if newflags == vma.vm_flags:
        return 0
    if start != vma.vm_start:
        __split_vma(mm, vma, start, True)
    if end != vma.vm_end:
        __split_vma(mm, vma, end, False)
    # The VMA now spans exactly [start, end); the flags change first, then
    # the PTEs follow.
    vma.vm_flags = newflags
    await change_protection(vma, start, end, newflags)
    return 0


async def do_mprotect_pkey(mm: MmStruct, start: int, len: int, prot: VmFlags) -> int:
    """mprotect(2) on ``mm``: set VM_READ/VM_WRITE of [start, start+len) to ``prot``.

    Kernel: mm/mprotect.c do_mprotect_pkey() (reduced, see Deviations).

    Returns:
        0, -EINVAL (misaligned), or -ENOMEM (part of the range is unmapped).
    """
    if start & ~PAGE_MASK:
        return -errno.EINVAL
    if not len:
        return 0
    len = PAGE_ALIGN(len)
    end = start + len

    await down_write(mm.mmap_sem)
    error = -errno.ENOMEM
    vma = find_vma(mm, start)
    if vma is None or vma.vm_start > start:
        await up_write(mm.mmap_sem)
        return error
    nstart = start
    while True:
        newflags = VmFlags((vma.vm_flags & ~(VM_READ | VM_WRITE)) | prot)
        tmp = min(vma.vm_end, end)
        error = await mprotect_fixup(vma, nstart, tmp, newflags)
        if error:
            break
        nstart = tmp
        if nstart >= end:
            break
        vma = find_vma(mm, nstart)
        if vma is None or vma.vm_start != nstart:
            error = -errno.ENOMEM
            break
    await up_write(mm.mmap_sem)
    trace("mprotect", mm=mm.name, start=start, end=end, prot=int(prot), ret=error)
    return error
