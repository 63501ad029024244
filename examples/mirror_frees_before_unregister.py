"""A buggy hmm_mirror driver: it frees its state before unregistering the mirror.

The driver keeps per-device state in memory it allocated (``kzalloc`` at
bind, as a driver's ``struct my_mirror`` would be), and its
``sync_cpu_device_pagetables`` callback writes to that state on every
invalidation.  Its unbind tears down in the wrong order:

1. ``kfree(state)``;
2. zap the device page table;
3. ``hmm_mirror_unregister(mirror)``.

Between the free and the unregister, the mirror is still on ``hmm->mirrors``, so an invalidation
(here page reclaim, ``try_to_unmap_one``) still calls the callback, which
writes to freed memory.  The kernel's rule is the reverse order:
``hmm_mirror_unregister`` takes ``mirrors_sem`` for write, so once it
returns no callback runs any more, and only then may the memory go.

No flag marks the bug: the free and the callback's access are ``kfree`` and
``kasan_check_write`` on the same object, both scheduling points, so the
explorer finds the interleaving where the access follows the free, and
KASAN's ``use-after-free`` reports it.

Check it::

    hmmsim check examples/mirror_frees_before_unregister.py --all

Expected: ``use-after-free`` on ``v5.3`` (the race ``unbind-vs-reclaim``);
``make_fixed_driver`` (unregister first, then free) is verified.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from hmmsim.api import (
    BASE,
    HMM_PFN_VALID,
    PAGE_SHIFT,
    PAGE_SIZE,
    Device,
    MmStruct,
    Mutex,
    Scenario,
    WorldInstance,
    device_pte_clear,
    device_pte_set,
    down_read,
    down_write,
    kasan_check_write,
    kfree,
    kzalloc,
    mirror_world,
    mmget_not_zero,
    mmput,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    try_to_unmap_one,
    up_read,
    up_write,
)

#: HMM_RANGE_DEFAULT_TIMEOUT, in milliseconds.
TIMEOUT_MS = 1000


@dataclass(eq=False)
class MirrorState:
    """The driver's private state, allocated at bind (kmalloc needs a __dict__).

    Attributes:
        invalidations: invalidations seen (written by the callback).
    """

    invalidations: int = 0


@dataclass(frozen=True, slots=True)
class Ops:
    """``struct hmm_mirror_ops``."""

    release: Any
    sync_cpu_device_pagetables: Any


@dataclass(slots=True, kw_only=True, eq=False)
class FreesEarly:
    """A mirror driver whose unbind frees its state before unregistering.

    Attributes:
        hmm: the HMM module of the variant.
        name: name used in reports.
        device: the device page table.
        update: the driver lock.
        mirror: the embedded ``struct hmm_mirror``.
        state: the kzalloc'ed private state (None when unbound).
    """

    hmm: ModuleType
    name: str
    device: Device
    update: Mutex = field(init=False)
    mirror: Any = field(init=False)
    state: MirrorState | None = None

    def __post_init__(self) -> None:
        """Create the lock and the embedded mirror."""
        self.update = Mutex(f"{self.name}->update", lockdep_class="driver->update")
        ops = Ops(
            release=self.release,
            sync_cpu_device_pagetables=self.sync_cpu_device_pagetables,
        )
        self.mirror = self.hmm.HmmMirror(ops=ops, name=f"{self.name}->mirror")

    async def sync_cpu_device_pagetables(self, mirror: Any, update: Any) -> int:
        """Count the invalidation in the private state, zap the device range."""
        del mirror
        if update.blockable:
            await mutex_lock(self.update)
        elif not await mutex_trylock(self.update):
            return -errno.EAGAIN
        state = self.state
        assert state is not None
        await kasan_check_write(state, "frees_early_sync_cpu_device_pagetables")
        state.invalidations += 1
        addr = update.start
        while addr < update.end:
            await device_pte_clear(self.device, addr)
            addr += PAGE_SIZE
        await mutex_unlock(self.update)
        return 0

    async def release(self, mirror: Any) -> None:
        """The mm is going away: drop every device mapping."""
        del mirror
        await mutex_lock(self.update)
        for addr, _ in self.device.mapped():
            await device_pte_clear(self.device, addr)
        await mutex_unlock(self.update)

    async def bind(self, mm: MmStruct) -> int:
        """Allocate the state, then hmm_mirror_register under mmap_sem."""
        self.state = kzalloc(MirrorState())
        if self.state is None:
            return -errno.ENOMEM
        await down_write(mm.mmap_sem)
        ret: int = await self.hmm.hmm_mirror_register(self.mirror, mm)
        await up_write(mm.mmap_sem)
        return ret

    async def stop_device(self) -> None:
        """Zap every device entry under the driver lock (the device stops)."""
        await mutex_lock(self.update)
        for addr, _ in self.device.mapped():
            await device_pte_clear(self.device, addr)
        await mutex_unlock(self.update)

    async def unbind(self) -> None:
        """BUG: the state is freed while the callback can still run."""
        await kfree(self.state)
        await self.stop_device()
        await self.hmm.hmm_mirror_unregister(self.mirror)

    async def fault(
        self, addr: int, *, write: bool = False, max_retries: int = 1
    ) -> int:
        """Mirror the page of ``addr`` (register, walk, program under the lock)."""
        del write  # read faults only
        mm = self.device.mm
        if not await mmget_not_zero(mm):
            return -errno.EFAULT
        hmm = self.hmm
        start = addr & ~(PAGE_SIZE - 1)
        rng = hmm.HmmRange(name=f"{self.name}->range", pfns=[0])
        rng.default_flags = rng.flags[HMM_PFN_VALID]
        rng.pfn_flags_mask = 0
        ret: int = await hmm.hmm_range_register(
            rng, self.mirror, start, start + PAGE_SIZE, PAGE_SHIFT
        )
        retries = 0
        while ret == 0:
            await hmm.hmm_range_wait_until_valid(rng, TIMEOUT_MS)
            await down_read(mm.mmap_sem)
            ret = await hmm.hmm_range_fault(rng, True)
            if ret >= 0:
                await mutex_lock(self.update)
                if await hmm.hmm_range_valid(rng):
                    page = hmm.hmm_device_entry_to_page(rng, rng.pfns[0])
                    if page is not None:
                        await device_pte_set(self.device, start, page, False)
                    ret = 0
                else:
                    ret = -errno.EBUSY
                await mutex_unlock(self.update)
            await up_read(mm.mmap_sem)
            if ret != -errno.EBUSY or retries >= max_retries:
                await hmm.hmm_range_unregister(rng)
                break
            retries += 1
            ret = 0
        await mmput(mm)
        return ret


@dataclass(slots=True, kw_only=True, eq=False)
class UnregistersFirst(FreesEarly):
    """The fix: unregister (no callback runs after it returns), then free."""

    async def unbind(self) -> None:
        """Stop the device, hmm_mirror_unregister, then kfree."""
        await self.stop_device()
        await self.hmm.hmm_mirror_unregister(self.mirror)
        await kfree(self.state)
        self.state = None


def make_driver(hmm: ModuleType, name: str, device: Device) -> FreesEarly:
    """The buggy driver's factory."""
    return FreesEarly(hmm=hmm, name=name, device=device)


