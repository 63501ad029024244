"""The ``dmirror`` fake device of ``lib/test_hmm.c``, mirroring part, on v6.16.

Kernel: lib/test_hmm.c as of v6.16, the driver the hmm selftests drive
through /dev/hmm_dmirror*, written for today's API: ``hmm_range_fault(range)``
filling ``range->hmm_pfns`` with the fixed encoding of include/linux/hmm.h
(:mod:`hmmsim.kernel.hmm_flags`), ``default_flags = HMM_PFN_REQ_FAULT``
(plus ``HMM_PFN_REQ_WRITE`` for a write), ``default_flags = 0`` for a
snapshot, and the current notifier core
(:mod:`hmmsim.kernel.mmu_notifier_current`).  The fault loop is the one of
Documentation/mm/hmm.rst: mmu_interval_read_begin, hmm_range_fault under
``mmap_read_lock``, -EBUSY -> again, then ``mutex_lock`` and
mmu_interval_read_retry before programming the device; the invalidate
callback takes the mutex (trylock when not mmu_notifier_range_blockable),
calls mmu_interval_set_seq and zaps the range.

The v5.5 port of the same driver is :mod:`hmmsim.kernel.drivers.dmirror`;
the structures (``struct dmirror``, ``struct dmirror_interval``, the command
and bounce buffers) and the HMM_DMIRROR_PROT_* codes are shared with it.
``tests/unit/kernel/drivers/test_dmirror_current.py`` pins which functions
differ between the two modules (a drift test).

Deviations:
    * MODEL: everything listed in :mod:`hmmsim.kernel.drivers.dmirror`
      (timeout as a retry bound, one word per page, one chunk instead of the
      fixed-size pfn array chunks, device access under the mutex, ghost
      kfree, the device table emptied before the remove at release)
      applies here too.
    * MODEL: device memory is device-private only (no
      HMM_DMIRROR_MEMORY_DEVICE_COHERENT devices, no DEV_COHERENT, PMD or
      PUD snapshot codes).  A device (:class:`DmirrorDevice`) is made by the
      caller and set in ``dmirror.mdevice`` (the C finds it through the
      cdev); ``dmirror.mdevice`` None is a device without memory, whose
      ``dev_private_owner`` is None.  A chunk of device memory has
      :data:`DEVMEM_CHUNK_PAGES` pages and a device at most ``max_chunks``
      chunks; the free list is a Python list.
    * MODEL: HMM_DMIRROR_MIGRATE_TO_DEV / _TO_SYS handle one chunk per VMA
      (no 64-entry ``src_pfns`` split).  HMM_DMIRROR_EXCLUSIVE is not
      modelled (make_device_exclusive).
    * MODEL: HMM_DMIRROR_RELEASE (:func:`dmirror_device_remove_chunks`):
      the free list is a Python list, so dmirror_remove_free_pages drops the
      chunk's pages from it (the C's loop moves the list head past them);
      the ``src_pfns``/``dst_pfns`` arrays are Python lists (no kvcalloc),
      alloc_page with __GFP_NOFAIL is asserted to succeed, and
      release_mem_region and the kfree of the chunk and of the chunk array
      do nothing (no physical ranges, the chunk is no slab object).
    * MODEL: copy_highpage / clear_highpage copy or clear the page's word
      (one Op on both pages).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Final

from hmmsim.kernel.debug import WARN_ON
from hmmsim.kernel.drivers.device import (
    device_access,
    device_pte_clear,
    device_pte_set,
)
from hmmsim.kernel.drivers.dmirror import (
    DMIRROR_RANGE_FAULT_RETRIES,
    HMM_DMIRROR_PROT_ERROR,
    HMM_DMIRROR_PROT_NONE,
    HMM_DMIRROR_PROT_READ,
    HMM_DMIRROR_PROT_WRITE,
    HMM_DMIRROR_PROT_ZERO,
    Dmirror,
    DmirrorBounce,
    DmirrorInterval,
    HmmDmirrorCmd,
)
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.fork import mmget_not_zero, mmput
from hmmsim.kernel.hmm_current import HmmRange, hmm_pfn_to_page, hmm_range_fault
from hmmsim.kernel.hmm_flags import (
    HMM_PFN_ERROR,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
)
from hmmsim.kernel.memremap import (
    MEMORY_DEVICE_PRIVATE,
    DevPagemap,
    is_device_private_page,
    is_zone_device_page,
    memremap_pages,
    memunmap_pages,
    page_pgmap,
    zone_device_page_init,
)
from hmmsim.kernel.migrate_device import (
    MIGRATE_PFN_MIGRATE,
    MIGRATE_PFN_VALID,
    MIGRATE_PFN_WRITE,
    MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    MIGRATE_VMA_SELECT_SYSTEM,
    MigrateVma,
    migrate_device_finalize,
    migrate_device_pages,
    migrate_device_range,
    migrate_pfn,
    migrate_pfn_to_page,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
)
from hmmsim.kernel.mm_types import MmStruct, Page, VmAreaStruct, VmFaultStruct
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_blockable
from hmmsim.kernel.mmu_notifier_current import (
    ULONG_MAX,
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
)
from hmmsim.kernel.page_alloc import (
    GFP_HIGHUSER_MOVABLE,
    alloc_page,
    is_zero_pfn,
    put_page,
)
from hmmsim.kernel.pagemap import lock_page
from hmmsim.kernel.slab import kfree
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    MMU_NOTIFY_MIGRATE,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_SIGBUS,
    VM_READ,
    VM_WRITE,
    VmFault,
)
from hmmsim.sync import (
    Mutex,
    SpinLock,
    down_read,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    new_oid,
    shared_access,
    spin_lock,
    spin_unlock,
    up_read,
)

__all__ = [
    "BACKING_PAGE",
    "DEVMEM_CHUNK_PAGES",
    "DMIRROR_DEVMEM_OPS",
    "HMM_DMIRROR_MEMORY_DEVICE_PRIVATE",
    "HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL",
    "HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE",
    "DmirrorChunk",
    "DmirrorDevice",
    "clear_highpage",
    "copy_highpage",
    "dmirror_allocate_chunk",
    "dmirror_device_evict_chunk",
    "dmirror_device_init",
    "dmirror_device_remove_chunks",
    "dmirror_devmem_alloc_page",
    "dmirror_devmem_fault",
    "dmirror_devmem_fault_alloc_and_copy",
    "dmirror_devmem_free",
    "dmirror_do_fault",
    "dmirror_do_read",
    "dmirror_do_update",
    "dmirror_do_write",
    "dmirror_fault",
    "dmirror_fops_open",
    "dmirror_fops_release",
    "dmirror_interval_invalidate",
    "dmirror_is_private_zone",
    "dmirror_migrate_alloc_and_copy",
    "dmirror_migrate_finalize_and_map",
    "dmirror_migrate_to_device",
    "dmirror_migrate_to_system",
    "dmirror_mkentry",
    "dmirror_page_to_chunk",
    "dmirror_page_to_device",
    "dmirror_range_fault",
    "dmirror_range_snapshot",
    "dmirror_read",
    "dmirror_remove_free_pages",
    "dmirror_select_device",
    "dmirror_snapshot",
    "dmirror_snapshot_invalidate",
    "dmirror_successful_migrated_pages",
    "dmirror_write",
]


def _to_dmirror(interval_sub: MmuIntervalNotifier) -> Dmirror:
    """``container_of(mni, struct dmirror, notifier)`` (MODEL: back-pointer)."""
    container = interval_sub.container
    assert isinstance(container, Dmirror), "[hmmsim internal bug] not a dmirror"
    return container


async def dmirror_do_update(dmirror: Dmirror, start: int, end: int) -> None:
    """Erase the device entries of [start, end).

    Kernel: lib/test_hmm.c dmirror_do_update() (v6.16).  The table holds no page
    references: the notifier clears stale entries.
    """
    for addr, _ in dmirror.pt.mapped():
        if start <= addr < end:
            await device_pte_clear(dmirror.pt, addr)


async def dmirror_interval_invalidate(
    mni: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """The interval notifier callback: bump the sequence and zap the range.

    Kernel: lib/test_hmm.c dmirror_interval_invalidate() (v6.16).

    Returns:
        True once done; False only for a non-blockable range whose mutex is
        taken.
    """
    dmirror = _to_dmirror(mni)

    # The device's own migration invalidates nothing here: the migration
    # itself updates the device page table (finalize_and_map, or the erase
    # in dmirror_devmem_fault_alloc_and_copy).
    if range.event is MMU_NOTIFY_MIGRATE and range.owner is dmirror.mdevice:
        trace("dmirror_interval_invalidate", dmirror=dmirror.name, ret=True)
        return True

    if mmu_notifier_range_blockable(range):
        await mutex_lock(dmirror.mutex)
    elif not await mutex_trylock(dmirror.mutex):
        trace("dmirror_interval_invalidate", dmirror=dmirror.name, ret=False)
        return False

    await mmu_interval_set_seq(mni, cur_seq)
    await dmirror_do_update(dmirror, range.start, range.end)

    await mutex_unlock(dmirror.mutex)
    trace("dmirror_interval_invalidate", dmirror=dmirror.name, ret=True)
    return True


DMIRROR_MIN_OPS: Final = StaticMmuIntervalNotifierOps(
    invalidate=dmirror_interval_invalidate
)


async def dmirror_fops_open(dmirror: Dmirror, mm: MmStruct) -> int:
    """open(): mirror the caller's address space.

    Kernel: lib/test_hmm.c dmirror_fops_open() (v6.16).  MODEL: the dmirror is
    allocated by the caller and ``mm`` is current->mm.

    Returns:
        0 or the error of mmu_interval_notifier_insert.
    """
    ret = await mmu_interval_notifier_insert(
        dmirror.notifier, mm, 0, ULONG_MAX & PAGE_MASK, DMIRROR_MIN_OPS
    )
    if ret:
        kfree(dmirror)
        return ret
    return 0


async def dmirror_fops_release(dmirror: Dmirror) -> None:
    """close(): stop mirroring and free the dmirror.

    Kernel: lib/test_hmm.c dmirror_fops_release() (v6.16).  MODEL: the
    device page table's entries are dropped first (xa_destroy comes after the
    remove in C, but no ioctl can read the table of a released file, so the
    device maps nothing from here on).
    """
    for addr, _ in dmirror.pt.mapped():
        await device_pte_clear(dmirror.pt, addr)
    await mmu_interval_notifier_remove(dmirror.notifier)
    # xa_destroy: MODEL: done above.
    # MODEL: kfree touches the embedded notifier (an Op) and marks it freed.
    await shared_access(dmirror.notifier, write=True, func="kfree")
    kfree(dmirror.notifier)
    kfree(dmirror)
    trace("dmirror_fops_release", dmirror=dmirror.name)


async def dmirror_do_fault(dmirror: Dmirror, range: HmmRange) -> int:
    """Store the pages hmm_range_fault found into the device page table.

    Kernel: lib/test_hmm.c dmirror_do_fault() (v6.16, mutex held).

    Returns:
        0, or -EFAULT if a read-only page came back for a write request.
    """
    addr = range.start
    for entry in range.hmm_pfns:
        # hmm_range_fault was asked to populate every page: on success no
        # entry may be an error or invalid.
        WARN_ON(bool(entry & HMM_PFN_ERROR), "HMM_PFN_ERROR after a fault")
        WARN_ON(not entry & HMM_PFN_VALID, "invalid entry after a fault")

        # MODEL: the C converts whatever the entry holds; an invalid one has
        # no page in the model.
        page = hmm_pfn_to_page(entry) if entry & HMM_PFN_VALID else None
        WARN_ON(page is None, "no page after a fault")

        write = bool(entry & HMM_PFN_WRITE)
        if not write and WARN_ON(
            bool(range.default_flags & HMM_PFN_WRITE),
            "read-only page for a write fault",
        ):
            return -errno.EFAULT
        if page is None:
            # MODEL: xa_store of NULL erases the entry.
            await device_pte_clear(dmirror.pt, addr)
        else:
            await device_pte_set(dmirror.pt, addr, page, write)
        addr += PAGE_SIZE
    return 0


async def dmirror_range_fault(
    dmirror: Dmirror, range: HmmRange, max_retries: int = DMIRROR_RANGE_FAULT_RETRIES
) -> int:
    """Fault [range.start, range.end) into the device page table.

    Kernel: lib/test_hmm.c dmirror_range_fault() (v6.16): read_begin,
    hmm_range_fault under mmap_read_lock (-EBUSY: again), then read_retry
    under the driver mutex before programming the device.

    Returns:
        0, -EBUSY after ``max_retries`` retries (MODEL: the timeout), or the
        error of hmm_range_fault / dmirror_do_fault.
    """
    notifier = range.notifier
    assert notifier is not None, "[hmmsim internal bug] range without notifier"
    assert notifier.mm is not None, "[hmmsim internal bug] notifier not inserted"
    mm = notifier.mm
    attempts = 0

    while True:
        # MODEL: the jiffies timeout is a retry bound.
        if attempts > max_retries:
            ret = -errno.EBUSY
            trace("dmirror_range_fault", dmirror=dmirror.name, ret=ret)
            return ret  # goto out
        attempts += 1

        range.notifier_seq = await mmu_interval_read_begin(notifier)
        await down_read(mm.mmap_sem)
        ret = await hmm_range_fault(range)
        await up_read(mm.mmap_sem)
        if ret:
            if ret == -errno.EBUSY:
                continue
            trace("dmirror_range_fault", dmirror=dmirror.name, ret=ret)
            return ret  # goto out

        await mutex_lock(dmirror.mutex)
        if mmu_interval_read_retry(notifier, range.notifier_seq):
            await mutex_unlock(dmirror.mutex)
            continue
        break

    ret = await dmirror_do_fault(dmirror, range)

    await mutex_unlock(dmirror.mutex)
    trace("dmirror_range_fault", dmirror=dmirror.name, ret=ret)
    return ret


async def dmirror_fault(
    dmirror: Dmirror,
    start: int,
    end: int,
    write: bool,
    max_retries: int = DMIRROR_RANGE_FAULT_RETRIES,
) -> int:
    """Fault [start, end) for the device, for read or write.

    Kernel: lib/test_hmm.c dmirror_fault() (v6.16).  MODEL: one chunk (no
    split by the size of the on-stack pfn array).  Like the C, a dead mm
    gives 0 without mapping anything.

    Returns:
        0 or the error of dmirror_range_fault.
    """
    mm = dmirror.notifier.mm
    assert mm is not None, "[hmmsim internal bug] dmirror not opened"
    range = HmmRange(
        name=f"{dmirror.name}->range",
        notifier=dmirror.notifier,
        start=start,
        end=end,
        hmm_pfns=[0] * ((end - start) >> PAGE_SHIFT),
        pfn_flags_mask=0,
        default_flags=HMM_PFN_REQ_FAULT | (HMM_PFN_REQ_WRITE if write else 0),
        dev_private_owner=dmirror.mdevice,
    )

    # The mm is the mirrored process's: pin it first.
    if not await mmget_not_zero(mm):
        return 0

    ret = await dmirror_range_fault(dmirror, range, max_retries)

    await mmput(mm)
    return ret


async def dmirror_do_read(
    dmirror: Dmirror, start: int, end: int, bounce: DmirrorBounce
) -> int:
    """Copy [start, end) out of the device into the command buffer (mutex held).

    Kernel: lib/test_hmm.c dmirror_do_read() (v6.16).

    Returns:
        0, or -ENOENT at the first page the device does not map.
    """
    addr = start
    while addr < end:
        value = await device_access(dmirror.pt, addr, False)
        if value is None:
            return -errno.ENOENT
        bounce.ptr[(addr - bounce.addr) >> PAGE_SHIFT] = value
        addr += PAGE_SIZE
        bounce.cpages += 1
    return 0


async def dmirror_read(
    dmirror: Dmirror,
    cmd: HmmDmirrorCmd,
    max_retries: int = DMIRROR_RANGE_FAULT_RETRIES,
) -> int:
    """HMM_DMIRROR_READ: read through the device, faulting as needed.

    Kernel: lib/test_hmm.c dmirror_read() (v6.16).

    Returns:
        0 or a negative errno (from the fault).
    """
    start = cmd.addr
    end = start + (cmd.npages << PAGE_SHIFT)
    if end < start:
        return -errno.EINVAL
    bounce = DmirrorBounce(ptr=[0] * cmd.npages, addr=start)  # dmirror_bounce_init

    while True:
        await mutex_lock(dmirror.mutex)
        ret = await dmirror_do_read(dmirror, start, end, bounce)
        await mutex_unlock(dmirror.mutex)
        if ret != -errno.ENOENT:
            break

        start = cmd.addr + (bounce.cpages << PAGE_SHIFT)
        ret = await dmirror_fault(dmirror, start, end, False, max_retries)
        if ret:
            break
        cmd.faults += 1

    if ret == 0:
        cmd.ptr = list(bounce.ptr)  # copy_to_user
    cmd.cpages = bounce.cpages
    return ret


async def dmirror_do_write(
    dmirror: Dmirror, start: int, end: int, bounce: DmirrorBounce
) -> int:
    """Copy the command buffer into [start, end) through the device (mutex held).

    Kernel: lib/test_hmm.c dmirror_do_write() (v6.16).

    Returns:
        0, or -ENOENT at the first page the device does not map writable.
    """
    addr = start
    while addr < end:
        value = bounce.ptr[(addr - bounce.addr) >> PAGE_SHIFT]
        if await device_access(dmirror.pt, addr, True, value) is None:
            return -errno.ENOENT
        addr += PAGE_SIZE
        bounce.cpages += 1
    return 0


async def dmirror_write(
    dmirror: Dmirror,
    cmd: HmmDmirrorCmd,
    max_retries: int = DMIRROR_RANGE_FAULT_RETRIES,
) -> int:
    """HMM_DMIRROR_WRITE: write through the device, faulting as needed.

    Kernel: lib/test_hmm.c dmirror_write() (v6.16).

    Returns:
        0 or a negative errno (from the fault).
    """
    start = cmd.addr
    end = start + (cmd.npages << PAGE_SHIFT)
    if end < start:
        return -errno.EINVAL
    bounce = DmirrorBounce(ptr=list(cmd.ptr), addr=start)  # + copy_from_user

    while True:
        await mutex_lock(dmirror.mutex)
        ret = await dmirror_do_write(dmirror, start, end, bounce)
        await mutex_unlock(dmirror.mutex)
        if ret != -errno.ENOENT:
            break

        start = cmd.addr + (bounce.cpages << PAGE_SHIFT)
        ret = await dmirror_fault(dmirror, start, end, True, max_retries)
        if ret:
            break
        cmd.faults += 1

    # fini:
    cmd.cpages = bounce.cpages
    return ret


def dmirror_mkentry(dmirror: Dmirror, range: HmmRange, entry: int) -> int:
    """Return the HMM_DMIRROR_PROT_* code of one snapshot entry.

    Kernel: lib/test_hmm.c dmirror_mkentry() (v6.16).  MODEL: returns the
    code (the C writes it through a pointer); no device-coherent pages and
    no huge mappings (see Deviations).
    """
    del range
    if entry & HMM_PFN_ERROR:
        return HMM_DMIRROR_PROT_ERROR
    if not entry & HMM_PFN_VALID:
        return HMM_DMIRROR_PROT_NONE

    page = hmm_pfn_to_page(entry)
    if is_device_private_page(page):
        # Migrated to this device, or to another one?
        if dmirror.mdevice is dmirror_page_to_device(page):
            perm = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL
        else:
            perm = HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE
    elif is_zero_pfn(page.pfn):
        perm = HMM_DMIRROR_PROT_ZERO
    else:
        perm = HMM_DMIRROR_PROT_NONE
    if entry & HMM_PFN_WRITE:
        perm |= HMM_DMIRROR_PROT_WRITE
    else:
        perm |= HMM_DMIRROR_PROT_READ
    return perm


async def dmirror_snapshot_invalidate(
    mni: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """Callback of the temporary snapshot notifier: only bump the sequence.

    Kernel: lib/test_hmm.c dmirror_snapshot_invalidate() (v6.16).  Any invalidation
    in the interval spoils the whole snapshot, nothing is mapped to zap.
    """
    dmi = mni.container
    assert isinstance(dmi, DmirrorInterval), "[hmmsim internal bug] not a dmi"
    dmirror = dmi.dmirror

    if mmu_notifier_range_blockable(range):
        await mutex_lock(dmirror.mutex)
    elif not await mutex_trylock(dmirror.mutex):
        return False

    await mmu_interval_set_seq(mni, cur_seq)

    await mutex_unlock(dmirror.mutex)
    return True


DMIRROR_MRN_OPS: Final = StaticMmuIntervalNotifierOps(
    invalidate=dmirror_snapshot_invalidate
)


async def dmirror_range_snapshot(
    dmirror: Dmirror,
    range: HmmRange,
    perm: list[int],
    max_retries: int = DMIRROR_RANGE_FAULT_RETRIES,
) -> int:
    """Snapshot one chunk under a temporary interval notifier.

    Kernel: lib/test_hmm.c dmirror_range_snapshot() (v6.16).

    Returns:
        0, -EBUSY after ``max_retries`` retries, or the error of the insert
        or of hmm_range_fault.
    """
    mm = dmirror.notifier.mm
    assert mm is not None
    notifier = DmirrorInterval(dmirror=dmirror)
    range.notifier = notifier.notifier

    ret = await mmu_interval_notifier_insert(
        range.notifier, mm, range.start, range.end - range.start, DMIRROR_MRN_OPS
    )
    if ret:
        return ret

    attempts = 0
    while True:
        if attempts > max_retries:
            ret = -errno.EBUSY
            break  # goto out
        attempts += 1

        range.notifier_seq = await mmu_interval_read_begin(range.notifier)

        await down_read(mm.mmap_sem)
        ret = await hmm_range_fault(range)
        await up_read(mm.mmap_sem)
        if ret:
            if ret == -errno.EBUSY:
                continue
            break  # goto out

        await mutex_lock(dmirror.mutex)
        if mmu_interval_read_retry(range.notifier, range.notifier_seq):
            await mutex_unlock(dmirror.mutex)
            continue

        n = (range.end - range.start) >> PAGE_SHIFT
        for i, entry in enumerate(range.hmm_pfns[:n]):
            perm[i] = dmirror_mkentry(dmirror, range, entry)

        await mutex_unlock(dmirror.mutex)
        ret = 0
        break

    # out:
    await mmu_interval_notifier_remove(range.notifier)
    return ret


async def dmirror_snapshot(
    dmirror: Dmirror,
    cmd: HmmDmirrorCmd,
    max_retries: int = DMIRROR_RANGE_FAULT_RETRIES,
) -> int:
    """HMM_DMIRROR_SNAPSHOT: per-page codes of the CPU page table.

    Kernel: lib/test_hmm.c dmirror_snapshot() (one chunk, MODEL).

    Returns:
        0, -EINVAL (bad range or dead mm), or the error of the snapshot.
    """
    mm = dmirror.notifier.mm
    assert mm is not None
    start = cmd.addr
    end = start + (cmd.npages << PAGE_SHIFT)
    if end < start:
        return -errno.EINVAL

    # The mm is the mirrored process's: pin it first.
    if not await mmget_not_zero(mm):
        return -errno.EINVAL

    # default_flags 0: report the page tables, fault nothing in.
    range = HmmRange(
        name=f"{dmirror.name}->snapshot",
        start=start,
        end=end,
        hmm_pfns=[0] * cmd.npages,
        dev_private_owner=dmirror.mdevice,
    )
    perm = [0] * cmd.npages
    ret = await dmirror_range_snapshot(dmirror, range, perm, max_retries)
    if not ret:
        cmd.ptr = perm
        cmd.cpages += cmd.npages
    await mmput(mm)
    return ret


# -- device memory and migration (lib/test_hmm.c, v6.16) -------------------------

#: MODEL: pages per device-memory chunk (DEVMEM_CHUNK_SIZE is 256 MiB in C).
DEVMEM_CHUNK_PAGES: Final = 8

#: lib/test_hmm_uapi.h: the zone type of a dmirror device.
HMM_DMIRROR_MEMORY_DEVICE_PRIVATE: Final = 1

# Snapshot codes of device-private pages (lib/test_hmm_uapi.h).
HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL: Final = 0x20
HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE: Final = 0x30


@dataclass(slots=True, kw_only=True, eq=False)
class DmirrorChunk:
    """Models ``struct dmirror_chunk``: one dev_pagemap of device memory.

    Attributes:
        pagemap: the ZONE_DEVICE page map (device-private pages).
        mdevice: the device the chunk belongs to.
        remove: set while the chunk is being torn down (HMM_DMIRROR_RELEASE).
    """

    pagemap: DevPagemap
    mdevice: DmirrorDevice
    remove: bool = False


@dataclass(slots=True, kw_only=True, eq=False)
class DmirrorDevice:
    """Models ``struct dmirror_device``: the device and its memory allocator.

    Attributes:
        name: name used in reports (``hmm_dmirror0``).
        zone_device_type: HMM_DMIRROR_MEMORY_DEVICE_PRIVATE (the only one
            modelled).
        devmem_chunks: the chunks of device memory (``devmem_count`` is its
            length; MODEL: a list, no capacity).
        devmem_lock: protects the chunk list.
        calloc: pages handed out.
        cfree: pages given back (page_free).
        free_pages: free device pages (MODEL: a list used as a LIFO stack;
            the C threads them through ``zone_device_data``).
        lock: protects calloc, cfree and free_pages.
        max_chunks: MODEL: bound on the chunks (device memory is finite);
            a further allocation fails.
    """

    name: str
    zone_device_type: int = HMM_DMIRROR_MEMORY_DEVICE_PRIVATE
    devmem_chunks: list[DmirrorChunk] = field(default_factory=list)
    devmem_lock: Mutex = field(init=False)
    calloc: int = 0
    cfree: int = 0
    free_pages: list[Page] = field(default_factory=list)
    lock: SpinLock = field(init=False)
    max_chunks: int = 1
    oid: int = field(default_factory=new_oid)

    def __post_init__(self) -> None:
        """mutex_init and spin_lock_init (dmirror_device_init)."""
        self.devmem_lock = Mutex(
            f"{self.name}->devmem_lock", lockdep_class="dmirror_device->devmem_lock"
        )
        self.lock = SpinLock(f"{self.name}->lock", lockdep_class="dmirror_device->lock")

    def holders(self) -> tuple[int, ...]:
        """The device has no holders (its locks do)."""
        return ()


def dmirror_is_private_zone(mdevice: DmirrorDevice) -> bool:
    """Return whether the device's memory is device-private (always, MODEL).

    Kernel: lib/test_hmm.c dmirror_is_private_zone() (v6.16).
    """
    return mdevice.zone_device_type == HMM_DMIRROR_MEMORY_DEVICE_PRIVATE


def dmirror_select_device(dmirror: Dmirror) -> int:
    """Return the MIGRATE_VMA_SELECT_* flag for the device's memory type.

    Kernel: lib/test_hmm.c dmirror_select_device() (v6.16; MODEL: private only).
    """
    del dmirror
    return MIGRATE_VMA_SELECT_DEVICE_PRIVATE


def _mdevice(dmirror: Dmirror) -> DmirrorDevice:
    mdevice = dmirror.mdevice
    assert isinstance(mdevice, DmirrorDevice), "[hmmsim internal bug] no mdevice"
    return mdevice


def dmirror_page_to_chunk(page: Page) -> DmirrorChunk:
    """``container_of(page_pgmap(page), struct dmirror_chunk, pagemap)``.

    Kernel: lib/test_hmm.c dmirror_page_to_chunk() (v6.16).  MODEL: the
    chunk embedding the page map is found among its owner's chunks (the
    page map's ``owner`` is the device).
    """
    pgmap = page_pgmap(page)
    mdevice = pgmap.owner
    assert isinstance(mdevice, DmirrorDevice), (
        "[hmmsim internal bug] not a dmirror page"
    )
    for chunk in mdevice.devmem_chunks:
        if chunk.pagemap is pgmap:
            return chunk
    raise AssertionError(  # pragma: no cover - memremapped chunks stay listed
        "[hmmsim internal bug] dmirror page of no chunk"
    )


def dmirror_page_to_device(page: Page) -> DmirrorDevice:
    """Return the dmirror device a device-private page belongs to.

    Kernel: lib/test_hmm.c dmirror_page_to_device() (v6.16).
    """
    return dmirror_page_to_chunk(page).mdevice


def BACKING_PAGE(page: Page) -> Page:
    """Return the system page that holds a device page's data (the fake device memory).

    Kernel: lib/test_hmm.c BACKING_PAGE() (v6.16): ``zone_device_data`` of a
    device-private page, the page itself for a coherent one.
    """
    if is_device_private_page(page):
        backing = page.zone_device_data
        assert isinstance(backing, Page), "[hmmsim internal bug] no backing page"
        return backing
    return page  # pragma: no cover - MODEL: no device-coherent memory


async def dmirror_allocate_chunk(
    mdevice: DmirrorDevice, ppage: list[Page] | None
) -> int:
    """Add a chunk of device-private memory; hand its first page out if asked.

    Kernel: lib/test_hmm.c dmirror_allocate_chunk() (v6.16).  MODEL:
    ``ppage`` is a one-element out list (the C's ``struct page **``); the
    chunk has DEVMEM_CHUNK_PAGES pages and no physical address range
    (request_free_mem_region always succeeds); ``max_chunks`` bounds them.

    Returns:
        0, or -ENOMEM when no more device memory can be added.
    """
    pagemap = DevPagemap(
        name=f"{mdevice.name}.chunk{len(mdevice.devmem_chunks)}",
        type=MEMORY_DEVICE_PRIVATE,
        ops=DMIRROR_DEVMEM_OPS,
        owner=mdevice,
        nr_pages=DEVMEM_CHUNK_PAGES,
    )
    devmem = DmirrorChunk(pagemap=pagemap, mdevice=mdevice)

    await mutex_lock(mdevice.devmem_lock)

    if len(mdevice.devmem_chunks) >= mdevice.max_chunks:
        # MODEL: the device is full (krealloc / request_free_mem_region fail).
        await mutex_unlock(mdevice.devmem_lock)  # err_release
        return -errno.ENOMEM

    ret = memremap_pages(pagemap, 0)  # numa_node_id()
    if ret:  # pragma: no cover - the ops and owner are always set
        await mutex_unlock(mdevice.devmem_lock)  # err_release
        return ret
    mdevice.devmem_chunks.append(devmem)

    await mutex_unlock(mdevice.devmem_lock)

    await spin_lock(mdevice.lock)
    for page in pagemap.pages:
        mdevice.free_pages.append(page)
    if ppage is not None:
        ppage.append(mdevice.free_pages.pop())
        mdevice.calloc += 1
    await spin_unlock(mdevice.lock)
    return 0


async def dmirror_devmem_alloc_page(mdevice: DmirrorDevice) -> Page | None:
    """Allocate one device-private page, backed by a system page, locked.

    Kernel: lib/test_hmm.c dmirror_devmem_alloc_page() (v6.16): the fake
    device keeps the data in a system page (``zone_device_data``);
    zone_device_page_init sets the count to one and locks the page.

    Returns:
        The device page, or None when memory runs out.
    """
    rpage: Page | None = None

    # A fake device: its memory is system memory.
    if dmirror_is_private_zone(mdevice):
        rpage = await alloc_page(GFP_HIGHUSER_MOVABLE)
        if rpage is None:
            return None
    await spin_lock(mdevice.lock)

    dpage: Page | None = None
    if mdevice.free_pages:
        dpage = mdevice.free_pages.pop()
        mdevice.calloc += 1
        await spin_unlock(mdevice.lock)
    else:
        await spin_unlock(mdevice.lock)
        out: list[Page] = []
        if await dmirror_allocate_chunk(mdevice, out):
            if rpage is not None:  # error:
                await put_page(rpage)  # __free_page
            return None
        dpage = out[0]

    await zone_device_page_init(dpage)
    dpage.zone_device_data = rpage
    return dpage


async def copy_highpage(to: Page, from_: Page) -> None:
    """Copy one page's data (MODEL: the word; an Op reading ``from_``, writing ``to``).

    Kernel: include/linux/highmem.h copy_highpage().
    """
    await shared_access(from_, to, write=True, func="copy_highpage")
    to.contents = from_.contents


async def clear_highpage(page: Page) -> None:
    """Zero one page (MODEL: its word).

    Kernel: include/linux/highmem.h clear_highpage().
    """
    await shared_access(page, write=True, func="clear_highpage")
    page.contents = 0


async def dmirror_migrate_alloc_and_copy(args: MigrateVma, dmirror: Dmirror) -> None:
    """Allocate a device page for each collected page and copy the data into it.

    Kernel: lib/test_hmm.c dmirror_migrate_alloc_and_copy() (v6.16).  An
    empty or zero-page entry (no source page) gets a zeroed device page.
    """
    mdevice = _mdevice(dmirror)
    vma = args.vma
    assert vma is not None
    addr = args.start
    i = 0
    while addr < args.end:
        src = args.src[i]
        if not src & MIGRATE_PFN_MIGRATE:
            addr += PAGE_SIZE
            i += 1
            continue

        # spage may be None: an empty PTE or the read-only zero page.
        spage = migrate_pfn_to_page(src)
        if WARN_ON(
            spage is not None and is_zone_device_page(spage),
            "page already in device spage",
        ):
            addr += PAGE_SIZE
            i += 1
            continue

        dpage = await dmirror_devmem_alloc_page(mdevice)
        if dpage is None:
            addr += PAGE_SIZE
            i += 1
            continue

        rpage = BACKING_PAGE(dpage)
        if spage is not None:
            await copy_highpage(rpage, spage)
        else:
            await clear_highpage(rpage)

        # The backing page points to the mirror (a real device would use the
        # device page's zone_device_data for that).
        rpage.zone_device_data = dmirror

        args.dst[i] = migrate_pfn(dpage.pfn)
        if src & MIGRATE_PFN_WRITE or (spage is None and vma.vm_flags & VM_WRITE):
            args.dst[i] |= MIGRATE_PFN_WRITE
        addr += PAGE_SIZE
        i += 1


async def dmirror_migrate_finalize_and_map(args: MigrateVma, dmirror: Dmirror) -> int:
    """Map the migrated pages' backing pages into the device page table.

    Kernel: lib/test_hmm.c dmirror_migrate_finalize_and_map() (v6.16).

    Returns:
        0.
    """
    await mutex_lock(dmirror.mutex)

    addr = args.start
    i = 0
    while addr < args.end:
        if args.src[i] & MIGRATE_PFN_MIGRATE:
            dpage = migrate_pfn_to_page(args.dst[i])
            if dpage is not None:
                # Store the page holding the data, so the device page table
                # never holds a device-private page.
                entry = BACKING_PAGE(dpage)
                await device_pte_set(
                    dmirror.pt, addr, entry, bool(args.dst[i] & MIGRATE_PFN_WRITE)
                )
        addr += PAGE_SIZE
        i += 1

    await mutex_unlock(dmirror.mutex)
    return 0


def _vma_lookup(mm: MmStruct, addr: int) -> VmAreaStruct | None:
    """include/linux/mm.h vma_lookup(): the VMA containing ``addr``, or None."""
    vma = find_vma(mm, addr)
    if vma is None or addr < vma.vm_start:
        return None
    return vma


async def dmirror_migrate_to_device(dmirror: Dmirror, cmd: HmmDmirrorCmd) -> int:
    """HMM_DMIRROR_MIGRATE_TO_DEV: migrate [addr, addr + npages) to device memory.

    Kernel: lib/test_hmm.c dmirror_migrate_to_device() (v6.16): setup with
    MIGRATE_VMA_SELECT_SYSTEM, alloc_and_copy, pages, finalize_and_map,
    finalize, then a device read of the range for verification.  MODEL: one
    chunk per VMA (no 64-page split).

    Returns:
        0, -EINVAL (bad range, dead mm, no readable VMA), the error of
        migrate_vma_setup, or -ENOENT when a page did not reach the device.
    """
    start = cmd.addr
    end = start + (cmd.npages << PAGE_SHIFT)
    mm = dmirror.notifier.mm
    assert mm is not None
    if end < start:
        return -errno.EINVAL

    # The mm is the mirrored process's: pin it first.
    if not await mmget_not_zero(mm):
        return -errno.EINVAL

    await down_read(mm.mmap_sem)
    addr = start
    while addr < end:
        vma = _vma_lookup(mm, addr)
        if vma is None or not vma.vm_flags & VM_READ:
            ret = -errno.EINVAL
            await up_read(mm.mmap_sem)  # out:
            await mmput(mm)
            return ret
        next = min(end, vma.vm_end)
        n = (next - addr) >> PAGE_SHIFT
        args = MigrateVma(
            vma=vma,
            src=[0] * n,
            dst=[0] * n,
            start=addr,
            end=next,
            pgmap_owner=dmirror.mdevice,
            flags=MIGRATE_VMA_SELECT_SYSTEM,
        )
        ret = await migrate_vma_setup(args)
        if ret:
            await up_read(mm.mmap_sem)  # out:
            await mmput(mm)
            return ret

        await dmirror_migrate_alloc_and_copy(args, dmirror)
        await migrate_vma_pages(args)
        await dmirror_migrate_finalize_and_map(args, dmirror)
        await migrate_vma_finalize(args)
        addr = next
    await up_read(mm.mmap_sem)
    await mmput(mm)

    # Read the range back through the device for verification (only pages
    # now in device memory are mapped there).
    bounce = DmirrorBounce(ptr=[0] * cmd.npages, addr=start)  # dmirror_bounce_init
    await mutex_lock(dmirror.mutex)
    ret = await dmirror_do_read(dmirror, start, end, bounce)
    await mutex_unlock(dmirror.mutex)
    if ret == 0:
        cmd.ptr = list(bounce.ptr)  # copy_to_user
    cmd.cpages = bounce.cpages
    trace("dmirror_migrate_to_device", dmirror=dmirror.name, ret=ret)
    return ret


async def dmirror_devmem_fault_alloc_and_copy(
    args: MigrateVma, dmirror: Dmirror
) -> int:
    """Allocate a system page for each collected device page and copy back.

    Kernel: lib/test_hmm.c dmirror_devmem_fault_alloc_and_copy() (v6.16).
    The device's mapping of the page is erased first (that is the device
    side of the migration: no invalidation reaches this driver for it).

    Returns:
        0 (vm_fault_t).
    """
    vma = args.vma
    assert vma is not None
    addr = args.start
    i = 0
    while addr < args.end:
        src = args.src[i]
        spage = migrate_pfn_to_page(src)
        if spage is None or not src & MIGRATE_PFN_MIGRATE:
            addr += PAGE_SIZE
            i += 1
            continue

        if WARN_ON(not is_device_private_page(spage), "not a device page"):
            addr += PAGE_SIZE
            i += 1
            continue
        spage = BACKING_PAGE(spage)
        dpage = await alloc_page(GFP_HIGHUSER_MOVABLE)  # alloc_page_vma
        if dpage is None:
            addr += PAGE_SIZE
            i += 1
            continue

        await lock_page(dpage)
        await device_pte_clear(dmirror.pt, addr)  # xa_erase
        await copy_highpage(dpage, spage)
        args.dst[i] = migrate_pfn(dpage.pfn)
        if src & MIGRATE_PFN_WRITE:
            args.dst[i] |= MIGRATE_PFN_WRITE
        addr += PAGE_SIZE
        i += 1
    return 0


def dmirror_successful_migrated_pages(migrate: MigrateVma) -> int:
    """Count the entries that were migrated (VALID and MIGRATE in src).

    Kernel: lib/test_hmm.c dmirror_successful_migrated_pages() (v6.16).
    """
    return sum(
        1
        for i in range(migrate.npages)
        if migrate.src[i] & MIGRATE_PFN_VALID and migrate.src[i] & MIGRATE_PFN_MIGRATE
    )


async def dmirror_migrate_to_system(dmirror: Dmirror, cmd: HmmDmirrorCmd) -> int:
    """HMM_DMIRROR_MIGRATE_TO_SYS: migrate the device pages of a range back.

    Kernel: lib/test_hmm.c dmirror_migrate_to_system() (v6.16).  MODEL: one
    chunk per VMA.

    Returns:
        0 (``cmd.cpages`` = pages migrated), -EINVAL, or the error of
        migrate_vma_setup.
    """
    start = cmd.addr
    end = start + (cmd.npages << PAGE_SHIFT)
    mm = dmirror.notifier.mm
    assert mm is not None
    ret = 0
    if end < start:
        return -errno.EINVAL

    # The mm is the mirrored process's: pin it first.
    if not await mmget_not_zero(mm):
        return -errno.EINVAL

    cmd.cpages = 0
    await down_read(mm.mmap_sem)
    addr = start
    while addr < end:
        vma = _vma_lookup(mm, addr)
        if vma is None or not vma.vm_flags & VM_READ:
            ret = -errno.EINVAL
            break  # goto out
        next = min(end, vma.vm_end)
        n = (next - addr) >> PAGE_SHIFT
        args = MigrateVma(
            vma=vma,
            src=[0] * n,
            dst=[0] * n,
            start=addr,
            end=next,
            pgmap_owner=dmirror.mdevice,
            flags=dmirror_select_device(dmirror),
        )
        ret = await migrate_vma_setup(args)
        if ret:
            break  # goto out

        await dmirror_devmem_fault_alloc_and_copy(args, dmirror)
        await migrate_vma_pages(args)
        cmd.cpages += dmirror_successful_migrated_pages(args)
        await migrate_vma_finalize(args)
        addr = next
    # out:
    await up_read(mm.mmap_sem)
    await mmput(mm)
    return ret


async def dmirror_devmem_free(page: Page) -> None:
    """``page_free``: a device page's last reference is gone; take it back.

    Kernel: lib/test_hmm.c dmirror_devmem_free() (v6.16): the backing page
    is freed and the device page returns to the free list (unless its chunk
    is being removed).
    """
    rpage = BACKING_PAGE(page)
    if rpage is not page:
        await put_page(rpage)  # __free_page

    mdevice = dmirror_page_to_device(page)
    await spin_lock(mdevice.lock)

    # Back to the allocator, unless the chunk is going away.
    if not dmirror_page_to_chunk(page).remove:
        mdevice.cfree += 1
        page.zone_device_data = None
        mdevice.free_pages.append(page)
    await spin_unlock(mdevice.lock)
    trace("dmirror_devmem_free", device=mdevice.name, page=page.pfn)


async def dmirror_devmem_fault(vmf: VmFaultStruct) -> VmFault:
    """``migrate_to_ram``: a CPU touched a device page; migrate it back.

    Kernel: lib/test_hmm.c dmirror_devmem_fault() (v6.16): one page, from
    the faulting address, with SELECT_DEVICE_PRIVATE and the device as
    ``pgmap_owner``; ``fault_page`` is the page do_swap_page locked.

    Returns:
        0, or VM_FAULT_SIGBUS when migrate_vma_setup fails.
    """
    # The device page's backing page points at the mirror.
    page = vmf.page
    assert page is not None
    rpage = BACKING_PAGE(page)
    dmirror = rpage.zone_device_data
    assert isinstance(dmirror, Dmirror), "[hmmsim internal bug] no mirror"

    args = MigrateVma(
        vma=vmf.vma,
        start=vmf.address,
        end=vmf.address + PAGE_SIZE,
        src=[0],
        dst=[0],
        pgmap_owner=dmirror.mdevice,
        flags=dmirror_select_device(dmirror),
        # 16ce101db85d added fault_page (the page do_swap_page references
        # and, since 1afaeb8293c9, locks); with that commit reverted the
        # field does not exist yet: the fault holds nothing on the page.
        fault_page=page if fix_applied(vmf.vma.vm_mm, "16ce101db85d") else None,
    )

    if await migrate_vma_setup(args):
        return VM_FAULT_SIGBUS

    ret = await dmirror_devmem_fault_alloc_and_copy(args, dmirror)
    if ret:  # pragma: no cover - alloc_and_copy always returns 0
        return VmFault(ret)
    await migrate_vma_pages(args)
    # No device-side finalize: alloc_and_copy already erased the device
    # page-table entries.
    await migrate_vma_finalize(args)
    return VmFault(0)


class _DmirrorDevmemOps:
    """``static const struct dev_pagemap_ops dmirror_devmem_ops``."""

    async def page_free(self, page: Page) -> None:
        """``.page_free = dmirror_devmem_free``."""
        await dmirror_devmem_free(page)

    async def migrate_to_ram(self, vmf: VmFaultStruct) -> VmFault:
        """``.migrate_to_ram = dmirror_devmem_fault``."""
        return await dmirror_devmem_fault(vmf)


DMIRROR_DEVMEM_OPS: Final = _DmirrorDevmemOps()


async def dmirror_device_init(mdevice: DmirrorDevice) -> int:
    """Build the device's first chunk of free device pages.

    Kernel: lib/test_hmm.c dmirror_device_init() (v6.16; MODEL: no cdev).

    Returns:
        0, or the error of dmirror_allocate_chunk.
    """
    return await dmirror_allocate_chunk(mdevice, None)


async def dmirror_device_evict_chunk(chunk: DmirrorChunk) -> None:
    """Move every page of ``chunk`` still in use back to system memory.

    Kernel: lib/test_hmm.c dmirror_device_evict_chunk() (v6.16): the pages
    are found by pfn (migrate_device_range), each gets a locked system page
    with a copy of its data, then migrate_device_pages and
    migrate_device_finalize point the CPU mappings at the copies; the
    device pages are freed by their last put (dmirror_devmem_free, which
    keeps them off the free list since the chunk is being removed).
    """
    pagemap_range = chunk.pagemap.range
    assert pagemap_range is not None, "[hmmsim internal bug] chunk not memremapped"
    start_pfn = pagemap_range.start >> PAGE_SHIFT
    end_pfn = pagemap_range.end >> PAGE_SHIFT
    npages = end_pfn - start_pfn + 1

    src_pfns = [0] * npages  # kvcalloc(__GFP_NOFAIL)
    dst_pfns = [0] * npages

    await migrate_device_range(src_pfns, start_pfn, npages)
    for i in range(npages):
        spage = migrate_pfn_to_page(src_pfns[i])
        if spage is None or not src_pfns[i] & MIGRATE_PFN_MIGRATE:
            continue

        if WARN_ON(not is_device_private_page(spage), "evicting a non-device page"):
            continue  # pragma: no cover - MODEL: a chunk holds device pages only
        spage = BACKING_PAGE(spage)
        dpage = await alloc_page(GFP_HIGHUSER_MOVABLE)  # | __GFP_NOFAIL
        assert dpage is not None, "MODEL: __GFP_NOFAIL allocation failed"
        await lock_page(dpage)
        await copy_highpage(dpage, spage)
        dst_pfns[i] = migrate_pfn(dpage.pfn)
        if src_pfns[i] & MIGRATE_PFN_WRITE:
            dst_pfns[i] |= MIGRATE_PFN_WRITE
    await migrate_device_pages(src_pfns, dst_pfns, npages)
    await migrate_device_finalize(src_pfns, dst_pfns, npages)
    # kvfree(src_pfns), kvfree(dst_pfns): MODEL: Python lists.
    trace("dmirror_device_evict_chunk", chunk=chunk.pagemap.name)


def dmirror_remove_free_pages(devmem: DmirrorChunk) -> None:
    """Take the chunk's free pages off the allocator (``mdevice->lock`` held).

    Kernel: lib/test_hmm.c dmirror_remove_free_pages() (v6.16).  MODEL: the
    free list is a Python list (see Deviations).
    """
    mdevice = devmem.mdevice
    mdevice.free_pages = [
        page for page in mdevice.free_pages if dmirror_page_to_chunk(page) is not devmem
    ]


async def dmirror_device_remove_chunks(mdevice: DmirrorDevice) -> None:
    """Evict and unmap every chunk of device memory (HMM_DMIRROR_RELEASE).

    Kernel: lib/test_hmm.c dmirror_device_remove_chunks() (v6.16): under
    ``devmem_lock`` each chunk is marked for removal and its free pages
    taken off the allocator, its used pages evicted, then memunmap_pages
    waits for every page of the chunk to be freed.  The device has no
    memory left; the next allocation adds a new chunk.
    """
    await mutex_lock(mdevice.devmem_lock)
    if mdevice.devmem_chunks:
        for devmem in list(mdevice.devmem_chunks):
            await spin_lock(mdevice.lock)
            devmem.remove = True
            dmirror_remove_free_pages(devmem)
            await spin_unlock(mdevice.lock)

            await dmirror_device_evict_chunk(devmem)
            await memunmap_pages(devmem.pagemap)
            # release_mem_region, kfree(devmem): MODEL: nothing to do.
        # devmem_count = devmem_capacity = 0, kfree(devmem_chunks).
        mdevice.free_pages = []
        mdevice.devmem_chunks = []
    await mutex_unlock(mdevice.devmem_lock)
    trace("dmirror_device_remove_chunks", device=mdevice.name)
