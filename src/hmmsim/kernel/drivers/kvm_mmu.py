"""A secondary MMU in the style of KVM, subscribed directly to the notifier core.

Kernel: virt/kvm/kvm_main.c (v5.3): kvm_mmu_notifier_invalidate_range_start,
kvm_mmu_notifier_invalidate_range_end, kvm_mmu_notifier_release, and the
fault side's ``mmu_notifier_seq`` / ``mmu_notifier_count`` retry protocol
(include/linux/kvm_host.h mmu_notifier_retry, arch/x86/kvm/mmu.c
tdp_page_fault).

The structure is KVM's: ``start`` raises ``mmu_notifier_count`` and zaps the
shadow page table under ``mmu_lock``; ``end`` bumps ``mmu_notifier_seq`` and
lowers the count; a guest fault samples the seq, pins the page, then maps it
only if no invalidation ran or is running meanwhile.

Deviations:
    * MODEL: before touching ``mmu_lock`` (a spinlock, as in KVM), ``start``
      takes a sleeping ``flush_lock`` that stands for work that may sleep
      (waiting for in-flight DMA through the shadow tables); when the range is
      not blockable it uses ``mutex_trylock`` and returns -EAGAIN on
      contention, as gntdev, i915 userptr and radeon did in v5.3.  Real KVM
      never fails; this is what makes the model a second kind of subscriber
      that can refuse a non-blockable invalidation.  ``end`` takes only the
      spinlock, so it never sleeps (the contract requires a non-blocking end
      after a non-blocking start).
    * MODEL: the shadow page table is a :class:`Device`; a vCPU access is a
      device access.  No memslots, no SRCU of KVM's own, no TLB requests.
    * MODEL: ``mmu_notifier_seq`` is a ``Cell`` read with READ_ONCE by the
      fault path (it is read without ``mmu_lock`` in C) and written with
      WRITE_ONCE under the lock.
    * MODEL: gfn_to_pfn is get_user_pages of one page: fault it in under
      mmap_sem and take a page reference, dropped after mapping (as
      kvm_release_pfn_clean does).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from hmmsim.kernel.debug import BUG_ON
from hmmsim.kernel.drivers.device import Device, device_pte_clear, device_pte_set
from hmmsim.kernel.gup import FOLL_WRITE, FollFlags, check_vma_flags
from hmmsim.kernel.memory import handle_mm_fault
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    pte_offset_map,
    pte_page,
    pte_present,
    pte_write,
)
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.mmu_notifier import (
    MmuNotifier,
    MmuNotifierRange,
    StaticMmuNotifierOps,
    mmu_notifier_range_blockable,
    mmu_notifier_register,
    mmu_notifier_unregister,
)
from hmmsim.kernel.page_alloc import get_page, put_page
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import FAULT_FLAG_WRITE, PAGE_SIZE, VM_FAULT_ERROR, FaultFlag
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    SpinLock,
    down_read,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
    up_read,
)

__all__ = [
    "Kvm",
    "kvm_gfn_to_pfn",
    "kvm_mmu_notifier_invalidate_range_end",
    "kvm_mmu_notifier_invalidate_range_start",
    "kvm_mmu_notifier_release",
    "kvm_mmu_page_fault",
    "kvm_register",
    "kvm_unregister",
    "mmu_notifier_retry",
]


@dataclass(slots=True, kw_only=True, eq=False)
class Kvm:
    """Models the parts of ``struct kvm`` the notifier protocol uses.

    Attributes:
        name: name used in reports.
        mm: the address space the guest memory lives in.
        mmu_lock: spinlock protecting the shadow page table and both counters.
        flush_lock: MODEL: sleeping lock around invalidations (see Deviations).
        mmu_notifier: the subscription (``container`` points back here).
        mmu_notifier_seq: bumped at every invalidate_range_end.
        mmu_notifier_count: invalidations in progress (start seen, end not yet).
        shadow: the shadow page table (a Device).
        released: set by the release callback.
    """

    name: str
    mm: MmStruct
    mmu_lock: SpinLock = field(init=False)
    flush_lock: Mutex = field(init=False)
    mmu_notifier: MmuNotifier = field(init=False)
    mmu_notifier_seq: Cell[int] = field(init=False)
    mmu_notifier_count: int = 0
    shadow: Device = field(init=False)
    released: bool = False

    def __post_init__(self) -> None:
        """Create the lock, the subscription and the shadow page table."""
        self.mmu_lock = SpinLock(
            f"{self.name}->mmu_lock", lockdep_class="kvm->mmu_lock"
        )
        self.flush_lock = Mutex(
            f"{self.name}->flush_lock", lockdep_class="kvm->flush_lock"
        )
        self.mmu_notifier = MmuNotifier(
            ops=KVM_MMU_NOTIFIER_OPS, container=self, name=f"{self.name}->mmu_notifier"
        )
        self.shadow = Device(name=f"{self.name}.spt", mm=self.mm)
        # MODEL: read locklessly by the fault path, so a Cell (see Deviations).
        self.mmu_notifier_seq = Cell(f"{self.name}->mmu_notifier_seq", 0)


def mmu_notifier_to_kvm(mn: MmuNotifier) -> Kvm:
    """``container_of(mn, struct kvm, mmu_notifier)`` (MODEL: back-pointer)."""
    kvm = mn.container
    assert isinstance(kvm, Kvm), "[hmmsim internal bug] notifier is not KVM's"
    return kvm


async def _kvm_unmap_hva_range(kvm: Kvm, start: int, end: int) -> None:
    addr = start
    while addr < end:
        await device_pte_clear(kvm.shadow, addr)
        addr += PAGE_SIZE


async def kvm_mmu_notifier_invalidate_range_start(
    mn: MmuNotifier, range: MmuNotifierRange
) -> int:
    """Count the invalidation in and zap the shadow mappings of the range.

    Kernel: virt/kvm/kvm_main.c kvm_mmu_notifier_invalidate_range_start() (v5.3).
    """
    kvm = mmu_notifier_to_kvm(mn)
    if mmu_notifier_range_blockable(range):
        await mutex_lock(kvm.flush_lock)
    elif not await mutex_trylock(kvm.flush_lock):  # MODEL: see Deviations
        trace("kvm_invalidate_range_start", kvm=kvm.name, ret=-errno.EAGAIN)
        return -errno.EAGAIN
    await spin_lock(kvm.mmu_lock)
    # The fault side sees this count and retries until the matching end.
    kvm.mmu_notifier_count += 1
    await _kvm_unmap_hva_range(kvm, range.start, range.end)
    await spin_unlock(kvm.mmu_lock)
    await mutex_unlock(kvm.flush_lock)
    trace(
        "kvm_invalidate_range_start",
        kvm=kvm.name,
        ret=0,
        mmu_notifier_count=kvm.mmu_notifier_count,
    )
    return 0


async def kvm_mmu_notifier_invalidate_range_end(
    mn: MmuNotifier, range: MmuNotifierRange
) -> None:
    """Bump the sequence and count the invalidation out.

    Kernel: virt/kvm/kvm_main.c kvm_mmu_notifier_invalidate_range_end() (v5.3).
    """
    kvm = mmu_notifier_to_kvm(mn)
    del range
    await spin_lock(kvm.mmu_lock)
    # Bump the sequence before dropping the count, so a fault that saw the
    # old sequence and a zero count cannot map a stale page.
    await WRITE_ONCE(kvm.mmu_notifier_seq, kvm.mmu_notifier_seq.value + 1)
    # The tracepoint shows the values this call left (read under mmu_lock:
    # after the unlock another invalidation may already have changed them).
    seq = kvm.mmu_notifier_seq.value
    kvm.mmu_notifier_count -= 1
    await spin_unlock(kvm.mmu_lock)
    BUG_ON(kvm.mmu_notifier_count < 0, "kvm->mmu_notifier_count < 0")
    trace(
        "kvm_invalidate_range_end",
        kvm=kvm.name,
        mmu_notifier_count=kvm.mmu_notifier_count,
        mmu_notifier_seq=seq,
    )


async def kvm_mmu_notifier_release(mn: MmuNotifier, mm: MmStruct) -> None:
    """Drop every shadow mapping: the address space is going away.

    Kernel: virt/kvm/kvm_main.c kvm_mmu_notifier_release() -> kvm_arch_flush_shadow_all.
    """
    kvm = mmu_notifier_to_kvm(mn)
    del mm
    await spin_lock(kvm.mmu_lock)
    for addr, _ in kvm.shadow.mapped():
        await device_pte_clear(kvm.shadow, addr)
    kvm.released = True
    await spin_unlock(kvm.mmu_lock)


KVM_MMU_NOTIFIER_OPS = StaticMmuNotifierOps(
    release=kvm_mmu_notifier_release,
    invalidate_range_start=kvm_mmu_notifier_invalidate_range_start,
    invalidate_range_end=kvm_mmu_notifier_invalidate_range_end,
)


def mmu_notifier_retry(kvm: Kvm, mmu_seq: int) -> bool:
    """Return whether a fault that sampled ``mmu_seq`` must retry (mmu_lock held).

    Kernel: include/linux/kvm_host.h mmu_notifier_retry() (v5.3).
    """
    if kvm.mmu_notifier_count:
        return True
    return kvm.mmu_notifier_seq.value != mmu_seq


async def kvm_gfn_to_pfn(kvm: Kvm, addr: int, write: bool) -> Page | None:
    """Pin the page behind ``addr`` (get_user_pages of one page).

    Kernel: virt/kvm/kvm_main.c hva_to_pfn() -> get_user_pages (reduced:
    check_vma_flags, then fault until the PTE allows the access).
    """
    mm = kvm.mm
    await down_read(mm.mmap_sem)
    vma = find_vma(mm, addr)
    if vma is None or vma.vm_start > addr:
        await up_read(mm.mmap_sem)
        return None
    # __get_user_pages checks the VMA before faulting anything in.
    if check_vma_flags(vma, FOLL_WRITE if write else FollFlags(0)):
        await up_read(mm.mmap_sem)
        return None
    ptep = pte_offset_map(mm, addr)
    while True:
        await spin_lock(mm.page_table_lock)
        pte = ptep.value
        if pte_present(pte) and (not write or pte_write(pte)):
            page = pte_page(pte)
            await get_page(page)
            await spin_unlock(mm.page_table_lock)
            await up_read(mm.mmap_sem)
            return page
        await spin_unlock(mm.page_table_lock)
        ret = await handle_mm_fault(
            vma, addr, FAULT_FLAG_WRITE if write else FaultFlag(0)
        )
        if ret & VM_FAULT_ERROR:
            await up_read(mm.mmap_sem)
            return None


async def kvm_mmu_page_fault(
    kvm: Kvm, addr: int, write: bool, *, max_retries: int = 2
) -> int:
    """Map ``addr`` in the shadow page table, retrying on a racing invalidation.

    Kernel: arch/x86/kvm/mmu.c tdp_page_fault() (v5.3), reduced to the
    notifier protocol.

    Returns:
        0 once mapped, -EFAULT when the page cannot be pinned, -EAGAIN after
        ``max_retries`` retries (MODEL bound; KVM re-enters the guest).
    """
    for _ in range(max_retries + 1):
        mmu_seq = await READ_ONCE(kvm.mmu_notifier_seq)  # before pinning (smp_rmb)
        page = await kvm_gfn_to_pfn(kvm, addr, write)
        if page is None:
            return -errno.EFAULT
        await spin_lock(kvm.mmu_lock)
        if mmu_notifier_retry(kvm, mmu_seq):
            await spin_unlock(kvm.mmu_lock)
            await put_page(page)
            continue
        await device_pte_set(kvm.shadow, addr, page, write)
        await spin_unlock(kvm.mmu_lock)
        await put_page(page)  # kvm_release_pfn_clean
        return 0
    return -errno.EAGAIN


async def kvm_register(kvm: Kvm) -> int:
    """Subscribe the VM to its mm (kvm_init_mmu_notifier)."""
    return await mmu_notifier_register(kvm.mmu_notifier, kvm.mm)


async def kvm_unregister(kvm: Kvm) -> None:
    """Unsubscribe the VM (kvm_destroy_vm -> mmu_notifier_unregister)."""
    await mmu_notifier_unregister(kvm.mmu_notifier, kvm.mm)
