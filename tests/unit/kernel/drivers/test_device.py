"""Tests for `hmmsim.kernel.drivers.device`."""

from __future__ import annotations

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel.drivers.device import (
    Device,
    device_access,
    device_pte_clear,
    device_pte_set,
)
from hmmsim.kernel.page_alloc import alloc_page


class TestDeviceAccess:
    """device_access through the device page table."""

    def test_access_without_mapping_is_a_device_fault(self) -> None:
        """With no entry the device faults and reads nothing."""
        got: list[int | None] = []

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            got.append(await device_access(dev, BASE, False))

        run = run_one(body)

        assert [None] == got
        assert [{"device": "gpu0", "addr": BASE, "write": False}] == run.named(
            "device_fault"
        )

    def test_read_and_write_go_to_the_mapped_page(self) -> None:
        """A writable entry lets the device write, then read back, the page."""
        got: list[int | None] = []

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            page = await alloc_page()
            assert page is not None
            await device_pte_set(dev, BASE, page, True)
            got.append(await device_access(dev, BASE, True, 7))
            got.append(await device_access(dev, BASE, False))
            got.append(page.contents)

        run_one(body)

        assert [7, 7, 7] == got

    def test_write_through_read_only_entry_faults(self) -> None:
        """A read-only entry refuses a device write."""
        got: list[int | None] = []

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            page = await alloc_page()
            assert page is not None
            await device_pte_set(dev, BASE, page, False)
            got.append(await device_access(dev, BASE, True, 7))

        run = run_one(body)

        assert [None] == got
        assert 1 == len(run.named("device_fault"))

    def test_clear_removes_the_mapping_and_is_idempotent(self) -> None:
        """Clearing twice leaves no entry and traces one clear."""
        mapped: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            page = await alloc_page()
            assert page is not None
            await device_pte_set(dev, BASE + 5, page, True)
            await device_pte_clear(dev, BASE)
            await device_pte_clear(dev, BASE)
            mapped.extend(dev.mapped())

        run = run_one(body)

        assert [] == mapped
        assert 1 == len(run.named("device_pte_clear"))
