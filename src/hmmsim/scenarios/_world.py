"""Shared harness of the built-in HMM scenarios: variants, world, set-up.

Every built-in scenario runs on the same worlds: one process (``task``) with
one address space (``mm``), anonymous private memory at ``BASE``, one or more
devices mirroring it through a mirror driver, optionally a KVM-style secondary
MMU.  A *variant* picks the HMM design: ``prepatch`` (the state just before the
seed patch) or ``v5.3`` (at the seed patch), both with the reference
hmm_mirror driver (:mod:`hmmsim.kernel.drivers.dummy_mirror`), ``v5.5``
(the mmu_interval_notifier core :mod:`hmmsim.kernel.mmu_notifier_v55`, no
struct hmm, with lib/test_hmm.c's driver :mod:`hmmsim.kernel.drivers.dmirror`)
or ``current`` (v6.16: :mod:`hmmsim.kernel.mmu_notifier_current`,
:mod:`hmmsim.kernel.hmm_current` and
:mod:`hmmsim.kernel.drivers.dmirror_current`).

An execution first runs a ``setup`` task alone (map memory, fault pages in,
bind mirrors, let devices map pages, mark the OOM victim), which then spawns
the scenario's actors; only the actors interleave.  The oracle
(:mod:`hmmsim.oracle.hmm_contract`) is attached before set-up.

This is the only place worlds are built.  A driver is made by a
:data:`DriverFactory` ``(kernel, name, device) -> MirrorDriver``, where
``kernel`` is :func:`kernel_api` of the variant (the version's driver API
under its C names); the reference drivers are factories of that same shape
(:data:`DRIVERS`), and a user's driver is passed to :meth:`World.create` in
their place.  The races themselves are in :mod:`hmmsim.scenarios.races`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any, Final, Protocol

from hmmsim.engine import Finding, current_execution
from hmmsim.errors import ConfigError
from hmmsim.kernel import hmm as hmm_v53
from hmmsim.kernel import (
    hmm_current,
    hmm_flags,
    hmm_prepatch,
    hmm_v55,
    mmu_notifier_current,
    mmu_notifier_v55,
)
from hmmsim.kernel.drivers import dmirror as dmirror_v55
from hmmsim.kernel.drivers import dmirror_current
from hmmsim.kernel.drivers.device import Device, device_access
from hmmsim.kernel.drivers.dmirror import Dmirror
from hmmsim.kernel.drivers.dummy_mirror import (
    DummyMirror,
    dummy_device_fault,
    dummy_mirror_bind,
    dummy_mirror_unbind,
)
from hmmsim.kernel.drivers.kvm_mmu import Kvm, kvm_mmu_page_fault, kvm_register
from hmmsim.kernel.fixes import check_fixes
from hmmsim.kernel.fork import mm_alloc
from hmmsim.kernel.mm_types import (
    MmStruct,
    PageState,
    PteVal,
    SwapPte,
    SwpType,
    TaskStruct,
)
from hmmsim.kernel.mmap import vm_mmap
from hmmsim.kernel.mmu_notifier import MmuNotifierCore, mmu_notifier_range_blockable
from hmmsim.kernel.oom_kill import mark_oom_victim
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_SIZE,
    VM_READ,
    VM_WRITE,
)
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.oracle.hmm_contract import (
    HmmWorldView,
    attach_contract_probes,
    check_end,
    snapshot,
)
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    RwSemaphore,
    SpinLock,
    WaitQueueHead,
    down_write,
    msleep,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
    up_write,
    wait_event,
    wake_up_all,
)

__all__ = [
    "BASE",
    "DMIRROR_APIS",
    "DRIVERS",
    "END_CHECKS",
    "HMM_VARIANTS",
    "INTERVAL_APIS",
    "INTERVAL_VARIANTS",
    "KERNEL_VERSIONS",
    "MIRROR_VARIANTS",
    "NOTIFIER_CORES",
    "VARIANTS",
    "Completion",
    "DeviceEntryView",
    "DmirrorApi",
    "DmirrorDriver",
    "DriverFactory",
    "DriverLock",
    "HmmMirrorDriver",
    "IntervalApi",
    "MirrorDriver",
    "NotifierView",
    "PageView",
    "RangeView",
    "World",
    "WorldCheck",
    "WorldFactory",
    "WorldInstance",
    "WorldState",
    "busy_with",
    "complete",
    "driver_lock",
    "driver_unlock",
    "fault_and_read",
    "hmm_api",
    "kernel_api",
    "new_completion",
    "reference_world",
    "wait_for_completion",
    "world_state",
]

#: The HMM models a scenario can run on, by variant name.
HMM_VARIANTS: Final[Mapping[str, ModuleType]] = {
    "prepatch": hmm_prepatch,
    "v5.3": hmm_v53,
}

#: Variants whose mm is served by another mm/mmu_notifier.c than v5.3's.
NOTIFIER_CORES: Final[Mapping[str, MmuNotifierCore]] = {
    "v5.5": mmu_notifier_v55,
    "current": mmu_notifier_current,
}

#: The kernel versions the variants model (report headers).
KERNEL_VERSIONS: Final = "v5.3 (prepatch, v5.3), v5.5 and v6.16 (current)"

#: First address of the process's memory.
BASE: Final = 0x10000

Actor = Callable[[], Awaitable[object]]

#: A driver lock: any sleeping or spinning lock primitive of :mod:`hmmsim.sync`.
DriverLock = Mutex | SpinLock | RwSemaphore


@dataclass(frozen=True, slots=True, kw_only=True)
class IntervalApi:
    """The ``mmu_interval_notifier`` driver API of one kernel version, by C name.

    What a driver of that version includes from ``<linux/mmu_notifier.h>``
    and ``<linux/hmm.h>``: a driver factory receives it as ``kernel`` and
    reads ``kernel.MmuIntervalNotifier``, ``kernel.hmm_range_fault`` ... as
    the C reads the headers of the kernel it is built against.

    Attributes:
        version: the variant name (``"v5.5"``).
        MmuIntervalNotifier: ``struct mmu_interval_notifier``.
        HmmRange: ``struct hmm_range`` of that version.
        mmu_interval_notifier_insert: ``(sub, mm, start, length, ops) -> int``.
        mmu_interval_notifier_remove: ``(sub) -> None``; waits for a running
            invalidation of the sub to finish.
        mmu_interval_read_begin: ``(sub) -> seq``.
        mmu_interval_read_retry: ``(sub, seq) -> bool`` (plain function,
            under the driver lock).
        mmu_interval_check_retry: ``(sub, seq) -> bool`` (lockless hint).
        mmu_interval_set_seq: ``(sub, cur_seq) -> None`` (in ``invalidate``,
            under the driver lock).
        mmu_notifier_range_blockable: ``(range) -> bool``.
        hmm_range_fault: the version's ``hmm_range_fault``: v5.5
            ``(range, flags)``, returning the number of valid pages; current
            ``(range)``, returning 0.  Both return -EBUSY when the sequence
            moved.
        HMM_PFN_VALID: v5.5: index into ``range.flags``; current: the bit of
            an ``hmm_pfns`` entry.
        HMM_PFN_WRITE: as ``HMM_PFN_VALID``, for write permission.
        ULONG_MAX: the largest address.
        hmm_device_entry_to_page: v5.5 only: ``(range, entry) -> Page | None``.
        hmm_pfn_to_page: current only: ``(entry) -> Page``.
        HMM_PFN_REQ_FAULT: current only: request bit "fault the page in".
        HMM_PFN_REQ_WRITE: current only: request bit "fault it writable".
    """

    version: str
    MmuIntervalNotifier: type[mmu_notifier_v55.MmuIntervalNotifier]
    HmmRange: type[hmm_v55.HmmRange] | type[hmm_current.HmmRange]
    mmu_interval_notifier_insert: Callable[..., Awaitable[int]]
    mmu_interval_notifier_remove: Callable[..., Awaitable[None]]
    mmu_interval_read_begin: Callable[..., Awaitable[int]]
    mmu_interval_read_retry: Callable[..., bool]
    mmu_interval_check_retry: Callable[..., Awaitable[bool]]
    mmu_interval_set_seq: Callable[..., Awaitable[None]]
    mmu_notifier_range_blockable: Callable[..., bool]
    hmm_range_fault: Callable[..., Awaitable[int]]
    HMM_PFN_VALID: int
    HMM_PFN_WRITE: int
    ULONG_MAX: int
    hmm_device_entry_to_page: Callable[..., Any] | None = None
    hmm_pfn_to_page: Callable[..., Any] | None = None
    HMM_PFN_REQ_FAULT: int = 0
    HMM_PFN_REQ_WRITE: int = 0


#: The interval-notifier API of each variant that has one.
INTERVAL_APIS: Final[Mapping[str, IntervalApi]] = {
    "v5.5": IntervalApi(
        version="v5.5",
        MmuIntervalNotifier=mmu_notifier_v55.MmuIntervalNotifier,
        HmmRange=hmm_v55.HmmRange,
        mmu_interval_notifier_insert=mmu_notifier_v55.mmu_interval_notifier_insert,
        mmu_interval_notifier_remove=mmu_notifier_v55.mmu_interval_notifier_remove,
        mmu_interval_read_begin=mmu_notifier_v55.mmu_interval_read_begin,
        mmu_interval_read_retry=mmu_notifier_v55.mmu_interval_read_retry,
        mmu_interval_check_retry=mmu_notifier_v55.mmu_interval_check_retry,
        mmu_interval_set_seq=mmu_notifier_v55.mmu_interval_set_seq,
        mmu_notifier_range_blockable=mmu_notifier_range_blockable,
        hmm_range_fault=hmm_v55.hmm_range_fault,
        hmm_device_entry_to_page=hmm_v55.hmm_device_entry_to_page,
        HMM_PFN_VALID=HMM_PFN_VALID,
        HMM_PFN_WRITE=HMM_PFN_WRITE,
        ULONG_MAX=mmu_notifier_v55.ULONG_MAX,
    ),
    "current": IntervalApi(
        version="current",
        MmuIntervalNotifier=mmu_notifier_current.MmuIntervalNotifier,
        HmmRange=hmm_current.HmmRange,
        mmu_interval_notifier_insert=mmu_notifier_current.mmu_interval_notifier_insert,
        mmu_interval_notifier_remove=mmu_notifier_current.mmu_interval_notifier_remove,
        mmu_interval_read_begin=mmu_notifier_current.mmu_interval_read_begin,
        mmu_interval_read_retry=mmu_notifier_current.mmu_interval_read_retry,
        mmu_interval_check_retry=mmu_notifier_current.mmu_interval_check_retry,
        mmu_interval_set_seq=mmu_notifier_current.mmu_interval_set_seq,
        mmu_notifier_range_blockable=mmu_notifier_range_blockable,
        hmm_range_fault=hmm_current.hmm_range_fault,
        hmm_pfn_to_page=hmm_current.hmm_pfn_to_page,
        HMM_PFN_VALID=hmm_flags.HMM_PFN_VALID,
        HMM_PFN_WRITE=hmm_flags.HMM_PFN_WRITE,
        HMM_PFN_REQ_FAULT=hmm_flags.HMM_PFN_REQ_FAULT,
        HMM_PFN_REQ_WRITE=hmm_flags.HMM_PFN_REQ_WRITE,
        ULONG_MAX=mmu_notifier_current.ULONG_MAX,
    ),
}

#: The variants whose HMM has the v5.3 ``hmm_mirror`` API.
MIRROR_VARIANTS: Final = tuple(HMM_VARIANTS)

#: The variants with the ``mmu_interval_notifier`` API.
INTERVAL_VARIANTS: Final = tuple(INTERVAL_APIS)

#: Every variant, oldest first.
VARIANTS: Final = MIRROR_VARIANTS + INTERVAL_VARIANTS


class MirrorDriver(Protocol):
    """What a scenario needs from a driver, whatever the HMM design.

    The driver lock ``update`` is the one its invalidation callback takes
    (with a trylock when the invalidation may not block); it may be any
    :data:`DriverLock`.
    """

    @property
    def name(self) -> str:
        """Name used in reports."""
        ...

    @property
    def device(self) -> Device:
        """The device page table the driver programs."""
        ...

    @property
    def update(self) -> DriverLock:
        """The driver lock its invalidation callback takes."""
        ...

    async def bind(self, mm: MmStruct) -> int:
        """Start mirroring ``mm`` (0 or a negative errno)."""
        ...

    async def unbind(self) -> None:
        """Stop mirroring."""
        ...

    async def fault(
        self, addr: int, *, write: bool = False, max_retries: int = 1
    ) -> int:
        """Handle a device fault at ``addr`` (0 when the device maps it)."""
        ...


#: Builds a driver from the variant's kernel API (:func:`kernel_api`), a name
#: and its device: ``(kernel, name, device) -> MirrorDriver``.
DriverFactory = Callable[[Any, str, Device], MirrorDriver]


@dataclass(slots=True, kw_only=True, eq=False)
class HmmMirrorDriver:
    """The reference hmm_mirror driver (v5.3 API) behind the adapter."""

    dmirror: DummyMirror

    @property
    def name(self) -> str:
        """The driver's name."""
        return self.dmirror.name

    @property
    def device(self) -> Device:
        """The device page table."""
        return self.dmirror.device

    @property
    def update(self) -> Mutex:
        """The driver lock ("driver->update")."""
        return self.dmirror.update

    async def bind(self, mm: MmStruct) -> int:
        """hmm_mirror_register under mmap_sem (dummy_mirror_bind)."""
        return await dummy_mirror_bind(self.dmirror, mm)

    async def unbind(self) -> None:
        """hmm_mirror_unregister (dummy_mirror_unbind)."""
        await dummy_mirror_unbind(self.dmirror)

    async def fault(
        self, addr: int, *, write: bool = False, max_retries: int = 1
    ) -> int:
        """The documented fault loop (dummy_device_fault)."""
        return await dummy_device_fault(
            self.dmirror, addr, write=write, max_retries=max_retries
        )


