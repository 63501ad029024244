"""Museum scenario ``fault-vs-munmap-unlock``: an invalidated range and who unlocks mmap_sem.

2bcbeaefde2f ("mm/hmm: always return EBUSY for invalid ranges in
hmm_range_{fault,snapshot}", v5.3): in v5.3-rc1 a range invalidated during
``hmm_range_fault`` made it drop ``mmap_sem`` and return -EAGAIN, while
``hmm_range_snapshot`` returned the same -EAGAIN with ``mmap_sem`` held.  A
driver following the documented pattern (on any error, ``up_read`` and
retry on the "invalidated" code) then released ``mmap_sem`` a second time.
The fix returns -EBUSY, with ``mmap_sem`` held, for an invalidated range
and keeps -EAGAIN for a fault that dropped the lock.  The scenario runs the
reference driver (Documentation/vm/hmm.rst's pattern, faulting with
``hmm_range_fault``) on v5.3 with that commit reverted and as released.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.hmm import FIX_INVALID_RANGE_EBUSY
from hmmsim.kernel.mmap import sys_munmap
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.scenarios import register
from hmmsim.scenarios._world import BASE, WorldFactory, WorldInstance, fault_and_read
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.museum._reverts import revert_variant, reverting_world
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["BEFORE", "RACE", "SCENARIO"]

#: v5.3 with 2bcbeaefde2f reverted (v5.3-rc1's return codes).
BEFORE = revert_variant("v5.3", FIX_INVALID_RANGE_EBUSY)


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    mirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup()

    async def unmap() -> int:
        # munmap(2) downgrades mmap_sem to read before the unmap, so its
        # invalidation runs while the driver's walk holds mmap_sem too.
        return await sys_munmap(world.mm, BASE, PAGE_SIZE)

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(mirror)

    return WorldInstance(
        world=world, setup=setup, actors=[("munmap", unmap), ("device", device)]
    )


RACE = race(
    name="fault-vs-munmap-unlock",
    title="A device fault races munmap of its page: who releases mmap_sem",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0).  Actors: 'munmap' unmaps BASE with munmap(2), whose "
        "invalidation runs after mmap_sem was downgraded to read and marks the "
        "driver's range invalid; 'device' faults BASE for read through the reference driver "
        "(hmm_range_register, then hmm_range_fault under mmap_sem read, one "
        "retry) and reads it.  Checks the return-code contract of an "
        "invalidated range: every mmap_sem acquisition is released exactly once."
    ),
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        make_world=reverting_world(
            {BEFORE: ("v5.3", (FIX_INVALID_RANGE_EBUSY,)), "v5.3": ("v5.3", ())}
        ),
        variants=(BEFORE, "v5.3"),
        expect={BEFORE: ("bad-unlock",), "v5.3": ()},
        kernel_version="v5.3-rc1 (v5.3 with 2bcbeaefde2f reverted) and v5.3",
        default_variant=BEFORE,
        group=MUSEUM_GROUP,
    )
)
