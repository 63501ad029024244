"""nouveau's SVM mirroring on v5.5: one hlist notifier and per-fault interval notifiers.

Kernel: drivers/gpu/drm/nouveau/nouveau_svm.c of v5.5, after Jason
Gunthorpe's "nouveau: use mmu_notifier directly for invalidate_range_start"
and "nouveau: use mmu_interval_notifier instead of hmm_mirror" (the
"Consolidate the mmu notifier interval_tree and locking" series merged for
v5.5).  One ``struct nouveau_svmm`` per process registers a classic (hlist)
``mmu_notifier`` whose ``invalidate_range_start`` zaps the GPU page table,
and **returns -EAGAIN for every non-blockable range** without doing
anything.  A GPU fault inserts a temporary ``mmu_interval_notifier`` over
the fault window (``struct svm_notifier``), runs the read_begin /
hmm_range_fault / read_retry loop under ``svmm->mutex``, programs the GPU,
and removes the interval notifier.  The interval callback only bumps the
sequence under ``svmm->mutex`` (trylock when not blockable): the zap is the
hlist notifier's job, which the core calls after the interval part.  So
one mm carries an interval notifier whose non-blocking invalidate succeeds
and an hlist notifier that refuses the same non-blocking start.  The same
pair is in today's nouveau_svm.c (read at torvalds/linux 130377304ed0).

Deviations:
    * MODEL: the GPU page table is a :class:`Device`; NVIF_VMM_V0_PFNCLR
      (nouveau_svmm_invalidate) is device_pte_clear of the mapped entries in
      the range, the PFNMAP ioctl is device_pte_set.  No unmanaged region,
      no channel instance lookup, no fault buffer: :func:`nouveau_svm_fault`
      handles one fault at one address (the C batches a window of faults).
    * MODEL: the HMM_RANGE_DEFAULT_TIMEOUT of nouveau_range_fault is a
      bound on loop iterations (``max_retries`` retries, then -EBUSY).
    * MODEL: no device-private memory (nouveau_dmem_convert_pfn has nothing
      to convert), no MMU_NOTIFY_MIGRATE filtering, no atomic faults.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from hmmsim.kernel.drivers.device import Device, device_pte_clear, device_pte_set
from hmmsim.kernel.hmm_v55 import HmmRange, hmm_device_entry_to_page, hmm_range_fault
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmu_notifier import (
    MmuNotifier,
    MmuNotifierRange,
    StaticMmuNotifierOps,
    mmu_notifier_range_blockable,
)
from hmmsim.kernel.mmu_notifier_v55 import (
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    __mmu_notifier_register,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import HMM_PFN_VALID, HMM_PFN_WRITE, PAGE_SHIFT, PAGE_SIZE
from hmmsim.sync import (
    Mutex,
    down_read,
    down_write,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    up_read,
    up_write,
)

__all__ = [
    "NOUVEAU_MN_OPS",
    "NOUVEAU_SVM_MNI_OPS",
    "NouveauSvmm",
    "SvmNotifier",
    "nouveau_range_fault",
    "nouveau_svm_fault",
    "nouveau_svm_range_invalidate",
    "nouveau_svmm_init",
    "nouveau_svmm_invalidate",
    "nouveau_svmm_invalidate_range_start",
]

#: MODEL: retries of nouveau_range_fault before -EBUSY (the C: a 1000 ms timeout).
NOUVEAU_RANGE_FAULT_RETRIES = 2


@dataclass(slots=True, kw_only=True, eq=False)
class NouveauSvmm:
    """Models ``struct nouveau_svmm`` (the per-process SVM state).

    Attributes:
        name: name used in reports.
        notifier: the embedded hlist ``mmu_notifier``.
        vmm: the GPU page table (``svmm->vmm``; MODEL: a Device).
        mutex: ``svmm->mutex``, serialising GPU page-table updates.
    """

    name: str
    vmm: Device
    notifier: MmuNotifier = field(init=False)
    mutex: Mutex = field(init=False)

    def __post_init__(self) -> None:
        """Embed the notifier (container_of back-pointer) and make the mutex."""
        self.notifier = MmuNotifier(
            ops=NOUVEAU_MN_OPS, container=self, name=f"{self.name}->notifier"
        )
        self.mutex = Mutex(f"{self.name}->mutex")


@dataclass(slots=True, kw_only=True, eq=False)
class SvmNotifier:
    """Models ``struct svm_notifier``: a fault's interval notifier and its svmm."""

    notifier: MmuIntervalNotifier
    svmm: NouveauSvmm


