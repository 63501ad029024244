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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, Protocol

from hmmsim.engine import Finding, current_execution
from hmmsim.errors import ConfigError
from hmmsim.kernel import hmm as hmm_v53
from hmmsim.kernel import hmm_prepatch, mmu_notifier_current, mmu_notifier_v55
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
from hmmsim.kernel.fork import mm_alloc
from hmmsim.kernel.mm_types import MmStruct, TaskStruct
from hmmsim.kernel.mmap import vm_mmap
from hmmsim.kernel.mmu_notifier import MmuNotifierCore
from hmmsim.kernel.oom_kill import mark_oom_victim
from hmmsim.kernel.types import PAGE_SIZE, VM_READ, VM_WRITE
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
    WaitQueueHead,
    msleep,
    mutex_lock,
    mutex_unlock,
    wait_event,
    wake_up_all,
)

__all__ = [
    "BASE",
    "DMIRROR_APIS",
    "DRIVERS",
    "HMM_VARIANTS",
    "KERNEL_VERSIONS",
    "NOTIFIER_CORES",
    "Completion",
    "DmirrorApi",
    "DmirrorDriver",
    "HmmMirrorDriver",
    "MirrorDriver",
    "World",
    "WorldInstance",
    "busy_with",
    "complete",
    "fault_and_read",
    "hmm_api",
    "new_completion",
    "wait_for_completion",
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


class MirrorDriver(Protocol):
    """What a scenario needs from a mirror driver, whatever the HMM design.

    The driver lock ``update`` is the one its invalidation callback takes
    (with a trylock when the invalidation may not block).
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
    def update(self) -> Mutex:
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


def _hmm_mirror_driver(variant: str, name: str, device: Device) -> MirrorDriver:
    return HmmMirrorDriver(
        dmirror=DummyMirror(name=name, hmm_api=hmm_api(variant), device=device)
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


def _dmirror_driver(variant: str, name: str, device: Device) -> MirrorDriver:
    return DmirrorDriver(
        dmirror=Dmirror(name=name, pt=device), api=DMIRROR_APIS[variant]
    )


#: variant -> factory of its mirror driver (name, device) -> MirrorDriver.
DRIVERS: Final[dict[str, Callable[[str, str, Device], MirrorDriver]]] = {
    "prepatch": _hmm_mirror_driver,
    "v5.3": _hmm_mirror_driver,
    "v5.5": _dmirror_driver,
    "current": _dmirror_driver,
}


def hmm_api(variant: str) -> ModuleType:
    """Return the HMM module of ``variant``."""
    try:
        return HMM_VARIANTS[variant]
    except KeyError:
        raise ConfigError(f"no HMM model for variant {variant!r}") from None


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
    driver: MirrorDriver, *, max_retries: int = 1
) -> tuple[int, int | None]:
    """A device fault at BASE through ``driver``, then a device read of BASE."""
    ret = await driver.fault(BASE, max_retries=max_retries)
    value = await device_access(driver.device, BASE, False)
    return ret, value


async def busy_with(lock: Mutex) -> None:
    """Unrelated work (that may sleep) done while holding ``lock``."""
    await mutex_lock(lock)
    await msleep(1)
    await mutex_unlock(lock)


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
    def create(cls, variant: str, *, mirrors: int = 1, kvms: int = 0) -> World:
        """Build the objects of a world (no scheduling point)."""
        try:
            make_driver = DRIVERS[variant]
        except KeyError:
            raise ConfigError(f"no mirror driver for variant {variant!r}") from None
        mm = mm_alloc("mm")
        # MODEL: the mm/mmu_notifier.c of the variant (mm_types Deviations).
        mm.notifier_core = NOTIFIER_CORES.get(variant)
        world = cls(
            variant=variant,
            api=HMM_VARIANTS.get(variant),
            mm=mm,
            task=TaskStruct(pid=100, comm="app", mm=mm),
        )
        for i in range(mirrors):
            device = Device(name=f"gpu{i}", mm=mm)
            world.mirrors.append(make_driver(variant, f"dmirror{i}", device))
            world.view.devices.append(device)
        if mm.notifier_core is not None:
            world.view.counters.update(_v55_counters(mm))
        for i in range(kvms):
            kvm = Kvm(name=f"kvm{i}", mm=mm)
            world.kvms.append(kvm)
            world.view.devices.append(kvm.shadow)
            world.view.counters[f"{kvm.name}->mmu_notifier_count"] = lambda k=kvm: (
                k.mmu_notifier_count
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
    ) -> None:
        """Map and touch ``pages`` pages at BASE, bind mirrors, map devices.

        Args:
            pages: pages of anonymous memory, each written once by the CPU.
            bind: indexes of the mirrors to register, in order (default all).
                The mirror bound last is called first by HMM (list_add).
            device_maps: mirrors whose device maps BASE after a completed fault.
            kvm_maps: KVM instances whose shadow page table maps BASE.
            oom_victim: mark the process as an OOM victim.
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
            ret = await self.mirrors[i].fault(BASE)
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
            (addr, None if c.value is None else c.value.page.pfn)
            for addr, c in sorted(self.mm.ptes.items())
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


@dataclass(slots=True, kw_only=True, eq=False)
class WorldInstance:
    """The engine Instance of a world: a set-up task that spawns the actors."""

    world: World
    setup: Callable[[], Awaitable[None]]
    actors: Sequence[tuple[str, Actor]]

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
        """Run the oracle's end-of-execution properties."""
        return check_end(self.world.view)

    def final_state(self) -> object:
        """Return the world's summary."""
        return self.world.final_state()

    def snapshot(self) -> Mapping[str, object]:
        """Return the oracle's state excerpt."""
        return snapshot(self.world.view)
