"""Xen's grant device (``/dev/xen/gntdev``) as an interval-notifier subscriber.

Kernel: drivers/xen/gntdev.c and drivers/xen/gntdev-common.h of v5.18, the
PV (``use_ptemod``) configuration: user space maps another domain's grants
with IOCTL_GNTDEV_MAP_GRANT_REF and mmap(2); gntdev_mmap subscribes the VMA
with ``mmu_interval_notifier_insert_locked`` (since d3eeb1d77c5d, v5.5), and
``gntdev_invalidate`` unmaps the grants of any invalidated part of the VMA
through ``unmap_grant_pages``.

Patch switch dbe97cff7dd9 (Demi Marie Obenour, "xen/gntdev: Avoid blocking
in unmap_grant_pages()", v5.19, fixing 745282256c75 of v4.4):

* reverted (v4.4..v5.18): ``__unmap_grant_pages`` calls
  ``gnttab_unmap_refs_sync`` (kernel.drivers.xen_grant_table), which
  sleeps until every page of the batch has ``page_count`` 1 again; from
  the invalidate callback that means: until whoever else holds the pages
  drops them.  ``unmap_grant_pages`` skips grants whose handle is already
  INVALID_GRANT_HANDLE and returns the first error, which gntdev_invalidate
  WARNs about;
* applied: ``unmap_grant_pages`` returns void and returns at once when no
  grant is live (``live_grants``); it marks each grant ``being_removed``
  (so a second call does not unmap it twice), takes a map reference and
  starts ``gnttab_unmap_refs_async`` with ``__unmap_grant_pages_done`` as
  completion, which clears the handles, subtracts ``live_grants`` and drops
  the reference.  The invalidate callback no longer waits for anyone.

Sources read: the v2 patch as posted (2022-05-25) and the v5.10 and v4.9
stable backports of the applied commit (``live_grants``, ``if (range)``),
gntdev_mmap and gntdev_invalidate of v5.1x (search index ids 32596971,
41047784187, 46550529148, 46550780386).

Deviations:
    * MODEL: the hypervisor is not modelled: a grant is a
      :class:`~hmmsim.kernel.drivers.xen_grant_table.GrantHandle` that
      ``gntdev_map_grant_pages`` marks mapped (handle ``index + 1``) and
      ``gnttab_unmap_refs`` unmapped; the grant pages are pages from the
      allocator with the one reference gntdev holds (gnttab_alloc_pages'
      ballooned pages in C).  The PTEs the hypervisor writes are not in
      the model's page table: GUP finds the pages through the VMA's
      ``find_special_page`` (gntdev_find_special_page), as vm_normal_page
      does for gntdev's special PTEs.
    * MODEL: only the PV configuration (``use_ptemod``), one map per file,
      no ``kmap_ops``/``kunmap_ops`` (one handle per grant), no
      UNMAP_NOTIFY_CLEAR_BYTE or event-channel notification, no grant
      copy, no dma-buf; ``find_grant_ptes`` (apply_to_page_range) is not
      modelled.  The file's map list and ``gntdev_put_map``'s free path are
      reduced to what the exhibit needs (the map is never freed in it).
    * MODEL: ``refcount_t users`` and ``atomic_t live_grants`` are Cells
      updated with the atomics of :mod:`hmmsim.kernel.atomic`; the
      ``being_removed`` flags are Cells (plain bool stores in C).
    * MODEL: the VMA's close (gntdev_vma_close, which removes the interval
      notifier and drops the VMA's map reference) is not called: the
      model's remove_vma calls no ``vm_ops->close``.
    * MODEL: gntdev_vmops has no ``->fault`` in C (handle_mm_fault gives
      SIGBUS); the model's ops table needs one and returns VM_FAULT_SIGBUS.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Final

from hmmsim.kernel.atomic import atomic_dec_and_test, atomic_inc, atomic_read
from hmmsim.kernel.debug import WARN_ON
from hmmsim.kernel.drivers.xen_grant_table import (
    INVALID_GRANT_HANDLE,
    GntabUnmapQueueData,
    GrantHandle,
    gnttab_unmap_refs_async,
    gnttab_unmap_refs_sync,
)
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    VmAreaStruct,
    VmOperationsStruct,
    vma_pages,
)
from hmmsim.kernel.mmap import insert_vm_struct
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_blockable
from hmmsim.kernel.mmu_notifier_current import (
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    mmu_interval_notifier_insert_locked,
    mmu_interval_read_begin,
)
from hmmsim.kernel.page_alloc import GFP_HIGHUSER_MOVABLE, alloc_page, put_page
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_SIGBUS,
    VM_MIXEDMAP,
    VM_SHARED,
    VM_WRITE,
    VmFlags,
)
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    down_write,
    mutex_lock,
    mutex_unlock,
    shared_access,
    up_write,
)

__all__ = [
    "FIX_DBE97CFF7DD9",
    "GNTDEV_MMU_OPS",
    "GntdevGrantMap",
    "GntdevPriv",
    "gntdev_add_map",
    "gntdev_alloc_map",
    "gntdev_invalidate",
    "gntdev_map_grant_pages",
    "gntdev_mmap",
    "gntdev_put_map",
    "gntdev_vm_mmap",
    "unmap_grant_pages",
]

#: "xen/gntdev: Avoid blocking in unmap_grant_pages()" (v5.19).
FIX_DBE97CFF7DD9: Final = "dbe97cff7dd9"


@dataclass(slots=True, kw_only=True, eq=False)
class GntdevGrantMap:
    """Models ``struct gntdev_grant_map`` (gntdev-common.h, v5.18 + the fix).

    Attributes:
        name: name used in reports.
        index: the map's offset in the file, in pages (``vm_pgoff``).
        count: the number of grants.
        users: ``refcount_t users``.
        unmap_ops: one entry per grant (``unmap_ops[i].handle``).
        pages: the pages the grants are mapped at.
        being_removed: since the fix: the grant's unmap has started.
        live_grants: since the fix: grants mapped and not yet unmapped.
        notifier: the interval subscription of the VMA (use_ptemod).
        vma: the VMA mapping the grants, or None.
        pages_vm_start: ``vma->vm_start`` at mmap time.
        unmap_data: since the fix: the batch of the asynchronous unmap.
        freed: ghost: gntdev_free_map ran.
    """

    name: str
    index: int
    count: int
    users: Cell[int] = field(init=False)
    unmap_ops: list[GrantHandle] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    being_removed: list[Cell[bool]] = field(default_factory=list)
    live_grants: Cell[int] = field(init=False)
    notifier: MmuIntervalNotifier = field(init=False)
    vma: VmAreaStruct | None = None
    pages_vm_start: int = 0
    unmap_data: GntabUnmapQueueData = field(default_factory=GntabUnmapQueueData)
    freed: bool = False

    def __post_init__(self) -> None:
        """Make the counters and the (not yet inserted) subscription."""
        self.users = Cell(f"{self.name}->users", 1)
        self.live_grants = Cell(f"{self.name}->live_grants", 0)
        self.notifier = MmuIntervalNotifier(
            name=f"{self.name}->notifier", container=self
        )


@dataclass(slots=True, kw_only=True, eq=False)
class GntdevPriv:
    """Models ``struct gntdev_priv`` (one open file of /dev/xen/gntdev)."""

    name: str = "gntdev_priv"
    lock: Mutex = field(init=False)
    maps: list[GntdevGrantMap] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Make the file's lock."""
        self.lock = Mutex(f"{self.name}->lock")


