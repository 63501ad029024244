"""Museum scenario ``oom-kvm-and-nouveau``: a failed start must still end KVM's.

Two hlist subscribers on one mm, as Sean Christopherson's commit
c2655835fd8c ("mm/mmu_notifiers: ensure range_end() is paired with
range_start()", v5.12) describes them: nouveau's SVM notifier, which refuses
every non-blockable ``invalidate_range_start`` and has no end, and KVM,
which counts a start in ``mmu_notifier_count`` and uncounts it in its end.
The OOM reaper's non-blocking start reaches both; the start fails, so the
reaper calls no ``invalidate_range_end``.  Before the commit nobody ended
KVM's start: ``mmu_notifier_count`` stays raised and the vCPU can never map
the page again (the guest's soft lockup of the commit message).  Since the
commit the core calls the end of every subscriber that has one, which only
KVM has.

No interval notifier is on the mm (nouveau's per-fault ones come with a GPU
fault, which this scenario leaves out): with one, the interval section the
same start opens stays open on every kernel (``oom-vs-nouveau-fault``), a
different bug that c2655835fd8c does not touch.
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers import nouveau_svm, nouveau_svm_current
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.drivers.kvm_mmu import kvm_mmu_page_fault
from hmmsim.kernel.drivers.nouveau_svm import NouveauSvmm
from hmmsim.kernel.mmu_notifier_current import C2655835FD8C
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.scenarios import register
from hmmsim.scenarios._world import BASE, WorldFactory, WorldInstance
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.museum._reverts import revert_variant, reverting_world
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["AFTER", "BEFORE", "RACE", "SCENARIO"]

#: today's kernel without c2655835fd8c: the core of v5.5..v5.11.
BEFORE = revert_variant("current", C2655835FD8C)
#: today's kernel.
AFTER = "current"

REAP_ATTEMPTS = 1
#: The vCPU's fault retries (a bound of the model: KVM re-enters the guest).
VCPU_RETRIES = 1


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    nouveau = nouveau_svm if variant == "v5.5" else nouveau_svm_current
    world = make_world(variant, mirrors=0, kvms=1)
    kvm = world.kvms[0]
    gpu = Device(name="gpu0", mm=world.mm)
    world.view.devices.append(gpu)
    svmm = NouveauSvmm(name="svmm", vmm=gpu)

    async def setup() -> None:
        # KVM registers (and maps BASE in its shadow table) first; nouveau's
        # notifier, registered last, is called first.
        await world.setup(bind=(), kvm_maps=[0], oom_victim=True)
        ret = await nouveau.nouveau_svmm_init(svmm, world.mm)
        assert ret == 0, f"[hmmsim internal bug] set-up: svmm init failed with {ret}"

    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)

    async def vcpu() -> int:
        # A guest access to BASE after its shadow mapping may have gone.
        return await kvm_mmu_page_fault(kvm, BASE, False, max_retries=VCPU_RETRIES)

    return WorldInstance(
        world=world, setup=setup, actors=[("oom_reaper", reaper), ("vcpu", vcpu)]
    )


RACE = race(
    name="oom-kvm-and-nouveau",
    title="KVM and nouveau's refusing notifier on one mm: a failed reap must end KVM's start",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; a KVM-style "
        "secondary MMU registered (its shadow table maps BASE), then nouveau "
        "SVM enabled (its hlist notifier, which refuses every non-blockable "
        "start and has no end; no GPU fault, so no interval notifier); the "
        "process is an OOM victim.  Actors: 'oom_reaper' runs oom_reap_task "
        f"({REAP_ATTEMPTS} attempt); 'vcpu' faults BASE into the shadow "
        f"table ({VCPU_RETRIES} retry).  Checks that every subscriber whose "
        "start succeeded is ended when another one refuses "
        "(kvm->mmu_notifier_count back to 0)."
    ),
    battery=False,
    group=MUSEUM_GROUP,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        make_world=reverting_world(
            {
                BEFORE: ("current", (C2655835FD8C,)),
                AFTER: ("current", ()),
                "v5.5": ("v5.5", ()),
            }
        ),
        variants=(BEFORE, AFTER, "v5.5"),
        expect={BEFORE: ("notifier-leak",), AFTER: (), "v5.5": ("notifier-leak",)},
        kernel_version="v6.16",
        default_variant=BEFORE,
    )
)
