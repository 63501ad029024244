"""Scenario ``fault-vs-fork``: a device write fault races fork and a COW break.

fork write-protects the parent's private pages (``copy_page_range``, an
MMU_NOTIFY_PROTECTION_PAGE invalidation); the next write fault in the
parent (here: the device's own, through hmm_range_fault) breaks COW
(``wp_page_copy``, an MMU_NOTIFY_CLEAR invalidation) and maps a new page.
A device still writing the old page writes memory the child now shares,
and the parent never sees it.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.fork import dup_mm
from hmmsim.kernel.mm_types import TaskStruct
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    WorldFactory,
    WorldInstance,
    fault_and_read,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    mirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup()

    async def fork() -> bool:
        # The child lives on: the page stays shared until a write breaks COW.
        child = await dup_mm(TaskStruct(pid=101, comm="child"), world.mm)
        return child is not None

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(mirror, write=True)

    return WorldInstance(
        world=world, setup=setup, actors=[("fork", fork), ("device", device)]
    )


RACE = race(
    name="fault-vs-fork",
    title="A device write fault races fork (write-protect, then copy-on-write)",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0).  Actors: 'fork' forks the process (dup_mm: the parent's PTE "
        "is write-protected inside a blockable invalidation; the child lives "
        "on and shares the page); 'device' faults BASE for write through the "
        "driver (one retry; after the fork its fault breaks COW: a new page "
        "replaces the shared one inside a second invalidation) and writes it "
        "through its page table.  Checks that the device never writes a page "
        "the parent does not map writable, i.e. the child's copy."
    ),
)(build)

SCENARIO = register(
    race_scenario(RACE, expect={"prepatch": (), "v5.3": (), "v5.5": (), "current": ()})
)
