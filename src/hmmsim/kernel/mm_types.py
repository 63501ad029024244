"""The mm structures: mm_struct, vm_area_struct, struct page, PTEs, task_struct.

Kernel: include/linux/mm_types.h, include/linux/mm.h, include/linux/sched.h and
the generic page-table helpers of include/asm-generic/pgtable.h (Linux v5.3).

Deviations:
    * MODEL: the VMA tree and list (``mm->mm_rb``, ``mm->mmap``) become one
      Python list sorted by address, changed only under ``mmap_sem`` for write
      (or by the last user in exit_mmap).
    * MODEL: page tables have one level: ``mm.ptes`` maps a page-aligned
      virtual address to its own ``Cell[PteVal]`` (``None`` is pte_none).
      A PTE is written with WRITE_ONCE under ``mm->page_table_lock`` (which
      stands for the split pte lock) and may be read locklessly (READ_ONCE),
      as the hmm walk does.  PMD/PUD levels and huge pages are not modelled.
    * MODEL: a ``pte_t`` value is one of three Python values (:data:`PteVal`):
      None (pte_none), a present :class:`Pte` (the page, a write bit and the
      special bit, set only for the zero page; no young/dirty bits), or a
      :class:`SwapPte`, a non-present entry holding a :class:`SwpEntry`
      (swp_entry_to_pte).  Only the entries that name a page exist: device
      private and migration entries (kernel.swapops); no swap device, no
      device-exclusive, hwpoison or marker entries, no soft-dirty/uffd-wp
      bits in swap PTEs.
    * MODEL: ``swp_entry_t`` keeps the entry type and the page itself
      (:class:`SwpEntry`): the C stores the page's pfn as the offset and
      finds the page with pfn_to_page; ``swp_offset`` returns the pfn.
    * MODEL: a VMA is anonymous unless ``vm_ops`` is set; the only other kind
      is a shared anonymous mapping (``VM_SHARED``), backed by a shmem file
      (``vm_file``, see kernel.shmem).  ``vma->anon_vma`` is not modelled.
    * MODEL: ``struct page`` keeps ``page_mapcount()`` as ``mapcount`` (the C
      stores it minus one in ``_mapcount``) and ``page->mapping`` as
      ``mapping``: :data:`PAGE_MAPPING_ANON` for an anonymous page, the shmem
      file for a page-cache page, None otherwise.
    * MODEL: ``struct page`` carries ghost fields for the oracle: ``state``
      (free or in use), ``generation`` (bumped at each allocation) and
      ``contents`` (one int standing for the page's bytes).
    * MODEL: of ``page->flags`` only ``PG_locked`` is modelled, as its own
      :class:`~hmmsim.sync.BitLock` (``Page.pg_locked``; kernel.pagemap's
      lock_page and friends).  ``page->pgmap`` and ``zone_device_data`` are
      plain fields, set for ZONE_DEVICE pages only (kernel.memremap).
    * MODEL: ``struct vm_fault`` is :class:`VmFaultStruct` (the name
      ``VmFault`` is the ``vm_fault_t`` return code of kernel.types) with the
      fields a ``dev_pagemap_ops.migrate_to_ram`` callee reads; the generic
      fault handlers of kernel.memory still take the fields as arguments.
    * MODEL: ``task_struct`` keeps only a pid, a name, its mm and the
      ``signal->oom_mm`` pointer set by mark_oom_victim.
    * MODEL: ghost counters for the oracle live in ``MmStruct`` (see the
      ``ghost_*`` fields); model logic never reads them.
    * MODEL: ``MmStruct.notifier_core`` names the ``mm/mmu_notifier.c`` that
      serves this mm (None: the v5.3 one in ``kernel.mmu_notifier``; the
      v5.5 interval-notifier core is ``kernel.mmu_notifier_v55``, today's
      is ``kernel.mmu_notifier_current``).  In the
      kernel this is a build-time choice; here one execution picks it per mm.
    * MODEL: ``MmStruct.reverted_fixes`` lists the upstream fixes the kernel
      serving this mm leaves out (museum exhibits; see kernel.fixes); also a
      build-time choice in the kernel, fixed when the world is built.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias, TypeGuard

from hmmsim.errors import ModelError
from hmmsim.kernel.types import PAGE_MASK, PAGE_SHIFT, FaultFlag, VmFlags
from hmmsim.sync import BitLock, Cell, RwSemaphore, SpinLock, new_oid

if TYPE_CHECKING:
    from hmmsim.kernel.memremap import DevPagemap
    from hmmsim.kernel.mmu_notifier import MmuNotifierCore, MmuNotifierMm

__all__ = [
    "PAGE_MAPPING_ANON",
    "MmStruct",
    "Page",
    "PageMappingTag",
    "PageState",
    "Pte",
    "PteVal",
    "RcuHead",
    "SwapPte",
    "SwpEntry",
    "SwpType",
    "TaskStruct",
    "VmAreaStruct",
    "VmFaultStruct",
    "VmOperationsStruct",
    "mk_pte",
    "pte_mkspecial",
    "pte_none",
    "pte_offset_map",
    "pte_page",
    "pte_pfn",
    "pte_present",
    "pte_present_or_none",
    "pte_special",
    "pte_write",
    "pte_wrprotect",
    "vma_is_anonymous",
    "vma_pages",
]


class PageState(enum.Enum):
    """Ghost: whether a page frame is on the free list or allocated."""

    FREE = "free"
    IN_USE = "in-use"


class PageMappingTag(enum.Enum):
    """MODEL: the tag an anonymous page's ``page->mapping`` carries.

    An enum member, not a plain string: PageAnon compares by identity, and
    an enum member stays the same object across copies of the world (the
    engine's set-up snapshots pickle it by reference), where a string copy
    would not.
    """

    PAGE_MAPPING_ANON = "PAGE_MAPPING_ANON"


#: MODEL: ``page->mapping`` of an anonymous page (the C tags the anon_vma
#: pointer with the PAGE_MAPPING_ANON bit; anon_vma is not modelled).
PAGE_MAPPING_ANON: Final = PageMappingTag.PAGE_MAPPING_ANON


@dataclass(slots=True, kw_only=True, eq=False)
class Page:
    """Models ``struct page`` (one page frame), plus ghost fields.

    Attributes:
        pfn: page frame number (index in the allocator).
        refcount: ``page->_refcount``.
        mapcount: ``page_mapcount()``: the PTEs that map the page.
        mapping: ``page->mapping`` (PAGE_MAPPING_ANON, a shmem file, or None).
        state: ghost: FREE or IN_USE.
        generation: ghost: number of times this frame was allocated.
        contents: ghost: the page's data as one integer.
        pgmap: ``page->pgmap``: the ZONE_DEVICE page map, None for RAM.
        zone_device_data: ``page->zone_device_data``: the device driver's
            private pointer (ZONE_DEVICE pages only).
        pg_locked: the ``PG_locked`` bit of ``page->flags`` (kernel.pagemap).
        oid: object id; loads, stores, refcount changes and freeing are Ops on it.
    """

    pfn: int
    refcount: int = 0
    mapcount: int = 0
    mapping: object | None = None
    state: PageState = PageState.FREE
    generation: int = 0
    contents: int = 0
    pgmap: DevPagemap | None = None
    zone_device_data: object = None
    pg_locked: BitLock = field(default_factory=lambda: BitLock("PG_locked"))
    oid: int = field(default_factory=new_oid)

    def __post_init__(self) -> None:
        self.pg_locked.name = f"page#{self.pfn} PG_locked"
        self.pg_locked.lockdep_class = "PG_locked"

    @property
    def name(self) -> str:
        """Name used in reports."""
        return f"page#{self.pfn}"

    def holders(self) -> tuple[int, ...]:
        """A page has no holders."""
        return ()

    def __repr__(self) -> str:
        return (
            f"Page(pfn={self.pfn}, gen={self.generation}, {self.state.value}, "
            f"ref={self.refcount})"
        )


@dataclass(frozen=True, slots=True)
class Pte:
    """Models a present ``pte_t``: the mapped page, the write and special bits."""

    page: Page
    write: bool
    special: bool = False

    def __repr__(self) -> str:
        special = ", special" if self.special else ""
        return f"Pte(pfn={self.page.pfn}, {'rw' if self.write else 'ro'}{special})"


class SwpType(enum.Enum):
    """MODEL: the swap types of the non-present entries the model has.

    Kernel: include/linux/swap.h SWP_DEVICE_WRITE, SWP_DEVICE_READ,
    SWP_MIGRATION_READ, SWP_MIGRATION_WRITE (the types above the swap
    devices'; no read-exclusive migration, device-exclusive or hwpoison).
    """

    SWP_DEVICE_WRITE = "device-private-write"
    SWP_DEVICE_READ = "device-private-read"
    SWP_MIGRATION_READ = "migration-read"
    SWP_MIGRATION_WRITE = "migration-write"


@dataclass(frozen=True, slots=True)
class SwpEntry:
    """Models ``swp_entry_t`` for entries that name a page (see Deviations).

    Attributes:
        type: the entry type (swp_type).
        page: the page the entry names (the C stores its pfn as swp_offset).
    """

    type: SwpType
    page: Page

    def __repr__(self) -> str:
        return f"SwpEntry({self.type.value}, pfn={self.page.pfn})"


@dataclass(frozen=True, slots=True)
class SwapPte:
    """Models a non-present, non-empty ``pte_t``: a swap entry (swp_entry_to_pte)."""

    entry: SwpEntry

    def __repr__(self) -> str:
        return f"SwapPte({self.entry.type.value}, pfn={self.entry.page.pfn})"


#: MODEL: a ``pte_t`` value: None (pte_none), present, or a swap entry.
PteVal: TypeAlias = "Pte | SwapPte | None"


def mk_pte(page: Page, write: bool) -> Pte:
    """Build a present PTE for ``page``."""
    return Pte(page, write)


def pte_none(pte: PteVal) -> bool:
    """Return whether the entry is empty."""
    return pte is None


def pte_present(pte: PteVal) -> TypeGuard[Pte]:
    """Return whether the entry maps a page (not empty, not a swap entry)."""
    return isinstance(pte, Pte)


def pte_present_or_none(pte: PteVal, where: str) -> Pte | None:
    """MODEL: ``pte`` read by code of a variant that has no swap entries.

    The v5.3 and v5.5 variants model no device memory, so no swap entry can
    reach their page-table walks; one that does comes from a world that
    mixes variants, which is a model error.

    Raises:
        ModelError: ``pte`` is a swap entry; the message names ``where``.
    """
    if isinstance(pte, SwapPte):
        raise ModelError(
            f"{where}: {pte!r} in a variant without device memory or migration "
            "(swap entries exist only in the current variant)"
        )
    return pte


def pte_write(pte: Pte) -> bool:
    """Return whether the entry allows writes."""
    return pte.write


def pte_wrprotect(pte: Pte) -> Pte:
    """Return the entry without its write bit."""
    return Pte(pte.page, False, pte.special)


def pte_mkspecial(pte: Pte) -> Pte:
    """Return the entry marked special (no struct page to refcount).

    Kernel: arch pte_mkspecial().
    """
    return Pte(pte.page, pte.write, True)


def pte_special(pte: Pte) -> bool:
    """Return whether the entry is special (the zero page, in the model)."""
    return pte.special


def pte_page(pte: Pte) -> Page:
    """Return the page the entry maps."""
    return pte.page


def pte_pfn(pte: Pte) -> int:
    """Return the page frame number the entry maps."""
    return pte.page.pfn


@dataclass(slots=True, kw_only=True, eq=False)
class VmOperationsStruct:
    """Models ``struct vm_operations_struct`` (``fault`` and ``find_special_page``).

    Attributes:
        name: the C name of the ops table, for reports.
        fault: ``->fault(vmf)``; MODEL: takes the VMA and the address and
            returns the fault code and the page (``vmf->page``) it found.
        find_special_page: ``->find_special_page(vma, addr)``: the struct
            page behind a special PTE (Xen gntdev's grant mappings), for
            vm_normal_page; None when the ops have none.
    """

    name: str
    fault: Callable[[VmAreaStruct, int], Awaitable[tuple[int, Page | None]]]
    find_special_page: Callable[[VmAreaStruct, int], Page | None] | None = None


@dataclass(slots=True, kw_only=True, eq=False)
class VmAreaStruct:
    """Models ``struct vm_area_struct``.

    Attributes:
        vm_mm: the address space the area belongs to.
        vm_start: first address (inclusive).
        vm_end: last address (exclusive).
        vm_flags: the ``VM_*`` flags.
        vm_ops: None for anonymous memory (vma_is_anonymous).
        vm_pgoff: offset of ``vm_start`` in ``vm_file``, in pages.
        vm_file: the shmem file of a shared anonymous mapping, else None.
        vm_private_data: the driver's data (gntdev's grant map), else None.
    """

    vm_mm: MmStruct
    vm_start: int
    vm_end: int
    vm_flags: VmFlags
    vm_ops: VmOperationsStruct | None = None
    vm_pgoff: int = 0
    vm_file: object | None = None
    vm_private_data: object | None = None

    def __repr__(self) -> str:
        return f"Vma([{self.vm_start:#x}, {self.vm_end:#x}), {self.vm_flags!r})"


def vma_is_anonymous(vma: VmAreaStruct) -> bool:
    """Return whether the area is anonymous memory (no vm_ops)."""
    return vma.vm_ops is None


def vma_pages(vma: VmAreaStruct) -> int:
    """Return the number of pages the area spans."""
    return (vma.vm_end - vma.vm_start) >> PAGE_SHIFT


@dataclass(slots=True, kw_only=True, eq=False)
class MmStruct:
    """Models ``struct mm_struct`` (built by ``fork.mm_alloc``).

    Attributes:
        name: name used in reports.
        mmap: the VMAs, sorted by address (protected by ``mmap_sem``).
        mm_users: users of the address space (mmget/mmput).
        mm_count: references to the struct itself (mmgrab/mmdrop).
        mmap_sem: the VMA lock.
        page_table_lock: the page-table lock; it also protects ``hmm``.
        flags: the ``MMF_*`` bits.
        ptes: page-aligned virtual address -> PTE cell.
        hmm: the ``struct hmm`` of this mm, or None (protected by page_table_lock).
        mmu_notifier_mm: the notifier list, created at first registration.
        notifier_core: MODEL: the notifier core serving this mm (None: v5.3).
        reverted_fixes: MODEL: upstream fixes left out (kernel.fixes).
        locked_vm: number of mlocked pages (always 0 in the model).
        freed: ghost: set by __mmdrop.
        ghost_starts_in_flight: ghost: invalidate_range_start calls running now.
        ghost_open_invalidations: ghost: starts that returned 0 minus ends.
    """

    name: str
    mm_users: Cell[int]
    mm_count: Cell[int]
    mmap_sem: RwSemaphore
    page_table_lock: SpinLock
    flags: Cell[int]
    mmap: list[VmAreaStruct] = field(default_factory=list)
    ptes: dict[int, Cell[PteVal]] = field(default_factory=dict)
    hmm: object | None = None
    mmu_notifier_mm: MmuNotifierMm | None = None
    # MODEL: which mm/mmu_notifier.c this mm is served by (see Deviations)
    notifier_core: MmuNotifierCore | None = None
    # MODEL: patch switches of museum exhibits (see Deviations, kernel.fixes)
    reverted_fixes: frozenset[str] = frozenset()
    locked_vm: int = 0
    freed: bool = False
    # MODEL: ghost state for the oracle
    ghost_starts_in_flight: int = 0
    ghost_open_invalidations: int = 0

    def __repr__(self) -> str:
        return f"MmStruct({self.name!r})"


def pte_offset_map(mm: MmStruct, addr: int) -> Cell[PteVal]:
    """Return the PTE cell that maps ``addr`` (allocating the table on demand).

    MODEL: page-table pages are allocated lazily and never freed; an empty
    cell is indistinguishable from a missing table.
    """
    addr &= PAGE_MASK
    cell = mm.ptes.get(addr)
    if cell is None:
        cell = Cell[PteVal](f"{mm.name}.pte[{addr:#x}]", None)
        mm.ptes[addr] = cell
    return cell


@dataclass(slots=True, kw_only=True, eq=False)
class VmFaultStruct:
    """Models ``struct vm_fault`` (include/linux/mm.h, v6.16), reduced.

    Attributes:
        vma: ``vmf->vma``.
        address: ``vmf->address`` (page aligned).
        flags: ``vmf->flags`` (FAULT_FLAG_*).
        orig_pte: ``vmf->orig_pte``: the entry read at fault entry.
        pte: ``vmf->pte``: the PTE cell.
        page: ``vmf->page``: for a device-private fault, the device page.
    """

    vma: VmAreaStruct
    address: int
    flags: FaultFlag
    orig_pte: PteVal = None
    pte: Cell[PteVal] | None = None
    page: Page | None = None


@dataclass(slots=True, kw_only=True, eq=False)
class RcuHead:
    """Models ``struct rcu_head`` embedded in a structure (back-pointer to it)."""

    container: object


@dataclass(slots=True, kw_only=True, eq=False)
class TaskStruct:
    """Models the few ``struct task_struct`` fields the model uses.

    Attributes:
        pid: process id (for messages).
        comm: command name.
        mm: the task's address space, or None after exit_mm.
        oom_mm: ``tsk->signal->oom_mm``, set by mark_oom_victim.
    """

    pid: int
    comm: str
    mm: MmStruct | None = None
    oom_mm: MmStruct | None = None
