"""The page-table walker used by HMM: walk_page_range.

Kernel: mm/pagewalk.c walk_page_range() (Linux v5.3).

Deviations:
    * MODEL: one level of page tables: a VMA part is handed to ``pmd_entry``
      as a whole (no pmd pointer), a part outside every VMA to ``pte_hole``.
      The kernel also calls ``pmd_entry`` for a hole whose page tables still
      exist; the model always reports a hole there.
    * MODEL: no ``hugetlb_entry`` / ``pte_entry`` callbacks: hugetlb VMAs
      are walked like others.  ``test_walk`` (mm/pagewalk.c walk_page_test)
      is called for each VMA part when set, as the later (v5.8+) HMM walk uses it:
      a positive result skips the VMA, a negative one ends the walk; without
      it VM_PFNMAP VMAs are not special-cased (the v5.3/v5.5 HMM rejects
      them before walking).
    * MODEL: the ``VM_BUG_ON_MM(!rwsem_is_locked(&mm->mmap_sem))`` check asks
      whether the walking task holds ``mmap_sem`` (``lockdep_is_held``), not
      whether anybody does: an owner-local question with no scheduling point,
      and stricter than the kernel's (a walk relying on another task's hold is
      reported too).
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hmmsim.kernel.debug import VM_BUG_ON
from hmmsim.kernel.mm_types import MmStruct, VmAreaStruct
from hmmsim.kernel.mmap import find_vma
from hmmsim.sync import lockdep_is_held

__all__ = ["MmWalk", "walk_page_range", "walk_page_test"]

WalkFn = Callable[[int, int, "MmWalk"], Awaitable[int]]


@dataclass(slots=True, kw_only=True, eq=False)
class MmWalk:
    """Models ``struct mm_walk``.

    Attributes:
        mm: the address space walked.
        vma: the VMA of the part being walked, None in a hole.
        private: the caller's state.
        pmd_entry: called for each part inside a VMA.
        pte_hole: called for each part outside every VMA.
        test_walk: called first for each part inside a VMA: 0 walks it,
            1 skips it, a negative errno ends the walk.
    """

    mm: MmStruct
    private: object
    vma: VmAreaStruct | None = None
    pmd_entry: WalkFn | None = None
    pte_hole: WalkFn | None = None
    test_walk: WalkFn | None = None


async def walk_page_test(start: int, end: int, walk: MmWalk) -> int:
    """Ask ``test_walk`` whether to walk the VMA part [start, end).

    Kernel: mm/pagewalk.c walk_page_test().  MODEL: without ``test_walk``
    every VMA is walked (the VM_PFNMAP special case is not modelled).

    Returns:
        0 to walk it, 1 to skip it, or a negative errno to end the walk.
    """
    if walk.test_walk is not None:
        return await walk.test_walk(start, end, walk)
    return 0


async def walk_page_range(start: int, end: int, walk: MmWalk) -> int:
    """Walk [start, end), calling the callbacks of ``walk``.

    Kernel: mm/pagewalk.c walk_page_range() (v5.3).

    Returns:
        0, -EINVAL for an empty range, or the first non-zero callback result.
    """
    err = 0
    if start >= end:
        return -errno.EINVAL
    # MODEL: the kernel asks rwsem_is_locked(), which another task's hold would
    # also satisfy; the model asks whether the walking task holds it, an
    # owner-local question that needs no scheduling point (see Deviations).
    VM_BUG_ON(not lockdep_is_held(walk.mm.mmap_sem), "walk without mmap_sem")

    vma = find_vma(walk.mm, start)
    while True:
        if vma is None:
            # After the last VMA.
            walk.vma = None
            next = end
        elif start < vma.vm_start:
            # Before the next VMA.
            walk.vma = None
            next = min(end, vma.vm_start)
        else:
            # Inside a VMA.
            walk.vma = vma
            next = min(end, vma.vm_end)
            following = walk.mm.mmap.index(vma) + 1
            vma = walk.mm.mmap[following] if following < len(walk.mm.mmap) else None
            err = await walk_page_test(start, next, walk)
            if err > 0:
                # Only steers the walk: skip this VMA, report nothing.
                err = 0
                start = next
                if not start < end:
                    break
                continue
            if err < 0:
                break
        if walk.vma is not None and walk.pmd_entry is not None:
            err = await walk.pmd_entry(start, next, walk)
        elif walk.vma is None and walk.pte_hole is not None:
            err = await walk.pte_hole(start, next, walk)
        if err:
            break
        start = next
        if not start < end:
            break
    return err
