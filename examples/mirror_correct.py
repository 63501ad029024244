"""A correct hmm_mirror driver, checked against the HMM models.

This is the driver of Documentation/vm/hmm.rst ("Use of HMM API") written
against hmmsim's model of the kernel, plus one thing hmm.rst leaves out: a
driver-side invalidation sequence count.  It is the reference the buggy
drivers in this directory are compared with.

The rules it follows:

* ``sync_cpu_device_pagetables`` takes the driver lock with a trylock when
  the update may not block (``update.blockable`` false) and returns -EAGAIN
  if it cannot; otherwise it sleeps on the lock.  Either way it zaps the
  device entries of [start, end) before returning 0.  It also bumps
  ``notifier_seq`` under the lock.
* The fault path registers a range, walks it with ``hmm_range_fault`` under
  ``mmap_sem`` read, then takes the driver lock and only programs the device
  if ``hmm_range_valid`` is still true *and* ``notifier_seq`` did not move
  since before the walk.  v5.3's ``range->valid`` alone misses an
  invalidation that started *and ended* between the walk and the check (the
  reason for v5.5's mmu_interval_notifier sequence counts); the count
  catches it, as the driver-side counters of amdgpu and KVM do.
* Every exit of the fault path unregisters the range.

Check it::

    hmmsim check examples/mirror_correct.py --all

Expected: no violation on v5.3.  On ``prepatch`` the HMM core itself has the
bugs the seed patch fixed (a failed non-blocking invalidation leaves
``hmm->notifiers`` raised, and its -EAGAIN is lost), so the same driver shows
them there.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from hmmsim.api import (
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Device,
    MmStruct,
    Mutex,
    device_pte_clear,
    device_pte_set,
    down_read,
    down_write,
    mirror_scenarios,
    mmget_not_zero,
    mmput,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    race_names,
    up_read,
    up_write,
)

#: What prepatch's HMM core gets wrong whatever the driver (the seed patch's fixes).
PREPATCH_HMM_BUGS = (
    "sleep-in-nonblockable",
    "notifier-contract",
    "device-use-after-free",
    "device-stale-mapping",
)

#: HMM_RANGE_DEFAULT_TIMEOUT, in milliseconds.
TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class Ops:
    """``struct hmm_mirror_ops``: the callbacks HMM calls."""

    release: Any
    sync_cpu_device_pagetables: Any


@dataclass(slots=True, kw_only=True, eq=False)
class MyMirror:
    """One device mirroring one process (the driver's ``struct my_mirror``).

    Attributes:
        hmm: the HMM module of the variant checked (``hmm_api(variant)``).
        name: name used in reports.
        device: the device page table this driver programs.
        update: the driver lock: serialises device page-table updates
            between the fault path and the invalidation callback.
        notifier_seq: bumped by every invalidation, under ``update``.
        mirror: the embedded ``struct hmm_mirror``.
    """

    hmm: ModuleType
    name: str
    device: Device
    update: Mutex = field(init=False)
    notifier_seq: Cell[int] = field(init=False)
    mirror: Any = field(init=False)

    def __post_init__(self) -> None:
        """Create the lock, the count and the embedded mirror."""
        self.update = Mutex(f"{self.name}->update", lockdep_class="driver->update")
        self.notifier_seq = Cell(f"{self.name}->notifier_seq", 0)
        ops = Ops(
            release=self.release,
            sync_cpu_device_pagetables=self.sync_cpu_device_pagetables,
        )
        self.mirror = self.hmm.HmmMirror(ops=ops, name=f"{self.name}->mirror")

    # -- the hmm_mirror_ops callbacks (self stands for container_of) ---------

    async def sync_cpu_device_pagetables(self, mirror: Any, update: Any) -> int:
        """Zap [update.start, update.end) from the device page table."""
        del mirror
        if update.blockable:
            await mutex_lock(self.update)
        elif not await mutex_trylock(self.update):
            return -errno.EAGAIN  # may not sleep: HMM passes the error on
        await self.bump_seq()
        addr = update.start
        while addr < update.end:
            await device_pte_clear(self.device, addr)
            addr += PAGE_SIZE
        await mutex_unlock(self.update)
        return 0

    async def release(self, mirror: Any) -> None:
        """The mm is going away: drop every device mapping."""
        del mirror
        await mutex_lock(self.update)
        for addr, _ in self.device.mapped():
            await device_pte_clear(self.device, addr)
        await mutex_unlock(self.update)

    # -- what the scenarios call (the MirrorDriver shape) ---------------------

    async def bind(self, mm: MmStruct) -> int:
        """Start mirroring ``mm``: hmm_mirror_register under mmap_sem write."""
        await down_write(mm.mmap_sem)
        ret: int = await self.hmm.hmm_mirror_register(self.mirror, mm)
        await up_write(mm.mmap_sem)
        return ret

    async def unbind(self) -> None:
        """Stop mirroring: stop the device (drop its mappings), then unregister.

        Once unregistered no invalidation reaches the device, so an entry
        left here would stay for ever (``device-pte-after-unbind``).
        """
        await self.stop_device()
        await self.hmm.hmm_mirror_unregister(self.mirror)

    async def stop_device(self) -> None:
        """Zap every device entry under the driver lock (the device stops)."""
        await mutex_lock(self.update)
        for addr, _ in self.device.mapped():
            await device_pte_clear(self.device, addr)
        await mutex_unlock(self.update)

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

    # -- the invalidation count -------------------------------------------

    async def bump_seq(self) -> None:
        """Count one invalidation (callback, driver lock held)."""
        await WRITE_ONCE(self.notifier_seq, self.notifier_seq.value + 1)

    async def read_seq(self) -> int:
        """Sample the count before a walk (lockless)."""
        seq: int = await READ_ONCE(self.notifier_seq)
        return seq

    async def seq_moved(self, seq: int) -> bool:
        """Whether an invalidation ran since ``seq`` (driver lock held)."""
        return self.notifier_seq.value != seq

    # -- the fault path ---------------------------------------------------

    def new_range(self, start: int, end: int, write: bool) -> Any:
        """A ``struct hmm_range`` asking for valid (and writable) pages."""
        rng = self.hmm.HmmRange(name=f"{self.name}->range")
        rng.default_flags = rng.flags[HMM_PFN_VALID]
        if write:
            rng.default_flags |= rng.flags[HMM_PFN_WRITE]
        rng.pfn_flags_mask = 0
        rng.pfns = [0] * ((end - start) >> PAGE_SHIFT)
        return rng

    async def program_device(self, rng: Any) -> None:
        """Copy the walked pfns into the device page table (driver lock held)."""
        addr = rng.start
        for entry in rng.pfns:
            page = self.hmm.hmm_device_entry_to_page(rng, entry)
            if page is not None:
                writable = bool(entry & rng.flags[HMM_PFN_WRITE])
                await device_pte_set(self.device, addr, page, writable)
            addr += PAGE_SIZE

    async def populate(
        self, mm: MmStruct, start: int, end: int, *, write: bool, max_retries: int
    ) -> int:
        """Mirror [start, end) into the device (hmm.rst driver_populate_range)."""
        hmm = self.hmm
        rng = self.new_range(start, end, write)
        ret: int = await hmm.hmm_range_register(
            rng, self.mirror, start, end, PAGE_SHIFT
        )
        if ret:
            return ret
        await hmm.hmm_range_wait_until_valid(rng, TIMEOUT_MS)
        retries = 0
        while True:
            seq = await self.read_seq()
            await down_read(mm.mmap_sem)
            ret = await hmm.hmm_range_fault(rng, True)
            if ret < 0:
                await up_read(mm.mmap_sem)
                if ret == -errno.EBUSY and retries < max_retries:
                    retries += 1
                    await hmm.hmm_range_wait_until_valid(rng, TIMEOUT_MS)
                    continue
                await hmm.hmm_range_unregister(rng)
                return ret
            await mutex_lock(self.update)
            if not await hmm.hmm_range_valid(rng) or await self.seq_moved(seq):
                # An invalidation ran since the walk: its pfns may be stale.
                await mutex_unlock(self.update)
                await up_read(mm.mmap_sem)
                if retries < max_retries:
                    retries += 1
                    continue
                await hmm.hmm_range_unregister(rng)
                return -errno.EBUSY
            await self.program_device(rng)
            await hmm.hmm_range_unregister(rng)
            await mutex_unlock(self.update)
            await up_read(mm.mmap_sem)
            return 0


def make_driver(hmm: ModuleType, name: str, device: Device) -> MyMirror:
    """The driver factory: one MyMirror per (device, process)."""
    return MyMirror(hmm=hmm, name=name, device=device)


#: What the kernel models get wrong whatever the driver, per race and variant:
#: prepatch's HMM core (the seed patch's fixes), v5.3's NULL dereference in
#: fault-vs-munmap and v5.3's endless write fault on a read-only VMA (both
#: fixed in v5.4; see docs/scenarios.md).
KERNEL_BUGS: dict[str, dict[str, tuple[str, ...]]] = {
    "oom-vs-driver-lock": {"prepatch": PREPATCH_HMM_BUGS},
    "oom-vs-mirror-unregister": {
        "prepatch": ("sleep-in-nonblockable", "range-stuck-invalid", "notifier-leak")
    },
    "oom-two-mirrors": {"prepatch": PREPATCH_HMM_BUGS},
    "fault-vs-munmap": {"prepatch": ("null-deref",), "v5.3": ("null-deref",)},
    "fault-vs-oom-reap": {"prepatch": PREPATCH_HMM_BUGS},
    "fault-vs-mprotect": {"prepatch": ("hang",), "v5.3": ("hang",)},
}

#: The battery without fault-vs-munmap: on prepatch and v5.3 it ends in the
#: kernel's own NULL dereference (``null-deref``, fixed in v5.4) whatever the driver,
#: after 31342 executions (about a minute each variant).  Add it back with
#: ``races=race_names()``.
RACES = [name for name in race_names() if name != "fault-vs-munmap"]


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

SCENARIOS = mirror_scenarios(make_driver, expect=EXPECT, default_expect=(), races=RACES)
