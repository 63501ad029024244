"""Tests for `hmmsim.kernel.drivers.dummy_mirror` (on both HMM models)."""

from __future__ import annotations

import errno
from types import ModuleType

import pytest
from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel import hmm, hmm_prepatch
from hmmsim.kernel.drivers.device import Device, device_access
from hmmsim.kernel.drivers.dummy_mirror import (
    DummyMirror,
    driver_populate_range,
    dummy_device_fault,
    dummy_mirror_bind,
    dummy_mirror_release,
    dummy_mirror_unbind,
    dummy_sync_cpu_device_pagetables,
)
from hmmsim.kernel.fork import mmput
from hmmsim.kernel.types import HMM_UPDATE_INVALIDATE, PAGE_SIZE, VM_READ
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.sync import mutex_lock, mutex_unlock

MODELS = [pytest.param(hmm, id="v5.3"), pytest.param(hmm_prepatch, id="prepatch")]


async def _bound(api: ModuleType, **kw: object) -> DummyMirror:
    mm = await make_mm(**kw)  # type: ignore[arg-type]
    dmirror = DummyMirror(name="dm", hmm_api=api, device=Device(name="gpu0", mm=mm))
    assert 0 == await dummy_mirror_bind(dmirror, mm)
    return dmirror


@pytest.mark.parametrize("api", MODELS)
class TestFault:
    """The documented fault loop, sequentially."""

    def test_fault_maps_the_page_the_cpu_maps(self, api: ModuleType) -> None:
        """After a fault the device reads what the CPU wrote."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(api)
            mm = dmirror.device.mm
            await cpu_store(mm, BASE, 0x55)
            got.append(await dummy_device_fault(dmirror, BASE))
            got.append(await device_access(dmirror.device, BASE, False))
            got.append(mm.ptes[BASE].value.page is dmirror.device.mapped()[0][1].page)  # type: ignore[union-attr]

        run_one(body)

        assert [0, 0x55, True] == got

    def test_fault_allocates_a_missing_page(self, api: ModuleType) -> None:
        """hmm_range_fault faults a page that was never touched."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(api)
            got.append(await dummy_device_fault(dmirror, BASE, write=True))
            got.append(dmirror.device.mapped()[0][1].write)

        run_one(body)

        assert [0, True] == got

    def test_fault_on_unreadable_memory_fails_with_eperm(self, api: ModuleType) -> None:
        """A VMA without read permission gives -EPERM and no mapping."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(api, vm_flags=0)
            got.append(
                await driver_populate_range(
                    dmirror, dmirror.device.mm, BASE, BASE + PAGE_SIZE
                )
            )
            got.append(dmirror.device.mapped())

        run_one(body)

        assert [-errno.EPERM, []] == got

    def test_fault_after_exit_fails_with_efault(self, api: ModuleType) -> None:
        """Once the last mm user is gone the fault is refused."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(api, vm_flags=VM_READ)
            await mmput(dmirror.device.mm)
            got.append(await dummy_device_fault(dmirror, BASE))

        run_one(body)

        assert [-errno.EFAULT] == got

    def test_misaligned_range_is_rejected(self, api: ModuleType) -> None:
        """hmm_range_register's -EINVAL is passed on."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(api)
            got.append(
                await driver_populate_range(
                    dmirror, dmirror.device.mm, BASE + 1, BASE + PAGE_SIZE
                )
            )

        run_one(body)

        assert [-errno.EINVAL] == got

    def test_snapshot_mode_maps_only_present_pages(self, api: ModuleType) -> None:
        """The snapshot walk does not fault: an untouched page stays unmapped."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(api)
            got.append(
                await driver_populate_range(
                    dmirror, dmirror.device.mm, BASE, BASE + PAGE_SIZE, snapshot=True
                )
            )
            got.append(dmirror.device.mapped())

        run_one(body)

        assert [0, []] == got

    def test_unbind_then_rebind(self, api: ModuleType) -> None:
        """A mirror can be unregistered and registered again."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(api)
            await dummy_mirror_unbind(dmirror)
            got.append(await dummy_mirror_bind(dmirror, dmirror.device.mm))

        run_one(body)

        assert [0] == got


class TestSync:
    """dummy_sync_cpu_device_pagetables and release."""

    def test_nonblocking_update_with_busy_lock_returns_eagain(self) -> None:
        """The trylock fails, the device keeps its mapping, -EAGAIN is returned."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(hmm)
            # A page of its own: v5.3's walk fails on the zero page.
            await cpu_store(dmirror.device.mm, BASE, 1)
            await dummy_device_fault(dmirror, BASE)
            await mutex_lock(dmirror.update)
            update = hmm.HmmUpdate(
                start=BASE,
                end=BASE + PAGE_SIZE,
                event=HMM_UPDATE_INVALIDATE,
                blockable=False,
            )
            got.append(await dummy_sync_cpu_device_pagetables(dmirror.mirror, update))
            got.append(len(dmirror.device.mapped()))
            await mutex_unlock(dmirror.update)
            got.append(await dummy_sync_cpu_device_pagetables(dmirror.mirror, update))
            got.append(len(dmirror.device.mapped()))

        run_one(body)

        assert [-errno.EAGAIN, 1, 0, 0] == got

    def test_release_zaps_every_entry(self) -> None:
        """release drops all device mappings and marks the mirror."""
        got: list[object] = []

        async def body() -> None:
            dmirror = await _bound(hmm)
            await dummy_device_fault(dmirror, BASE)
            await dummy_mirror_release(dmirror.mirror)
            got.append(dmirror.device.mapped())
            got.append(dmirror.released)

        run_one(body)

        assert [[], True] == got