def _to_svmm(mn: MmuNotifier) -> NouveauSvmm:
    """``container_of(mn, struct nouveau_svmm, notifier)`` (MODEL: back-pointer)."""
    container = mn.container
    assert isinstance(container, NouveauSvmm), "[hmmsim internal bug] not an svmm"
    return container


def _to_svm_notifier(mni: MmuIntervalNotifier) -> SvmNotifier:
    """``container_of(mni, struct svm_notifier, notifier)`` (MODEL: back-pointer)."""
    container = mni.container
    assert isinstance(container, SvmNotifier), "[hmmsim internal bug] not an sn"
    return container


async def nouveau_svmm_invalidate(svmm: NouveauSvmm, start: int, limit: int) -> None:
    """Clear the GPU page-table entries of [start, limit).

    Kernel: nouveau_svm.c nouveau_svmm_invalidate() (NVIF_VMM_V0_PFNCLR).
    """
    if limit > start:
        for addr, _ in svmm.vmm.mapped():
            if start <= addr < limit:
                await device_pte_clear(svmm.vmm, addr)


async def nouveau_svmm_invalidate_range_start(
    mn: MmuNotifier, update: MmuNotifierRange
) -> int:
    """The hlist notifier: zap the GPU page table; refuse a non-blockable range.

    Kernel: nouveau_svm.c nouveau_svmm_invalidate_range_start() (v5.5, and
    unchanged in this respect today).

    Returns:
        0, or -EAGAIN for every non-blockable range (nothing is zapped).
    """
    svmm = _to_svmm(mn)
    start = update.start
    limit = update.end

    if not mmu_notifier_range_blockable(update):
        trace("nouveau_svmm_invalidate_range_start", svmm=svmm.name, ret=-errno.EAGAIN)
        return -errno.EAGAIN

    await mutex_lock(svmm.mutex)
    # MODEL: svmm->vmm is never cleared (no nouveau_svmm_fini) and there is
    # no unmanaged region.
    await nouveau_svmm_invalidate(svmm, start, limit)
    await mutex_unlock(svmm.mutex)
    trace("nouveau_svmm_invalidate_range_start", svmm=svmm.name, ret=0)
    return 0


#: ``nouveau_mn_ops``: only invalidate_range_start (and free_notifier, MODEL: not
#: modelled) - no invalidate_range_end.
NOUVEAU_MN_OPS = StaticMmuNotifierOps(
    invalidate_range_start=nouveau_svmm_invalidate_range_start
)


async def nouveau_svmm_init(svmm: NouveauSvmm, mm: MmStruct) -> int:
    """Enable SVM for the process: register the hlist notifier on ``mm``.

    Kernel: nouveau_svm.c nouveau_svmm_init() (v5.5; MODEL: the GPU VMM
    creation and the client checks are not modelled; ``mm`` is current->mm).

    Returns:
        0 or the error of __mmu_notifier_register.
    """
    await down_write(mm.mmap_sem)
    ret = await __mmu_notifier_register(svmm.notifier, mm)
    await up_write(mm.mmap_sem)
    return ret


