"""A device with its own page table, and its memory accesses.

Kernel: there is no single C file; this is the hardware side every mirror
driver programs (nouveau's GPU page table and fault buffer, amdgpu's GPUVM,
lib/test_hmm.c's xarray ``pt``).

A :class:`Device` maps page-aligned virtual addresses of one mm to pages.
Drivers change entries only through :func:`device_pte_set` and
:func:`device_pte_clear` (under their own update lock); the device's DMA
engine uses them through :func:`device_access`, at any time, without any
lock — which is exactly why the notifier contract matters.

Deviations:
    * MODEL: a device TLB flush is part of clearing an entry: once
      ``device_pte_clear`` returns, no later access uses the old entry.  A
      translation and the memory access it allows are one atomic Op.
    * MODEL: every Op on a device entry also names the CPU PTE cell of the
      same address, and an access also reads the page allocator: the explorer
      then orders device accesses against CPU unmaps and page frees (a
      deliberately coarse footprint, which is sound).
    * MODEL: entries store the page and its allocation generation (ghost),
      so the oracle can tell a reused frame from the page that was mapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hmmsim.kernel.mm_types import MmStruct, Page, PageState, pte_offset_map
from hmmsim.kernel.page_alloc import page_allocator
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_MASK
from hmmsim.sync import new_oid, shared_access

__all__ = [
    "DevPte",
    "Device",
    "DeviceEntry",
    "device_access",
    "device_pte_clear",
    "device_pte_set",
]


@dataclass(frozen=True, slots=True)
class DevPte:
    """A present device page-table entry."""

    page: Page
    generation: int
    write: bool


@dataclass(slots=True, kw_only=True, eq=False)
class DeviceEntry:
    """One device page-table slot (an object the explorer tracks)."""

    name: str
    pte: DevPte | None = None
    oid: int = field(default_factory=new_oid)

    def holders(self) -> tuple[int, ...]:
        """A slot has no holders."""
        return ()


@dataclass(slots=True, kw_only=True, eq=False)
class Device:
    """A device that mirrors part of one process address space.

    Attributes:
        name: name used in reports, e.g. ``gpu0``.
        mm: the address space it mirrors.
        entries: page-aligned address -> slot.
        accesses: ghost: number of successful device accesses.
    """

    name: str
    mm: MmStruct
    entries: dict[int, DeviceEntry] = field(default_factory=dict)
    accesses: int = 0

    def entry(self, addr: int) -> DeviceEntry:
        """Return the slot of ``addr`` (created empty on first use)."""
        addr &= PAGE_MASK
        slot = self.entries.get(addr)
        if slot is None:
            slot = DeviceEntry(name=f"{self.name}.pte[{addr:#x}]")
            self.entries[addr] = slot
        return slot

    def mapped(self) -> list[tuple[int, DevPte]]:
        """Return the present entries, sorted by address (for the oracle)."""
        return sorted(
            (addr, slot.pte) for addr, slot in self.entries.items() if slot.pte
        )


async def device_pte_set(dev: Device, addr: int, page: Page, write: bool) -> None:
    """Program the device to map ``addr`` to ``page`` (driver holds its lock)."""
    slot = dev.entry(addr)
    await shared_access(
        slot, pte_offset_map(dev.mm, addr), write=True, func="device_pte_set"
    )
    slot.pte = DevPte(page, page.generation, write)
    trace(
        "device_pte_set",
        device=dev.name,
        addr=addr,
        page=page.pfn,
        generation=page.generation,
        write=write,
    )


async def device_pte_clear(dev: Device, addr: int) -> None:
    """Remove the device mapping of ``addr`` and flush the device TLB."""
    slot = dev.entry(addr)
    if slot.pte is None:
        return
    await shared_access(
        slot, pte_offset_map(dev.mm, addr), write=True, func="device_pte_clear"
    )
    old = slot.pte
    slot.pte = None
    if old is not None:
        trace("device_pte_clear", device=dev.name, addr=addr, page=old.page.pfn)


async def device_access(
    dev: Device, addr: int, write: bool, value: int = 0
) -> int | None:
    """Let the device read or write the word at ``addr`` through its page table.

    Returns:
        The value read (or written), or None when the device has no mapping
        (a real device would raise a device page fault).
    """
    slot = dev.entry(addr)
    cell = pte_offset_map(dev.mm, addr)
    allocator = page_allocator()
    extra = () if slot.pte is None else (slot.pte.page,)
    await shared_access(
        slot,
        cell,
        allocator,
        *extra,
        write=write,
        func="device_write" if write else "device_read",
    )
    pte = slot.pte
    if pte is None or (write and not pte.write):
        trace("device_fault", device=dev.name, addr=addr, write=write)
        return None
    page = pte.page
    trace(
        "device_access",
        device=dev.name,
        addr=addr,
        page=page.pfn,
        generation=page.generation,
        mapped_generation=pte.generation,
        free=page.state is PageState.FREE,
        write=write,
    )
    if write:
        page.contents = value
    dev.accesses += 1
    return page.contents