def _hmm_mirror_driver(kernel: Any, name: str, device: Device) -> MirrorDriver:
    assert isinstance(kernel, ModuleType), "[hmmsim internal bug] not an hmm module"
    return HmmMirrorDriver(
        dmirror=DummyMirror(name=name, hmm_api=kernel, device=device)
    )


class DmirrorApi(Protocol):
    """The lib/test_hmm.c entry points the adapter calls: one module per version."""

    async def dmirror_fops_open(self, dmirror: Dmirror, mm: MmStruct) -> int:
        """open(): mmu_interval_notifier_insert over the whole address space."""
        ...

    async def dmirror_fops_release(self, dmirror: Dmirror) -> None:
        """close(): mmu_interval_notifier_remove, then kfree."""
        ...

    async def dmirror_fault(
        self, dmirror: Dmirror, start: int, end: int, write: bool, max_retries: int
    ) -> int:
        """Fault [start, end) into the device page table."""
        ...


#: variant -> the lib/test_hmm.c port of its kernel version.
DMIRROR_APIS: Final[Mapping[str, DmirrorApi]] = {
    "v5.5": dmirror_v55,
    "current": dmirror_current,
}


@dataclass(slots=True, kw_only=True, eq=False)
class DmirrorDriver:
    """lib/test_hmm.c's dmirror (mmu_interval_notifier API) behind the adapter.

    ``api`` is the driver's port for the variant's kernel version (v5.5 or
    current).
    """

    dmirror: Dmirror
    api: DmirrorApi = dmirror_v55

    @property
    def name(self) -> str:
        """The driver's name."""
        return self.dmirror.name

    @property
    def device(self) -> Device:
        """The device page table (the xarray ``pt``)."""
        return self.dmirror.pt

    @property
    def update(self) -> Mutex:
        """The driver lock its invalidate callback takes (``dmirror->mutex``)."""
        return self.dmirror.mutex

    async def bind(self, mm: MmStruct) -> int:
        """open(): mmu_interval_notifier_insert over the whole address space."""
        return await self.api.dmirror_fops_open(self.dmirror, mm)

    async def unbind(self) -> None:
        """close(): mmu_interval_notifier_remove, then kfree."""
        await self.api.dmirror_fops_release(self.dmirror)

    async def fault(
        self, addr: int, *, write: bool = False, max_retries: int = 1
    ) -> int:
        """dmirror_fault on the page of ``addr`` (the driver loop)."""
        start = addr & ~(PAGE_SIZE - 1)
        return await self.api.dmirror_fault(
            self.dmirror, start, start + PAGE_SIZE, write, max_retries
        )


