"""Write an hmm_mirror driver of your own and check it against the HMM models.

Everything here is re-exported by :mod:`hmmsim.api`; ``docs/api.md`` and
``docs/tutorial.md`` show a whole driver.  A driver is any object with the
:class:`MirrorDriver` shape (``name``, ``device``, ``update`` and the
coroutines ``bind``, ``unbind`` and ``fault``), built by a
:data:`DriverFactory` from the HMM module of a variant, a name and the
:class:`Device` whose page table it programs::

    def make_driver(hmm: ModuleType, name: str, device: Device) -> MyDriver:
        return MyDriver(hmm=hmm, name=name, device=device)


    SCENARIOS = mirror_scenarios(make_driver)

``hmm`` is :func:`hmm_api` of the variant: the module holding the kernel's
``hmm_mirror`` API of that version under its C names (``HmmMirror``,
``HmmRange``, ``hmm_mirror_register``, ``hmm_range_register``,
``hmm_range_wait_until_valid``, ``hmm_range_fault``, ``hmm_range_valid``,
``hmm_range_unregister``, ``hmm_device_entry_to_page`` ...).  The variants
with that API are :data:`MIRROR_VARIANTS`: ``prepatch`` (just before the
seed patch) and ``v5.3`` (at it).

:func:`mirror_scenarios` returns a battery of scenarios that put the driver
through the races the built-in scenarios use on the reference driver: the
OOM reaper against a busy driver lock, a device fault against the reaper,
and a device fault against page reclaim.  To write a scenario of your own,
build a world with :func:`mirror_world`, give it a set-up and actors, and
wrap it in a :class:`WorldInstance` (see ``docs/api.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Final

from hmmsim.engine import Instance
from hmmsim.kernel.drivers.device import (
    Device,
    device_access,
    device_pte_clear,
    device_pte_set,
)
from hmmsim.kernel.fork import mmget_not_zero, mmput
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.kernel.rmap import try_to_unmap_one
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
)
from hmmsim.scenarios import Scenario
from hmmsim.scenarios._world import (
    BASE,
    HMM_VARIANTS,
    MirrorDriver,
    World,
    WorldInstance,
    hmm_api,
)
from hmmsim.sync import msleep, mutex_lock, mutex_unlock

__all__ = [
    "BASE",
    "HMM_PFN_VALID",
    "HMM_PFN_WRITE",
    "MIRROR_VARIANTS",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "Device",
    "DriverFactory",
    "MirrorDriver",
    "MmStruct",
    "World",
    "WorldInstance",
    "device_access",
    "device_pte_clear",
    "device_pte_set",
    "hmm_api",
    "mirror_scenarios",
    "mirror_world",
    "mmget_not_zero",
    "mmput",
    "oom_reap_task",
    "trace",
    "try_to_unmap_one",
]

#: The variants whose HMM has the v5.3 ``hmm_mirror`` API.
MIRROR_VARIANTS: Final = tuple(HMM_VARIANTS)

#: Builds a driver from the variant's HMM module, a name and its device.
DriverFactory = Callable[[ModuleType, str, Device], MirrorDriver]


def mirror_world(variant: str, driver: DriverFactory, *, mirrors: int = 1) -> World:
    """Build a world whose ``mirrors`` mirror drivers are made by ``driver``.

    The world is the built-in scenarios' (one process, its ``mm``, memory at
    :data:`BASE` once set up); its devices are named ``gpu0``, ``gpu1`` ...
    and the drivers ``dmirror0`` ... so reports read the same.

    Raises:
        ConfigError: ``variant`` has no hmm_mirror API.
    """
    api = hmm_api(variant)
    world = World.create(variant, mirrors=0)
    for i in range(mirrors):
        device = Device(name=f"gpu{i}", mm=world.mm)
        world.mirrors.append(driver(api, f"dmirror{i}", device))
        world.view.devices.append(device)
    return world


def _lock_vs_oom(driver: DriverFactory) -> Callable[[str], Instance]:
    def build(variant: str) -> Instance:
        world = mirror_world(variant, driver)
        mirror = world.mirrors[0]

        async def setup() -> None:
            await world.setup(device_maps=[0], oom_victim=True)

        async def busy() -> None:
            await mutex_lock(mirror.update)
            await msleep(1)
            await mutex_unlock(mirror.update)

        async def reaper() -> None:
            await oom_reap_task(world.task, 2)

        async def device() -> tuple[int | None, int | None]:
            first = await device_access(mirror.device, BASE, False)
            second = await device_access(mirror.device, BASE, False)
            return first, second

        return WorldInstance(
            world=world,
            setup=setup,
            actors=[("driver", busy), ("oom_reaper", reaper), ("device", device)],
        )

    return build


def _fault_vs_oom(driver: DriverFactory) -> Callable[[str], Instance]:
    def build(variant: str) -> Instance:
        world = mirror_world(variant, driver)
        mirror = world.mirrors[0]

        async def setup() -> None:
            await world.setup(oom_victim=True)

        async def reaper() -> None:
            await oom_reap_task(world.task, 1)

        async def device() -> tuple[int, int | None]:
            ret = await mirror.fault(BASE, max_retries=1)
            return ret, await device_access(mirror.device, BASE, False)

        return WorldInstance(
            world=world,
            setup=setup,
            actors=[("oom_reaper", reaper), ("device", device)],
        )

    return build


def _fault_vs_reclaim(driver: DriverFactory) -> Callable[[str], Instance]:
    def build(variant: str) -> Instance:
        world = mirror_world(variant, driver)
        mirror = world.mirrors[0]

        async def setup() -> None:
            await world.setup()

        async def reclaim() -> bool:
            # The page set-up faulted in, found the way kswapd's rmap walk does.
            pte = world.mm.ptes[BASE].value
            vma = find_vma(world.mm, BASE)
            assert pte is not None
            assert vma is not None
            return await try_to_unmap_one(pte.page, vma, BASE)

        async def device() -> tuple[int, int | None]:
            ret = await mirror.fault(BASE, max_retries=1)
            return ret, await device_access(mirror.device, BASE, False)

        return WorldInstance(
            world=world, setup=setup, actors=[("reclaim", reclaim), ("device", device)]
        )

    return build


_BATTERY: Final = (
    (
        "driver-lock-vs-oom",
        "The OOM reaper invalidates while the driver holds its lock",
        "Set-up: one page at BASE mapped by the CPU and by the device (gpu0) "
        "after a completed fault; the process is an OOM victim.  Actors: "
        "'driver' holds the driver lock for unrelated work; 'oom_reaper' "
        "reaps (2 attempts, non-blocking invalidation); 'device' reads BASE "
        "twice.  Checks sync_cpu_device_pagetables when it may not sleep.",
        _lock_vs_oom,
    ),
    (
        "fault-vs-oom",
        "A device fault races the OOM reaper",
        "Set-up: one page at BASE mapped by the CPU; the process is an OOM "
        "victim.  Actors: 'device' faults BASE through the driver (one "
        "retry) and reads it; 'oom_reaper' reaps once.  Checks the fault "
        "path against an invalidation that runs under mmap_sem read.",
        _fault_vs_oom,
    ),
    (
        "fault-vs-reclaim",
        "A device fault races page reclaim",
        "Set-up: one page at BASE mapped by the CPU.  Actors: 'device' "
        "faults BASE through the driver (one retry) and reads it; 'reclaim' "
        "unmaps the page (try_to_unmap_one, blocking invalidation, no "
        "mmap_sem).  Checks the fault path against an invalidation that "
        "does not take mmap_sem at all.",
        _fault_vs_reclaim,
    ),
)


def mirror_scenarios(
    driver: DriverFactory,
    *,
    variants: Sequence[str] = MIRROR_VARIANTS,
    expect: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    config: Mapping[str, object] | None = None,
) -> list[Scenario]:
    """Return the standard scenarios, each running ``driver`` on ``variants``.

    Args:
        driver: builds one driver per mirror of a world.
        variants: the HMM variants to check against (default: all with the
            hmm_mirror API).
        expect: per scenario name, per variant, the violation kinds expected
            (an empty list: none); reports then say ``as expected`` or
            ``UNEXPECTED``.
        config: exploration defaults for every scenario (``ExploreConfig``
            fields, e.g. ``{"max_steps": 4000}``).
    """
    expect = expect or {}
    return [
        Scenario(
            name=name,
            title=title,
            description=description,
            variants=tuple(variants),
            build=factory(driver),
            config={"max_steps": 4000, **(config or {})},
            kernel_version="v5.3",
            default_variant=variants[-1],
            expect={v: tuple(k) for v, k in expect.get(name, {}).items()},
        )
        for name, title, description, factory in _BATTERY
    ]
