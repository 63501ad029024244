"""Museum scenario ``release-vs-reclaim``: page reclaim while the mm's notifiers are released.

d34883d4e35c ("mm: mmu_notifier: re-fix freed page still mapped in secondary
MMU", v3.10): v3.9's ``__mmu_notifier_release`` (751efd8610d3) unhooked each
subscriber under the lock and called its ``release`` only afterwards.  In
between, reclaim's invalidation no longer reached the subscriber, so the
CPU side unmapped and freed a page that the secondary MMU still mapped.
The fix calls every ``release`` under SRCU before unhooking anyone.  The
scenario runs the notifier core of v3.9 (v5.3's with d34883d4e35c reverted)
and of v5.3.

The exit actor runs only exit_mmap's first step, ``mmu_notifier_release``:
in the kernel, exit_mmap's ``free_pgtables`` (``unlink_anon_vmas``) waits
for a reverse-map walk running on the same anon_vma, and the model's rmap
walk takes no anon_vma lock, so letting exit_mmap run on would let the mm
be freed under a running ``try_to_unmap_one``, which the kernel excludes.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.kvm_mmu import kvm_unregister
from hmmsim.kernel.mm_types import Pte
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.mmu_notifier import FIX_RELEASE_REFIX, mmu_notifier_release
from hmmsim.kernel.vmscan import shrink_inactive_list
from hmmsim.scenarios import register
from hmmsim.scenarios._world import BASE, WorldFactory, WorldInstance
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.museum._reverts import revert_variant, reverting_world
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO", "V3_9"]

#: v3.9's notifier core: v5.3's with d34883d4e35c reverted.
V3_9 = revert_variant("v5.3", FIX_RELEASE_REFIX)


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=0, kvms=1)

    async def setup() -> None:
        await world.setup(kvm_maps=[0])

    async def exit_task() -> None:
        # exit_mmap's first step (the last mm_users reference is gone): every
        # subscriber's release, then the unhook.  The rest of exit_mmap is
        # left out (module docstring).  exit_files then closes the VM
        # (kvm_destroy_vm -> mmu_notifier_unregister drops its mmgrab).
        await mmu_notifier_release(world.mm)
        await kvm_unregister(world.kvms[0])

    async def reclaim() -> int:
        # As in fault-vs-reclaim: the LRU scan found the page, the rmap walk
        # reaches its PTE without mmap_sem.
        pte = world.mm.ptes[BASE].value
        vma = find_vma(world.mm, BASE)
        assert isinstance(pte, Pte)
        assert vma is not None
        return await shrink_inactive_list(pte.page, vma, BASE)

    return WorldInstance(
        world=world, setup=setup, actors=[("exit", exit_task), ("reclaim", reclaim)]
    )


RACE = race(
    name="release-vs-reclaim",
    title="Page reclaim races the release of a KVM-style secondary MMU at exit",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; one KVM-style "
        "secondary MMU (kvm0) registered, its shadow page table mapping BASE.  "
        "Actors: 'exit' runs exit_mmap's first step, mmu_notifier_release "
        "(every subscriber's release, then the unhook), then closes the VM "
        "(mmu_notifier_unregister); 'reclaim' "
        "isolates the page, unmaps it through the reverse map "
        "(try_to_unmap_one, a blockable invalidation without mmap_sem) and "
        "frees it after the invalidation ended.  Checks that no page is "
        "unmapped or freed while the secondary MMU still maps it."
    ),
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        make_world=reverting_world(
            {V3_9: ("v5.3", (FIX_RELEASE_REFIX,)), "v5.3": ("v5.3", ())}
        ),
        variants=(V3_9, "v5.3"),
        expect={V3_9: ("notifier-contract",), "v5.3": ()},
        kernel_version="v3.9 (v5.3 with d34883d4e35c reverted) and v5.3",
        default_variant=V3_9,
        group=MUSEUM_GROUP,
    )
)