async def gntdev_alloc_map(priv: GntdevPriv, count: int) -> GntdevGrantMap | None:
    """Allocate a map of ``count`` grants and the pages to map them at.

    Kernel: drivers/xen/gntdev.c gntdev_alloc_map() (v5.18; the fix adds
    the ``being_removed`` array).  MODEL: see Deviations (allocator pages).

    Returns:
        The map with ``users`` 1, or None when no page is left.
    """
    add = GntdevGrantMap(name=f"map{len(priv.maps)}", index=0, count=count)
    for i in range(count):
        page = await alloc_page(GFP_HIGHUSER_MOVABLE)
        if page is None:
            return None
        add.pages.append(page)
        add.unmap_ops.append(GrantHandle(name=f"{add.name}->unmap_ops[{i}]"))
        add.being_removed.append(Cell(f"{add.name}->being_removed[{i}]", False))
    return add


async def gntdev_add_map(priv: GntdevPriv, add: GntdevGrantMap) -> None:
    """Give ``add`` the first free index of the file and list it.

    Kernel: drivers/xen/gntdev.c gntdev_add_map() (v5.18); the caller holds
    ``priv->lock``.  MODEL: maps are appended in index order.
    """
    add.index = sum(m.count for m in priv.maps)
    priv.maps.append(add)


