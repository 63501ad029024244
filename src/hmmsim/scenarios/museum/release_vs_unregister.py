"""Museum scenario ``release-vs-unregister``: a secondary MMU unregisters while the mm exits.

751efd8610d3 ("mmu_notifier_unregister NULL Pointer deref and multiple
->release() callouts", v3.9): v3.8's ``mmu_notifier_unregister`` tested
``hlist_unhashed`` without the lock and later unhooked the subscriber with
``hlist_del_rcu``; when ``__mmu_notifier_release`` (exit) unhooked it in
between with ``hlist_del_init_rcu``, that store went through a NULL
``pprev``.  The scenario runs the notifier core of v3.8 (v5.3's with
d34883d4e35c and 751efd8610d3 reverted), of v3.9 (d34883d4e35c reverted)
and of v5.3, whose unhook is ``hlist_del_init_rcu`` under the lock.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.kvm_mmu import kvm_unregister
from hmmsim.kernel.fork import mmput
from hmmsim.kernel.mmu_notifier import FIX_RELEASE_REFIX, FIX_UNREGISTER_NULL_DEREF
from hmmsim.scenarios import register
from hmmsim.scenarios._world import WorldFactory, WorldInstance
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.museum._reverts import revert_variant, reverting_world
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO", "V3_8", "V3_9"]

#: v3.8's notifier core (before 751efd8610d3) and v3.9's (after it, before
#: d34883d4e35c), as v5.3's with those commits reverted.
V3_8 = revert_variant("v5.3", FIX_RELEASE_REFIX, FIX_UNREGISTER_NULL_DEREF)
V3_9 = revert_variant("v5.3", FIX_RELEASE_REFIX)


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=0, kvms=1)
    kvm = world.kvms[0]

    async def setup() -> None:
        await world.setup(kvm_maps=[0])

    async def unregister() -> None:
        # kvm_destroy_vm, from the file release of the VM.
        await kvm_unregister(kvm)

    async def exit_task() -> None:
        # The process's last mmput: exit_mmap -> mmu_notifier_release.
        await mmput(world.mm)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("unregister", unregister), ("exit", exit_task)],
    )


RACE = race(
    name="release-vs-unregister",
    title="A KVM-style secondary MMU unregisters while the process exits",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; one KVM-style "
        "secondary MMU (kvm0) registered with mmu_notifier_register, its shadow "
        "page table mapping BASE.  Actors: 'unregister' runs "
        "mmu_notifier_unregister (kvm_destroy_vm); 'exit' drops the process's "
        "last mm_users reference, so exit_mmap runs __mmu_notifier_release.  "
        "Checks that the two unhooks of the one subscriber never collide and "
        "that the shadow mappings are gone before the pages are."
    ),
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        make_world=reverting_world(
            {
                V3_8: ("v5.3", (FIX_RELEASE_REFIX, FIX_UNREGISTER_NULL_DEREF)),
                V3_9: ("v5.3", (FIX_RELEASE_REFIX,)),
                "v5.3": ("v5.3", ()),
            }
        ),
        variants=(V3_8, V3_9, "v5.3"),
        expect={V3_8: ("null-deref",), V3_9: (), "v5.3": ()},
        kernel_version="v3.8, v3.9 (v5.3 with fixes reverted) and v5.3",
        default_variant=V3_8,
        group=MUSEUM_GROUP,
    )
)
