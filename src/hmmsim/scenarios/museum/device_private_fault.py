"""Museum scenario ``device-private-fault``: two CPU faults on one device-private page.

16ce101db85d ("mm/memory.c: fix race when faulting a device private page",
v6.1, CVE-2022-3523): before it, do_swap_page called the page map's
``migrate_to_ram`` on the page of a device-private entry it had read
without the page-table lock and without a reference, so a concurrent
migration of that page (here: a second thread's fault on it, which
migrates it back to RAM and frees the device page through ``page_free``)
could free it, and its map, while the callback used it.  The fix takes a
reference under the PTE lock after checking the entry is still there (and
since v6.15, 1afaeb8293c9, also the page lock).

The world is lib/test_hmm.c's dmirror with device-private memory on the
``current`` model (v6.16), with 16ce101db85d reverted (``before``) and as
released (``after``).
"""

from __future__ import annotations

from typing import Any

from hmmsim.engine import Instance
from hmmsim.errors import ConfigError
from hmmsim.kernel.drivers import dmirror_current
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.drivers.dmirror import Dmirror, HmmDmirrorCmd
from hmmsim.kernel.drivers.dmirror_current import DmirrorDevice, dmirror_device_init
from hmmsim.kernel.memory import handle_mm_fault
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.types import FAULT_FLAG_USER
from hmmsim.scenarios import register
from hmmsim.scenarios._world import (
    BASE,
    DmirrorDriver,
    MirrorDriver,
    World,
    WorldFactory,
    WorldInstance,
)
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.museum._reverts import revert_variant
from hmmsim.scenarios.races import race, race_scenario
from hmmsim.sync import down_read, up_read

__all__ = ["AFTER", "BEFORE", "FIX", "RACE", "SCENARIO"]

#: The commit the exhibit reverts.
FIX = "16ce101db85d"
#: v6.16 with 16ce101db85d reverted, and v6.16 as released.
BEFORE = revert_variant("current", FIX)
AFTER = "current"

_WORLDS = {BEFORE: ("current", (FIX,)), AFTER: ("current", ())}


def _devmem_dmirror(kernel: Any, name: str, device: Device) -> MirrorDriver:
    """lib/test_hmm.c's dmirror whose device has device-private memory."""
    del kernel
    mdevice = DmirrorDevice(name=f"hmm_{name}")
    return DmirrorDriver(
        dmirror=Dmirror(name=name, pt=device, mdevice=mdevice), api=dmirror_current
    )


def make_world(variant: str, *, mirrors: int = 1, kvms: int = 0) -> World:
    """The ``current`` world with a device-memory dmirror, fixes per variant.

    Raises:
        ConfigError: a variant this scenario does not run.
    """
    try:
        base, reverted = _WORLDS[variant]
    except KeyError:
        raise ConfigError(f"no museum world for variant {variant!r}") from None
    return World.create(
        base,
        mirrors=mirrors,
        kvms=kvms,
        driver=_devmem_dmirror,
        reverted_fixes=reverted,
    )


def build(make: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make(variant, mirrors=1)
    driver = world.mirrors[0]
    assert isinstance(driver, DmirrorDriver)
    dmirror = driver.dmirror
    mdevice = dmirror.mdevice
    assert isinstance(mdevice, DmirrorDevice)

    async def setup() -> None:
        ret = await dmirror_device_init(mdevice)
        assert ret == 0, f"[hmmsim internal bug] set-up: device init failed with {ret}"
        await world.setup()
        # HMM_DMIRROR_MIGRATE_TO_DEV of the page: the CPU PTE becomes a
        # writable device-private entry.
        cmd = HmmDmirrorCmd(addr=BASE, npages=1, ptr=[0])
        ret = await dmirror_current.dmirror_migrate_to_device(dmirror, cmd)
        assert ret == 0, f"[hmmsim internal bug] set-up: migration failed with {ret}"

    async def touch() -> int:
        # One trap of a read of BASE: do_user_addr_fault takes mmap_lock and
        # calls handle_mm_fault once.  MODEL: the retry of the faulting
        # instruction is left out (a retry only repeats a fault that found
        # nothing to do), so each thread faults exactly once.
        mm = world.mm
        await down_read(mm.mmap_sem)
        vma = find_vma(mm, BASE)
        assert vma is not None
        ret = await handle_mm_fault(vma, BASE, FAULT_FLAG_USER)
        await up_read(mm.mmap_sem)
        return int(ret)

    async def cpu0() -> int:
        return await touch()

    async def cpu1() -> int:
        return await touch()

    return WorldInstance(
        world=world, setup=setup, actors=[("cpu0", cpu0), ("cpu1", cpu1)]
    )


RACE = race(
    name="device-private-fault",
    title="Two CPU faults on one device-private page: one migrates it back and frees it",
    description=(
        "Set-up: one anonymous page at BASE written by the CPU, then migrated "
        "to dmirror's device-private memory (HMM_DMIRROR_MIGRATE_TO_DEV), so "
        "the CPU PTE holds a device-private entry.  Actors: 'cpu0' and 'cpu1', "
        "two threads of the process, each take one page fault reading BASE "
        "(handle_mm_fault under mmap_lock): each fault enters do_swap_page, "
        "which calls the page map's migrate_to_ram "
        "(dmirror_devmem_fault: migrate_vma_setup/_pages/_finalize back to a "
        "new RAM page, freeing the device page through page_free).  Checks "
        "that no fault uses the device page after it was freed."
    ),
    battery=False,
)(build)

SCENARIO = register(
    race_scenario(
        RACE,
        make_world=make_world,
        variants=(BEFORE, AFTER),
        expect={BEFORE: ("use-after-free",), AFTER: ()},
        kernel_version="v6.16",
        default_variant=BEFORE,
        group=MUSEUM_GROUP,
    )
)
