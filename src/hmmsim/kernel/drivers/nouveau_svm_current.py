"""nouveau's SVM mirroring as of today, on the current (v6.16) notifier core and HMM.

Kernel: drivers/gpu/drm/nouveau/nouveau_svm.c at torvalds/linux
130377304ed0 (read for this work).  The per-process hlist notifier is
unchanged from v5.5 in what matters here (``nouveau_svmm_invalidate_range_start``
still returns -EAGAIN for every non-blockable range and has no
``invalidate_range_end``; the model reuses the v5.5 function,
:mod:`hmmsim.kernel.drivers.nouveau_svm`).  The fault path moved the
interval notifier's insert and remove into ``nouveau_range_fault``, uses
the v5.8+ ``hmm_pfns`` API, and pins the mm with ``mmget_not_zero`` in
``nouveau_svm_fault``.

Deviations:
    * As in :mod:`hmmsim.kernel.drivers.nouveau_svm` (one fault at one
      address, the GPU page table is a Device, the timeout is a retry
      bound, no device-private pages, no atomic faults, no
      MMU_NOTIFY_EXCLUSIVE filtering).
"""

from __future__ import annotations

import errno

from hmmsim.kernel.drivers.device import device_pte_set
from hmmsim.kernel.drivers.nouveau_svm import (
    NOUVEAU_MN_OPS,
    NOUVEAU_RANGE_FAULT_RETRIES,
    NouveauSvmm,
    SvmNotifier,
)
from hmmsim.kernel.fork import mmget_not_zero, mmput
from hmmsim.kernel.hmm_current import HmmRange, hmm_pfn_to_page, hmm_range_fault
from hmmsim.kernel.hmm_flags import (
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
)
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_blockable
from hmmsim.kernel.mmu_notifier_current import (
    __mmu_notifier_register,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
)
from hmmsim.kernel.mmu_notifier_v55 import (
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.sync import (
    down_read,
    down_write,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    up_read,
    up_write,
)

__all__ = [
    "NOUVEAU_SVM_MNI_OPS",
    "nouveau_range_fault",
    "nouveau_svm_fault",
    "nouveau_svm_range_invalidate",
    "nouveau_svmm_init",
]


async def nouveau_svmm_init(svmm: NouveauSvmm, mm: MmStruct) -> int:
    """Enable SVM: register the hlist notifier on ``mm`` (mmap_write_lock held).

    Kernel: nouveau_svm.c nouveau_svmm_init() (today; reduced as in v5.5).
    """
    assert svmm.notifier.ops is NOUVEAU_MN_OPS, "[hmmsim internal bug] svmm ops"
    await down_write(mm.mmap_sem)  # mmap_write_lock
    ret = await __mmu_notifier_register(svmm.notifier, mm)
    await up_write(mm.mmap_sem)
    return ret


async def nouveau_svm_range_invalidate(
    mni: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """The fault's interval notifier: bump its sequence under ``svmm->mutex``.

    Kernel: nouveau_svm.c nouveau_svm_range_invalidate() (today).

    Returns:
        True, or False for a non-blockable range whose mutex is taken.
    """
    sn = mni.container
    assert isinstance(sn, SvmNotifier), "[hmmsim internal bug] not an sn"

    # MODEL: no MMU_NOTIFY_EXCLUSIVE events (no device-exclusive entries).
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
    start: int,
    size: int,
    hmm_flags: int,
    notifier: SvmNotifier,
    max_retries: int = NOUVEAU_RANGE_FAULT_RETRIES,
) -> int:
    """Insert the interval notifier, fault the page in, map it, remove the notifier.

    Kernel: nouveau_svm.c nouveau_range_fault() (today).

    Returns:
        0, -EBUSY after ``max_retries`` retries (MODEL: the timeout), or the
        error of the insert or of hmm_range_fault.
    """
    mm = svmm.vmm.mm
    mni = notifier.notifier
    range = HmmRange(
        name=f"{svmm.name}->range",
        notifier=mni,
        default_flags=hmm_flags,
        hmm_pfns=[0],
        dev_private_owner=None,  # MODEL: no device-private pages
    )

    ret = await mmu_interval_notifier_insert(mni, mm, start, size, NOUVEAU_SVM_MNI_OPS)
    if ret:
        return ret

    range.start = mni.start
    range.end = mni.last + 1

    attempts = 0
    while True:
        # MODEL: the jiffies timeout is a retry bound.
        if attempts > max_retries:
            ret = -errno.EBUSY
            await mmu_interval_notifier_remove(mni)  # goto out
            return ret
        attempts += 1

        range.notifier_seq = await mmu_interval_read_begin(mni)
        await down_read(mm.mmap_sem)  # mmap_read_lock
        ret = await hmm_range_fault(range)
        await up_read(mm.mmap_sem)
        if ret:
            if ret == -errno.EBUSY:
                continue
            await mmu_interval_notifier_remove(mni)  # goto out
            return ret

        await mutex_lock(svmm.mutex)
        if mmu_interval_read_retry(mni, range.notifier_seq):
            await mutex_unlock(svmm.mutex)
            continue
        break

    # nouveau_hmm_convert_pfn + the PFNMAP ioctl (svmm->mutex held).
    entry = range.hmm_pfns[0]
    if entry & HMM_PFN_VALID:
        await device_pte_set(
            svmm.vmm, start, hmm_pfn_to_page(entry), bool(entry & HMM_PFN_WRITE)
        )
    await mutex_unlock(svmm.mutex)

    # out:
    await mmu_interval_notifier_remove(mni)
    return 0


async def nouveau_svm_fault(
    svmm: NouveauSvmm,
    addr: int,
    *,
    write: bool = False,
    max_retries: int = NOUVEAU_RANGE_FAULT_RETRIES,
) -> int:
    """Handle one GPU fault at ``addr`` (pin the mm, nouveau_range_fault, unpin).

    Kernel: nouveau_svm.c nouveau_svm_fault() (today), reduced to one fault.

    Returns:
        0, -EFAULT when the mm is gone (the C cancels the fault), or the
        error of nouveau_range_fault.
    """
    mm = svmm.vmm.mm
    start = addr & ~(PAGE_SIZE - 1)
    hmm_flags = HMM_PFN_REQ_FAULT | (HMM_PFN_REQ_WRITE if write else 0)
    if not await mmget_not_zero(mm):
        return -errno.EFAULT
    sn = SvmNotifier(
        notifier=MmuIntervalNotifier(name=f"{svmm.name}->svm_notifier"), svmm=svmm
    )
    sn.notifier.container = sn
    ret = await nouveau_range_fault(svmm, start, PAGE_SIZE, hmm_flags, sn, max_retries)
    await mmput(mm)
    trace("nouveau_svm_fault", svmm=svmm.name, addr=start, ret=ret)
    return ret
