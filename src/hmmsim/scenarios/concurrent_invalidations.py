"""Scenario ``concurrent-invalidations``: overlapping invalidations and a waiting fault."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hmmsim.engine import Instance
from hmmsim.kernel import mmu_notifier_current, mmu_notifier_v55
from hmmsim.kernel.drivers.dummy_mirror import HMM_RANGE_DEFAULT_TIMEOUT
from hmmsim.kernel.mm_types import Pte
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.kernel.types import PAGE_SHIFT, PAGE_SIZE
from hmmsim.kernel.vmscan import shrink_inactive_list
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    DmirrorDriver,
    HmmMirrorDriver,
    World,
    WorldFactory,
    WorldInstance,
)
from hmmsim.scenarios.races import race, race_scenario

__all__ = ["RACE", "SCENARIO"]

REAP_ATTEMPTS = 1

#: mmu_interval_read_begin of the interval-notifier variants.
READ_BEGIN = {
    "v5.5": mmu_notifier_v55.mmu_interval_read_begin,
    "current": mmu_notifier_current.mmu_interval_read_begin,
}


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    if variant in READ_BEGIN:
        return _build_interval(make_world, variant)
    world = make_world(variant, mirrors=1)
    dmirror = world.mirrors[0]

    api = world.api
    assert api is not None, f"[hmmsim internal bug] {variant} has no struct hmm"
    assert isinstance(dmirror, HmmMirrorDriver)
    rng = api.HmmRange(name="waiter->range", pfns=[0])

    async def setup() -> None:
        await world.setup(oom_victim=True)
        # The first step of a device fault (hmm.rst driver_populate_range):
        # the range is registered before the invalidations start.
        ret = await api.hmm_range_register(
            rng, dmirror.dmirror.mirror, BASE, BASE + PAGE_SIZE, PAGE_SHIFT
        )
        assert ret == 0, f"[hmmsim internal bug] set-up: range register: {ret}"

    async def waiter() -> bool:
        # The next step of the fault: wait for the range to become valid.
        valid: bool = await api.hmm_range_wait_until_valid(
            rng, HMM_RANGE_DEFAULT_TIMEOUT
        )
        return valid

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[
            ("reclaim", _reclaim(world)),
            ("oom_reaper", _reaper(world)),
            ("waiter", waiter),
        ],
    )


def _build_interval(make_world: WorldFactory, variant: str) -> Instance:
    """The v5.5/current world: the interval notifier exists from open()."""
    mmu_interval_read_begin = READ_BEGIN[variant]
    world = make_world(variant, mirrors=1)
    dmirror = world.mirrors[0]
    assert isinstance(dmirror, DmirrorDriver)

    async def setup() -> None:
        # open() inserted the interval notifier before the invalidations.
        await world.setup(oom_victim=True)

    async def waiter() -> int:
        # The first step of dmirror_range_fault: sleeps while the
        # subscription is being invalidated.
        return await mmu_interval_read_begin(dmirror.dmirror.notifier)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[
            ("reclaim", _reclaim(world)),
            ("oom_reaper", _reaper(world)),
            ("waiter", waiter),
        ],
    )


def _reclaim(world: World) -> Callable[[], Awaitable[int]]:
    async def reclaim() -> int:
        # Runs when the actor is spawned, right after set-up: the LRU scan
        # and the reverse map (not modelled) found the page before any actor
        # ran; shrink_inactive_list isolates it (or finds it freed), unmaps
        # it and frees it after the notifier bracket.
        vma = find_vma(world.mm, BASE)
        cell = world.mm.ptes[BASE]
        pte = cell.value
        if vma is None or not isinstance(pte, Pte):
            return 0
        return await shrink_inactive_list(pte.page, vma, BASE)

    return reclaim


def _reaper(world: World) -> Callable[[], Awaitable[None]]:
    async def reaper() -> None:
        await oom_reap_task(world.task, REAP_ATTEMPTS)

    return reaper


RACE = race(
    name="concurrent-invalidations",
    title="Page reclaim and the OOM reaper invalidate while a fault waits for its range",
    description="Set-up: one anonymous page at BASE written by the CPU, one mirror "
    "(gpu0) with a range registered over BASE; the process is an OOM victim.  Actors: 'reclaim' isolates "
    "the page, unmaps it through the reverse map (try_to_unmap_one: blockable "
    "invalidation, no mmap_sem) and frees it after the end (shrink_page_list); 'oom_reaper' reaps the VMA with a "
    f"non-blocking invalidation ({REAP_ATTEMPTS} attempt); 'waiter' "
    "waits for the range to become valid (hmm_range_wait_until_valid, "
    "whose timeout is explored), as the documented fault loop does; "
    "the range stays registered, so the end check sees whether it "
    "became valid again.  Exercises overlapping "
    "start/end pairs, hmm->notifiers counting and revalidation, and "
    "the wake-up of waiters on hmm->wq.  Variants v5.5 and current: the interval "
    "notifier is inserted at open() and 'waiter' is "
    "mmu_interval_read_begin, which sleeps while the subscription is "
    "being invalidated (odd mm sequence) until the last end.",
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        expect={
            "prepatch": ("sleep-in-nonblockable",),
            "v5.3": (),
            "v5.5": (),
            "current": (),
        },
    )
)
