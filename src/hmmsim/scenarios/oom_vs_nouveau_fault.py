"""Scenario ``oom-vs-nouveau-fault``: nouveau's two notifiers on one mm against the OOM reaper.

nouveau (v5.5, and still today) puts a classic hlist notifier that refuses
every non-blockable ``invalidate_range_start`` and, around each GPU fault,
an interval notifier on the same mm.  ``__mmu_notifier_invalidate_range_start``
runs the interval part first (``mn_itree_invalidate``: counts the section
in ``active_invalidate_ranges``, makes the sequence odd if a subscription
intersects, and calls its callback, which succeeds), then the hlist part,
which refuses; the error is returned as is and, per contract, the OOM
reaper calls no ``invalidate_range_end``.  Nothing ends the interval
section.  See docs/scenarios.md for the kernel evidence.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

from hmmsim.engine import Instance
from hmmsim.kernel.drivers import nouveau_svm, nouveau_svm_current
from hmmsim.kernel.drivers.device import Device, device_access
from hmmsim.kernel.drivers.nouveau_svm import NouveauSvmm
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.scenarios import register
from hmmsim.scenarios._world import BASE, WorldFactory, WorldInstance
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]

REAP_ATTEMPTS = 1

#: variant -> the nouveau_svm.c port of its kernel version.
NOUVEAU: Final[dict[str, ModuleType]] = {
    "v5.5": nouveau_svm,
    "current": nouveau_svm_current,
}


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    nouveau = NOUVEAU[variant]
    world = make_world(variant, mirrors=0)
    gpu = Device(name="gpu0", mm=world.mm)
    world.view.devices.append(gpu)
    svmm = NouveauSvmm(name="svmm", vmm=gpu)

    async def setup() -> None:
        await world.setup(bind=(), oom_victim=True)
        ret = await nouveau.nouveau_svmm_init(svmm, world.mm)
        assert ret == 0, f"[hmmsim internal bug] set-up: svmm init failed with {ret}"
        # The GPU already faulted once: the mm has the interval tree in use.
        ret = await nouveau.nouveau_svm_fault(svmm, BASE)
        assert ret == 0, f"[hmmsim internal bug] set-up: GPU fault failed with {ret}"

    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)

    async def gpu_fault() -> tuple[int, int | None]:
        # The GPU faults BASE again (e.g. after a replay), then reads it.
        ret = await nouveau.nouveau_svm_fault(svmm, BASE)
        value = await device_access(gpu, BASE, False)
        return ret, value

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("oom_reaper", reaper), ("gpu", gpu_fault)],
    )


RACE = race(
    name="oom-vs-nouveau-fault",
    title=(
        "nouveau's refusing hlist notifier and its per-fault interval notifier "
        "on one mm, against the OOM reaper"
    ),
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; nouveau SVM "
        "enabled (its hlist mmu_notifier registered); one completed GPU fault "
        "(an interval notifier inserted and removed, so the mm uses the "
        "interval tree); the process is an OOM victim.  Actors: 'oom_reaper' "
        "runs oom_reap_task (1 attempt); 'gpu' handles another GPU fault at "
        "BASE (interval notifier, read_begin / hmm_range_fault / read_retry "
        "under svmm->mutex, remove), then reads BASE.  Exercises the "
        "v5.5 and current cores with an interval part that succeeds and an hlist part that "
        "refuses the same non-blocking start."
    ),
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        variants=tuple(NOUVEAU),
        expect={
            "v5.5": ("deadlock", "notifier-leak"),
            "current": ("deadlock", "notifier-leak"),
        },
        default_variant="v5.5",
    )
)
