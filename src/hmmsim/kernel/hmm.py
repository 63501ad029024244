"""Model of ``mm/hmm.c`` and ``include/linux/hmm.h`` at the seed patch (Linux v5.3).

State modelled: v5.3 as released, i.e. Jason Gunthorpe's 12-patch locking
series including the seed patch "mm/hmm: Fix error flows in
hmm_invalidate_range_start" (``ranges_lock`` is a spinlock, a failed start
unwinds its ``notifiers`` increment with ``notifiers_decrement``, -EAGAIN of
a mirror propagates), plus Christoph Hellwig's v5.3-rc follow-up "always
return EBUSY for invalid ranges in hmm_range_{fault,snapshot}" (an invalid
range gives -EBUSY and ``mmap_sem`` stays held).  The sibling module
``hmm_prepatch`` is the same file just before the seed patch.

A ``struct hmm`` exists per mm that has mirrors.  Each invalidation of the
mm's page tables raises ``hmm->notifiers`` and marks overlapping ranges
invalid, then asks every mirror to update its device page table; the
matching end lowers the count, and when it reaches zero every range becomes
valid again and waiters wake up.  Drivers snapshot or fault a registered
range, then program the device only while the range is still valid, under
the same driver lock their sync_cpu_device_pagetables callback takes.

Deviations:
    * MODEL: ``range->valid`` is a ``Cell[bool]``: it is read without the
      ranges lock (hmm_range_valid, the wait_event condition, the walk), so
      every access is an Op; writes happen under ``ranges_lock`` (except the
      initial and final ones, when the range is on no list), each emitting
      the ``hmm_range_valid`` tracepoint.
    * MODEL: ``hmm->notifiers`` is a plain int: it is only touched under
      ``ranges_lock``.  Lists (``ranges``, ``mirrors``) are Python lists;
      ``list_add`` inserts at the head as in C.
    * MODEL: ``container_of`` is a back-pointer (``MmuNotifier.container``,
      ``EmbeddedKref.container``, ``RcuHead.container``).
    * MODEL: kmalloc may fail by injection (``slab.kmalloc_fails``); kfree
      marks the struct freed and the notifier callbacks check it (KASAN).
    * MODEL: ``range->hmm`` poisoning (POISON_INUSE) sets ``hmm = None`` and
      ``poisoned = True``; a later dereference is a ``bug`` finding.
    * MODEL: the page walk has one level (see pagewalk, mm_types): no huge
      pages, no swap, migration or device-private entries, no dev_pagemap;
      hugetlb VMAs use a huge page shift of 21 for the page-shift check only.
    * MODEL: the only special PTE is the zero page's; as in v5.3, the walk
      reports it HMM_PFN_SPECIAL and fails with -EFAULT (v5.4 treats the
      zero page as a normal page, see kernel.hmm_v55).
    * MODEL: a fault in a hole before a VMA calls handle_mm_fault with a NULL
      vma in v5.3 (fixed in v5.4: "hmm_range_fault() NULL pointer bug"); the
      model reports it as a ``null-deref`` finding.
    * As in v5.3, the walk checks VM_READ but not VM_WRITE, and
      handle_mm_fault checks neither: a write fault on a read-only VMA
      returns success (VM_FAULT_WRITE) without making the PTE writable, so
      hmm_range_fault re-walks, faults again and loops for ever with
      ``mmap_sem`` held (fixed in v5.4 by Ralph Campbell's "mm/hmm:
      hmm_range_fault() infinite loop", c18ce674d548, which returns -EPERM;
      see kernel.hmm_v55).  The explorer reports the loop as a ``hang``.
    * MODEL: ``hmm_range_dma_map``/``unmap``, ``hmm_vma_fault`` and
      ``hmm_vma_range_done`` (moved to nouveau in v5.3) and the devmem parts
      are not modelled.
    * MODEL: milliseconds are not converted to jiffies (time is not modelled).
    * MODEL: patch switch ``2bcbeaefde2f`` (museum exhibit
      fault-vs-mprotect-unlock): reverted, an invalidated range makes
      hmm_range_fault drop ``mmap_sem`` and return -EAGAIN, and
      hmm_range_snapshot return -EAGAIN with it held (v5.3-rc1).
    * MODEL: patch switch ``6d7c3cde93c1`` (hmmsim.kernel.fixes; museum
      exhibit hmm-free-vs-notifier): reverted, hmm_free kfrees the struct at
      once and the callbacks find it with v5.2's mm_get_hmm (VM_BUG_ON on
      NULL in start/end, no check in release).  The core's load of
      ``mn->ops`` and the free are then Ops on the hmm's memory so the
      explorer orders them; mm_get_hmm reads ``mm->hmm`` under
      ``page_table_lock`` instead of locklessly.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from hmmsim.kernel.debug import (
    BUG_ON,
    VM_BUG_ON,
    WARN_ON,
    lockdep_assert_held,
    lockdep_assert_held_write,
    null_pointer_dereference,
)
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.fork import mmdrop, mmget_not_zero, mmgrab, mmput
from hmmsim.kernel.kref import EmbeddedKref
from hmmsim.kernel.memory import handle_mm_fault
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    Pte,
    PteVal,
    RcuHead,
    VmAreaStruct,
    pte_none,
    pte_offset_map,
    pte_pfn,
    pte_present_or_none,
    pte_special,
    pte_write,
)
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.mmu_notifier import (
    MmuNotifier,
    MmuNotifierRange,
    StaticMmuNotifierOps,
    __mmu_notifier_register,
    mmu_notifier_call_srcu,
    mmu_notifier_range_blockable,
    mmu_notifier_unregister_no_release,
)
from hmmsim.kernel.page_alloc import pfn_to_page
from hmmsim.kernel.pagewalk import MmWalk, walk_page_range
from hmmsim.kernel.slab import kasan_check, kfree, kmalloc_fails
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    FAULT_FLAG_ALLOW_RETRY,
    FAULT_FLAG_REMOTE,
    FAULT_FLAG_WRITE,
    HMM_PFN_DEVICE_PRIVATE,
    HMM_PFN_ERROR,
    HMM_PFN_NONE,
    HMM_PFN_SPECIAL,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    HMM_UPDATE_INVALIDATE,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_ERROR,
    VM_FAULT_RETRY,
    VM_HUGETLB,
    VM_IO,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    FaultFlag,
    HmmUpdateEvent,
    err_name,
)
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Kref,
    RwSemaphore,
    SpinLock,
    WaitQueueHead,
    down_read,
    down_read_trylock,
    down_write,
    init_rwsem,
    init_waitqueue_head,
    kref_get,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    shared_access,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    up_read,
    up_write,
    wait_event_timeout,
    wake_up_all,
)

__all__ = [
    "HPAGE_SHIFT",
    "Hmm",
    "HmmMirror",
    "HmmMirrorOps",
    "HmmRange",
    "HmmUpdate",
    "HmmVmaWalk",
    "hmm_device_entry_from_page",
    "hmm_device_entry_from_pfn",
    "hmm_device_entry_to_page",
    "hmm_device_entry_to_pfn",
    "hmm_free",
    "hmm_free_rcu",
    "hmm_get_or_create",
    "hmm_invalidate_range_end",
    "hmm_invalidate_range_start",
    "hmm_mirror_register",
    "hmm_mirror_unregister",
    "hmm_mmu_notifier_ops",
    "hmm_pfns_bad",
    "hmm_pfns_clear",
    "hmm_pte_need_fault",
    "hmm_put",
    "hmm_range_fault",
    "hmm_range_need_fault",
    "hmm_range_page_shift",
    "hmm_range_page_size",
    "hmm_range_register",
    "hmm_range_snapshot",
    "hmm_range_unregister",
    "hmm_range_valid",
    "hmm_range_wait_until_valid",
    "hmm_release",
    "hmm_vma_do_fault",
    "hmm_vma_handle_pte",
    "hmm_vma_walk_hole",
    "hmm_vma_walk_hole_",
    "hmm_vma_walk_pmd",
    "notifiers_decrement",
    "pte_to_hmm_pfn_flags",
]

#: MODEL: huge page shift of every hugetlb VMA (2 MiB pages).
HPAGE_SHIFT = 21

# -- include/linux/hmm.h ---------------------------------------------------------


@dataclass(slots=True, kw_only=True, eq=False)
class Hmm:
    """Models ``struct hmm`` (include/linux/hmm.h, v5.3).

    Attributes:
        mm: the address space (pinned with mmgrab for the hmm's whole life).
        kref: lifetime of this struct: one per mirror, one per range, plus
            transient holds inside every notifier callback.
        ranges_lock: protects ``ranges``, every ``range->valid`` write and
            ``notifiers``.
        ranges: registered ranges.
        mirrors: registered mirrors (protected by ``mirrors_sem``).
        mmu_notifier: HMM's subscription to the mm.
        mirrors_sem: read-held around every mirror callback.
        wq: woken when ``notifiers`` drops to zero.
        rcu: for the SRCU-deferred free.
        notifiers: invalidations currently open (start seen, end not yet).
        freed: ghost: set by kfree.
    """

    name: str
    mm: MmStruct
    kref: EmbeddedKref = field(init=False)
    ranges_lock: SpinLock = field(init=False)
    ranges: list[HmmRange] = field(default_factory=list)
    mirrors: list[HmmMirror] = field(default_factory=list)
    mmu_notifier: MmuNotifier = field(init=False)
    mirrors_sem: RwSemaphore = field(init=False)
    wq: WaitQueueHead = field(init=False)
    rcu: RcuHead = field(init=False)
    notifiers: int = 0
    freed: bool = False

    def __post_init__(self) -> None:
        """Give the embedded objects their names (kmalloc'ed memory)."""
        self.kref = EmbeddedKref(f"{self.name}->kref", self)
        self.ranges_lock = SpinLock(
            f"{self.name}->ranges_lock", lockdep_class="hmm->ranges_lock"
        )
        self.mmu_notifier = MmuNotifier(
            container=self, name=f"{self.name}->mmu_notifier"
        )
        self.mirrors_sem = RwSemaphore(
            f"{self.name}->mirrors_sem", lockdep_class="hmm->mirrors_sem"
        )
        self.wq = WaitQueueHead(f"{self.name}->wq")
        self.rcu = RcuHead(container=self)

    def __repr__(self) -> str:
        return f"Hmm({self.name!r}, notifiers={self.notifiers})"


@dataclass(slots=True, kw_only=True, eq=False)
class HmmRange:
    """Models ``struct hmm_range`` (include/linux/hmm.h, v5.3).

    Attributes:
        hmm: the struct hmm while registered; None before and after.
        poisoned: MODEL: set when unregister poisons ``hmm``.
        vma: the VMA found by the last walk.
        start: first address (inclusive).
        end: last address (exclusive).
        pfns: one entry per page: the request on input, the result on output.
        flags: encodings of VALID, WRITE, DEVICE_PRIVATE (hmm_pfn_flag_e).
        values: encodings of ERROR, NONE, SPECIAL (hmm_pfn_value_e).
        default_flags: flags requested for every page.
        pfn_flags_mask: which per-page request bits count.
        page_shift: device page size shift.
        pfn_shift: shift of the pfn inside an entry.
        valid: "pfns did not change since HMM filled them".
    """

    name: str = "range"
    hmm: Hmm | None = None
    poisoned: bool = False
    vma: VmAreaStruct | None = None
    start: int = 0
    end: int = 0
    pfns: list[int] = field(default_factory=list)
    # MODEL: default encodings; drivers pass their own.
    flags: tuple[int, int, int] = (1 << 0, 1 << 1, 1 << 2)
    values: tuple[int, int, int] = (1 << 3, 0, 1 << 4)
    default_flags: int = 0
    pfn_flags_mask: int = 0
    page_shift: int = PAGE_SHIFT
    pfn_shift: int = 8
    valid: Cell[bool] = field(init=False)

    def __post_init__(self) -> None:
        """Create the ``valid`` cell (MODEL: see the module docstring)."""
        self.valid = Cell(f"{self.name}->valid", False)

    def __repr__(self) -> str:
        return f"HmmRange({self.name!r}, [{self.start:#x}, {self.end:#x}))"


@dataclass(slots=True, kw_only=True, eq=False)
class HmmUpdate:
    """Models ``struct hmm_update`` (v5.2/v5.3).

    Attributes:
        start: first address (inclusive).
        end: last address (exclusive).
        event: always HMM_UPDATE_INVALIDATE.
        blockable: whether the callback may sleep.
    """

    start: int
    end: int
    event: HmmUpdateEvent
    blockable: bool


class HmmMirrorOps(Protocol):
    """Models ``struct hmm_mirror_ops``: a driver implements these callbacks."""

    @property
    def release(self) -> Callable[[HmmMirror], Awaitable[None]] | None:
        """The mm is going away: stop every device access of this mirror."""
        ...

    @property
    def sync_cpu_device_pagetables(
        self,
    ) -> Callable[[HmmMirror, HmmUpdate], Awaitable[int]]:
        """Invalidate [update.start, update.end) in the device page table.

        Returns 0 once done, or -EAGAIN if ``update.blockable`` is false and
        the update would have to sleep.
        """
        ...


@dataclass(slots=True, kw_only=True, eq=False)
class HmmMirror:
    """Models ``struct hmm_mirror`` (a driver embeds one per process).

    Attributes:
        hmm: the mm's struct hmm, set by hmm_mirror_register.
        ops: the driver's callbacks.
        name: name used in reports.
    """

    ops: HmmMirrorOps
    name: str = "mirror"
    hmm: Hmm | None = None


def _range_hmm(range: HmmRange) -> Hmm:
    """Dereference ``range->hmm``; a poisoned or NULL pointer oopses."""
    hmm = range.hmm
    if hmm is None:
        what = "poisoned" if range.poisoned else "NULL"
        BUG_ON(True, f"dereference of {what} range->hmm ({range.name})")
        raise AssertionError("[hmmsim internal bug] BUG_ON returned")
    return hmm


async def _range_set_valid(range: HmmRange, valid: bool) -> None:
    """Write ``range->valid`` (MODEL: the write plus its tracepoint)."""
    await WRITE_ONCE(range.valid, valid)
    trace("hmm_range_valid", range=range.name, valid=valid)


def hmm_range_page_shift(range: HmmRange) -> int:
    """Return the range's page shift.

    Kernel: include/linux/hmm.h hmm_range_page_shift().
    """
    return range.page_shift


def hmm_range_page_size(range: HmmRange) -> int:
    """Return the range's page size.

    Kernel: include/linux/hmm.h hmm_range_page_size().
    """
    return 1 << hmm_range_page_shift(range)


async def hmm_range_wait_until_valid(range: HmmRange, timeout: int) -> bool:
    """Sleep until the range is valid, at most ``timeout`` milliseconds.

    Kernel: include/linux/hmm.h hmm_range_wait_until_valid() (v5.3).

    Returns:
        True if the range was seen valid before the timeout.
    """
    hmm = _range_hmm(range)

    async def condition() -> bool:
        return await READ_ONCE(range.valid)

    # MODEL: msecs_to_jiffies() is the identity (time is not modelled).
    ret = await wait_event_timeout(hmm.wq, condition, timeout) != 0
    trace("hmm_range_wait_until_valid", range=range.name, ret=ret)
    return ret


async def hmm_range_valid(range: HmmRange) -> bool:
    """Return whether the range is still valid (no lock: a once-read).

    Kernel: include/linux/hmm.h hmm_range_valid().  Only meaningful under the
    driver lock that sync_cpu_device_pagetables also takes.
    """
    return await READ_ONCE(range.valid)


def hmm_device_entry_to_page(range: HmmRange, entry: int) -> Page | None:
    """Return the page a device entry points to, or None for special values.

    Kernel: include/linux/hmm.h hmm_device_entry_to_page().
    """
    if entry == range.values[HMM_PFN_NONE]:
        return None
    if entry == range.values[HMM_PFN_ERROR]:
        return None
    if entry == range.values[HMM_PFN_SPECIAL]:
        return None
    if not entry & range.flags[HMM_PFN_VALID]:
        return None
    return pfn_to_page(entry >> range.pfn_shift)


def hmm_device_entry_to_pfn(range: HmmRange, pfn: int) -> int:
    """Return the pfn of a device entry, or -1 for special values.

    Kernel: include/linux/hmm.h hmm_device_entry_to_pfn().
    """
    if pfn == range.values[HMM_PFN_NONE]:
        return -1
    if pfn == range.values[HMM_PFN_ERROR]:
        return -1
    if pfn == range.values[HMM_PFN_SPECIAL]:
        return -1
    if not pfn & range.flags[HMM_PFN_VALID]:
        return -1
    return pfn >> range.pfn_shift


def hmm_device_entry_from_page(range: HmmRange, page: Page) -> int:
    """Build a device entry for ``page``.

    Kernel: include/linux/hmm.h hmm_device_entry_from_page().
    """
    return (page.pfn << range.pfn_shift) | range.flags[HMM_PFN_VALID]


def hmm_device_entry_from_pfn(range: HmmRange, pfn: int) -> int:
    """Build a device entry for frame ``pfn``.

    Kernel: include/linux/hmm.h hmm_device_entry_from_pfn().
    """
    return (pfn << range.pfn_shift) | range.flags[HMM_PFN_VALID]


# -- mm/hmm.c ----------------------------------------------------------------------


def _hmm_from_notifier(mn: MmuNotifier, func: str) -> Hmm:
    """``container_of(mn, struct hmm, mmu_notifier)``, checked by KASAN (MODEL)."""
    hmm = cast(Hmm, mn.container)
    kasan_check(hmm, func)
    return hmm


#: Patch switch (hmmsim.kernel.fixes): "mm/hmm: always return EBUSY for invalid
#: ranges in hmm_range_{fault,snapshot}".  Reverted, an invalidated range gives
#: -EAGAIN: hmm_range_fault drops mmap_sem first, hmm_range_snapshot does not.
FIX_INVALID_RANGE_EBUSY = "2bcbeaefde2f"

#: Patch switch (hmmsim.kernel.fixes): "mm/hmm: fix use after free with struct
#: hmm in the mmu notifiers".  Reverted, struct hmm is kfree'd at once and the
#: notifier callbacks find it through ``mm->hmm`` (mm_get_hmm), as in v5.2.
FIX_HMM_SRCU_FREE = "6d7c3cde93c1"


async def _mn_ops_load(mn: MmuNotifier, func: str) -> None:
    """The notifier core's load of ``mn->ops``: memory of the hmm embedding ``mn``.

    MODEL: only with :data:`FIX_HMM_SRCU_FREE` reverted, where the hmm may be
    freed while its callback is being entered; the load is then an Op on
    the hmm's memory (its kref's footprint), ordered against the kfree in
    hmm_free, and KASAN checks it.
    """
    hmm = cast(Hmm, mn.container)
    await shared_access(hmm.kref, write=False, func=f"{func}: mn->ops")
    kasan_check(hmm, func)


async def mm_get_hmm(mm: MmStruct) -> Hmm | None:
    """Return the mm's struct hmm with a new reference, or None.

    Kernel: mm/hmm.c mm_get_hmm() (v5.2; the callbacks stopped using it with
    6d7c3cde93c1, and v5.3 removed it).  Called only with
    :data:`FIX_HMM_SRCU_FREE` reverted.
    """
    # MODEL: v5.2 loads mm->hmm without a lock; the model loads it under
    # page_table_lock, which hmm_free holds to clear it, so the load is an
    # Op ordered against that store (a single pointer load sees the value
    # before or after it either way).
    await spin_lock(mm.page_table_lock)
    hmm = cast(Hmm | None, mm.hmm)
    await spin_unlock(mm.page_table_lock)
    if hmm is None:
        return None
    got = await kref_get_unless_zero(hmm.kref)
    # The kref lives in the hmm: KASAN checks the load.
    kasan_check(hmm, "mm_get_hmm")
    return hmm if got else None


async def hmm_get_or_create(mm: MmStruct) -> Hmm | None:
    """Return the mm's struct hmm with a new reference, creating it if needed.

    Kernel: mm/hmm.c hmm_get_or_create() (v5.3).  The caller holds
    ``mmap_sem`` for write, so no one else can install one meanwhile.

    Returns:
        The hmm, or None if allocation or notifier registration failed.
    """
    lockdep_assert_held_write(mm.mmap_sem)

    # mm->hmm is protected by page_table_lock (the free path cannot take
    # mmap_sem).
    await spin_lock(mm.page_table_lock)
    hmm = cast(Hmm | None, mm.hmm)
    if hmm is not None and await kref_get_unless_zero(hmm.kref):
        # goto out_unlock
        await spin_unlock(mm.page_table_lock)
        return hmm
    await spin_unlock(mm.page_table_lock)

    if kmalloc_fails():
        return None
    hmm = Hmm(name=f"{mm.name}->hmm", mm=mm)  # MODEL: kmalloc
    init_waitqueue_head(hmm.wq)
    hmm.mirrors = []
    init_rwsem(hmm.mirrors_sem)
    hmm.mmu_notifier.ops = None
    hmm.ranges = []
    spin_lock_init(hmm.ranges_lock)
    kref_init(hmm.kref)
    hmm.notifiers = 0
    hmm.mm = mm

    hmm.mmu_notifier.ops = hmm_mmu_notifier_ops
    if await __mmu_notifier_register(hmm.mmu_notifier, mm):
        kfree(hmm)
        return None

    await mmgrab(hmm.mm)

    # With mmap_sem held for write, mm->hmm is NULL or an hmm whose kref
    # already hit zero (being freed), so it is safe to overwrite.
    await spin_lock(mm.page_table_lock)
    mm.hmm = hmm

    # out_unlock:
    await spin_unlock(mm.page_table_lock)
    trace("hmm_create", hmm=hmm.name, mm=mm.name)
    return hmm


async def hmm_free_rcu(rcu: RcuHead) -> None:
    """Free a struct hmm after the notifier SRCU grace period.

    Kernel: mm/hmm.c hmm_free_rcu().
    """
    hmm = cast(Hmm, rcu.container)

    await mmdrop(hmm.mm)
    kfree(hmm)
    trace("hmm_free", hmm=hmm.name)


async def hmm_free(kref: Kref) -> None:
    """Release function of ``hmm->kref``: unhook the hmm, free it after SRCU.

    Kernel: mm/hmm.c hmm_free().
    """
    hmm = cast(Hmm, cast(EmbeddedKref, kref).container)

    await spin_lock(hmm.mm.page_table_lock)
    if hmm.mm.hmm is hmm:
        hmm.mm.hmm = None
    await spin_unlock(hmm.mm.page_table_lock)

    await mmu_notifier_unregister_no_release(hmm.mmu_notifier, hmm.mm)
    if fix_applied(hmm.mm, FIX_HMM_SRCU_FREE):
        await mmu_notifier_call_srcu(hmm.rcu, hmm_free_rcu)
    else:
        # Before 6d7c3cde93c1: freed at once, although unregister_no_release
        # is no fence and a callback may still be running on the hmm.
        # MODEL: the free is an Op on the hmm's memory (see _mn_ops_load).
        await shared_access(hmm.kref, write=True, func="kfree")
        await hmm_free_rcu(hmm.rcu)


async def hmm_put(hmm: Hmm) -> None:
    """Drop a reference on ``hmm``.

    Kernel: mm/hmm.c hmm_put().
    """
    await kref_put(hmm.kref, hmm_free)


async def hmm_release(mn: MmuNotifier, mm: MmStruct) -> None:
    """``release`` callback: the mm is being torn down; tell every mirror.

    Kernel: mm/hmm.c hmm_release() (v5.3).
    """
    if not fix_applied(mm, FIX_HMM_SRCU_FREE):
        # Before 6d7c3cde93c1: the hmm is looked up through the mm and used
        # without a NULL check.
        await _mn_ops_load(mn, "hmm_release")
        found = await mm_get_hmm(mm)
        if found is None:
            null_pointer_dereference("hmm_release: the hmm mm_get_hmm returned")
        hmm = cast(Hmm, found)
    else:
        hmm = _hmm_from_notifier(mn, "hmm_release")

        # The hmm is being freed: nothing to do.
        if not await kref_get_unless_zero(hmm.kref):
            return

    # Ranges hold mmget, so none can exist once the mm is being released.
    # MODEL: a plain read of the list (list_empty_careful is lockless too).
    WARN_ON(bool(hmm.ranges), "hmm_release with registered ranges")

    await down_read(hmm.mirrors_sem)
    for mirror in hmm.mirrors:
        # The driver may not unregister the mirror from this callback.
        release = mirror.ops.release
        if release is not None:
            await release(mirror)
    await up_read(hmm.mirrors_sem)

    await hmm_put(hmm)


async def notifiers_decrement(hmm: Hmm) -> None:
    """Close one invalidation; at zero, revalidate every range and wake waiters.

    Kernel: mm/hmm.c notifiers_decrement() (added by the seed patch).
    """
    flags = await spin_lock_irqsave(hmm.ranges_lock)
    hmm.notifiers -= 1
    trace(
        "hmm_notifiers", hmm=hmm.name, value=hmm.notifiers, func="notifiers_decrement"
    )
    if not hmm.notifiers:
        for range in hmm.ranges:
            if range.valid.value:
                continue
            await _range_set_valid(range, True)
        await wake_up_all(hmm.wq)
    await spin_unlock_irqrestore(hmm.ranges_lock, flags)


async def hmm_invalidate_range_start(mn: MmuNotifier, nrange: MmuNotifierRange) -> int:
    """``invalidate_range_start`` callback: invalidate ranges, update mirrors.

    Kernel: mm/hmm.c hmm_invalidate_range_start() (v5.3, after the seed patch).

    Returns:
        0, or -EAGAIN when non-blockable and ``mirrors_sem`` was contended or
        a mirror could not update without sleeping; the increment of
        ``notifiers`` is then undone, since no end call will follow.
    """
    if not fix_applied(nrange.mm, FIX_HMM_SRCU_FREE):
        # Before 6d7c3cde93c1: the hmm is looked up through the mm.
        await _mn_ops_load(mn, "hmm_invalidate_range_start")
        found = await mm_get_hmm(nrange.mm)
        ret = 0

        VM_BUG_ON(found is None, "hmm_invalidate_range_start: !hmm")
        hmm = cast(Hmm, found)
    else:
        hmm = _hmm_from_notifier(mn, "hmm_invalidate_range_start")
        ret = 0

        if not await kref_get_unless_zero(hmm.kref):
            return 0

    update = HmmUpdate(
        start=nrange.start,
        end=nrange.end,
        event=HMM_UPDATE_INVALIDATE,
        blockable=mmu_notifier_range_blockable(nrange),
    )

    while True:  # MODEL: a `goto out` is a `break` out of this block
        flags = await spin_lock_irqsave(hmm.ranges_lock)
        hmm.notifiers += 1
        trace(
            "hmm_notifiers",
            hmm=hmm.name,
            value=hmm.notifiers,
            func="hmm_invalidate_range_start",
        )
        for range in hmm.ranges:
            if update.end < range.start or update.start >= range.end:
                continue

            await _range_set_valid(range, False)
        await spin_unlock_irqrestore(hmm.ranges_lock, flags)

        if mmu_notifier_range_blockable(nrange):
            await down_read(hmm.mirrors_sem)
        elif not await down_read_trylock(hmm.mirrors_sem):
            ret = -errno.EAGAIN
            break

        for mirror in hmm.mirrors:
            rc = await mirror.ops.sync_cpu_device_pagetables(mirror, update)
            if rc:
                if WARN_ON(
                    update.blockable or rc != -errno.EAGAIN,
                    "sync_cpu_device_pagetables failed a blockable update",
                ):
                    continue
                ret = -errno.EAGAIN
                break
        await up_read(hmm.mirrors_sem)
        break

    # out:
    if ret:
        await notifiers_decrement(hmm)
    await hmm_put(hmm)
    trace(
        "hmm_invalidate_range_start",
        hmm=hmm.name,
        start=update.start,
        end=update.end,
        blockable=update.blockable,
        ret=ret,
        err=err_name(ret),
    )
    return ret


async def hmm_invalidate_range_end(mn: MmuNotifier, nrange: MmuNotifierRange) -> None:
    """``invalidate_range_end`` callback: close the invalidation.

    Kernel: mm/hmm.c hmm_invalidate_range_end() (v5.3, after the seed patch).
    """
    if not fix_applied(nrange.mm, FIX_HMM_SRCU_FREE):
        # Before 6d7c3cde93c1: the hmm is looked up through the mm.
        await _mn_ops_load(mn, "hmm_invalidate_range_end")
        found = await mm_get_hmm(nrange.mm)

        VM_BUG_ON(found is None, "hmm_invalidate_range_end: !hmm")
        hmm = cast(Hmm, found)
    else:
        hmm = _hmm_from_notifier(mn, "hmm_invalidate_range_end")

        if not await kref_get_unless_zero(hmm.kref):
            return

    await notifiers_decrement(hmm)
    await hmm_put(hmm)


hmm_mmu_notifier_ops = StaticMmuNotifierOps(
    release=hmm_release,
    invalidate_range_start=hmm_invalidate_range_start,
    invalidate_range_end=hmm_invalidate_range_end,
)


async def hmm_mirror_register(mirror: HmmMirror | None, mm: MmStruct) -> int:
    """Start mirroring ``mm``; the caller holds ``mmap_sem`` for write.

    Kernel: mm/hmm.c hmm_mirror_register() (v5.3).

    Returns:
        0, -EINVAL (no mirror or ops) or -ENOMEM (no struct hmm).
    """
    lockdep_assert_held_write(mm.mmap_sem)

    # Sanity check (MODEL: mm and mirror->ops cannot be NULL, by typing).
    if mirror is None:
        return -errno.EINVAL

    mirror.hmm = await hmm_get_or_create(mm)
    if mirror.hmm is None:
        return -errno.ENOMEM

    await down_write(mirror.hmm.mirrors_sem)
    mirror.hmm.mirrors.insert(0, mirror)
    await up_write(mirror.hmm.mirrors_sem)

    trace("hmm_mirror_register", mirror=mirror.name, hmm=mirror.hmm.name)
    return 0


async def hmm_mirror_unregister(mirror: HmmMirror) -> None:
    """Stop mirroring; drops the mirror's reference on the hmm.

    Kernel: mm/hmm.c hmm_mirror_unregister() (v5.3).  Unregistering twice
    is a caller bug.
    """
    hmm = mirror.hmm
    if hmm is None:
        BUG_ON(True, f"hmm_mirror_unregister of an unregistered {mirror.name}")
        return

    await down_write(hmm.mirrors_sem)
    hmm.mirrors.remove(mirror)
    await up_write(hmm.mirrors_sem)
    trace("hmm_mirror_unregister", mirror=mirror.name, hmm=hmm.name)
    await hmm_put(hmm)


@dataclass(slots=True, kw_only=True, eq=False)
class HmmVmaWalk:
    """Models ``struct hmm_vma_walk``: the state of one walk.

    Attributes:
        range: the range being filled.
        last: where the walk stopped (re-walk from here).
        fault: whether missing entries are faulted in.
        block: whether faults may sleep (no FAULT_FLAG_ALLOW_RETRY).
    """

    range: HmmRange
    last: int = 0
    fault: bool = False
    block: bool = False


def _walk_state(walk: MmWalk) -> HmmVmaWalk:
    return cast(HmmVmaWalk, walk.private)


async def hmm_vma_do_fault(walk: MmWalk, addr: int, write_fault: bool, i: int) -> int:
    """Fault in one page for the walk.

    Kernel: mm/hmm.c hmm_vma_do_fault() (v5.3); ``i`` indexes the pfn entry.

    Returns:
        -EBUSY on success (re-walk from here), -EAGAIN when the fault dropped
        ``mmap_sem``, -EFAULT (entry set to ERROR) when it failed.
    """
    flags = FAULT_FLAG_REMOTE
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    vma = walk.vma

    flags |= FaultFlag(0) if hmm_vma_walk.block else FAULT_FLAG_ALLOW_RETRY
    flags |= FAULT_FLAG_WRITE if write_fault else FaultFlag(0)
    if vma is None:
        # MODEL: v5.3 passes walk->vma, NULL in a hole, to handle_mm_fault.
        null_pointer_dereference(f"handle_mm_fault(vma=NULL) on a hole at {addr:#x}")
        return -errno.EFAULT
    ret = await handle_mm_fault(vma, addr, flags)
    if ret & VM_FAULT_RETRY:
        return -errno.EAGAIN
    if ret & VM_FAULT_ERROR:
        range.pfns[i] = range.values[HMM_PFN_ERROR]
        return -errno.EFAULT

    return -errno.EBUSY


def hmm_pfns_bad(addr: int, end: int, walk: MmWalk) -> int:
    """Mark [addr, end) as errors.

    Kernel: mm/hmm.c hmm_pfns_bad().
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    pfns = range.pfns

    i = (addr - range.start) >> PAGE_SHIFT
    while addr < end:
        pfns[i] = range.values[HMM_PFN_ERROR]
        addr += PAGE_SIZE
        i += 1

    return 0


async def hmm_vma_walk_hole_(
    addr: int, end: int, fault: bool, write_fault: bool, walk: MmWalk
) -> int:
    """Fill [addr, end) with NONE and fault the first page if asked.

    Kernel: mm/hmm.c hmm_vma_walk_hole_() (v5.3).

    Returns:
        0 (no fault asked), -EBUSY after a successful fault, or the fault error.
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    pfns = range.pfns

    hmm_vma_walk.last = addr
    page_size = hmm_range_page_size(range)
    i = (addr - range.start) >> range.page_shift

    while addr < end:
        pfns[i] = range.values[HMM_PFN_NONE]
        if fault or write_fault:
            ret = await hmm_vma_do_fault(walk, addr, write_fault, i)
            if ret != -errno.EBUSY:
                return ret
        addr += page_size
        i += 1

    return -errno.EBUSY if (fault or write_fault) else 0


def hmm_pte_need_fault(
    hmm_vma_walk: HmmVmaWalk,
    pfns: int,
    cpu_flags: int,
    fault: bool,
    write_fault: bool,
) -> tuple[bool, bool]:
    """Decide whether one entry must be faulted (and for write).

    Kernel: mm/hmm.c hmm_pte_need_fault() (v5.3).  MODEL: the two in/out
    pointers become arguments and a returned pair.
    """
    range = hmm_vma_walk.range

    if not hmm_vma_walk.fault:
        return fault, write_fault

    # The request is the per-page bits kept by the mask plus the range's
    # defaults, so callers may either fill every entry or set defaults only.
    pfns = (pfns & range.pfn_flags_mask) | range.default_flags

    # Nothing requested for this page.
    if not pfns & range.flags[HMM_PFN_VALID]:
        return fault, write_fault
    # Device memory is only faulted back when explicitly asked.
    if cpu_flags & range.flags[HMM_PFN_DEVICE_PRIVATE]:
        if pfns & range.flags[HMM_PFN_DEVICE_PRIVATE]:
            write_fault = bool(pfns & range.flags[HMM_PFN_WRITE])
            fault = True
        return fault, write_fault

    # Fault when the CPU entry is not valid ...
    fault = not cpu_flags & range.flags[HMM_PFN_VALID]
    # ... or when write is asked but not allowed.
    if pfns & range.flags[HMM_PFN_WRITE] and not cpu_flags & range.flags[HMM_PFN_WRITE]:
        write_fault = True
        fault = True
    return fault, write_fault


def hmm_range_need_fault(
    hmm_vma_walk: HmmVmaWalk, pfns: list[int], npages: int, cpu_flags: int
) -> tuple[bool, bool]:
    """Decide whether any of ``npages`` entries must be faulted.

    Kernel: mm/hmm.c hmm_range_need_fault() (v5.3).  MODEL: returns the
    (fault, write_fault) pair; ``pfns`` is the slice the C points into.
    """
    if not hmm_vma_walk.fault:
        return False, False

    fault = write_fault = False
    for i in range(npages):
        fault, write_fault = hmm_pte_need_fault(
            hmm_vma_walk, pfns[i], cpu_flags, fault, write_fault
        )
        if write_fault:
            return fault, write_fault
    return fault, write_fault


async def hmm_vma_walk_hole(addr: int, end: int, walk: MmWalk) -> int:
    """``pte_hole`` callback: a part of the range outside every VMA.

    Kernel: mm/hmm.c hmm_vma_walk_hole() (v5.3).
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range

    i = (addr - range.start) >> PAGE_SHIFT
    npages = (end - addr) >> PAGE_SHIFT
    pfns = range.pfns[i : i + npages]
    fault, write_fault = hmm_range_need_fault(hmm_vma_walk, pfns, npages, 0)
    return await hmm_vma_walk_hole_(addr, end, fault, write_fault, walk)


def pte_to_hmm_pfn_flags(range: HmmRange, pte: Pte | None) -> int:
    """Return the HMM flags a CPU PTE grants.

    Kernel: mm/hmm.c pte_to_hmm_pfn_flags() (v5.3).
    """
    if pte is None or pte_none(pte):
        return 0
    if pte_write(pte):
        return range.flags[HMM_PFN_VALID] | range.flags[HMM_PFN_WRITE]
    return range.flags[HMM_PFN_VALID]


async def hmm_vma_handle_pte(
    walk: MmWalk, addr: int, end: int, ptep: Cell[PteVal], i: int
) -> int:
    """Fill entry ``i`` from the PTE at ``addr``, faulting if needed.

    Kernel: mm/hmm.c hmm_vma_handle_pte() (v5.3).  The PTE is read without
    the page-table lock, as in C.
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    # MODEL: no swap, migration or device-private entries in v5.3.
    pte = pte_present_or_none(await READ_ONCE(ptep), "hmm_vma_handle_pte")
    orig_pfn = range.pfns[i]

    range.pfns[i] = range.values[HMM_PFN_NONE]
    fault = write_fault = False

    if pte_none(pte):
        fault, write_fault = hmm_pte_need_fault(
            hmm_vma_walk, orig_pfn, 0, fault, write_fault
        )
        if not (fault or write_fault):
            return 0
    else:
        # MODEL: no swap, migration or device-private entries: it is present.
        cpu_flags = pte_to_hmm_pfn_flags(range, pte)
        fault, write_fault = hmm_pte_need_fault(
            hmm_vma_walk, orig_pfn, cpu_flags, fault, write_fault
        )

        if not (fault or write_fault):
            # MODEL: no devmap PTEs.
            assert pte is not None, "[hmmsim internal bug] present PTE is None"
            if pte_special(pte):
                # v5.3: any special PTE, the zero page included, is an error.
                range.pfns[i] = range.values[HMM_PFN_SPECIAL]
                return -errno.EFAULT
            range.pfns[i] = hmm_device_entry_from_pfn(range, pte_pfn(pte)) | cpu_flags
            return 0

    # fault:
    # Fault in the addresses we were asked to.
    return await hmm_vma_walk_hole_(addr, end, fault, write_fault, walk)


async def hmm_vma_walk_pmd(start: int, end: int, walk: MmWalk) -> int:
    """``pmd_entry`` callback: walk the PTEs of [start, end) inside a VMA.

    Kernel: mm/hmm.c hmm_vma_walk_pmd() (v5.3; MODEL: no pmd level).
    """
    hmm_vma_walk = _walk_state(walk)
    range = hmm_vma_walk.range
    addr = start

    i = (addr - range.start) >> PAGE_SHIFT
    while addr < end:
        ptep = pte_offset_map(walk.mm, addr)
        r = await hmm_vma_handle_pte(walk, addr, end, ptep, i)
        if r:
            # hmm_vma_handle_pte() stopped at addr.
            hmm_vma_walk.last = addr
            return r
        addr += PAGE_SIZE
        i += 1

    hmm_vma_walk.last = addr
    return 0


def hmm_pfns_clear(range: HmmRange, i: int, addr: int, end: int) -> None:
    """Set the entries from ``i`` on, for [addr, end), to NONE.

    Kernel: mm/hmm.c hmm_pfns_clear() (``i`` stands for the pfns pointer).
    """
    while addr < end:
        range.pfns[i] = range.values[HMM_PFN_NONE]
        addr += PAGE_SIZE
        i += 1


async def hmm_range_register(
    range: HmmRange, mirror: HmmMirror, start: int, end: int, page_shift: int
) -> int:
    """Start tracking CPU page-table changes over [start, end).

    Kernel: mm/hmm.c hmm_range_register() (v5.3).  The range holds an mmget
    (so exit_mmap cannot run) and a reference on the hmm until unregister.

    Returns:
        0, -EINVAL (misaligned or empty range) or -EFAULT (the mm is exiting).
    """
    mask = (1 << page_shift) - 1
    hmm = mirror.hmm
    assert hmm is not None, "[hmmsim internal bug] range on an unregistered mirror"

    await _range_set_valid(range, False)
    range.hmm = None

    if start & mask or end & mask:
        return -errno.EINVAL
    if start >= end:
        return -errno.EINVAL

    range.page_shift = page_shift
    range.start = start
    range.end = end

    # Keep hmm_release() from running while the range exists.
    if not await mmget_not_zero(hmm.mm):
        return -errno.EFAULT

    # Start tracking CPU page-table updates.
    flags = await spin_lock_irqsave(hmm.ranges_lock)

    range.hmm = hmm
    await kref_get(hmm.kref)
    hmm.ranges.insert(0, range)

    # With invalidations in flight the range starts invalid; the last end
    # makes it valid (see hmm_range_wait_until_valid).
    if not hmm.notifiers:
        await _range_set_valid(range, True)
    await spin_unlock_irqrestore(hmm.ranges_lock, flags)

    trace("hmm_range_register", range=range.name, hmm=hmm.name, start=start, end=end)
    return 0


async def hmm_range_unregister(range: HmmRange) -> None:
    """Stop tracking the range; drops its mmget and hmm reference.

    Kernel: mm/hmm.c hmm_range_unregister() (v5.3).  The mmput may be the
    last one and run exit_mmap.
    """
    hmm = _range_hmm(range)

    flags = await spin_lock_irqsave(hmm.ranges_lock)
    hmm.ranges.remove(range)
    await spin_unlock_irqrestore(hmm.ranges_lock, flags)
    trace("hmm_range_unregister", range=range.name, hmm=hmm.name)

    # Drop the references taken by hmm_range_register().
    await mmput(hmm.mm)
    await hmm_put(hmm)

    # The range is no longer tracked and holds no hmm reference: poison the
    # pointer, keep the other fields for the caller.
    await _range_set_valid(range, False)
    range.hmm = None
    range.poisoned = True


async def hmm_range_snapshot(range: HmmRange) -> int:  # noqa: PLR0911 - C flow
    """Fill ``range->pfns`` from the CPU page table without faulting.

    Kernel: mm/hmm.c hmm_range_snapshot() (v5.3).  The caller holds
    ``mmap_sem`` and must check hmm_range_valid afterwards.

    Returns:
        The number of entries filled from ``range->start``, or -EBUSY (range
        invalidated), -EFAULT (no VMA or a device VMA), -EINVAL (page-shift
        mismatch), -EPERM (VMA not readable).
    """
    device_vma = VM_IO | VM_PFNMAP | VM_MIXEDMAP
    start = range.start
    hmm = _range_hmm(range)
    hmm_vma_walk = HmmVmaWalk(range=range)

    lockdep_assert_held(hmm.mm.mmap_sem)
    while True:
        # Force a retry when the range was invalidated.
        if not await READ_ONCE(range.valid):
            if not fix_applied(hmm.mm, FIX_INVALID_RANGE_EBUSY):
                # Before 2bcbeaefde2f: -EAGAIN, mmap_sem still held.
                return -errno.EAGAIN
            return -errno.EBUSY

        vma = find_vma(hmm.mm, start)
        if vma is None or vma.vm_flags & device_vma:
            return -errno.EFAULT

        if vma.vm_flags & VM_HUGETLB:
            if range.page_shift not in (HPAGE_SHIFT, PAGE_SHIFT):
                return -errno.EINVAL
        elif range.page_shift != PAGE_SHIFT:
            return -errno.EINVAL

        if not vma.vm_flags & VM_READ:
            # No read access means no write access either (HMM does not
            # support write-only mappings).
            hmm_pfns_clear(range, 0, range.start, range.end)
            return -errno.EPERM

        range.vma = vma
        hmm_vma_walk.last = start
        hmm_vma_walk.fault = False
        hmm_vma_walk.range = range
        end = min(range.end, vma.vm_end)
        mm_walk = MmWalk(
            mm=vma.vm_mm,
            private=hmm_vma_walk,
            vma=vma,
            pmd_entry=hmm_vma_walk_pmd,
            pte_hole=hmm_vma_walk_hole,
        )

        await walk_page_range(start, end, mm_walk)
        start = end
        if not start < range.end:
            break

    return (hmm_vma_walk.last - range.start) >> PAGE_SHIFT


async def hmm_range_fault(range: HmmRange, block: bool) -> int:  # noqa: PLR0911, PLR0912 - C flow
    """Fill ``range->pfns``, faulting pages in as requested.

    Kernel: mm/hmm.c hmm_range_fault() (v5.3).  The caller holds
    ``mmap_sem`` for read.  On error, the entries from the failing address on
    are set to NONE (the failing one may be ERROR).

    Returns:
        The number of valid entries from ``range->start`` (may be 0), or
        -EINVAL (page-shift mismatch), -ENOMEM (out of memory; not reachable
        in the model), -EPERM (VMA not readable), -EAGAIN (``mmap_sem`` was
        dropped; only with ``block`` false, not reachable in the model),
        -EBUSY (the range is being invalidated: wait and retry), -EFAULT (no
        VMA, a device VMA, or the fault failed).
    """
    device_vma = VM_IO | VM_PFNMAP | VM_MIXEDMAP
    start = range.start
    hmm = _range_hmm(range)
    hmm_vma_walk = HmmVmaWalk(range=range)

    lockdep_assert_held(hmm.mm.mmap_sem)

    while True:
        # Force a retry when the range was invalidated.
        if not await READ_ONCE(range.valid):
            if not fix_applied(hmm.mm, FIX_INVALID_RANGE_EBUSY):
                # Before 2bcbeaefde2f: -EAGAIN, with mmap_sem dropped.
                await up_read(hmm.mm.mmap_sem)
                ret = -errno.EAGAIN
            else:
                ret = -errno.EBUSY
            trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
            return ret

        vma = find_vma(hmm.mm, start)
        if vma is None or vma.vm_flags & device_vma:
            return -errno.EFAULT

        if vma.vm_flags & VM_HUGETLB:
            if range.page_shift not in (HPAGE_SHIFT, PAGE_SHIFT):
                return -errno.EINVAL
        elif range.page_shift != PAGE_SHIFT:
            return -errno.EINVAL

        if not vma.vm_flags & VM_READ:
            # No read access means no write access either.
            hmm_pfns_clear(range, 0, range.start, range.end)
            return -errno.EPERM

        range.vma = vma
        hmm_vma_walk.last = start
        hmm_vma_walk.fault = True
        hmm_vma_walk.block = block
        hmm_vma_walk.range = range
        end = min(range.end, vma.vm_end)
        mm_walk = MmWalk(
            mm=vma.vm_mm,
            private=hmm_vma_walk,
            vma=vma,
            pmd_entry=hmm_vma_walk_pmd,
            pte_hole=hmm_vma_walk_hole,
        )

        while True:
            ret = await walk_page_range(start, end, mm_walk)
            start = hmm_vma_walk.last

            # Keep trying while the range is valid.
            if not (ret == -errno.EBUSY and await READ_ONCE(range.valid)):
                break

        if ret:
            i = (hmm_vma_walk.last - range.start) >> PAGE_SHIFT
            hmm_pfns_clear(range, i, hmm_vma_walk.last, range.end)
            trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
            return ret
        start = end

        if not start < range.end:
            break

    ret = (hmm_vma_walk.last - range.start) >> PAGE_SHIFT
    trace("hmm_range_fault", range=range.name, ret=ret, err=err_name(ret))
    return ret
