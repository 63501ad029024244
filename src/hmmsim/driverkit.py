"""Write a driver of your own and check it against the kernel models.

Everything here is re-exported by :mod:`hmmsim.api`; ``docs/api.md`` and
``docs/tutorial.md`` show whole drivers.  A driver is any object with the
:class:`MirrorDriver` shape (``name``, ``device``, ``update`` and the
coroutines ``bind``, ``unbind`` and ``fault``), built by a
:data:`DriverFactory` from the *kernel API* of a variant, a name and the
:class:`Device` whose page table it programs::

    def make_driver(kernel, name: str, device: Device) -> MyDriver:
        return MyDriver(kernel=kernel, name=name, device=device)


    SCENARIOS = mirror_scenarios(make_driver, variants=INTERVAL_VARIANTS)

``kernel`` is :func:`kernel_api` of the variant.  On the
:data:`INTERVAL_VARIANTS` (``v5.5``) it is an :class:`IntervalApi`: the
``mmu_interval_notifier`` API of that version under its C names
(``kernel.MmuIntervalNotifier``, ``kernel.HmmRange``,
``kernel.hmm_range_fault`` ...), the API of every HMM driver since v5.5.
The functions are also importable from :mod:`hmmsim.api` under the same
names (:func:`mmu_interval_notifier_insert`, :func:`mmu_interval_read_begin`
...): they call the version of the subscription they are given.  On the
:data:`MIRROR_VARIANTS` (``prepatch``, ``v5.3``) ``kernel`` is the HMM
module with the ``hmm_mirror`` API that v5.5 removed (``HmmMirror``,
``hmm_mirror_register``, ``hmm_range_register`` ...).

:func:`mirror_scenarios` returns the race battery
(:func:`hmmsim.scenarios.races.battery`): the races of the built-in
scenarios, with the user's driver in place of the reference driver.  To
write a scenario of your own, build a world with :func:`mirror_world`, give
it a set-up and actors, and wrap it in a :class:`WorldInstance` (see
``docs/api.md``), optionally with an end-of-run ``check`` that reads
:class:`WorldState`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hmmsim.errors import ConfigError
from hmmsim.kernel.drivers.device import (
    Device,
    device_access,
    device_pte_clear,
    device_pte_set,
)
from hmmsim.kernel.fork import mmget_not_zero, mmput
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_blockable
from hmmsim.kernel.mmu_notifier_v55 import (
    MmuIntervalNotifierOps,
    StaticMmuIntervalNotifierOps,
)
from hmmsim.kernel.oom_kill import oom_reap_task
from hmmsim.kernel.rmap import try_to_unmap_one
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_SHIFT,
    PAGE_SIZE,
)
from hmmsim.kernel.vmscan import shrink_inactive_list
from hmmsim.scenarios import Scenario
from hmmsim.scenarios._world import (
    BASE,
    INTERVAL_APIS,
    INTERVAL_VARIANTS,
    MIRROR_VARIANTS,
    NOTIFIER_CORES,
    VARIANTS,
    DeviceEntryView,
    DriverFactory,
    DriverLock,
    IntervalApi,
    MirrorDriver,
    NotifierView,
    PageView,
    RangeView,
    World,
    WorldCheck,
    WorldInstance,
    WorldState,
    hmm_api,
    kernel_api,
    world_state,
)
from hmmsim.scenarios.races import battery, race_scenario

__all__ = [
    "BASE",
    "HMM_PFN_VALID",
    "HMM_PFN_WRITE",
    "INTERVAL_VARIANTS",
    "MIRROR_VARIANTS",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "VARIANTS",
    "Device",
    "DeviceEntryView",
    "DriverFactory",
    "DriverLock",
    "IntervalApi",
    "MirrorDriver",
    "MmStruct",
    "MmuIntervalNotifierOps",
    "MmuNotifierRange",
    "NotifierView",
    "PageView",
    "RangeView",
    "StaticMmuIntervalNotifierOps",
    "World",
    "WorldCheck",
    "WorldInstance",
    "WorldState",
    "device_access",
    "device_pte_clear",
    "device_pte_set",
    "hmm_api",
    "hmm_range_fault",
    "interval_api",
    "kernel_api",
    "mirror_scenarios",
    "mirror_world",
    "mmget_not_zero",
    "mmput",
    "mmu_interval_check_retry",
    "mmu_interval_notifier_insert",
    "mmu_interval_notifier_remove",
    "mmu_interval_read_begin",
    "mmu_interval_read_retry",
    "mmu_interval_set_seq",
    "mmu_notifier_range_blockable",
    "oom_reap_task",
    "race_names",
    "shrink_inactive_list",
    "trace",
    "try_to_unmap_one",
    "world_state",
]


def interval_api(variant: str) -> IntervalApi:
    """Return the ``mmu_interval_notifier`` API of ``variant``.

    Raises:
        ConfigError: ``variant`` has no interval-notifier API.
    """
    try:
        return INTERVAL_APIS[variant]
    except KeyError:
        raise ConfigError(
            f"variant {variant!r} has no mmu_interval_notifier API "
            f"(variants with it: {', '.join(INTERVAL_VARIANTS)})"
        ) from None


def _api_of_mm(mm: MmStruct) -> IntervalApi:
    for variant, core in NOTIFIER_CORES.items():
        if mm.notifier_core is core and variant in INTERVAL_APIS:
            return INTERVAL_APIS[variant]
    raise ConfigError(
        f"{mm.name} runs a kernel without mmu_interval_notifier "
        f"(variants with it: {', '.join(INTERVAL_VARIANTS)})"
    )


def _api_of_sub(interval_sub: Any) -> IntervalApi:
    mm = getattr(interval_sub, "mm", None)
    if isinstance(mm, MmStruct):
        return _api_of_mm(mm)
    for api in INTERVAL_APIS.values():
        if type(interval_sub) is api.MmuIntervalNotifier:
            return api
    raise ConfigError(f"{interval_sub!r} is not a struct mmu_interval_notifier")


async def mmu_interval_notifier_insert(
    interval_sub: Any, mm: MmStruct, start: int, length: int, ops: Any
) -> int:
    """Subscribe ``interval_sub`` to [start, start + length) of ``mm``.

    Kernel: mm/mmu_notifier.c mmu_interval_notifier_insert(), of the
    version ``mm`` runs.  Takes ``mmap_sem`` (``mmap_lock``) itself.

    Returns:
        0, or a negative errno.
    """
    return await _api_of_mm(mm).mmu_interval_notifier_insert(
        interval_sub, mm, start, length, ops
    )


async def mmu_interval_notifier_remove(interval_sub: Any) -> None:
    """Unsubscribe; waits until no invalidation of the subscription runs.

    Kernel: mm/mmu_notifier.c mmu_interval_notifier_remove().
    """
    await _api_of_sub(interval_sub).mmu_interval_notifier_remove(interval_sub)


async def mmu_interval_read_begin(interval_sub: Any) -> int:
    """Begin a read-side section; returns the sequence for read_retry.

    Kernel: mm/mmu_notifier.c mmu_interval_read_begin().
    """
    return await _api_of_sub(interval_sub).mmu_interval_read_begin(interval_sub)


def mmu_interval_read_retry(interval_sub: Any, seq: int) -> bool:
    """Whether an invalidation reached the subscription since ``seq`` (driver lock held).

    Kernel: include/linux/mmu_notifier.h mmu_interval_read_retry().
    """
    return _api_of_sub(interval_sub).mmu_interval_read_retry(interval_sub, seq)


async def mmu_interval_check_retry(interval_sub: Any, seq: int) -> bool:
    """Lockless hint that read_retry would be true (a false answer proves nothing).

    Kernel: include/linux/mmu_notifier.h mmu_interval_check_retry().
    """
    return await _api_of_sub(interval_sub).mmu_interval_check_retry(interval_sub, seq)


async def mmu_interval_set_seq(interval_sub: Any, cur_seq: int) -> None:
    """In ``invalidate``, under the driver lock: record ``cur_seq``.

    Kernel: include/linux/mmu_notifier.h mmu_interval_set_seq().
    """
    await _api_of_sub(interval_sub).mmu_interval_set_seq(interval_sub, cur_seq)


async def hmm_range_fault(range: Any, *args: int) -> int:
    """The version's ``hmm_range_fault`` (v5.5: ``(range, flags)``).

    Kernel: mm/hmm.c hmm_range_fault(), of the version the range's notifier
    runs on.  Call it with ``mmap_sem`` held for read.
    """
    return await _api_of_sub(range.notifier).hmm_range_fault(range, *args)


def _check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(variants)
    if not chosen:
        raise ConfigError("no variant given")
    for variant in chosen:
        if variant not in VARIANTS:
            raise ConfigError(
                f"unknown variant {variant!r} (variants: {', '.join(VARIANTS)})"
            )
    apis = {variant in INTERVAL_VARIANTS for variant in chosen}
    if len(apis) > 1:
        raise ConfigError(
            "a driver has one API: give the hmm_mirror variants "
            f"({', '.join(MIRROR_VARIANTS)}) or the interval-notifier variants "
            f"({', '.join(INTERVAL_VARIANTS)}), not both"
        )
    return chosen


def _expectations(
    variants: Sequence[str],
    declared: Mapping[str, Sequence[str]],
    default: Sequence[str] | None,
) -> dict[str, tuple[str, ...]]:
    expect = {} if default is None else dict.fromkeys(variants, tuple(default))
    expect.update({v: tuple(k) for v, k in declared.items()})
    return expect


def race_names() -> list[str]:
    """Return the names of the battery's races, in order (for ``races=``)."""
    return [r.name for r in battery()]


