"""Scenario ``unbind-vs-fault``: one driver unbinds while another device faults.

Unbinding removes the driver's subscription (``hmm_mirror_unregister`` or
``mmu_interval_notifier_remove``) while the mm stays alive and another
driver's fault walks the same range: the subscription list (v5.3) or the
interval tree and its deferred updates (v5.5) change under a running fault.
From then on no invalidation reaches the unbound device, so it must map
nothing (the end check sees any entry it left).
"""

from __future__ import annotations

from hmmsim.engine import Instance
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
    world = make_world(variant, mirrors=2)
    first, second = world.mirrors

    async def setup() -> None:
        await world.setup(device_maps=[1])

    async def unbind() -> None:
        await world.unbind(second)

    async def device() -> tuple[int, int | None]:
        return await fault_and_read(first)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("unbind", unbind), ("device", device)],
    )


RACE = race(
    name="unbind-vs-fault",
    title="A driver unbinds while another driver's device faults the same page",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; two drivers "
        "bound (gpu0, gpu1), gpu1's device maps BASE.  Actors: 'unbind' "
        "unbinds gpu1's driver; 'device' faults BASE through gpu0's driver "
        "(one retry) and reads it.  Checks the unbind path (subscription "
        "removal, device teardown) against a concurrent fault of another "
        "subscription on the same mm, and that the unbound device is left "
        "mapping nothing the CPU does not map."
    ),
)(build)

SCENARIO = register(
    race_scenario(RACE, expect={"prepatch": (), "v5.3": (), "v5.5": (), "current": ()})
)
