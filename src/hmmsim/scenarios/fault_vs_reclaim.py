"""Scenario ``fault-vs-reclaim``: a device fault races page reclaim.

Reclaim isolates the page with a reference of its own and reaches its PTE
through the reverse map (``shrink_inactive_list`` -> ``shrink_page_list`` ->
``try_to_unmap_one``): a blockable invalidation that takes no ``mmap_sem`` at
all, so the driver's own lock and sequence check are all that order it
against the fault.  The page is freed by ``shrink_page_list`` after the
bracket's end.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.mm_types import Pte
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.vmscan import shrink_inactive_list
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
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

    async def reclaim() -> int:
        # The page set-up faulted in, found the way kswapd's LRU scan and
        # rmap walk do; shrink_inactive_list isolates it (a reference of
        # its own), unmaps it and frees it after the notifier bracket.
        pte = world.mm.ptes[BASE].value
        vma = find_vma(world.mm, BASE)
        assert isinstance(pte, Pte)
        assert vma is not None
        return await shrink_inactive_list(pte.page, vma, BASE)

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(mirror)

    return WorldInstance(
        world=world, setup=setup, actors=[("reclaim", reclaim), ("device", device)]
    )


RACE = race(
    name="fault-vs-reclaim",
    title="A device fault races page reclaim (try_to_unmap_one)",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0).  Actors: 'device' faults BASE through the driver (one retry) "
        "and reads it; 'reclaim' isolates the page, unmaps it through the reverse map "
        "(try_to_unmap_one: blockable invalidation, no mmap_sem) and frees it after "
        "the invalidation ended (shrink_page_list).  Checks the "
        "fault path against an invalidation that does not take mmap_sem."
    ),
)(build)

#: v5.3: the valid-flag ABA race of ``fault-vs-oom-reap``, without mmap_sem
#: (the reference hmm_mirror driver trusts ``hmm_range_valid``).  The device
#: also maps the page after reclaim's invalidate_range_end, while reclaim's
#: isolation reference keeps it allocated (freed by shrink_page_list):
#: ``device-stale-mapping`` beside the use after free, as in fault-vs-oom-reap.
_EXPECT = {
    "prepatch": ("device-use-after-free", "device-stale-mapping"),
    "v5.3": ("device-use-after-free", "device-stale-mapping"),
    "v5.5": (),
    "current": (),
}

SCENARIO = register(race_scenario(RACE, expect=_EXPECT))
