"""Museum scenario ``hmm-free-vs-notifier``: struct hmm freed under a running notifier.

6d7c3cde93c1 ("mm/hmm: fix use after free with struct hmm in the mmu
notifiers", v5.3): ``mmu_notifier_unregister_no_release`` is no fence, so
the notifier core may still be entering HMM's callback when the last
``hmm_put`` frees the struct.  The fix frees it after an SRCU grace period
and makes the callbacks take their reference with ``kref_get_unless_zero``
on the embedding struct.  The scenario runs the v5.3 model with that commit
reverted (``before``) and as released (``after``).
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.hmm import FIX_HMM_SRCU_FREE
from hmmsim.kernel.mmap import vm_munmap
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.scenarios import register
from hmmsim.scenarios._world import BASE, WorldFactory, WorldInstance
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.museum._reverts import before_and_after, revert_variant
from hmmsim.scenarios.races import race

__all__ = ["AFTER", "BEFORE", "RACE", "SCENARIO"]

#: v5.3 with 6d7c3cde93c1 reverted, and v5.3 as released.
BEFORE = revert_variant("v5.3", FIX_HMM_SRCU_FREE)
AFTER = "v5.3"


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    mirror = world.mirrors[0]

    async def setup() -> None:
        await world.setup()

    async def unbind() -> None:
        # The only mirror: hmm_mirror_unregister drops the last reference.
        await world.unbind(mirror)

    async def munmap() -> int:
        return await vm_munmap(world.mm, BASE, PAGE_SIZE)

    return WorldInstance(
        world=world, setup=setup, actors=[("unbind", unbind), ("munmap", munmap)]
    )


RACE = race(
    name="hmm-free-vs-notifier",
    title="The last hmm_mirror_unregister frees struct hmm while munmap enters its notifier",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one mirror "
        "(gpu0) registered, so struct hmm holds one reference.  Actors: "
        "'unbind' unregisters the mirror (hmm_put of the last reference: "
        "hmm_free unhooks the notifier with mmu_notifier_unregister_no_release "
        "and frees the struct); 'munmap' unmaps BASE (the notifier core calls "
        "every subscriber's invalidate_range_start and _end under SRCU).  "
        "Checks that no callback runs on a freed struct hmm."
    ),
    battery=False,
    group=MUSEUM_GROUP,
)(build)

SCENARIO = register(
    before_and_after(
        RACE,
        "v5.3",
        FIX_HMM_SRCU_FREE,
        ("bug", "use-after-free"),
        kernel_version="v5.3",
    )
)