def gntdev_find_map_index(
    priv: GntdevPriv, index: int, count: int
) -> GntdevGrantMap | None:
    """Return the map at ``index`` with ``count`` grants (caller holds ``priv->lock``).

    Kernel: drivers/xen/gntdev.c gntdev_find_map_index() (v5.18).
    """
    for map in priv.maps:
        if map.index == index and map.count == count:
            return map
    return None


async def gntdev_put_map(priv: GntdevPriv | None, map: GntdevGrantMap) -> None:
    """Drop a reference on ``map``; the last one unmaps and frees it.

    Kernel: drivers/xen/gntdev.c gntdev_put_map() (v5.18).  MODEL: the free
    path (unlisting, the notification, gntdev_free_map) is reduced to
    giving the pages back (see Deviations).
    """
    del priv  # MODEL: the map is unlisted by the caller in C
    if not await atomic_dec_and_test(map.users):
        return
    for page in map.pages:
        await put_page(page)
    map.freed = True
    trace("gntdev_free_map", map=map.name)


async def gntdev_map_grant_pages(map: GntdevGrantMap) -> int:
    """Map the grants (the GNTTABOP_map_grant_ref hypercall).

    Kernel: drivers/xen/gntdev.c gntdev_map_grant_pages() (v5.18; the fix
    counts the mapped grants in ``live_grants``).  MODEL: see Deviations.

    Returns:
        0.
    """
    for i, op in enumerate(map.unmap_ops):
        await shared_access(op, write=True, func="gnttab_map_refs")
        op.handle = map.index + i + 1
        op.status = 0
        op.mapped = True
        await atomic_inc(map.live_grants)
    trace("gntdev_map_grant_pages", map=map.name, count=map.count)
    return 0


# -- unmapping ---------------------------------------------------------------------


async def __unmap_grant_pages_done(result: int, data: GntabUnmapQueueData) -> None:
    """The completion of an asynchronous unmap (since dbe97cff7dd9).

    Kernel: drivers/xen/gntdev.c __unmap_grant_pages_done() (v5.19).
    """
    del result  # the status of each entry is what is checked
    map = data.data
    assert isinstance(map, GntdevGrantMap), "[hmmsim internal bug] not a gntdev batch"
    offset = data.offset

    for i in range(data.count):
        op = map.unmap_ops[offset + i]
        await shared_access(op, write=True, func="__unmap_grant_pages_done")
        WARN_ON(op.status != 0, "grant unmap failed")
        op.handle = INVALID_GRANT_HANDLE
    # After the loop: gntdev_mmap must not reuse the grants before.
    await shared_access(map.live_grants, write=True, func="atomic_sub")
    map.live_grants.value -= data.count

    # The reference __unmap_grant_pages took.
    await gntdev_put_map(None, map)


async def __unmap_grant_pages(map: GntdevGrantMap, offset: int, pages: int) -> int:
    """Unmap ``pages`` grants from ``offset``: synchronously before the fix.

    Kernel: drivers/xen/gntdev.c __unmap_grant_pages() (v5.18 reverted,
    v5.19 applied).  MODEL: the UNMAP_NOTIFY_CLEAR_BYTE store is left out.

    Returns:
        Before the fix: 0 or -EINVAL (an entry failed) or the hypercall's
        error; after it: 0 (the C function returns void).
    """
    if fix_applied(_mm_of(map), FIX_DBE97CFF7DD9):  # MODEL: patch switch
        unmap_data = map.unmap_data
        unmap_data.unmap_ops = map.unmap_ops[offset : offset + pages]
        unmap_data.offset = offset
        unmap_data.pages = map.pages[offset : offset + pages]
        unmap_data.count = pages
        unmap_data.done = __unmap_grant_pages_done
        unmap_data.data = map
        # Keeps the map alive during the asynchronous unmap.
        await atomic_inc(map.users)

        await gnttab_unmap_refs_async(unmap_data)
        return 0

    # 745282256c75 .. v5.18: the batch lives on this stack, and we wait.
    unmap_data = GntabUnmapQueueData()
    unmap_data.unmap_ops = map.unmap_ops[offset : offset + pages]
    unmap_data.offset = offset
    unmap_data.pages = map.pages[offset : offset + pages]
    unmap_data.count = pages

    err = await gnttab_unmap_refs_sync(unmap_data)
    if err:
        return err

    for i in range(pages):
        op = map.unmap_ops[offset + i]
        await shared_access(op, write=True, func="__unmap_grant_pages")
        if op.status:
            err = -errno.EINVAL
        op.handle = INVALID_GRANT_HANDLE
    return err


