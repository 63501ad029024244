"""A correct mmu_interval_notifier driver, checked against the kernel models.

This is the driver of Documentation/mm/hmm.rst ("Address space mirroring
implementation and API", "Use of HMM API"), the pattern of every HMM user
since v5.5 (nouveau, amdgpu, lib/test_hmm.c ...), written against
``hmmsim.api`` with the kernel functions under their C names.  It is the
reference the ``interval_*`` buggy drivers in this directory are compared
with.

The rules it follows:

* The ``invalidate`` callback of its ``struct mmu_interval_notifier_ops``
  takes the driver lock (``update``), with a trylock when
  ``mmu_notifier_range_blockable`` is false, and returns false only then;
  under the lock it calls ``mmu_interval_set_seq(mni, cur_seq)`` and zaps
  the device entries of [range.start, range.end).
* The fault path is hmm.rst's ``driver_populate_range``: pin the mm,
  ``mmu_interval_read_begin``, ``hmm_range_fault`` under ``mmap_sem``
  (``mmap_lock``) read, retry on -EBUSY; then take the driver lock, and
  program the device only if ``mmu_interval_read_retry`` says no
  invalidation ran since read_begin, before dropping the lock.
* Unbind stops the device (empties its page table under the lock), then
  removes the subscription.

Check it::

    hmmsim check examples/interval_correct.py --all

Expected: no violation on any race of the battery, on v5.5 and on current
(v6.16).  (The v5.5 kernel's own ``mmu_interval_notifier_remove`` race,
which ``oom-vs-mirror-unregister`` finds with lib/test_hmm.c, needs a
driver that frees its notifier right after remove; this one does not free
it.)
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from hmmsim.api import (
    INTERVAL_VARIANTS,
    PAGE_SHIFT,
    PAGE_SIZE,
    Device,
    IntervalApi,
    MmStruct,
    MmuNotifierRange,
    Mutex,
    StaticMmuIntervalNotifierOps,
    device_pte_clear,
    device_pte_set,
    down_read,
    hmm_range_fault,
    mirror_scenarios,
    mmget_not_zero,
    mmput,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
    mmu_notifier_range_blockable,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    up_read,
)


@dataclass(slots=True, kw_only=True, eq=False)
class MyDevice:
    """One device mirroring one process (the driver's ``struct my_device``).

    Attributes:
        kernel: the kernel API of the variant checked (``kernel_api(variant)``).
        name: name used in reports.
        device: the device page table this driver programs.
        update: the driver lock: serialises device page-table updates
            between the fault path and the invalidate callback.
        notifier: the embedded ``struct mmu_interval_notifier``.
    """

    kernel: IntervalApi
    name: str
    device: Device
    update: Mutex = field(init=False)
    notifier: Any = field(init=False)

    def __post_init__(self) -> None:
        """Create the lock and the embedded notifier."""
        self.update = Mutex(f"{self.name}->update", lockdep_class="driver->update")
        self.notifier = self.kernel.MmuIntervalNotifier(
            name=f"{self.name}->notifier", container=self
        )

    # -- struct mmu_interval_notifier_ops -----------------------------------

    async def invalidate(self, mni: Any, range: MmuNotifierRange, cur_seq: int) -> bool:
        """Zap [range.start, range.end) from the device; False only if may not block."""
        if mmu_notifier_range_blockable(range):
            await mutex_lock(self.update)
        elif not await mutex_trylock(self.update):
            return False
        await mmu_interval_set_seq(mni, cur_seq)
        await self.zap(range.start, range.end)
        await mutex_unlock(self.update)
        return True

    async def zap(self, start: int, end: int) -> None:
        """Clear the device entries of [start, end) (driver lock held)."""
        for addr, _ in self.device.mapped():
            if start <= addr < end:
                await device_pte_clear(self.device, addr)

    # -- what the scenarios call (the MirrorDriver shape) ---------------------

    async def bind(self, mm: MmStruct) -> int:
        """Subscribe to the whole address space (takes mmap_sem itself)."""
        ops = StaticMmuIntervalNotifierOps(invalidate=self.invalidate)
        length = self.kernel.ULONG_MAX & ~(PAGE_SIZE - 1)
        return await mmu_interval_notifier_insert(self.notifier, mm, 0, length, ops)

    async def unbind(self) -> None:
        """Stop the device, then unsubscribe."""
        await mutex_lock(self.update)
        await self.zap(0, self.kernel.ULONG_MAX)
        await mutex_unlock(self.update)
        await mmu_interval_notifier_remove(self.notifier)

    async def fault(
        self, addr: int, *, write: bool = False, max_retries: int = 1
    ) -> int:
        """A device fault at ``addr``: pin the mm, mirror one page, unpin."""
        mm = self.device.mm
        if not await mmget_not_zero(mm):
            return -errno.EFAULT
        start = addr & ~(PAGE_SIZE - 1)
        ret = await self.populate(
            mm, start, start + PAGE_SIZE, write=write, max_retries=max_retries
        )
        await mmput(mm)
        return ret

    # -- the fault path (hmm.rst driver_populate_range) ------------------------

    # The three places where the v5.5 API and today's differ (a driver of
    # both would put them behind its own compat header).

    def new_range(self, start: int, end: int, write: bool) -> Any:
        """A ``struct hmm_range`` over [start, end) asking for valid (writable) pages."""
        kernel = self.kernel
        npages = (end - start) >> PAGE_SHIFT
        rng = kernel.HmmRange(
            name=f"{self.name}->range", notifier=self.notifier, start=start, end=end
        )
        if kernel.version == "v5.5":
            rng.pfns = [0] * npages
            rng.default_flags = rng.flags[kernel.HMM_PFN_VALID]
            if write:
                rng.default_flags |= rng.flags[kernel.HMM_PFN_WRITE]
        else:
            rng.hmm_pfns = [0] * npages
            rng.default_flags = kernel.HMM_PFN_REQ_FAULT
            if write:
                rng.default_flags |= kernel.HMM_PFN_REQ_WRITE
        rng.pfn_flags_mask = 0
        return rng

    async def walk(self, mm: MmStruct, rng: Any) -> int:
        """hmm_range_fault under mmap_sem read: 0, or a negative errno."""
        await down_read(mm.mmap_sem)
        if self.kernel.version == "v5.5":
            ret: int = await hmm_range_fault(rng, 0)  # pages, or an error
        else:
            ret = await hmm_range_fault(rng)  # 0, or an error
        await up_read(mm.mmap_sem)
        return min(ret, 0)

    async def program_device(self, rng: Any) -> None:
        """Copy the walked pfns into the device page table (driver lock held)."""
        kernel = self.kernel
        addr = rng.start
        old = kernel.version == "v5.5"
        for entry in rng.pfns if old else rng.hmm_pfns:
            if old:
                page = kernel.hmm_device_entry_to_page(rng, entry)
                writable = bool(entry & rng.flags[kernel.HMM_PFN_WRITE])
            else:
                valid = entry & kernel.HMM_PFN_VALID
                page = kernel.hmm_pfn_to_page(entry) if valid else None
                writable = bool(entry & kernel.HMM_PFN_WRITE)
            if page is not None:
                await device_pte_set(self.device, addr, page, writable)
            addr += PAGE_SIZE

    async def populate(
        self, mm: MmStruct, start: int, end: int, *, write: bool, max_retries: int
    ) -> int:
        """Mirror [start, end) into the device; -EBUSY after ``max_retries`` retries."""
        rng = self.new_range(start, end, write)
        retries = 0
        while True:  # again:
            rng.notifier_seq = await mmu_interval_read_begin(self.notifier)
            ret = await self.walk(mm, rng)
            if ret == -errno.EBUSY and retries < max_retries:
                retries += 1
                continue
            if ret:
                return ret
            await mutex_lock(self.update)
            if mmu_interval_read_retry(self.notifier, rng.notifier_seq):
                await mutex_unlock(self.update)
                if retries < max_retries:
                    retries += 1
                    continue
                return -errno.EBUSY
            await self.program_device(rng)
            await mutex_unlock(self.update)
            return 0


def make_driver(kernel: IntervalApi, name: str, device: Device) -> MyDevice:
    """The driver factory: one MyDevice per (device, process)."""
    return MyDevice(kernel=kernel, name=name, device=device)


#: What the kernel models get wrong whatever the driver, per race and variant.
KERNEL_BUGS: dict[str, dict[str, tuple[str, ...]]] = {}


def expect(
    found: dict[str, dict[str, tuple[str, ...]]],
) -> dict[str, dict[str, tuple[str, ...]]]:
    """KERNEL_BUGS plus what a driver adds (``found`` wins per race and variant)."""
    merged = {race: dict(kinds) for race, kinds in KERNEL_BUGS.items()}
    for race, kinds in found.items():
        merged.setdefault(race, {}).update(kinds)
    return merged


#: The kinds each race finds, per variant (checked by --fail-on-unexpected);
#: every race and variant not named here finds nothing.
EXPECT = expect({})

SCENARIOS = mirror_scenarios(
    make_driver, variants=INTERVAL_VARIANTS, expect=EXPECT, default_expect=()
)
