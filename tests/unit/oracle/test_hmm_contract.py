"""Tests for `hmmsim.oracle.hmm_contract`: each check fires, and only then."""

from __future__ import annotations

import pytest
from tests.support.kernel_harness import (
    BASE,
    StubMirrorOps,
    make_mm,
    register_mirror,
    run_one,
)

from hmmsim.engine import Finding
from hmmsim.kernel import hmm
from hmmsim.kernel import mmu_notifier_current as cur
from hmmsim.kernel.drivers.device import (
    Device,
    device_access,
    device_pte_clear,
    device_pte_set,
)
from hmmsim.kernel.memory import set_pte_at
from hmmsim.kernel.memremap import DevPagemap
from hmmsim.kernel.mm_types import Page, Pte, mk_pte
from hmmsim.kernel.mmap import vm_munmap
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init_owner,
)
from hmmsim.kernel.mmu_notifier_current import (
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    mmu_interval_notifier_insert,
    mmu_interval_set_seq,
)
from hmmsim.kernel.page_alloc import alloc_page, put_page
from hmmsim.kernel.pagemap import lock_page, unlock_page
from hmmsim.kernel.swapops import (
    make_readable_device_private_entry,
    make_writable_device_private_entry,
    make_writable_migration_entry,
    swp_entry_to_pte,
)
from hmmsim.kernel.types import MMU_NOTIFY_MIGRATE, PAGE_SIZE
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.oracle.hmm_contract import (
    HmmWorldView,
    attach_contract_probes,
    check_end,
    cpu_mapping,
    cpu_maps,
    snapshot,
)
from hmmsim.sync import WRITE_ONCE, Cell, spin_lock, spin_unlock


def _kinds(run_findings: tuple[Finding, ...]) -> list[str]:
    return [f.kind for f in run_findings]


class TestProbes:
    """Checks made at tracepoints."""

    def test_access_to_the_page_the_cpu_maps_is_fine(self) -> None:
        """Mapping what the CPU maps and reading it reports nothing."""
        end: list[Finding] = []

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            view = HmmWorldView(mm=mm, devices=[dev])
            attach_contract_probes(view)
            await cpu_store(mm, BASE, 3)
            pte = mm.ptes[BASE].value
            assert isinstance(pte, Pte)
            await device_pte_set(dev, BASE, pte.page, True)
            assert 3 == await device_access(dev, BASE, False)
            await device_access(dev, BASE, True, 4)
            end.extend(check_end(view))

        run = run_one(body)

        assert [] == _kinds(run.result.findings)
        assert [] == end

    def test_cpu_unmap_under_a_device_mapping_breaks_the_contract(self) -> None:
        """munmap without a notifier subscriber while the device maps the page."""

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            attach_contract_probes(HmmWorldView(mm=mm, devices=[dev]))
            await cpu_store(mm, BASE, 3)
            pte = mm.ptes[BASE].value
            assert isinstance(pte, Pte)
            await device_pte_set(dev, BASE, pte.page, True)
            await vm_munmap(mm, BASE, PAGE_SIZE)
            await device_access(dev, BASE, False)

        run = run_one(body)

        assert ["notifier-contract", "device-use-after-free"] == _kinds(
            run.result.findings
        )

    def test_access_to_a_page_the_cpu_no_longer_maps_is_stale(self) -> None:
        """The CPU maps a different page at the address: device-stale-mapping."""

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            attach_contract_probes(HmmWorldView(mm=mm, devices=[dev]))
            other = await alloc_page()
            assert other is not None
            await device_pte_set(dev, BASE, other, False)
            await device_access(dev, BASE, False)

        run = run_one(body)

        assert ["device-stale-mapping"] == _kinds(run.result.findings)

    def test_access_to_a_reallocated_frame_is_use_after_free(self) -> None:
        """The frame was freed and handed out again: the generation differs."""

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            attach_contract_probes(HmmWorldView(mm=mm, devices=[dev]))
            page = await alloc_page()
            assert page is not None
            await device_pte_set(dev, BASE, page, False)
            await put_page(page)
            again = await alloc_page()
            assert again is page
            await device_access(dev, BASE, False)

        run = run_one(body)

        assert ["device-use-after-free"] == _kinds(run.result.findings)

    def test_timed_out_wait_with_nothing_open_is_stuck(self) -> None:
        """A range invalid with no invalidation open: the timeout reports it."""

        async def body() -> None:
            mm = await make_mm()
            attach_contract_probes(HmmWorldView(mm=mm, hmm_of=lambda: mm.hmm))
            mirror = await register_mirror(hmm, mm, StubMirrorOps())
            rng = hmm.HmmRange(name="r", pfns=[0])
            assert 0 == await hmm.hmm_range_register(
                rng, mirror, BASE, BASE + PAGE_SIZE, 12
            )
            rng.valid.value = False  # a leaked invalidation, as before the patch
            await hmm.hmm_range_wait_until_valid(rng, 1000)

        run = run_one(body, data=[1])

        assert ["range-stuck-invalid"] == _kinds(run.result.findings)