def _dmirror_driver(kernel: Any, name: str, device: Device) -> MirrorDriver:
    assert isinstance(kernel, IntervalApi), "[hmmsim internal bug] not an IntervalApi"
    return DmirrorDriver(
        dmirror=Dmirror(name=name, pt=device), api=DMIRROR_APIS[kernel.version]
    )


#: variant -> the factory of its reference driver (the :data:`DriverFactory` shape).
DRIVERS: Final[dict[str, DriverFactory]] = {
    "prepatch": _hmm_mirror_driver,
    "v5.3": _hmm_mirror_driver,
    "v5.5": _dmirror_driver,
    "current": _dmirror_driver,
}


def hmm_api(variant: str) -> ModuleType:
    """Return the HMM module of ``variant`` (the hmm_mirror API).

    Raises:
        ConfigError: ``variant`` has no hmm_mirror API.
    """
    try:
        return HMM_VARIANTS[variant]
    except KeyError:
        raise ConfigError(f"no HMM model for variant {variant!r}") from None


def kernel_api(variant: str) -> ModuleType | IntervalApi:
    """Return the driver API of ``variant``: what a driver factory gets as ``kernel``.

    The hmm_mirror variants give their HMM module (:func:`hmm_api`); the
    interval-notifier variants give their :class:`IntervalApi`.

    Raises:
        ConfigError: unknown variant; the message lists the known ones.
    """
    if variant in HMM_VARIANTS:
        return HMM_VARIANTS[variant]
    try:
        return INTERVAL_APIS[variant]
    except KeyError:
        raise ConfigError(
            f"no driver API for variant {variant!r} (variants: {', '.join(VARIANTS)})"
        ) from None


