"""Scenario ``fault-on-readonly-vma``: a device write fault on a read-only VMA.

v5.3's ``hmm_range_fault`` checks VM_READ but not VM_WRITE, and
``handle_mm_fault`` checks no permission at all (the arch fault handler and
get_user_pages do that before calling it).  A write fault on a read-only
VMA therefore returns VM_FAULT_WRITE without making the PTE writable, the
walk returns -EBUSY, and ``hmm_range_fault`` walks again, for ever, holding
``mmap_sem`` for read.  Fixed in v5.4 by Ralph Campbell, "mm/hmm:
hmm_range_fault() infinite loop" (commit c18ce674d548), which returns
-EPERM from ``hmm_vma_walk_hole_`` instead.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.device import device_access
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.types import PAGE_SIZE, VM_READ
from hmmsim.kernel.uaccess import cpu_load
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    dmirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup()
        # mprotect(PROT_READ): the page stays mapped, read-only.
        ret = await do_mprotect_pkey(world.mm, BASE, PAGE_SIZE, VM_READ)
        assert ret == 0, f"[hmmsim internal bug] set-up: mprotect failed with {ret}"

    async def device() -> tuple[int, int | None]:
        # The device asks for write access to a page it may only read.
        ret = await dmirror.fault(BASE, write=True, max_retries=1)
        value = await device_access(dmirror.device, BASE, False)
        return ret, value

    async def cpu() -> tuple[int, int]:
        # The process itself reads the page meanwhile (mmap_sem for read too).
        return await cpu_load(world.mm, BASE)

    return WorldInstance(
        world=world, setup=setup, actors=[("device", device), ("cpu", cpu)]
    )


RACE = race(
    name="fault-on-readonly-vma",
    title="A device write fault on a read-only VMA (v5.3's hmm_range_fault loop)",
    description="Set-up: one anonymous page at BASE written by the CPU, then made "
    "read-only with mprotect(PROT_READ); one mirror (gpu0).  Actors: "
    "'device' faults BASE for write through the reference driver (one "
    "retry), then reads it through its page table; 'cpu' reads BASE.  "
    "Exercises the permission checks around handle_mm_fault: v5.3 "
    "loops for ever (hang), v5.4+ refuses with -EPERM.",
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": ("hang",),
            "v5.3": ("hang",),
            "v5.5": (),
            "current": (),
        },
    )
)
