"""The ``dmirror`` fake device of ``lib/test_hmm.c``, mirroring part, on v5.5.

Kernel: lib/test_hmm.c (first version, v5.8, torvalds/linux 08a7c7772b4d),
the driver the hmm selftests drive through /dev/hmm_dmirror*.  Opening the
device creates a ``struct dmirror`` for the caller's mm: a device page table
(an xarray in C, :class:`~hmmsim.kernel.drivers.device.Device` here), a mutex
that serialises device page-table updates, and an interval notifier
covering the whole address space.  READ/WRITE copy through the device page
table, faulting missing entries in with the mmu_interval_read_begin /
hmm_range_fault / mmu_interval_read_retry loop; SNAPSHOT reports the CPU
page table without faulting, guarded by a temporary interval notifier.

Deviations:
    * MODEL: test_hmm.c was written for the v5.8 API (``hmm_pfns``,
      ``HMM_PFN_REQ_FAULT``, ``hmm_range_fault(range)``); the model ports it
      to the v5.5 API it replaces (``range->pfns`` with the flags/values
      encodings, ``hmm_range_fault(range, flags)``, ``HMM_FAULT_SNAPSHOT``
      instead of ``default_flags = 0`` for the snapshot).  Logic and order of
      statements are unchanged.
    * MODEL: the 1000 ms timeout of dmirror_range_fault and of
      dmirror_range_snapshot is a bound on loop iterations (``max_retries``
      retries after the first attempt, then -EBUSY): time is not modelled.
    * MODEL: a page's data is one word: the user buffer of
      :class:`HmmDmirrorCmd` and the kernel bounce buffer
      (:class:`DmirrorBounce`) are lists of words, one per page, and
      copy_to/from_user are list copies; 64-page chunks become the whole
      request (requests are small).
    * MODEL: a device read or write is :func:`device_access` on the device
      page table under the mutex (kmap+memcpy in C); the xarray WRITE tag is
      the device entry's write bit.
    * MODEL: migration, device-private memory and the devmem chunks are not
      modelled; dmirror_mkentry's device-private codes never occur (no
      ZONE_DEVICE pages).
    * MODEL: release empties the device page table before
      mmu_interval_notifier_remove (xa_destroy, moved: a released file has
      no ioctl that could read it).
    * MODEL: kfree of the dmirror marks it and its embedded notifier freed
      (ghost flags, an Op on the notifier so the explorer orders it).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Final

from hmmsim.kernel.debug import WARN_ON
from hmmsim.kernel.drivers.device import (
    Device,
    device_access,
    device_pte_clear,
    device_pte_set,
)
from hmmsim.kernel.fork import mmget_not_zero, mmput
from hmmsim.kernel.hmm_v55 import (
    HMM_FAULT_SNAPSHOT,
    HmmRange,
    hmm_device_entry_to_page,
    hmm_range_fault,
)
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_blockable
from hmmsim.kernel.mmu_notifier_v55 import (
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
from hmmsim.kernel.types import (
    HMM_PFN_ERROR,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
)
from hmmsim.sync import (
    Mutex,
    down_read,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    shared_access,
    up_read,
)

__all__ = [
    "DMIRROR_RANGE_FAULT_RETRIES",
    "HMM_DMIRROR_PROT_ERROR",
    "HMM_DMIRROR_PROT_NONE",
    "HMM_DMIRROR_PROT_READ",
    "HMM_DMIRROR_PROT_WRITE",
    "HMM_DMIRROR_PROT_ZERO",
    "Dmirror",
    "DmirrorBounce",
    "DmirrorInterval",
    "HmmDmirrorCmd",
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

#: MODEL: the 1000 ms timeout as a number of retries (see Deviations).
DMIRROR_RANGE_FAULT_RETRIES: Final = 4

# Per-page codes of HMM_DMIRROR_SNAPSHOT (lib/test_hmm_uapi.h).
HMM_DMIRROR_PROT_ERROR: Final = 0xFF
HMM_DMIRROR_PROT_NONE: Final = 0x00
HMM_DMIRROR_PROT_READ: Final = 0x01
HMM_DMIRROR_PROT_WRITE: Final = 0x02
HMM_DMIRROR_PROT_ZERO: Final = 0x10


@dataclass(slots=True, kw_only=True, eq=False)
class Dmirror:
    """Models ``struct dmirror``: one open /dev/hmm_dmirror file.

    Attributes:
        name: name used in reports.
        pt: the device page table (the xarray ``pt``).
        notifier: the interval notifier over the whole address space.
        mutex: serialises device page-table updates with invalidations.
        mdevice: the ``struct dmirror_device`` (its device memory), used by
            the current port only (``dmirror_current.DmirrorDevice``; None:
            a device without memory, as in the v5.5 port).
        freed: ghost: set by dmirror_fops_release's kfree.
    """

    name: str
    pt: Device
    mdevice: object = None
    notifier: MmuIntervalNotifier = field(init=False)
    mutex: Mutex = field(init=False)
    freed: bool = False

    def __post_init__(self) -> None:
        """Create the embedded notifier and the mutex (kzalloc + mutex_init)."""
        self.notifier = MmuIntervalNotifier(
            name=f"{self.name}->notifier", container=self
        )
        self.mutex = Mutex(f"{self.name}->mutex", lockdep_class="dmirror->mutex")


@dataclass(slots=True, kw_only=True, eq=False)
class DmirrorInterval:
    """Models ``struct dmirror_interval``: a temporary notifier of a snapshot."""

    dmirror: Dmirror
    notifier: MmuIntervalNotifier = field(init=False)

    def __post_init__(self) -> None:
        """Create the embedded notifier."""
        self.notifier = MmuIntervalNotifier(
            name=f"{self.dmirror.name}->snapshot_notifier", container=self
        )


@dataclass(slots=True, kw_only=True, eq=False)
class HmmDmirrorCmd:
    """Models ``struct hmm_dmirror_cmd`` plus the user buffer (MODEL).

    Attributes:
        addr: first address (page-aligned).
        npages: number of pages.
        ptr: the user buffer: one word per page (READ fills it, WRITE reads
            it, SNAPSHOT fills it with HMM_DMIRROR_PROT_* codes).
        cpages: pages copied.
        faults: device fault rounds.
    """

    addr: int
    npages: int
    ptr: list[int] = field(default_factory=list)
    cpages: int = 0
    faults: int = 0


@dataclass(slots=True, kw_only=True, eq=False)
class DmirrorBounce:
    """Models ``struct dmirror_bounce``: the kernel copy of the data.

    Attributes:
        ptr: one word per page (vmalloc'ed in C).
        addr: user address of the first page.
        cpages: pages copied so far.
    """

    ptr: list[int]
    addr: int
    cpages: int = 0


def _to_dmirror(interval_sub: MmuIntervalNotifier) -> Dmirror:
    """``container_of(mni, struct dmirror, notifier)`` (MODEL: back-pointer)."""
    container = interval_sub.container
    assert isinstance(container, Dmirror), "[hmmsim internal bug] not a dmirror"
    return container


async def dmirror_do_update(dmirror: Dmirror, start: int, end: int) -> None:
    """Erase the device entries of [start, end).

    Kernel: lib/test_hmm.c dmirror_do_update().  The table holds no page
    references: the notifier clears stale entries.
    """
    for addr, _ in dmirror.pt.mapped():
        if start <= addr < end:
            await device_pte_clear(dmirror.pt, addr)


async def dmirror_interval_invalidate(
    mni: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """The interval notifier callback: bump the sequence and zap the range.

    Kernel: lib/test_hmm.c dmirror_interval_invalidate().

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

    Kernel: lib/test_hmm.c dmirror_fops_open().  MODEL: the dmirror is
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

    Kernel: lib/test_hmm.c dmirror_fops_release().  MODEL: the device page
    table's entries are dropped first (xa_destroy comes after the remove in
    C, but no ioctl can read the table of a released file, so the device
    maps nothing from here on).
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

    Kernel: lib/test_hmm.c dmirror_do_fault() (mutex held).

    Returns:
        0, or -EFAULT if a read-only page came back for a write request.
    """
    addr = range.start
    for entry in range.pfns:
        # hmm_range_fault was asked to populate every page: on success no
        # entry may be an error or invalid.
        WARN_ON(entry == range.values[HMM_PFN_ERROR], "HMM_PFN_ERROR after a fault")
        WARN_ON(not entry & range.flags[HMM_PFN_VALID], "invalid entry after a fault")

        page = hmm_device_entry_to_page(range, entry)
        WARN_ON(page is None, "no page after a fault")

        write = bool(entry & range.flags[HMM_PFN_WRITE])
        if not write and WARN_ON(
            bool(range.default_flags & range.flags[HMM_PFN_WRITE]),
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

    Kernel: lib/test_hmm.c dmirror_range_fault(): the v5.5 driver loop
    (read_begin, hmm_range_fault under mmap_sem, then read_retry under the
    driver mutex before programming the device).

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
        ret = await hmm_range_fault(range, 0)
        await up_read(mm.mmap_sem)
        if ret < 0:
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

    Kernel: lib/test_hmm.c dmirror_fault().  MODEL: one chunk (no 64-page
    split).  Like the C, a dead mm gives 0 without mapping anything.

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
        pfns=[0] * ((end - start) >> PAGE_SHIFT),
    )
    range.pfn_flags_mask = 0
    range.default_flags = range.flags[HMM_PFN_VALID]
    if write:
        range.default_flags |= range.flags[HMM_PFN_WRITE]

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

    Kernel: lib/test_hmm.c dmirror_do_read().

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

    Kernel: lib/test_hmm.c dmirror_read().

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

    Kernel: lib/test_hmm.c dmirror_do_write().

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

    Kernel: lib/test_hmm.c dmirror_write().

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

    Kernel: lib/test_hmm.c dmirror_mkentry().  MODEL: returns the code
    (the C writes it through a pointer); no device-private pages.
    """
    del dmirror
    if entry == range.values[HMM_PFN_ERROR]:
        return HMM_DMIRROR_PROT_ERROR
    if not entry & range.flags[HMM_PFN_VALID]:
        return HMM_DMIRROR_PROT_NONE
    page = hmm_device_entry_to_page(range, entry)
    # MODEL: no device-private pages.
    if page is not None and is_zero_pfn(page.pfn):
        perm = HMM_DMIRROR_PROT_ZERO
    else:
        perm = HMM_DMIRROR_PROT_NONE
    if entry & range.flags[HMM_PFN_WRITE]:
        perm |= HMM_DMIRROR_PROT_WRITE
    else:
        perm |= HMM_DMIRROR_PROT_READ
    return perm


async def dmirror_snapshot_invalidate(
    mni: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """Callback of the temporary snapshot notifier: only bump the sequence.

    Kernel: lib/test_hmm.c dmirror_snapshot_invalidate().  Any invalidation
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

    Kernel: lib/test_hmm.c dmirror_range_snapshot().

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
        ret = await hmm_range_fault(range, HMM_FAULT_SNAPSHOT)
        await up_read(mm.mmap_sem)
        if ret < 0:
            if ret == -errno.EBUSY:
                continue
            break  # goto out

        await mutex_lock(dmirror.mutex)
        if mmu_interval_read_retry(range.notifier, range.notifier_seq):
            await mutex_unlock(dmirror.mutex)
            continue

        n = (range.end - range.start) >> PAGE_SHIFT
        for i, entry in enumerate(range.pfns[:n]):
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

    range = HmmRange(
        name=f"{dmirror.name}->snapshot",
        start=start,
        end=end,
        pfns=[0] * cmd.npages,
    )
    perm = [0] * cmd.npages
    ret = await dmirror_range_snapshot(dmirror, range, perm, max_retries)
    if not ret:
        cmd.ptr = perm
        cmd.cpages += cmd.npages
    await mmput(mm)
    return ret
