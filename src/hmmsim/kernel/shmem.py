"""Shared anonymous memory: shmem_zero_setup and shmem_fault (reduced).

Kernel: mm/shmem.c (Linux v5.5).  ``mmap(MAP_SHARED | MAP_ANONYMOUS)`` backs
the VMA with an unlinked shmem file (shmem_zero_setup); its pages live in
that file's page cache, so every mm that maps the file (the parent and the
child after fork) faults in the same pages: no copy-on-write.

Deviations:
    * MODEL: a shmem file is :class:`ShmemFile`: a name and the page cache
      ``i_pages`` (index -> page).  Looking a page up or adding one is an Op
      on the file (it stands for the xarray lock).  There is no inode, no
      swap, no huge pages, no fallocate and no size limit.
    * MODEL: the file is never released: ``fput`` and shmem_evict_inode are
      not modelled, so page-cache pages keep their cache reference until the
      end of the execution, even after the last VMA that mapped them is gone.
    * MODEL: shmem_getpage_gfp is reduced to "find the page in the cache,
      or allocate a zeroed page and add it"; a racing add finds the other
      task's page and drops its own.
    * MODEL: ``shmem_fault`` returns the fault code and the page (the C sets
      ``vmf->page``); the page is returned with a reference held, unlocked
      (the page lock is not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hmmsim.kernel.mm_types import Page, VmAreaStruct, VmOperationsStruct
from hmmsim.kernel.page_alloc import (
    GFP_HIGHUSER_MOVABLE,
    alloc_page,
    get_page,
    put_page,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_SHIFT, VM_FAULT_OOM
from hmmsim.sync import new_oid
from hmmsim.sync.once import shared_access

__all__ = [
    "ShmemFile",
    "linear_page_index",
    "shmem_fault",
    "shmem_getpage",
    "shmem_vm_ops",
    "shmem_zero_setup",
]


@dataclass(slots=True, kw_only=True, eq=False)
class ShmemFile:
    """Models the ``struct file`` of shmem_zero_setup and its page cache.

    Attributes:
        name: name used in reports ("dev/zero" as in the C).
        i_pages: ``inode->i_mapping->i_pages``: page index -> page.
        oid: object id; cache lookups and insertions are Ops on it.
    """

    name: str
    i_pages: dict[int, Page] = field(default_factory=dict)
    oid: int = field(default_factory=new_oid)

    def holders(self) -> tuple[int, ...]:
        """A file has no holders."""
        return ()


def linear_page_index(vma: VmAreaStruct, address: int) -> int:
    """Return the file page index that ``address`` maps in ``vma``.

    Kernel: include/linux/pagemap.h linear_page_index().
    """
    return ((address - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff


async def shmem_getpage(file: ShmemFile, index: int) -> Page | None:
    """Return page ``index`` of ``file`` with a reference, allocating it if absent.

    Kernel: mm/shmem.c shmem_getpage_gfp() (reduced, see Deviations).

    Returns:
        The page (one reference is the caller's), or None when no page is left.
    """
    await shared_access(file, write=False, func="find_lock_entry")
    page = file.i_pages.get(index)
    if page is not None:
        await get_page(page)
        return page
    page = await alloc_page(GFP_HIGHUSER_MOVABLE)
    if page is None:
        return None
    # MODEL: the page cache's own reference, taken while nobody sees the page.
    page.refcount += 1
    page.mapping = file
    await shared_access(file, write=True, func="shmem_add_to_page_cache")
    other = file.i_pages.get(index)
    if other is not None:
        # Someone else added the page first: use theirs.
        await put_page(page)
        await put_page(page)
        await get_page(other)
        return other
    file.i_pages[index] = page
    trace("shmem_add_to_page_cache", file=file.name, index=index, page=page.pfn)
    return page


async def shmem_fault(vma: VmAreaStruct, address: int) -> tuple[int, Page | None]:
    """``->fault`` of shmem VMAs: find or create the page the address maps.

    Kernel: mm/shmem.c shmem_fault() (v5.5).

    Returns:
        ``(0, page)`` with a reference on the page, or ``(VM_FAULT_OOM, None)``.
    """
    file = vma.vm_file
    assert isinstance(file, ShmemFile), "[hmmsim internal bug] shmem VMA without file"
    page = await shmem_getpage(file, linear_page_index(vma, address))
    if page is None:
        return int(VM_FAULT_OOM), None
    return 0, page


#: ``shmem_vm_ops`` (only ``fault`` is modelled).
shmem_vm_ops = VmOperationsStruct(name="shmem_vm_ops", fault=shmem_fault)


def shmem_zero_setup(vma: VmAreaStruct) -> int:
    """Back a shared anonymous VMA with a new shmem file.

    Kernel: mm/shmem.c shmem_zero_setup().  The VMA is not linked yet (or
    ``mmap_sem`` is held for write), so no Op is needed.

    Returns:
        0.
    """
    vma.vm_file = ShmemFile(name=f"dev/zero@{vma.vm_mm.name}:{vma.vm_start:#x}")
    vma.vm_ops = shmem_vm_ops
    return 0