@dataclass(slots=True, kw_only=True, eq=False)
class Completion:
    """A one-shot event between actors (``struct completion``, reduced)."""

    done: Cell[bool]
    wq: WaitQueueHead


def new_completion(name: str) -> Completion:
    """Create an incomplete completion."""
    return Completion(done=Cell(f"{name}.done", False), wq=WaitQueueHead(f"{name}.wq"))


async def complete(c: Completion) -> None:
    """Signal the completion (complete_all)."""
    await WRITE_ONCE(c.done, True)
    await wake_up_all(c.wq)


async def wait_for_completion(c: Completion) -> None:
    """Sleep until the completion is signalled."""

    async def is_done() -> bool:
        return await READ_ONCE(c.done)

    await wait_event(c.wq, is_done)


async def fault_and_read(
    driver: MirrorDriver,
    *,
    max_retries: int = 1,
    addr: int = BASE,
    write: bool = False,
) -> tuple[int, int | None]:
    """A device fault at ``addr`` through ``driver``, then a device access of it.

    With ``write`` the fault asks for a writable page and the access writes.
    """
    ret = await driver.fault(addr, write=write, max_retries=max_retries)
    value = await device_access(driver.device, addr, write, 0x77 if write else 0)
    return ret, value


async def driver_lock(lock: DriverLock) -> None:
    """Take a driver lock of any kind (for writing, for an rwsem)."""
    if isinstance(lock, Mutex):
        await mutex_lock(lock)
    elif isinstance(lock, SpinLock):
        await spin_lock(lock)
    else:
        await down_write(lock)


