"""get_user_pages' permission check of a VMA, and pin_user_pages_fast.

Kernel: mm/gup.c check_vma_flags() (Linux v5.3; v5.5 is the same).
__get_user_pages calls it for each VMA before it faults anything in:
handle_mm_fault checks no VMA permission itself (see kernel.fault).

pin_user_pages_fast / unpin_user_pages (mm/gup.c, v5.17 and v5.18, read
for the gntdev/i915 exhibit): a FOLL_PIN reference adds
GUP_PIN_COUNTING_BIAS to the page's count (try_grab_page), so page_count
shows the pin; unpin_user_page subtracts it again.

Deviations:
    * MODEL: only ``check_vma_flags`` and the ``FOLL_*`` flags it reads are
      modelled; the callers (the KVM-style MMU's page lookup) do the rest of
      the page walk themselves.  FOLL_FORCE is accepted, but VM_MAYREAD /
      VM_MAYWRITE are not modelled: a forced access is allowed wherever a
      private mapping could be written or any mapping read.
    * MODEL: no protection keys (memory.arch_vma_access_permitted).
    * MODEL: pin_user_pages_fast takes the mm (current->mm in C) and goes
      straight to the slow path under ``mmap_sem`` (the lockless walk of
      lockless_pages_from_mm is not modelled; it gives up on a special PTE,
      such as gntdev's, anyway).  The slow path only looks pages up: a page
      is the VMA's ``find_special_page`` one (vm_normal_page) or the page
      of a present PTE; an address with neither is not faulted in, the walk
      stops there (-EFAULT if it is the first page).  No FOLL_LONGTERM
      checks, no compound pages.
"""

from __future__ import annotations

import enum
import errno
from typing import Final

from hmmsim.kernel.memory import arch_vma_access_permitted, is_cow_mapping
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    VmAreaStruct,
    pte_offset_map,
    pte_page,
    pte_present,
    vma_is_anonymous,
)
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.page_alloc import free_page
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_SIZE, VM_IO, VM_PFNMAP, VM_READ, VM_WRITE
from hmmsim.sync import READ_ONCE, down_read, shared_access, up_read

__all__ = [
    "FOLL_ANON",
    "FOLL_FORCE",
    "FOLL_PIN",
    "FOLL_REMOTE",
    "FOLL_WRITE",
    "GUP_PIN_COUNTING_BIAS",
    "FollFlags",
    "check_vma_flags",
    "pin_user_pages_fast",
    "unpin_user_page",
    "unpin_user_pages",
]

#: What a FOLL_PIN reference adds to the count of an order-0 page (mm.h).
GUP_PIN_COUNTING_BIAS: Final = 1 << 10


class FollFlags(enum.IntFlag):
    """The ``FOLL_*`` flags of get_user_pages (include/linux/mm.h, v5.3)."""

    FOLL_WRITE = 0x01
    FOLL_FORCE = 0x10
    FOLL_REMOTE = 0x2000
    FOLL_ANON = 0x8000
    FOLL_PIN = 0x40000


#: The caller will write to the pages.
FOLL_WRITE: Final = FollFlags.FOLL_WRITE
#: Access even without the VMA's read/write permission (ptrace).
FOLL_FORCE: Final = FollFlags.FOLL_FORCE
#: The pages belong to another process's mm.
FOLL_REMOTE: Final = FollFlags.FOLL_REMOTE
#: Only anonymous memory may be returned.
FOLL_ANON: Final = FollFlags.FOLL_ANON
#: A pin (pin_user_pages), released with unpin_user_page (v5.6+).
FOLL_PIN: Final = FollFlags.FOLL_PIN


