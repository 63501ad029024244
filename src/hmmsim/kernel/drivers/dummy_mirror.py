"""The reference ``hmm_mirror`` driver of Documentation/vm/hmm.rst (v5.3).

Kernel: Documentation/vm/hmm.rst, sections "Mirror a process address space"
and "Use of HMM API": the ``driver_populate_range`` example and the rules
for ``sync_cpu_device_pagetables``; the same shape as nouveau_svm.c
(nouveau_svm_fault / nouveau_svmm_sync_cpu_device_pagetables, v5.3).

One :class:`DummyMirror` exists per (device, process).  It embeds the
``hmm_mirror``, owns the device page table and the driver lock ``update``
that serialises device page-table writes between the fault path and the
invalidation callback.

The same driver runs on both HMM models (``hmm`` at the seed patch and
``hmm_prepatch`` just before it): their API is identical, so the driver is
given the HMM module to call (``mirror.hmm_api``).

Deviations:
    * MODEL: the fault loop is bounded by ``max_retries`` (the documented
      loop retries forever); when the bound is hit it unregisters and returns
      -EBUSY, which a scenario can tell from success.
    * MODEL: the documentation's ``if (ret)`` after hmm_range_snapshot treats
      a positive page count as an error; the model tests ``ret < 0`` as
      nouveau does.
    * MODEL: ``hmm_range_fault(range, true)`` (faulting) is used rather than
      the snapshot, so the device can be given pages that are not present
      yet; ``populate(..., snapshot=True)`` uses the snapshot instead.
    * MODEL: the device page table is :class:`~hmmsim.kernel.drivers.device.Device`.
    * MODEL: unbind drops the device page table before unregistering the
      mirror (the device is stopped first, as nouveau's teardown does).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from hmmsim.kernel.drivers.device import Device, device_pte_clear, device_pte_set
from hmmsim.kernel.fork import mmget_not_zero, mmput
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
)
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
    "HMM_RANGE_DEFAULT_TIMEOUT",
    "DummyMirror",
    "DummyMirrorOps",
    "driver_populate_range",
    "dummy_device_fault",
    "dummy_mirror_bind",
    "dummy_mirror_release",
    "dummy_mirror_unbind",
    "dummy_sync_cpu_device_pagetables",
]

#: include/linux/hmm.h HMM_RANGE_DEFAULT_TIMEOUT (milliseconds).
HMM_RANGE_DEFAULT_TIMEOUT = 1000


@dataclass(frozen=True, slots=True)
class DummyMirrorOps:
    """The driver's ``struct hmm_mirror_ops``.

    MODEL: ``container`` is the back-pointer that stands for
    ``container_of(mirror, struct dummy_mirror, mirror)``; in C the ops table
    is static and shared.
    """

    release: Any
    sync_cpu_device_pagetables: Any
    container: DummyMirror


@dataclass(slots=True, kw_only=True, eq=False)
class DummyMirror:
    """The driver's per-process structure embedding a ``struct hmm_mirror``.

    Attributes:
        name: name used in reports.
        hmm_api: the HMM module this driver is built against.
        mirror: the embedded ``struct hmm_mirror``.
        update: the driver lock ("driver->update" in hmm.rst).
        device: the device page table.
        released: set by the release callback (the mm is gone).
    """

    name: str
    hmm_api: ModuleType
    device: Device
    mirror: Any = None
    update: Mutex = field(init=False)
    released: bool = False

    def __post_init__(self) -> None:
        """Create the embedded mirror and the driver lock."""
        self.update = Mutex(f"{self.name}->update", lockdep_class="driver->update")
        ops = DummyMirrorOps(
            release=dummy_mirror_release,
            sync_cpu_device_pagetables=dummy_sync_cpu_device_pagetables,
            container=self,
        )
        self.mirror = self.hmm_api.HmmMirror(ops=ops, name=f"{self.name}->mirror")


def _to_dummy(mirror: Any) -> DummyMirror:
    """``container_of(mirror, struct dummy_mirror, mirror)`` (MODEL: back-pointer)."""
    ops: DummyMirrorOps = mirror.ops
    return ops.container


async def dummy_sync_cpu_device_pagetables(mirror: Any, update: Any) -> int:
    """Zap the device mappings of [update.start, update.end).

    Kernel: hmm.rst ``sync_cpu_device_pagetables`` rules; nouveau v5.3
    nouveau_svmm_sync_cpu_device_pagetables with the trylock of amdgpu.

    Returns:
        0 once the device no longer maps the range, or -EAGAIN when the
        update may not block and the driver lock is taken.
    """
    dmirror = _to_dummy(mirror)
    if update.blockable:
        await mutex_lock(dmirror.update)
    elif not await mutex_trylock(dmirror.update):
        trace("dummy_sync", mirror=dmirror.name, ret=-errno.EAGAIN)
        return -errno.EAGAIN
    addr = update.start
    while addr < update.end:
        await device_pte_clear(dmirror.device, addr)
        addr += PAGE_SIZE
    await mutex_unlock(dmirror.update)
    trace("dummy_sync", mirror=dmirror.name, ret=0)
    return 0


async def dummy_mirror_release(mirror: Any) -> None:
    """The mm is going away: stop every device access of this mirror.

    Kernel: hmm.rst ``release`` callback (nouveau v5.3 nouveau_svmm_release
    only marks the svmm; a device must not touch the mm's pages afterwards).
    """
    dmirror = _to_dummy(mirror)
    await mutex_lock(dmirror.update)
    for addr, _ in dmirror.device.mapped():
        await device_pte_clear(dmirror.device, addr)
    dmirror.released = True
    await mutex_unlock(dmirror.update)


async def dummy_mirror_bind(dmirror: DummyMirror, mm: MmStruct) -> int:
    """Register the mirror on ``mm`` under mmap_sem held for write.

    Kernel: hmm.rst "Mirror a process address space"; nouveau_svmm_init.
    """
    await down_write(mm.mmap_sem)
    ret: int = await dmirror.hmm_api.hmm_mirror_register(dmirror.mirror, mm)
    await up_write(mm.mmap_sem)
    return ret


async def dummy_mirror_unbind(dmirror: DummyMirror) -> None:
    """Unregister the mirror (never from inside release, never twice).

    Kernel: nouveau_svmm_fini -> hmm_mirror_unregister.  MODEL: the device
    page table is torn down first (nouveau kills the client's channels, so
    the GPU no longer uses its VMM, before nouveau_vmm_fini unregisters the
    mirror); once unregistered no invalidation reaches the device.
    """
    for addr, _ in dmirror.device.mapped():
        await device_pte_clear(dmirror.device, addr)
    await dmirror.hmm_api.hmm_mirror_unregister(dmirror.mirror)


def _new_range(dmirror: DummyMirror, start: int, end: int, write: bool) -> Any:
    api = dmirror.hmm_api
    rng = api.HmmRange(name=f"{dmirror.name}->range")
    npages = (end - start) >> PAGE_SHIFT
    rng.default_flags = rng.flags[HMM_PFN_VALID]
    if write:
        rng.default_flags |= rng.flags[HMM_PFN_WRITE]
    rng.pfn_flags_mask = 0
    rng.pfns = [0] * npages
    return rng


async def _program_device(dmirror: DummyMirror, rng: Any) -> None:
    """Use the pfns to update the device page table (driver lock held)."""
    api = dmirror.hmm_api
    addr = rng.start
    for entry in rng.pfns:
        page = api.hmm_device_entry_to_page(rng, entry)
        if page is not None:
            await device_pte_set(
                dmirror.device, addr, page, bool(entry & rng.flags[HMM_PFN_WRITE])
            )
        addr += PAGE_SIZE


async def driver_populate_range(
    dmirror: DummyMirror,
    mm: MmStruct,
    start: int,
    end: int,
    *,
    write: bool = False,
    snapshot: bool = False,
    max_retries: int = 2,
) -> int:
    """Mirror [start, end) into the device page table.

    Kernel: Documentation/vm/hmm.rst driver_populate_range() (v5.3).

    Returns:
        0 once the device maps the range, the error of range registration or
        of the walk, or -EBUSY when ``max_retries`` retries were not enough
        (MODEL bound).
    """
    api = dmirror.hmm_api
    rng = _new_range(dmirror, start, end, write)
    ret: int = await api.hmm_range_register(rng, dmirror.mirror, start, end, PAGE_SHIFT)
    if ret:
        return ret

    # The result may be ignored: the walk below, under mmap_sem, decides.
    await api.hmm_range_wait_until_valid(rng, HMM_RANGE_DEFAULT_TIMEOUT)

    retries = 0
    while True:  # again:
        await down_read(mm.mmap_sem)
        if snapshot:
            ret = await api.hmm_range_snapshot(rng)
        else:
            ret = await api.hmm_range_fault(rng, True)
        if ret < 0:
            await up_read(mm.mmap_sem)
            if ret == -errno.EBUSY and retries < max_retries:
                retries += 1
                await api.hmm_range_wait_until_valid(rng, HMM_RANGE_DEFAULT_TIMEOUT)
                continue  # goto again
            await api.hmm_range_unregister(rng)
            trace("driver_populate", mirror=dmirror.name, ret=ret)
            return ret

        await mutex_lock(dmirror.update)
        if not await api.hmm_range_valid(rng):
            await mutex_unlock(dmirror.update)
            await up_read(mm.mmap_sem)
            if retries < max_retries:
                retries += 1
                continue  # goto again
            await api.hmm_range_unregister(rng)
            trace("driver_populate", mirror=dmirror.name, ret=-errno.EBUSY)
            return -errno.EBUSY

        await _program_device(dmirror, rng)

        await api.hmm_range_unregister(rng)
        await mutex_unlock(dmirror.update)
        await up_read(mm.mmap_sem)
        trace("driver_populate", mirror=dmirror.name, ret=0)
        return 0


async def dummy_device_fault(
    dmirror: DummyMirror, addr: int, *, write: bool = False, max_retries: int = 2
) -> int:
    """Handle a device page fault at ``addr``: pin the mm, populate one page.

    Kernel: the shape of nouveau_svm_fault() (v5.3): the fault worker pins the
    address space with mmget_not_zero for the duration of the fault, so the
    range's own mmput in hmm_range_unregister is never the last one, and
    drops it after every lock is released.

    Returns:
        0 when the device now maps ``addr``, -EFAULT when the mm is gone, or
        the error of driver_populate_range.
    """
    mm = dmirror.device.mm
    if not await mmget_not_zero(mm):
        return -errno.EFAULT
    start = addr & ~(PAGE_SIZE - 1)
    ret = await driver_populate_range(
        dmirror, mm, start, start + PAGE_SIZE, write=write, max_retries=max_retries
    )
    await mmput(mm)
    return ret