class TestEnd:
    """End-of-execution properties and the state excerpt."""

    def test_leaked_counter_and_stale_device_entry_are_reported(self) -> None:
        """A counter left raised and a device entry for a freed page."""
        end: list[Finding] = []
        state: list[dict[str, object]] = []

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            leak = [1]
            view = HmmWorldView(
                mm=mm, devices=[dev], counters={"x->count": lambda: leak[0]}
            )
            page = await alloc_page()
            assert page is not None
            await device_pte_set(dev, BASE, page, False)
            other = await alloc_page()
            assert other is not None
            await device_pte_set(dev, BASE + PAGE_SIZE, other, False)
            await put_page(page)
            end.extend(check_end(view))
            state.append(snapshot(view))
            await device_pte_clear(dev, BASE)

        run_one(body)

        assert ["notifier-leak", "device-stale-mapping", "device-stale-mapping"] == [
            f.kind for f in end
        ]
        assert 1 == state[0]["x->count"]
        assert "page#0(FREE,ro)" == state[0][f"gpu0 pte {BASE:#x}"]

    def test_registered_invalid_range_with_nothing_open_is_stuck(self) -> None:
        """At the end a registered range must be valid when nothing is open."""
        end: list[Finding] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(hmm, mm, StubMirrorOps())
            rng = hmm.HmmRange(name="r", pfns=[0])
            await hmm.hmm_range_register(rng, mirror, BASE, BASE + PAGE_SIZE, 12)
            rng.valid.value = False
            view = HmmWorldView(mm=mm, hmm_of=lambda: mm.hmm)
            end.extend(check_end(view))
            assert "hmm->notifiers" in snapshot(view)
            assert ["r"] == snapshot(view)["hmm->ranges"]

        run_one(body)

        assert ["range-stuck-invalid"] == [f.kind for f in end]