async def unmap_grant_pages(  # noqa: PLR0912 - the C before and after the fix
    map: GntdevGrantMap, offset: int, pages: int
) -> int:
    """Unmap the still mapped grants among ``pages`` from ``offset``.

    Kernel: drivers/xen/gntdev.c unmap_grant_pages() (v5.18 reverted, v5.19
    applied).  The range may have holes (grants already unmapped, or since
    the fix already being removed); each run of grants is one batch.

    Returns:
        Before the fix the first error of a batch; after it 0 (void in C).
    """
    mm = _mm_of(map)
    trace("unmap_grant_pages", map=map.name, offset=offset, pages=pages)
    if fix_applied(mm, FIX_DBE97CFF7DD9):  # MODEL: patch switch
        if await atomic_read(map.live_grants) == 0:
            return 0  # nothing to do
        while pages:
            while pages:
                removing: bool = await READ_ONCE(map.being_removed[offset])
                if not removing:
                    break
                offset += 1
                pages -= 1
            range = 0
            while range < pages:
                if await READ_ONCE(map.being_removed[offset + range]):
                    break
                await WRITE_ONCE(map.being_removed[offset + range], True)
                range += 1
            if range:
                await __unmap_grant_pages(map, offset, range)
            offset += range
            pages -= range
        return 0

    # MODEL: the loads of ``unmap_ops[i].handle`` are plain in C, Ops here.
    err = 0
    while pages and not err:
        while pages:
            await shared_access(map.unmap_ops[offset], write=False, func="READ_ONCE")
            if map.unmap_ops[offset].handle != INVALID_GRANT_HANDLE:
                break
            offset += 1
            pages -= 1
        range = 0
        while range < pages:
            op = map.unmap_ops[offset + range]
            await shared_access(op, write=False, func="READ_ONCE")
            if op.handle == INVALID_GRANT_HANDLE:
                break
            range += 1
        err = await __unmap_grant_pages(map, offset, range)
        offset += range
        pages -= range
    return err


def _mm_of(map: GntdevGrantMap) -> MmStruct:
    mm = map.notifier.mm
    assert mm is not None, "[hmmsim internal bug] gntdev map never mmapped"
    return mm


# -- the VMA and its notifier ------------------------------------------------------