def mirror_world(variant: str, driver: DriverFactory, *, mirrors: int = 1) -> World:
    """Build a world whose ``mirrors`` drivers are made by ``driver``.

    The world is the built-in scenarios' (one process, its ``mm``, memory at
    :data:`BASE` once set up); its devices are named ``gpu0``, ``gpu1`` ...
    and the drivers ``dmirror0`` ... so reports read the same.  ``driver``
    gets :func:`kernel_api` of the variant.

    Raises:
        ConfigError: unknown variant.
    """
    return World.create(variant, mirrors=mirrors, driver=driver)


@dataclass(frozen=True, slots=True)
class _UserWorld:
    """The world factory of a user's driver (a WorldFactory)."""

    driver: DriverFactory

    def __call__(self, variant: str, *, mirrors: int = 1, kvms: int = 0) -> World:
        return World.create(variant, mirrors=mirrors, kvms=kvms, driver=self.driver)


def mirror_scenarios(
    driver: DriverFactory,
    *,
    variants: Sequence[str] = MIRROR_VARIANTS,
    expect: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    config: Mapping[str, object] | None = None,
    races: Sequence[str] | None = None,
    default_expect: Sequence[str] | None = None,
) -> list[Scenario]:
    """Return the standard scenarios, each running ``driver`` on ``variants``.

    They are the built-in races (``hmmsim.scenarios.races.battery``) with
    ``driver`` in place of the reference driver: the same set-up, actors and
    bounds.

    Args:
        driver: builds one driver per device of a world.
        variants: the kernel variants to check against, all of one API:
            :data:`MIRROR_VARIANTS` (the default, hmm_mirror) or
            :data:`INTERVAL_VARIANTS` (mmu_interval_notifier).
        expect: per scenario name, per variant, the violation kinds expected
            (an empty list: none); reports then say ``as expected`` or
            ``UNEXPECTED``.
        config: exploration defaults for every scenario (``ExploreConfig``
            fields, e.g. ``{"max_steps": 4000}``).
        races: the names of the races to run (default: the whole battery).
        default_expect: the kinds expected of every race and variant that
            ``expect`` does not name (``()``: no violation); None leaves
            them without expectation.

    Raises:
        ConfigError: an unknown variant or race name, or variants of both APIs.
    """
    chosen = _check_variants(variants)
    expect = expect or {}
    known = {r.name: r for r in battery()}
    names = list(known) if races is None else list(races)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown race {unknown[0]!r} (races: {', '.join(known)})")
    make_world = _UserWorld(driver)
    return [
        race_scenario(
            known[name],
            make_world=make_world,
            variants=chosen,
            expect=_expectations(chosen, expect.get(name, {}), default_expect),
            config=config,
            kernel_version=", ".join(chosen),
            default_variant=chosen[-1],
        )
        for name in names
    ]