class TestSwapEntries:
    """What a CPU swap entry lets a device mirror."""

    def test_cpu_mapping_of_each_entry_kind(self) -> None:
        """Present and device-private entries map their page; none and migration map nothing."""
        page = Page(pfn=5)

        assert (page, True) == cpu_mapping(mk_pte(page, True))
        assert (page, True) == cpu_mapping(
            swp_entry_to_pte(make_writable_device_private_entry(page))
        )
        assert (page, False) == cpu_mapping(
            swp_entry_to_pte(make_readable_device_private_entry(page))
        )
        assert (
            cpu_mapping(swp_entry_to_pte(make_writable_migration_entry(page))) is None
        )
        assert cpu_mapping(None) is None

    def test_a_device_may_map_the_backing_page_of_a_device_private_page(self) -> None:
        """cpu_maps covers the device page and the page its zone_device_data names, nothing else."""
        backing, other = Page(pfn=1), Page(pfn=2)
        dpage = Page(pfn=5, pgmap=DevPagemap(), zone_device_data=backing)
        cpu = cpu_mapping(swp_entry_to_pte(make_writable_device_private_entry(dpage)))

        assert [True, True, False] == [
            cpu_maps(cpu, dpage),
            cpu_maps(cpu, backing),
            cpu_maps(cpu, other),
        ]
        assert not cpu_maps(None, dpage)
        # A RAM page's zone_device_data means nothing.
        ram = Page(pfn=6, zone_device_data=backing)
        assert not cpu_maps(cpu_mapping(mk_pte(ram, True)), backing)

    def test_a_migration_entry_under_a_device_mapping_breaks_the_contract(self) -> None:
        """Installing a migration entry while the device maps the page is notifier-contract."""

        async def body() -> None:
            mm = await make_mm()
            dev = Device(name="gpu0", mm=mm)
            attach_contract_probes(HmmWorldView(mm=mm, devices=[dev]))
            await cpu_store(mm, BASE, 3)
            pte = mm.ptes[BASE].value
            assert isinstance(pte, Pte)
            await device_pte_set(dev, BASE, pte.page, True)
            await spin_lock(mm.page_table_lock)
            await set_pte_at(
                mm,
                BASE,
                mm.ptes[BASE],
                swp_entry_to_pte(make_writable_migration_entry(pte.page)),
            )
            await spin_unlock(mm.page_table_lock)
            await device_pte_clear(dev, BASE)

        run = run_one(body)

        assert ["notifier-contract"] == _kinds(run.result.findings)

    def test_snapshot_names_the_swap_entry(self) -> None:
        """The timeline's state excerpt shows a swap entry's kind and page."""
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = Page(pfn=5)
            cell = mm.ptes.setdefault(BASE, Cell("pte", None))
            await WRITE_ONCE(
                cell, swp_entry_to_pte(make_writable_device_private_entry(page))
            )
            got.append(snapshot(HmmWorldView(mm=mm, devices=[]))[f"cpu pte {BASE:#x}"])

        run_one(body)

        assert ["device-private-write entry of page#5"] == got

    @pytest.mark.parametrize(
        ("locked", "kinds"), [(True, []), (False, ["notifier-contract"])]
    )
    def test_a_locked_page_under_a_migrate_bracket_may_change_under_the_device(
        self, locked: bool, kinds: list[str]
    ) -> None:
        """Inside an MMU_NOTIFY_MIGRATE bracket a locked page's PTE may change while a device maps it."""

        async def invalidate(
            sub: MmuIntervalNotifier, r: MmuNotifierRange, seq: int
        ) -> bool:
            await mmu_interval_set_seq(sub, seq)
            return True

        async def body() -> None:
            mm = await make_mm()
            mm.notifier_core = cur
            sub = MmuIntervalNotifier(name="sub")
            ops = StaticMmuIntervalNotifierOps(invalidate=invalidate)
            assert 0 == await mmu_interval_notifier_insert(sub, mm, 0, 1 << 40, ops)
            dev = Device(name="gpu0", mm=mm)
            attach_contract_probes(HmmWorldView(mm=mm, devices=[dev]))
            await cpu_store(mm, BASE, 3)
            pte = mm.ptes[BASE].value
            assert isinstance(pte, Pte)
            await device_pte_set(dev, BASE, pte.page, True)
            if locked:
                await lock_page(pte.page)
            rng = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init_owner(
                rng, MMU_NOTIFY_MIGRATE, 0, mm, BASE, BASE + PAGE_SIZE, dev
            )
            await mmu_notifier_invalidate_range_start(rng)
            await spin_lock(mm.page_table_lock)
            await set_pte_at(
                mm,
                BASE,
                mm.ptes[BASE],
                swp_entry_to_pte(make_writable_migration_entry(pte.page)),
            )
            await spin_unlock(mm.page_table_lock)
            await mmu_notifier_invalidate_range_end(rng)
            await device_pte_clear(dev, BASE)
            await spin_lock(mm.page_table_lock)
            await set_pte_at(mm, BASE, mm.ptes[BASE], pte)
            await spin_unlock(mm.page_table_lock)
            if locked:
                await unlock_page(pte.page)

        run = run_one(body)

        assert kinds == _kinds(run.result.findings)
