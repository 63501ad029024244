"""Worlds of growing size for the scale curves, and the "large" scenario.

``world(pages=, mirrors=, actors=)`` builds a program in the world of the
``concurrent-invalidations`` scenario, grown: ``pages`` anonymous pages,
``mirrors`` mirrors, and the first ``actors`` actors of a pool that cycles
through page reclaim (``try_to_unmap_one`` of each page), the OOM reaper
and a device fault waiting for its range (``hmm_range_wait_until_valid``,
one range per mirror and page).

This file is also a model file for the command line: the scenario
``large`` (2 pages, 2 mirrors, 5 actors) is far beyond an exhaustive
exploration on one core (not finished after 150 s and about 27,000
executions in the measurements of docs/PERFORMANCE.md, while the 3-actor
world needs 12,416 executions in all).  On 2026-12-01 ``hmmsim check
bench/large.py --variant v5.3 --jobs 2 --time-budget 1500`` stopped at the
default bound of 100,000 executions after 408 s (load average ~10 on the
2 shared cores): no violation, ``incomplete``.  The first unit's size
estimate (24,374 executions) was far too low to warn there.  On 2026-12-02,
one worker with ``--time-budget 600 --max-executions 5000000`` reached
551,417 executions in 600 s (458 s of CPU) without finishing::

    hmmsim check bench/large.py --jobs 2 --time-budget 600
    hmmsim check bench/large.py --strategy pct --max-executions 1000
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.dummy_mirror import HMM_RANGE_DEFAULT_TIMEOUT
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.kernel.rmap import try_to_unmap_one
from hmmsim.kernel.types import PAGE_SHIFT, PAGE_SIZE
from hmmsim.scenarios import scenario
from hmmsim.scenarios._world import BASE, HmmMirrorDriver, World, WorldInstance

VARIANTS = ("prepatch", "v5.3")


def world(
    variant: str = "v5.3", *, pages: int = 1, mirrors: int = 1, actors: int = 3
) -> Callable[[], Instance]:
    """Return the program of a grown concurrent-invalidations world."""
    return functools.partial(_build, variant, pages, mirrors, actors)


def _build(variant: str, pages: int, mirrors: int, actors: int) -> Instance:
    built = World.create(variant, mirrors=mirrors)
    api = built.api
    assert api is not None, f"{variant} has no struct hmm"
    ranges = []
    for m, mirror in enumerate(built.mirrors):
        assert isinstance(mirror, HmmMirrorDriver)
        for p in range(pages):
            rng = api.HmmRange(name=f"waiter{m}.{p}->range", pfns=[0])
            ranges.append((mirror, p, rng))

    async def setup() -> None:
        await built.setup(pages=pages, oom_victim=True)
        for mirror, p, rng in ranges:
            start = BASE + p * PAGE_SIZE
            ret = await api.hmm_range_register(
                rng, mirror.dmirror.mirror, start, start + PAGE_SIZE, PAGE_SHIFT
            )
            assert ret == 0, f"set-up: range register: {ret}"

    def reclaim(page: int) -> Callable[[], Awaitable[bool]]:
        async def run() -> bool:
            address = BASE + page * PAGE_SIZE
            vma = find_vma(built.mm, address)
            cell = built.mm.ptes[address]
            if vma is None or cell.value is None:
                return False
            return await try_to_unmap_one(cell.value.page, vma, address)

        return run

    async def reaper() -> None:
        await oom_reap_task(built.task, 1)

    def waiter(index: int) -> Callable[[], Awaitable[bool]]:
        rng = ranges[index][2]

        async def run() -> bool:
            valid: bool = await api.hmm_range_wait_until_valid(
                rng, HMM_RANGE_DEFAULT_TIMEOUT
            )
            return valid

        return run

    pool: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("reclaim0", reclaim(0)),
        ("oom_reaper", reaper),
        ("waiter0", waiter(0)),
    ]
    pool += [(f"reclaim{p}", reclaim(p)) for p in range(1, pages)]
    pool += [(f"waiter{i}", waiter(i)) for i in range(1, len(ranges))]
    while len(pool) < actors:
        i = len(pool) % len(ranges)
        pool.append((f"waiter{i}b{len(pool)}", waiter(i)))
    return WorldInstance(world=built, setup=setup, actors=pool[:actors])


@scenario(
    name="large",
    title="2 pages, 2 mirrors, 5 actors: reclaim, the OOM reaper and waiting faults",
    variants=VARIANTS,
    default_variant="v5.3",
    kernel_version="v5.3",
    config={"max_steps": 8000},
)
def large(variant: str) -> Instance:
    """The large world of the scale benchmark (see the module docstring)."""
    return _build(variant, 2, 2, 5)
