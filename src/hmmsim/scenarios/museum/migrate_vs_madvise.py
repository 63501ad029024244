"""Museum scenario ``migrate-vs-madvise``: a stale TLB entry outlives MADV_DONTNEED.

60bae7370896 ("mm/migrate_device.c: flush TLB while holding PTL", v6.0):
``migrate_vma_collect_pmd`` replaced present PTEs by migration entries and
flushed the TLB only after dropping the page-table lock.  MADV_DONTNEED (which,
like the migration, holds ``mmap_lock`` only for read) could take the lock in
between, find a migration entry, which is not present and so needs no flush,
zap it and return, while a CPU still held the old translation: the thread's
next store, made after madvise returned, went to the page being migrated
instead of faulting in a fresh one, and was lost.  The fix flushes before
the unlock.  The scenario runs today's kernel with the commit reverted
(``before``) and as released (``after``).
"""

from __future__ import annotations

from collections.abc import Iterable

from hmmsim.engine import Finding, Instance
from hmmsim.kernel.madvise import MADV_DONTNEED, do_madvise
from hmmsim.kernel.migrate_device import (
    MIGRATE_VMA_SELECT_SYSTEM,
    TLB_FLUSH_UNDER_PTL,
    MigrateVma,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
)
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.tlbflush import cpu_store_cached
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.kernel.uaccess import cpu_load
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    WorldFactory,
    WorldInstance,
    WorldState,
    complete,
    new_completion,
    wait_for_completion,
)
from hmmsim.scenarios.museum._reverts import before_and_after, revert_variant
from hmmsim.scenarios.races import race
from hmmsim.sync import current_execution, down_read, up_read

__all__ = ["AFTER", "BEFORE", "RACE", "SCENARIO"]

#: Today's kernel with 60bae7370896 reverted, and as released.
BEFORE = revert_variant("current", TLB_FLUSH_UNDER_PTL)
AFTER = "current"

#: What the thread stores after madvise returned, and must read back.
LAST_STORE = 2


#: The device driver's pgmap owner (MODEL: any object; no device page is used).
DEVICE: object = "gpu0"


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=0)
    touched = new_completion("touched")
    madvised = new_completion("madvised")

    async def setup() -> None:
        await world.setup()

    async def cpu() -> int:
        # A thread that keeps its translation of BASE in its CPU's TLB.
        mm = world.mm
        ret = await cpu_store_cached(mm, BASE, 1)
        assert ret == 0, f"[hmmsim internal bug] first store failed with {ret}"
        await complete(touched)
        await wait_for_completion(madvised)
        # madvise(MADV_DONTNEED) returned: the next access must fault in a
        # fresh page, which then holds what the thread stores.
        await cpu_store_cached(mm, BASE, LAST_STORE)
        _, value = await cpu_load(mm, BASE)
        return value

    async def migrate() -> int:
        # A driver starts migrating BASE to its memory, finds no free device
        # page and finalizes without destinations (migration is best effort):
        # the collection, where the race is, runs in full.
        await wait_for_completion(touched)
        mm = world.mm
        await down_read(mm.mmap_sem)
        vma = find_vma(mm, BASE)
        assert vma is not None
        args = MigrateVma(
            vma=vma,
            src=[0],
            dst=[0],
            start=BASE,
            end=BASE + PAGE_SIZE,
            pgmap_owner=DEVICE,
            flags=MIGRATE_VMA_SELECT_SYSTEM,
        )
        ret = await migrate_vma_setup(args)
        if ret == 0:
            await migrate_vma_pages(args)
            await migrate_vma_finalize(args)
        await up_read(mm.mmap_sem)
        return ret

    async def madvise() -> int:
        await wait_for_completion(touched)
        ret = await do_madvise(world.mm, BASE, PAGE_SIZE, MADV_DONTNEED)
        await complete(madvised)
        return ret

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("migrate", migrate), ("madvise", madvise), ("cpu", cpu)],
        check=check_last_store,
    )


def check_last_store(state: WorldState) -> Iterable[Finding]:
    """Report ``stale-tlb`` when the store made after madvise returned was lost."""
    seen = state.results.get("cpu")
    if seen is None or seen == repr(LAST_STORE):
        return
    yield Finding(
        kind="stale-tlb",
        message=(
            f"the thread stored {LAST_STORE} at {BASE:#x} after MADV_DONTNEED "
            f"returned but reads {seen}: the store went through a TLB entry "
            "for the old page that nobody had flushed"
        ),
        step=current_execution().step,
    )


RACE = race(
    name="migrate-vs-madvise",
    title="Device migration collects a page while MADV_DONTNEED zaps it; a CPU keeps its TLB entry",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU; no mirror.  "
        "Actors: 'cpu' stores to BASE through its TLB (filling it), then, "
        f"once madvise returned, stores {LAST_STORE} and reads BASE back; "
        "'migrate' starts migrating BASE to a device (migrate_vma_setup with "
        "MIGRATE_VMA_SELECT_SYSTEM, then pages and finalize without "
        "destinations: no free device page); 'madvise' runs madvise(BASE, one "
        "page, MADV_DONTNEED).  Checks that the thread reads back "
        f"{LAST_STORE} (stale-tlb otherwise)."
    ),
    battery=False,
)(build)

SCENARIO = register(
    before_and_after(
        RACE, "current", TLB_FLUSH_UNDER_PTL, ("stale-tlb",), kernel_version="v6.16"
    )
)
