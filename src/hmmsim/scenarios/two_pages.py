"""Scenarios ``two-pages-one-invalidated`` and ``two-pages-both-invalidated``.

The device maps two pages; munmap invalidates one of them or both while the
device faults the first again and reads both.  A driver must zap exactly the
invalidated range: every page of it, and a fault of a page outside it may go
on (a retry is allowed, a stale entry is not).
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.device import device_access
from hmmsim.kernel.mmap import vm_munmap
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["BOTH", "ONE", "SCENARIO_BOTH", "SCENARIO_ONE"]


def _build(make_world: WorldFactory, variant: str, *, unmapped: int) -> Instance:
    world = make_world(variant, mirrors=1)
    mirror = world.mirrors[0]
    start = BASE + (2 - unmapped) * PAGE_SIZE

    async def setup() -> None:
        await world.setup(pages=2, device_maps=[0], map_pages=2)

    async def unmap() -> int:
        return await vm_munmap(world.mm, start, unmapped * PAGE_SIZE)

    async def device() -> tuple[int, int | None, int | None]:
        ret = await mirror.fault(BASE, max_retries=1)
        first = await device_access(mirror.device, BASE, False)
        second = await device_access(mirror.device, BASE + PAGE_SIZE, False)
        return ret, first, second

    return WorldInstance(
        world=world, setup=setup, actors=[("munmap", unmap), ("device", device)]
    )


def build_one(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution: munmap covers the second page only."""
    return _build(make_world, variant, unmapped=1)


def build_both(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution: munmap covers both pages."""
    return _build(make_world, variant, unmapped=2)


_SETUP = (
    "Set-up: two anonymous pages at BASE and BASE+4K written by the CPU, "
    "one mirror (gpu0) whose device maps both after completed faults.  "
)
_CHECKS = (
    "  Checks that the invalidation zaps every device entry of its range and "
    "that a fault of a page outside it still ends consistent."
)

ONE = race(
    name="two-pages-one-invalidated",
    title="Two mapped pages; munmap invalidates the second while the device faults the first",
    description=(
        _SETUP + "Actors: 'munmap' unmaps BASE+4K only; 'device' faults BASE "
        "again through the driver (one retry), then reads BASE and BASE+4K "
        "through its page table." + _CHECKS
    ),
)(build_one)

BOTH = race(
    name="two-pages-both-invalidated",
    title="Two mapped pages; munmap invalidates both while the device faults the first",
    description=(
        _SETUP + "Actors: 'munmap' unmaps both pages in one call (one "
        "invalidation over both); 'device' faults BASE again through the "
        "driver (one retry), then reads BASE and BASE+4K through its page "
        "table." + _CHECKS
    ),
)(build_both)

_NONE = {"prepatch": (), "v5.3": (), "v5.5": (), "current": ()}
SCENARIO_ONE = register(race_scenario(ONE, expect=_NONE))
SCENARIO_BOTH = register(race_scenario(BOTH, expect=_NONE))
