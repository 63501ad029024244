"""Museum scenario ``device-fault-livelock``: two CPU faults on one device page defeat each other.

1afaeb8293c9 ("mm/migrate: Trylock device page in do_swap_page", v6.15):
before it, do_swap_page took a reference on a device-private page and
called ``migrate_to_ram`` without the page lock.  Each concurrent fault's
reference is one more than ``folio_migrate_mapping`` expects, so the other
fault's migration fails (-EAGAIN) and is rolled back, while the trylock in
``migrate_vma_collect_pmd`` makes a fault that finds the page locked give
up at once; both return 0, the threads retry, and with enough threads the
page never moves (Xe's SVM livelock).  The fix locks the page in
do_swap_page (a fault that finds it locked backs off without a reference)
and passes it to the migration as the already-locked ``fault_page``.  The
scenario runs today's kernel with that commit reverted (``before``) and as
released (``after``).
"""

from __future__ import annotations

from collections.abc import Iterable

from hmmsim.engine import Finding, Instance
from hmmsim.kernel.drivers.dmirror import Dmirror
from hmmsim.kernel.drivers.dmirror_current import (
    DmirrorDevice,
    dmirror_device_init,
    dmirror_migrate_alloc_and_copy,
)
from hmmsim.kernel.memory import handle_mm_fault
from hmmsim.kernel.migrate_device import (
    MIGRATE_VMA_SELECT_SYSTEM,
    TRYLOCK_FAULT_PAGE,
    MigrateVma,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
)
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.types import FAULT_FLAG_USER, PAGE_SIZE
from hmmsim.scenarios import register
from hmmsim.scenarios._world import BASE, WorldFactory, WorldInstance, WorldState
from hmmsim.scenarios.museum._reverts import before_and_after, revert_variant
from hmmsim.scenarios.races import race
from hmmsim.sync import current_execution, down_read, up_read

__all__ = ["AFTER", "BEFORE", "RACE", "SCENARIO", "migrate_to_device"]

#: Today's kernel with 1afaeb8293c9 reverted, and as released.
BEFORE = revert_variant("current", TRYLOCK_FAULT_PAGE)
AFTER = "current"


async def migrate_to_device(dmirror: Dmirror, start: int, end: int) -> int:
    """Move [start, end) to the dmirror's device memory, mapping nothing on the device.

    The migration of lib/test_hmm.c's dmirror_migrate_to_device without its
    finalize_and_map step (as nouveau_dmem_migrate_vma: the device maps the
    pages when it faults on them).  The caller holds no lock.

    Returns:
        The number of pages migrated, or the error of migrate_vma_setup.
    """
    mm = dmirror.notifier.mm
    assert mm is not None
    await down_read(mm.mmap_sem)
    vma = find_vma(mm, start)
    assert vma is not None
    npages = (end - start) // PAGE_SIZE
    args = MigrateVma(
        vma=vma,
        src=[0] * npages,
        dst=[0] * npages,
        start=start,
        end=end,
        pgmap_owner=dmirror.mdevice,
        flags=MIGRATE_VMA_SELECT_SYSTEM,
    )
    ret = await migrate_vma_setup(args)
    if ret == 0:
        await dmirror_migrate_alloc_and_copy(args, dmirror)
        await migrate_vma_pages(args)
        await migrate_vma_finalize(args)
        ret = args.cpages
    await up_read(mm.mmap_sem)
    return ret


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=1)
    driver = world.mirrors[0]
    dmirror = getattr(driver, "dmirror", None)
    assert isinstance(dmirror, Dmirror), "[hmmsim internal bug] not a dmirror world"
    dmirror.mdevice = DmirrorDevice(name="hmm_dmirror0")

    async def setup() -> None:
        await world.setup()
        assert isinstance(dmirror.mdevice, DmirrorDevice)
        ret = await dmirror_device_init(dmirror.mdevice)
        assert ret == 0, f"[hmmsim internal bug] set-up: device init failed with {ret}"
        ret = await migrate_to_device(dmirror, BASE, BASE + PAGE_SIZE)
        assert ret == 1, f"[hmmsim internal bug] set-up: migration moved {ret} pages"

    async def fault_once() -> int:
        # One attempt of the CPU's page fault on BASE (the arch handler then
        # returns to user space, which retries the access if it still faults).
        mm = world.mm
        await down_read(mm.mmap_sem)
        vma = find_vma(mm, BASE)
        assert vma is not None
        ret = await handle_mm_fault(vma, BASE, FAULT_FLAG_USER)
        await up_read(mm.mmap_sem)
        return int(ret)

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("cpu0", fault_once), ("cpu1", fault_once)],
        check=check_progress,
    )


def check_progress(state: WorldState) -> Iterable[Finding]:
    """Report ``fault-livelock`` when both faults returned and nothing moved."""
    page = next(p for p in state.pages if p.addr == BASE)
    if not page.swap.startswith("device-private"):
        return
    if page.refcount != 1 or page.mapcount != 1:
        return  # pragma: no cover - both faults returned, so the state is back
    yield Finding(
        kind="fault-livelock",
        message=(
            f"both CPU faults on {BASE:#x} returned {state.results.get('cpu0')} and "
            f"{state.results.get('cpu1')} and page#{page.pfn} is still in device "
            "memory with the reference and map counts it had before them: the "
            "threads retry the access and this schedule repeats for ever"
        ),
        step=current_execution().step,
    )


RACE = race(
    name="device-fault-livelock",
    title="Two CPU faults on one device-private page make each other's migration fail",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, one dmirror "
        "(gpu0) with device-private memory; the page is migrated to the "
        "device (no device mapping).  Actors: 'cpu0' and 'cpu1' each take "
        "one CPU page fault on BASE (do_swap_page -> migrate_to_ram).  "
        "Checks that at least one of them moves the page back to system "
        "memory: if both return with the page still on the device and its "
        "counts as before, the schedule repeats for ever (fault-livelock)."
    ),
    battery=False,
)(build)

SCENARIO = register(
    before_and_after(
        RACE, "current", TRYLOCK_FAULT_PAGE, ("fault-livelock",), kernel_version="v6.16"
    )
)