async def driver_unlock(lock: DriverLock) -> None:
    """Release a lock taken by :func:`driver_lock`."""
    if isinstance(lock, Mutex):
        await mutex_unlock(lock)
    elif isinstance(lock, SpinLock):
        await spin_unlock(lock)
    else:
        await up_write(lock)


async def busy_with(lock: DriverLock) -> None:
    """Unrelated work done while holding ``lock``.

    Under a sleeping lock the work sleeps (``msleep``); under a spinlock it
    may not, so the hold is the span between the acquire and the release.
    """
    await driver_lock(lock)
    if not isinstance(lock, SpinLock):
        await msleep(1)
    await driver_unlock(lock)


@dataclass(slots=True, kw_only=True, eq=False)
class World:
    """One process, its mm, its mirrors and devices, built for one execution.

    Attributes:
        variant: the HMM model variant.
        api: the HMM module of the variant (None for designs without struct hmm).
        mm: the address space.
        task: the process owning it (an OOM victim in some scenarios).
        mirrors: the mirror drivers (adapters), one device each.
        kvms: KVM-style secondary MMUs on the same mm.
        view: what the oracle watches.
        results: return values of the actors, by name (for final states).
    """

    variant: str
    api: ModuleType | None
    mm: MmStruct
    task: TaskStruct
    mirrors: list[MirrorDriver] = field(default_factory=list)
    kvms: list[Kvm] = field(default_factory=list)
    view: HmmWorldView = field(init=False)
    results: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Create the oracle's view of this world."""
        mm = self.mm
        self.view = HmmWorldView(mm=mm, hmm_of=lambda: mm.hmm)

    @classmethod
    def create(
        cls,
        variant: str,
        *,
        mirrors: int = 1,
        kvms: int = 0,
        driver: DriverFactory | None = None,
        reverted_fixes: Iterable[str] = (),
    ) -> World:
        """Build the objects of a world (no scheduling point).

        Args:
            variant: the kernel variant (one of :data:`VARIANTS`).
            mirrors: how many devices, each with its own driver instance.
            kvms: how many KVM-style secondary MMUs on the same mm.
            driver: the driver factory (default: the variant's reference
                driver, :data:`DRIVERS`); it gets :func:`kernel_api` of the
                variant, the name ``dmirror<i>`` and the device ``gpu<i>``.
            reverted_fixes: upstream fixes this world's kernel leaves out
                (commit ids of :data:`hmmsim.kernel.fixes.FIXES`).

        Raises:
            ConfigError: unknown variant.
            ModelError: an unknown fix id.
        """
        kernel = kernel_api(variant)
        make_driver = DRIVERS[variant] if driver is None else driver
        mm = mm_alloc("mm")
        # MODEL: the mm/mmu_notifier.c of the variant (mm_types Deviations).
        mm.notifier_core = NOTIFIER_CORES.get(variant)
        mm.reverted_fixes = check_fixes(reverted_fixes)
        world = cls(
            variant=variant,
            api=HMM_VARIANTS.get(variant),
            mm=mm,
            task=TaskStruct(pid=100, comm="app", mm=mm),
        )
        for i in range(mirrors):
            device = Device(name=f"gpu{i}", mm=mm)
            world.mirrors.append(make_driver(kernel, f"dmirror{i}", device))
            world.view.devices.append(device)
        if mm.notifier_core is not None:
            world.view.counters.update(_v55_counters(mm))
        for i in range(kvms):
            kvm = Kvm(name=f"kvm{i}", mm=mm)
            world.kvms.append(kvm)
            world.view.devices.append(kvm.shadow)
            # Once release ran, the core calls the VM no more (an end of a
            # start it saw never comes) and the VM never faults again, so its
            # count no longer matters.
            world.view.counters[f"{kvm.name}->mmu_notifier_count"] = lambda k=kvm: (
                0 if k.released else k.mmu_notifier_count
            )
        return world

    async def setup(
        self,
        *,
        pages: int = 1,
        bind: Sequence[int] | None = None,
        device_maps: Sequence[int] = (),
        kvm_maps: Sequence[int] = (),
        oom_victim: bool = False,
        map_pages: int = 1,
    ) -> None:
        """Map and touch ``pages`` pages at BASE, bind mirrors, map devices.

        Args:
            pages: pages of anonymous memory, each written once by the CPU.
            bind: indexes of the mirrors to register, in order (default all).
                The mirror bound last is called first by HMM (list_add).
            device_maps: mirrors whose device maps BASE after a completed fault.
            kvm_maps: KVM instances whose shadow page table maps BASE.
            oom_victim: mark the process as an OOM victim.
            map_pages: how many pages from BASE each of ``device_maps`` maps.
        """
        mm = self.mm
        await vm_mmap(mm, BASE, pages * PAGE_SIZE, VM_READ | VM_WRITE)
        for i in range(pages):
            await cpu_store(mm, BASE + i * PAGE_SIZE, 0x42 + i)
        order = range(len(self.mirrors)) if bind is None else bind
        for i in order:
            ret = await self.mirrors[i].bind(mm)
            assert ret == 0, f"[hmmsim internal bug] set-up: bind failed with {ret}"
        for kvm in self.kvms:
            ret = await kvm_register(kvm)
            assert ret == 0, (
                f"[hmmsim internal bug] set-up: kvm register failed with {ret}"
            )
        for i in device_maps:
            for page in range(map_pages):
                ret = await self.mirrors[i].fault(BASE + page * PAGE_SIZE)
                assert ret == 0, (
                    f"[hmmsim internal bug] set-up: device fault failed with {ret}"
                )
        for i in kvm_maps:
            ret = await kvm_mmu_page_fault(self.kvms[i], BASE, True)
            assert ret == 0, (
                f"[hmmsim internal bug] set-up: kvm fault failed with {ret}"
            )
        if oom_victim:
            await mark_oom_victim(self.task)

    async def unbind(self, mirror: MirrorDriver) -> None:
        """Unbind ``mirror``'s driver, then tell the oracle it is gone.

        The ``driver_unbind`` tracepoint (driver and device names) is emitted
        once the driver's ``unbind`` returned: from then on the teardown
        checks expect no subscription of that driver and an empty device
        table at the end (``notifier-after-unbind``,
        ``device-pte-after-unbind``).  A tracepoint is no scheduling point.
        """
        await mirror.unbind()
        trace("driver_unbind", driver=mirror.name, device=mirror.device.name)

    def final_state(self) -> object:
        """Return a hashable summary: counters, mappings and actor results."""
        hmm = self.mm.hmm
        notifiers = getattr(hmm, "notifiers", None)
        devices = tuple(
            (
                dev.name,
                tuple((addr, p.page.pfn, p.generation) for addr, p in dev.mapped()),
            )
            for dev in self.view.devices
        )
        ptes = tuple(
            (addr, _pte_summary(c.value)) for addr, c in sorted(self.mm.ptes.items())
        )
        results = tuple(sorted((k, repr(v)) for k, v in self.results.items()))
        return (notifiers, devices, ptes, results)