def make_fixed_driver(hmm: ModuleType, name: str, device: Device) -> FreesEarly:
    """The fixed driver's factory."""
    return UnregistersFirst(hmm=hmm, name=name, device=device)


def unbind_vs_reclaim(factory: Any) -> Any:
    """Return the build function of the race for the driver ``factory``."""

    def build(variant: str) -> WorldInstance:
        world = mirror_world(variant, factory)
        driver = world.mirrors[0]

        async def setup() -> None:
            await world.setup(device_maps=[0])

        async def unbind() -> None:
            await driver.unbind()

        async def reclaim() -> bool:
            pte = world.mm.ptes[BASE].value
            vma = world.mm.mmap[0] if world.mm.mmap else None
            assert pte is not None
            assert vma is not None
            return await try_to_unmap_one(pte.page, vma, BASE)

        return WorldInstance(
            world=world,
            setup=setup,
            actors=[("unbind", unbind), ("reclaim", reclaim)],
        )

    return build


SCENARIOS = [
    Scenario(
        name="unbind-vs-reclaim",
        title="The driver unbinds while page reclaim invalidates its mirror",
        description=(
            "Set-up: one page at BASE mapped by the CPU and by the device "
            "(gpu0).  Actors: 'unbind' runs the driver's unbind (kfree of its "
            "state, zap of the device, then hmm_mirror_unregister); 'reclaim' unmaps the page "
            "(try_to_unmap_one, a blockable invalidation that calls the "
            "mirror's sync_cpu_device_pagetables)."
        ),
        variants=("v5.3",),
        build=unbind_vs_reclaim(make_driver),
        config={"max_steps": 4000},
        kernel_version="v5.3",
        expect={"v5.3": ("use-after-free",)},
    )
]