async def nouveau_svm_range_invalidate(
    mni: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """The fault's interval notifier: bump its sequence under ``svmm->mutex``.

    Kernel: nouveau_svm.c nouveau_svm_range_invalidate() (v5.5).  It zaps
    nothing: the C relies on the hlist notifier, which the core calls after
    the interval part, for the zap.

    Returns:
        True, or False for a non-blockable range whose mutex is taken.
    """
    sn = _to_svm_notifier(mni)

    if mmu_notifier_range_blockable(range):
        await mutex_lock(sn.svmm.mutex)
    elif not await mutex_trylock(sn.svmm.mutex):
        trace("nouveau_svm_range_invalidate", svmm=sn.svmm.name, ret=False)
        return False
    await mmu_interval_set_seq(mni, cur_seq)
    await mutex_unlock(sn.svmm.mutex)
    trace("nouveau_svm_range_invalidate", svmm=sn.svmm.name, ret=True)
    return True


#: ``nouveau_svm_mni_ops``.
NOUVEAU_SVM_MNI_OPS = StaticMmuIntervalNotifierOps(
    invalidate=nouveau_svm_range_invalidate
)


async def nouveau_range_fault(
    svmm: NouveauSvmm,
    range: HmmRange,
    notifier: SvmNotifier,
    max_retries: int = NOUVEAU_RANGE_FAULT_RETRIES,
) -> int:
    """Fault the window in and map it on the GPU, retrying on invalidation.

    Kernel: nouveau_svm.c nouveau_range_fault() (v5.5).

    Returns:
        0 once the GPU maps the window, -EBUSY after ``max_retries`` retries
        (MODEL: the timeout), or the error of hmm_range_fault.
    """
    mni = notifier.notifier
    mm = mni.mm
    assert mm is not None, "[hmmsim internal bug] interval notifier not inserted"
    attempts = 0

    while True:
        # MODEL: the jiffies timeout is a retry bound.
        if attempts > max_retries:
            return -errno.EBUSY
        attempts += 1

        range.notifier_seq = await mmu_interval_read_begin(mni)
        await down_read(mm.mmap_sem)
        ret = await hmm_range_fault(range, 0)
        await up_read(mm.mmap_sem)
        if ret <= 0:
            if ret in {0, -errno.EBUSY}:
                continue
            return ret

        await mutex_lock(svmm.mutex)
        if mmu_interval_read_retry(mni, range.notifier_seq):
            await mutex_unlock(svmm.mutex)
            continue
        break

    # The PFNMAP ioctl: program the GPU page table (svmm->mutex held).
    addr = range.start
    for entry in range.pfns:
        page = hmm_device_entry_to_page(range, entry)
        if page is not None:
            await device_pte_set(
                svmm.vmm, addr, page, bool(entry & range.flags[HMM_PFN_WRITE])
            )
        addr += PAGE_SIZE
    await mutex_unlock(svmm.mutex)
    return 0


async def nouveau_svm_fault(
    svmm: NouveauSvmm,
    addr: int,
    *,
    write: bool = False,
    max_retries: int = NOUVEAU_RANGE_FAULT_RETRIES,
) -> int:
    """Handle one GPU fault at ``addr``: interval notifier around the fault.

    Kernel: nouveau_svm.c nouveau_svm_fault() (v5.5), reduced to one fault
    (see Deviations): mmu_interval_notifier_insert over the window,
    nouveau_range_fault, mmu_interval_notifier_remove.

    Returns:
        0, or the error of the insert or of nouveau_range_fault (the C then
        cancels the fault).
    """
    mm = svmm.vmm.mm
    start = addr & ~(PAGE_SIZE - 1)
    size = PAGE_SIZE
    sn = SvmNotifier(
        notifier=MmuIntervalNotifier(name=f"{svmm.name}->svm_notifier"), svmm=svmm
    )
    sn.notifier.container = sn

    ret = await mmu_interval_notifier_insert(
        sn.notifier, mm, start, size, NOUVEAU_SVM_MNI_OPS
    )
    if not ret:
        range = HmmRange(
            name=f"{svmm.name}->range",
            notifier=sn.notifier,
            start=start,
            end=start + size,
            pfns=[0] * (size >> PAGE_SHIFT),
        )
        # Per-page requests: VALID (and WRITE for a write fault).
        range.default_flags = 0
        range.pfn_flags_mask = -1
        request = range.flags[HMM_PFN_VALID]
        if write:
            request |= range.flags[HMM_PFN_WRITE]
        range.pfns = [request] * (size >> PAGE_SHIFT)
        ret = await nouveau_range_fault(svmm, range, sn, max_retries)
        await mmu_interval_notifier_remove(sn.notifier)
    trace("nouveau_svm_fault", svmm=svmm.name, addr=start, ret=ret)
    return ret
