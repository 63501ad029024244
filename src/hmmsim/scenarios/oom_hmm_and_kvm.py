"""Scenario ``oom-hmm-and-kvm``: two kinds of subscribers, one refuses a reap.

The v5.3 notifier core calls every subscriber's start even after one failed,
returns the error, and the caller then calls no end at all: a subscriber
whose start succeeded is never ended.  Fixed in v5.12 by Sean
Christopherson, "mm/mmu_notifiers: ensure range_end() is paired with
range_start()" (commit c2655835fd8c).
"""

from __future__ import annotations

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.device import device_access
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
    busy_with,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]

REAP_ATTEMPTS = 1


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1, kvms=1)
    dmirror = world.mirrors[0]
    kvm = world.kvms[0]

    async def setup() -> None:
        # The mirror registers first; KVM, registered last, is called first.
        await world.setup(device_maps=[0], kvm_maps=[0], oom_victim=True)

    async def vcpu() -> None:
        # KVM work that may sleep under flush_lock (DMA through shadow tables).
        await busy_with(kvm.flush_lock)

    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)

    async def gpu0() -> int | None:
        return await device_access(dmirror.device, BASE, False)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("vcpu", vcpu), ("oom_reaper", reaper), ("gpu0", gpu0)],
    )


RACE = race(
    name="oom-hmm-and-kvm",
    title="An HMM mirror and a KVM-style MMU on one mm; KVM refuses a reap",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; an HMM "
        "mirror whose device (gpu0) maps it and a KVM-style secondary MMU "
        "whose shadow page table maps it; the process is an OOM victim.  "
        "Actors: 'vcpu' holds KVM's flush_lock for unrelated work; "
        f"'oom_reaper' reaps with {REAP_ATTEMPTS} attempt; 'gpu0' reads "
        "BASE through its page table.  Exercises the core's handling of a "
        "failed start with several subscribers."
    ),
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": ("sleep-in-nonblockable", "notifier-leak"),
            "v5.3": ("notifier-leak",),
            "v5.5": ("notifier-leak",),
            "current": ("warn", "bug"),
        },
    )
)