def _v55_counters(mm: MmStruct) -> dict[str, Callable[[], int]]:
    """The v5.5 / current core's counts of open write-side sections (leak check).

    With every task finished, ``active_invalidate_ranges`` must equal the
    ghost count of open invalidations, and ``invalidate_seq`` must be even
    (odd means a write side was never released).
    """
    name = f"{mm.name}->mmu_notifier_mm"

    def active() -> int:
        mmn_mm = mm.mmu_notifier_mm
        if not isinstance(mmn_mm, mmu_notifier_v55.MmuNotifierMm):
            return 0
        return mmn_mm.active_invalidate_ranges

    def odd() -> int:
        mmn_mm = mm.mmu_notifier_mm
        if not isinstance(mmn_mm, mmu_notifier_v55.MmuNotifierMm):
            return 0
        return mmn_mm.invalidate_seq.value & 1

    return {
        f"{name}->active_invalidate_ranges": active,
        f"{name}->invalidate_seq & 1": odd,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeView:
    """A registered ``struct hmm_range`` (hmm_mirror variants), read-only.

    Attributes:
        name: the range's name.
        start: first address.
        end: end address (exclusive).
        valid: ``range->valid``.
    """

    name: str
    start: int
    end: int
    valid: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifierView:
    """A subscription on the mm, read-only.

    Attributes:
        name: the subscription's name.
        kind: ``"interval"`` (an inserted ``mmu_interval_notifier``),
            ``"mirror"`` (a registered ``hmm_mirror``) or ``"hlist"`` (a
            classic ``mmu_notifier``, e.g. HMM's own or a KVM-style MMU).
        start: first address covered (0 for whole-mm kinds).
        last: last address covered, inclusive (``ULONG_MAX`` for whole-mm kinds).
    """

    name: str
    kind: str
    start: int
    last: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceEntryView:
    """One present device page-table entry, read-only.

    Attributes:
        addr: the page-aligned address.
        pfn: the page frame it maps.
        writable: whether the device may write through it.
        page_free: whether that frame is free now.
        reallocated: whether the frame was freed and handed out again since
            the device mapped it.
    """

    addr: int
    pfn: int
    writable: bool
    page_free: bool
    reallocated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PageView:
    """One CPU page-table entry of the mm, read-only.

    Attributes:
        addr: the page-aligned address.
        pfn: the page frame mapped, or None for an empty PTE.
        writable: the PTE's write bit.
        state: ``"free"`` or ``"in-use"`` (the frame's allocator state).
        refcount: the frame's reference count.
        mapcount: the PTEs mapping the frame.
        swap: ``""`` for a present or empty PTE; for a non-present one the
            kind of swap entry it holds (``"device-private-write"``,
            ``"device-private-read"``, ``"migration-read"`` or
            ``"migration-write"``); ``pfn`` is then the page it names.
    """

    addr: int
    pfn: int | None
    writable: bool
    state: str
    refcount: int
    mapcount: int
    swap: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldState:
    """A read-only copy of a world's state, for end-of-execution checks.

    Everything is copied into tuples when :meth:`World.state` is called, so a
    check cannot change the model, and reading it is no scheduling point.

    Attributes:
        variant: the kernel variant.
        mm_users: ``mm->mm_users``.
        mm_count: ``mm->mm_count``.
        mm_freed: whether the mm struct was freed (mmdrop of the last count).
        open_invalidations: invalidations started (or starting) and not ended,
            by the notifier core's ghost count.
        ranges: the registered hmm ranges (hmm_mirror variants; empty on the
            interval-notifier variants, which have no registration).
        notifiers: the subscriptions on the mm, in list/tree order.
        devices: device name -> its present entries, by address.
        pages: the CPU page table, by address.
        results: actor name -> ``repr`` of its return value (finished actors).
    """

    variant: str
    mm_users: int
    mm_count: int
    mm_freed: bool
    open_invalidations: int
    ranges: tuple[RangeView, ...]
    notifiers: tuple[NotifierView, ...]
    devices: Mapping[str, tuple[DeviceEntryView, ...]]
    pages: tuple[PageView, ...]
    results: Mapping[str, str]

    def device(self, name: str) -> tuple[DeviceEntryView, ...]:
        """Return the present entries of the device called ``name``."""
        return self.devices[name]


def _ranges(mm: MmStruct) -> tuple[RangeView, ...]:
    ranges = getattr(mm.hmm, "ranges", None) or ()
    return tuple(
        RangeView(name=r.name, start=r.start, end=r.end, valid=bool(r.valid))
        for r in ranges
    )


def _notifiers(mm: MmStruct) -> tuple[NotifierView, ...]:
    whole = (1 << 64) - 1
    views = [
        NotifierView(name=m.name, kind="mirror", start=0, last=whole)
        for m in getattr(mm.hmm, "mirrors", None) or ()
    ]
    mmn_mm = mm.mmu_notifier_mm
    sub = mmn_mm.first if mmn_mm is not None else None
    while sub is not None:
        views.append(NotifierView(name=sub.name, kind="hlist", start=0, last=whole))
        sub = sub.hlist_next
    if isinstance(mmn_mm, mmu_notifier_v55.MmuNotifierMm):
        views.extend(
            NotifierView(name=i.name, kind="interval", start=i.start, last=i.last)
            for i in mmn_mm.itree
        )
    return tuple(views)


def _device_view(dev: Device) -> tuple[DeviceEntryView, ...]:
    return tuple(
        DeviceEntryView(
            addr=addr,
            pfn=p.page.pfn,
            writable=p.write,
            page_free=p.page.state is PageState.FREE,
            reallocated=p.page.generation != p.generation,
        )
        for addr, p in dev.mapped()
    )


def _pte_summary(pte: PteVal) -> object:
    """The pfn a PTE maps (None if empty); a swap entry adds its kind."""
    if pte is None:
        return None
    if isinstance(pte, SwapPte):
        return (pte.entry.type.value, pte.entry.page.pfn)
    return pte.page.pfn


def _page_view(addr: int, pte: PteVal) -> PageView:
    if pte is None:
        return PageView(
            addr=addr, pfn=None, writable=False, state="", refcount=0, mapcount=0
        )
    if isinstance(pte, SwapPte):
        page = pte.entry.page
        return PageView(
            addr=addr,
            pfn=page.pfn,
            writable=pte.entry.type
            in {SwpType.SWP_DEVICE_WRITE, SwpType.SWP_MIGRATION_WRITE},
            state=page.state.value,
            refcount=page.refcount,
            mapcount=page.mapcount,
            swap=pte.entry.type.value,
        )
    page = pte.page
    return PageView(
        addr=addr,
        pfn=page.pfn,
        writable=pte.write,
        state=page.state.value,
        refcount=page.refcount,
        mapcount=page.mapcount,
    )


#: An end-of-execution check: reads a :class:`WorldState`, returns findings.
WorldCheck = Callable[[WorldState], Iterable[Finding]]


def world_state(world: World) -> WorldState:
    """Return a read-only copy of ``world``'s state (see :class:`WorldState`)."""
    mm = world.mm
    return WorldState(
        variant=world.variant,
        mm_users=mm.mm_users.value,
        mm_count=mm.mm_count.value,
        mm_freed=mm.freed,
        open_invalidations=mm.ghost_open_invalidations + mm.ghost_starts_in_flight,
        ranges=_ranges(mm),
        notifiers=_notifiers(mm),
        devices=MappingProxyType(
            {dev.name: _device_view(dev) for dev in world.view.devices}
        ),
        pages=tuple(_page_view(addr, c.value) for addr, c in sorted(mm.ptes.items())),
        results=MappingProxyType({k: repr(v) for k, v in world.results.items()}),
    )


#: The harness's own end-of-execution checks, run after the oracle's
#: properties and before the user's ``check``, on every world: the one place
#: where checks of every scenario (teardown, leaks) plug in.  Append to it at
#: import time of the module defining them; order is report order.
END_CHECKS: list[WorldCheck] = []


@dataclass(slots=True, kw_only=True, eq=False)
class WorldInstance:
    """The engine Instance of a world: a set-up task that spawns the actors.

    Attributes:
        world: the world, built for this execution.
        setup: the set-up coroutine function, run alone before the actors.
        actors: ``(name, coroutine function)`` pairs, spawned after set-up.
        check: an end-of-execution check of the user's own: it gets a
            read-only :class:`WorldState` once every task finished (and no
            fatal finding ended the execution) and returns
            :class:`~hmmsim.engine.Finding`s (``kind``, ``message``).
    """

    world: World
    setup: Callable[[], Awaitable[None]]
    actors: Sequence[tuple[str, Actor]]
    check: WorldCheck | None = None

    def tasks(self) -> Sequence[tuple[str, Coroutine[Any, Any, Any]]]:
        """Return the single set-up task, which spawns the actors when done."""
        return [("setup", self._run())]

    def setup_task(self) -> tuple[str, Coroutine[Any, Any, Any]]:
        """Return the set-up task alone (the engine spawns the actors after it)."""
        return ("setup", self._setup())

    def actor_tasks(self) -> Sequence[tuple[str, Coroutine[Any, Any, Any]]]:
        """Return the actors, spawned when the set-up returns."""
        return [(name, self._actor(name, actor)) for name, actor in self.actors]

    async def _setup(self) -> None:
        attach_contract_probes(self.world.view)
        await self.setup()

    async def _run(self) -> None:
        await self._setup()
        execution = current_execution()
        for name, body in self.actor_tasks():
            execution.spawn(name, body)

    async def _actor(self, name: str, actor: Actor) -> None:
        self.world.results[name] = await actor()

    def check_end(self) -> Iterable[Finding]:
        """Run the oracle's end properties, :data:`END_CHECKS`, then ``check``."""
        findings = list(check_end(self.world.view))
        checks = [*END_CHECKS, *([self.check] if self.check is not None else [])]
        if checks:
            state = world_state(self.world)
            for end_check in checks:
                findings.extend(end_check(state))
        return findings

    def final_state(self) -> object:
        """Return the world's summary."""
        return self.world.final_state()

    def snapshot(self) -> Mapping[str, object]:
        """Return the oracle's state excerpt."""
        return snapshot(self.world.view)


class WorldFactory(Protocol):
    """Builds the world of one execution: :meth:`World.create` with a driver."""

    def __call__(self, variant: str, *, mirrors: int = 1, kvms: int = 0) -> World:
        """Return a fresh world of ``variant`` with ``mirrors`` drivers."""
        ...


def reference_world(variant: str, *, mirrors: int = 1, kvms: int = 0) -> World:
    """The world of the built-in scenarios: the variant's reference driver."""
    return World.create(variant, mirrors=mirrors, kvms=kvms)