async def gntdev_invalidate(
    mn: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """The interval callback: unmap the grants in the invalidated part of the VMA.

    Kernel: drivers/xen/gntdev.c gntdev_invalidate() (v5.18 / v5.19).  It
    does not call mmu_interval_set_seq (gntdev has no read side to retry).

    Returns:
        False for a non-blockable range (unmapping may sleep), else True.
    """
    del cur_seq
    map = mn.container
    assert isinstance(map, GntdevGrantMap), "[hmmsim internal bug] not a gntdev map"

    if not mmu_notifier_range_blockable(range):
        return False

    # The notifier keeps the VMA's original range even if the VMA changed;
    # only the part still in the VMA is ours.
    vma = map.vma
    assert vma is not None, "[hmmsim internal bug] gntdev notifier without a VMA"
    if vma.vm_start >= range.end or vma.vm_end <= range.start:
        return True

    mstart = max(range.start, vma.vm_start)
    mend = min(range.end, vma.vm_end)
    err = await unmap_grant_pages(
        map, (mstart - vma.vm_start) >> PAGE_SHIFT, (mend - mstart) >> PAGE_SHIFT
    )
    if not fix_applied(_mm_of(map), FIX_DBE97CFF7DD9):  # MODEL: patch switch
        WARN_ON(err != 0, "gntdev_invalidate: unmap_grant_pages failed")

    return True


GNTDEV_MMU_OPS: Final = StaticMmuIntervalNotifierOps(invalidate=gntdev_invalidate)


def gntdev_find_special_page(vma: VmAreaStruct, addr: int) -> Page | None:
    """Return the grant page behind a gntdev PTE (for vm_normal_page).

    Kernel: drivers/xen/gntdev.c gntdev_find_special_page() (v5.18).
    """
    map = vma.vm_private_data
    assert isinstance(map, GntdevGrantMap), "[hmmsim internal bug] not a gntdev VMA"
    return map.pages[(addr - map.pages_vm_start) >> PAGE_SHIFT]


async def _gntdev_no_fault(vma: VmAreaStruct, addr: int) -> tuple[int, Page | None]:
    del vma, addr  # MODEL: no ->fault in C (see Deviations)
    return int(VM_FAULT_SIGBUS), None


GNTDEV_VMOPS: Final = VmOperationsStruct(
    name="gntdev_vmops",
    fault=_gntdev_no_fault,
    find_special_page=gntdev_find_special_page,
)


async def gntdev_mmap(priv: GntdevPriv, vma: VmAreaStruct) -> int:
    """Map the grants of the map at ``vma->vm_pgoff`` into ``vma``.

    Kernel: drivers/xen/gntdev.c gntdev_mmap() (v5.18, use_ptemod); the
    caller (mmap_region) holds ``mmap_sem`` for write.

    Returns:
        0, or -EINVAL (no such map, already mapped, a private writable VMA).
    """
    index = vma.vm_pgoff
    count = vma_pages(vma)
    err = -errno.EINVAL

    if vma.vm_flags & VM_WRITE and not vma.vm_flags & VM_SHARED:
        return -errno.EINVAL

    await mutex_lock(priv.lock)
    map = gntdev_find_map_index(priv, index, count)
    if map is None or map.vma is not None:
        await mutex_unlock(priv.lock)
        return err
    await atomic_inc(map.users)

    vma.vm_ops = GNTDEV_VMOPS
    vma.vm_flags |= VM_MIXEDMAP  # MODEL: VM_DONTEXPAND/DONTDUMP/DONTCOPY left out
    vma.vm_private_data = map

    map.vma = vma
    err = await mmu_interval_notifier_insert_locked(
        map.notifier, vma.vm_mm, vma.vm_start, vma.vm_end - vma.vm_start, GNTDEV_MMU_OPS
    )
    if err:
        map.vma = None
        await mutex_unlock(priv.lock)
        await gntdev_put_map(priv, map)
        return err
    await mutex_unlock(priv.lock)

    # The hypervisor keeps pointers to the PTEs; mmap_sem keeps them valid
    # here, so no retry loop is needed around this read_begin.
    await mmu_interval_read_begin(map.notifier)
    map.pages_vm_start = vma.vm_start
    # MODEL: apply_to_page_range(find_grant_ptes) is not modelled.

    err = await gntdev_map_grant_pages(map)
    trace("gntdev_mmap", map=map.name, start=vma.vm_start, end=vma.vm_end, err=err)
    return err


async def gntdev_vm_mmap(
    priv: GntdevPriv, mm: MmStruct, addr: int, map: GntdevGrantMap
) -> int:
    """mmap(2) of ``map``'s offset in the gntdev file at ``addr``, shared, writable.

    Kernel: mm/mmap.c do_mmap() -> mmap_region() -> call_mmap() (v5.18),
    reduced: MODEL: MAP_FIXED at a free ``addr``, the VMA linked before
    ``->mmap`` is called (mmap_region links it after) and unlinked again
    if it fails.

    Returns:
        ``addr``, or -EEXIST (the range is taken) or gntdev_mmap's error.
    """
    await down_write(mm.mmap_sem)
    vma = VmAreaStruct(
        vm_mm=mm,
        vm_start=addr,
        vm_end=addr + map.count * PAGE_SIZE,
        vm_flags=VmFlags.VM_READ | VM_WRITE | VM_SHARED,
        vm_pgoff=map.index,
    )
    if insert_vm_struct(mm, vma):
        await up_write(mm.mmap_sem)
        return -errno.EEXIST
    ret = await gntdev_mmap(priv, vma)
    if ret:
        mm.mmap.remove(vma)
    await up_write(mm.mmap_sem)
    return ret if ret else addr
