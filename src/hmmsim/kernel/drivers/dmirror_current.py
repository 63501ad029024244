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
    * MODEL: migration, device-private and device-coherent memory are not
      modelled (no ``dmirror->mdevice``): ``range->dev_private_owner`` stays
      None, the ``MMU_NOTIFY_MIGRATE`` early return of
      dmirror_interval_invalidate never applies, and dmirror_mkentry has no
      DEV_PRIVATE / DEV_COHERENT / PMD / PUD codes.
"""

from __future__ import annotations

import errno
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
from hmmsim.kernel.fork import mmget_not_zero, mmput
from hmmsim.kernel.hmm_current import HmmRange, hmm_pfn_to_page, hmm_range_fault
from hmmsim.kernel.hmm_flags import (
    HMM_PFN_ERROR,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
)
from hmmsim.kernel.mm_types import MmStruct
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
from hmmsim.kernel.page_alloc import is_zero_pfn
from hmmsim.kernel.slab import kfree
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from hmmsim.sync import (
    down_read,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    shared_access,
    up_read,
)

__all__ = [
    "dmirror_do_fault",
    "dmirror_do_read",
    "dmirror_do_update",
    "dmirror_do_write",
    "dmirror_fault",
    "dmirror_fops_open",
    "dmirror_fops_release",
    "dmirror_interval_invalidate",
    "dmirror_mkentry",
    "dmirror_range_fault",
    "dmirror_range_snapshot",
    "dmirror_read",
    "dmirror_snapshot",
    "dmirror_snapshot_invalidate",
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
        dev_private_owner=None,  # MODEL: dmirror->mdevice, see Deviations
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
    code (the C writes it through a pointer); no device-private or
    device-coherent pages and no huge mappings (see Deviations).
    """
    del dmirror, range
    if entry & HMM_PFN_ERROR:
        return HMM_DMIRROR_PROT_ERROR
    if not entry & HMM_PFN_VALID:
        return HMM_DMIRROR_PROT_NONE

    page = hmm_pfn_to_page(entry)
    # MODEL: no device-private / device-coherent branches before this one.
    perm = HMM_DMIRROR_PROT_ZERO if is_zero_pfn(page.pfn) else HMM_DMIRROR_PROT_NONE
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
        dev_private_owner=None,  # MODEL: dmirror->mdevice, see Deviations
    )
    perm = [0] * cmd.npages
    ret = await dmirror_range_snapshot(dmirror, range, perm, max_retries)
    if not ret:
        cmd.ptr = perm
        cmd.cpages += cmd.npages
    await mmput(mm)
    return ret