def check_vma_flags(  # noqa: PLR0911 - the C's exits, in its order
    vma: VmAreaStruct, gup_flags: FollFlags
) -> int:
    """Return whether get_user_pages may fault pages of ``vma`` in.

    Kernel: mm/gup.c check_vma_flags() (v5.3).

    Returns:
        0, or -EFAULT (an I/O or PFN mapping, a non-anonymous VMA with
        FOLL_ANON, or no permission for the access).
    """
    vm_flags = vma.vm_flags
    write = bool(gup_flags & FOLL_WRITE)
    foreign = bool(gup_flags & FOLL_REMOTE)

    if vm_flags & (VM_IO | VM_PFNMAP):
        return -errno.EFAULT

    if gup_flags & FOLL_ANON and not vma_is_anonymous(vma):
        return -errno.EFAULT

    if write:
        if not vm_flags & VM_WRITE:
            if not gup_flags & FOLL_FORCE:
                return -errno.EFAULT
            # A forced write only where the C allows it: a COW mapping.
            # MODEL: VM_MAYWRITE is taken as set (see Deviations).
            if not is_cow_mapping(vm_flags):
                return -errno.EFAULT
    elif not vm_flags & VM_READ:  # noqa: SIM102 - the C's nesting
        if not gup_flags & FOLL_FORCE:
            return -errno.EFAULT
        # MODEL: VM_MAYREAD is taken as set (see Deviations).

    # Protection keys (never refuse in the model).
    if not arch_vma_access_permitted(vma, write, False, foreign):
        return -errno.EFAULT
    return 0


async def try_grab_page(page: Page, flags: FollFlags) -> bool:
    """Take the reference a GUP walk hands out: a pin adds the bias.

    Kernel: mm/gup.c try_grab_page() (v5.17).
    """
    await shared_access(page, write=True, func="try_grab_page")
    if page.refcount <= 0:
        return False
    page.refcount += GUP_PIN_COUNTING_BIAS if flags & FOLL_PIN else 1
    return True


def _follow_page(vma: VmAreaStruct, addr: int) -> Page | None:
    # vm_normal_page: the driver's page behind a special PTE.
    ops = vma.vm_ops
    if ops is not None and ops.find_special_page is not None:
        return ops.find_special_page(vma, addr)
    return None


async def pin_user_pages_fast(
    mm: MmStruct, start: int, nr_pages: int, gup_flags: FollFlags, pages: list[Page]
) -> int:
    """Pin ``nr_pages`` user pages from ``start``; append them to ``pages``.

    Kernel: mm/gup.c pin_user_pages_fast() -> internal_get_user_pages_fast()
    -> __gup_longterm_unlocked() -> __get_user_pages() (v5.17), reduced:
    see Deviations.  MODEL: ``pages`` is a list the pinned pages are
    appended to (``struct page **`` in C).

    Returns:
        The number of pages pinned (the walk stops at the first address it
        cannot pin), or -EFAULT if not even the first one was.
    """
    gup_flags |= FOLL_PIN
    await down_read(mm.mmap_sem)
    pinned = 0
    while pinned < nr_pages:
        addr = start + pinned * PAGE_SIZE
        vma = find_vma(mm, addr)
        if vma is None or vma.vm_start > addr or check_vma_flags(vma, gup_flags):
            break
        page = _follow_page(vma, addr)
        if page is None:
            pte = await READ_ONCE(pte_offset_map(mm, addr))
            if not pte_present(pte):
                break  # MODEL: no fault-in (see Deviations)
            page = pte_page(pte)
        if not await try_grab_page(page, gup_flags):
            break
        pages.append(page)
        pinned += 1
    await up_read(mm.mmap_sem)
    trace("pin_user_pages_fast", start=start, nr_pages=nr_pages, pinned=pinned)
    return pinned if pinned else -errno.EFAULT


async def unpin_user_page(page: Page) -> None:
    """Drop a pin taken by pin_user_pages*; free the page on its last reference.

    Kernel: mm/gup.c unpin_user_page() -> put_compound_head(page,
    GUP_PIN_COUNTING_BIAS, FOLL_PIN) (v5.17).
    """
    await shared_access(page, write=True, func="unpin_user_page")
    page.refcount -= GUP_PIN_COUNTING_BIAS
    if page.refcount == 0:
        await free_page(page)


async def unpin_user_pages(pages: list[Page], npages: int) -> None:
    """Unpin the first ``npages`` of ``pages``.

    Kernel: mm/gup.c unpin_user_pages() (v5.17).
    """
    for page in pages[:npages]:
        await unpin_user_page(page)
