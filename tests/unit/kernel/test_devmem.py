"""Tests for device-private memory: swapops, memremap, the page lock, faults and zaps on swap entries."""

from __future__ import annotations

import errno

import pytest
from tests.support.kernel_harness import BASE, make_mm, run_one, run_tasks

from hmmsim.errors import ModelError
from hmmsim.kernel import fixes
from hmmsim.kernel import mmu_notifier_current as cur
from hmmsim.kernel.fork import dup_mm, mmput
from hmmsim.kernel.hmm_current import HmmRange, hmm_range_fault
from hmmsim.kernel.hmm_flags import HMM_PFN_REQ_FAULT, HMM_PFN_VALID, HMM_PFN_WRITE
from hmmsim.kernel.memory import handle_mm_fault, set_pte_at
from hmmsim.kernel.memremap import (
    DEVICE_PFN_BASE,
    MEMORY_DEVICE_PRIVATE,
    DevPagemap,
    Range,
    is_device_private_page,
    is_zone_device_page,
    memremap_pages,
    memunmap_pages,
    page_pgmap_checked,
    zone_device_page_init,
)
from hmmsim.kernel.mm_types import (
    MmStruct,
    Page,
    PageState,
    PteVal,
    SwapPte,
    TaskStruct,
    VmFaultStruct,
    mk_pte,
    pte_none,
    pte_offset_map,
    pte_present,
    pte_present_or_none,
)
from hmmsim.kernel.mmap import do_munmap, find_vma
from hmmsim.kernel.mmu_notifier import MmuNotifierRange
from hmmsim.kernel.mmu_notifier_current import (
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    mmu_interval_notifier_insert,
    mmu_interval_read_begin,
    mmu_interval_set_seq,
)
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.page_alloc import alloc_page, get_page, pfn_to_page, put_page
from hmmsim.kernel.pagemap import (
    PageLocked,
    lock_page,
    trylock_page,
    unlock_page,
    wait_on_page_locked,
)
from hmmsim.kernel.rmap import page_add_new_anon_rmap, page_remove_rmap
from hmmsim.kernel.swapops import (
    SWP_DEVICE_READ,
    SWP_DEVICE_WRITE,
    SWP_MIGRATION_READ,
    is_device_private_entry,
    is_migration_entry,
    is_pfn_swap_entry,
    is_readable_migration_entry,
    is_swap_pte,
    is_writable_device_private_entry,
    is_writable_migration_entry,
    make_readable_device_private_entry,
    make_readable_migration_entry,
    make_writable_device_private_entry,
    make_writable_migration_entry,
    non_swap_entry,
    pfn_swap_entry_to_page,
    pte_to_swp_entry,
    swp_entry_to_pte,
    swp_offset,
    swp_type,
)
from hmmsim.kernel.types import FAULT_FLAG_WRITE, VM_READ, VmFault
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    WaitQueueHead,
    down_read,
    down_write,
    schedule,
    spin_lock,
    spin_unlock,
    up_read,
    up_write,
    wait_event,
    wake_up_all,
)


class FakeDevmem:
    """A device driver's page-map callbacks that record what they saw."""

    def __init__(self) -> None:
        self.freed: list[int] = []
        self.faults: list[tuple[int, bool]] = []

    async def page_free(self, page: Page) -> None:
        self.freed.append(page.pfn)

    async def migrate_to_ram(self, vmf: VmFaultStruct) -> VmFault:
        assert vmf.page is not None
        self.faults.append((vmf.page.refcount, vmf.page.pg_locked.is_locked()))
        return VmFault(0)


def make_pgmap(ops: FakeDevmem, nr_pages: int = 2) -> DevPagemap:
    """Return a device-private map of ``nr_pages`` (memremap_pages done)."""
    pgmap = DevPagemap(name="devmem", ops=ops, owner=ops, nr_pages=nr_pages)
    assert memremap_pages(pgmap, 0) == 0
    return pgmap


async def map_device_page(
    mm: MmStruct, pgmap: DevPagemap, *, write: bool = True
) -> Page:
    """Hand out a device page and map it at BASE with a device-private entry."""
    page = pgmap.pages[0]
    await zone_device_page_init(page)
    await unlock_page(page)
    page.mapcount = 1
    make = (
        make_writable_device_private_entry
        if write
        else make_readable_device_private_entry
    )
    await spin_lock(mm.page_table_lock)
    await set_pte_at(mm, BASE, pte_offset_map(mm, BASE), swp_entry_to_pte(make(page)))
    await spin_unlock(mm.page_table_lock)
    return page


def published_cell() -> tuple[Cell[tuple[MmStruct, Page] | None], WaitQueueHead]:
    """A cell one task publishes (mm, page) in, and the queue the other waits on."""
    return Cell("published", None), WaitQueueHead("published")


async def wait_published(
    cell: Cell[tuple[MmStruct, Page] | None], wq: WaitQueueHead
) -> tuple[MmStruct, Page]:
    """Sleep until the other task published its (mm, page)."""

    async def ready() -> bool:
        return await READ_ONCE(cell) is not None

    await wait_event(wq, ready)
    value = cell.value
    assert value is not None
    return value


async def publish_migration_entry(
    cell: Cell[tuple[MmStruct, Page] | None], wq: WaitQueueHead
) -> tuple[MmStruct, Page, Cell[PteVal]]:
    """Lock a new page, put a migration entry for it at BASE, publish, wake."""
    mm = await make_mm()
    page = await alloc_page()
    assert page is not None
    await lock_page(page)
    ptep = pte_offset_map(mm, BASE)
    await spin_lock(mm.page_table_lock)
    await set_pte_at(
        mm, BASE, ptep, swp_entry_to_pte(make_writable_migration_entry(page))
    )
    await spin_unlock(mm.page_table_lock)
    await WRITE_ONCE(cell, (mm, page))
    await wake_up_all(wq)
    return mm, page, ptep


class TestSwapops:
    """Encoding and decoding swap entries."""

    def test_device_private_entries_round_trip(self) -> None:
        """A writable device-private entry survives the PTE encoding and names its page."""
        page = Page(pfn=7)
        pte = swp_entry_to_pte(make_writable_device_private_entry(page))

        entry = pte_to_swp_entry(pte)

        assert (swp_type(entry), swp_offset(entry)) == (SWP_DEVICE_WRITE, 7)
        assert pfn_swap_entry_to_page(entry) is page
        assert (
            is_device_private_entry(entry),
            is_writable_device_private_entry(entry),
        ) == (True, True)
        assert (
            is_migration_entry(entry),
            is_pfn_swap_entry(entry),
            non_swap_entry(entry),
        ) == (False, True, True)
        assert swp_type(make_readable_device_private_entry(page)) is SWP_DEVICE_READ

    def test_migration_entries_are_read_or_write(self) -> None:
        """Read and write migration entries answer their own predicates only."""
        page = Page(pfn=3)
        read, write = (
            make_readable_migration_entry(page),
            make_writable_migration_entry(page),
        )

        assert [
            is_migration_entry(read),
            is_readable_migration_entry(read),
            is_writable_migration_entry(read),
        ] == [True, True, False]
        assert [
            is_readable_migration_entry(write),
            is_writable_migration_entry(write),
        ] == [False, True]
        assert (swp_type(read), is_device_private_entry(read)) == (
            SWP_MIGRATION_READ,
            False,
        )

    def test_pte_kinds(self) -> None:
        """A swap PTE is neither none nor present; decoding another PTE is a model bug."""
        swap = swp_entry_to_pte(make_readable_migration_entry(Page(pfn=1)))

        assert (
            pte_none(swap),
            pte_present(swap),
            is_swap_pte(swap),
            is_swap_pte(None),
        ) == (False, False, True, False)
        with pytest.raises(AssertionError, match="non-swap PTE"):
            pte_to_swp_entry(None)

    def test_old_variants_refuse_swap_entries(self) -> None:
        """The v5.3/v5.5 walks' helper raises a ModelError naming the caller."""
        swap = swp_entry_to_pte(make_readable_migration_entry(Page(pfn=1)))

        assert pte_present_or_none(None, "walk") is None
        with pytest.raises(ModelError, match=r"^walk: SwapPte"):
            pte_present_or_none(swap, "walk")


class TestPageLock:
    """lock_page, trylock_page, unlock_page and the waits."""

    def test_trylock_then_unlock(self) -> None:
        """trylock succeeds once, fails while held, and PageLocked follows."""
        got: list[bool] = []

        async def body() -> None:
            page = Page(pfn=1)
            got.append(await trylock_page(page))
            got.append(await trylock_page(page))
            got.append(await PageLocked(page))
            await unlock_page(page)
            got.append(await PageLocked(page))

        run = run_one(body)

        assert [True, False, True, False] == got
        assert [] == run.kinds

    def test_lock_page_sleeps_until_the_holder_unlocks(self) -> None:
        """A second locker runs only after the first unlocks; a waiter does not take the lock."""
        order: list[str] = []
        page = Page(pfn=1)

        async def holder() -> None:
            await lock_page(page)
            order.append("a locked")
            await unlock_page(page)
            order.append("a unlocked")

        async def locker() -> None:
            await lock_page(page)
            order.append("b locked")
            await unlock_page(page)

        async def waiter() -> None:
            await wait_on_page_locked(page)
            order.append(f"c saw {page.pg_locked.owner}")

        def setup() -> list[tuple[str, object]]:
            return [("a", holder()), ("b", locker()), ("c", waiter())]

        # Sequential: a runs first and to completion, so b and c find it unlocked.
        run = run_tasks(setup)  # type: ignore[arg-type]

        assert ["a locked", "a unlocked", "b locked", "c saw None"] == order
        assert [] == run.kinds

    def test_unlocking_an_unlocked_page_is_a_finding(self) -> None:
        """unlock_page of an unlocked page is bad-unlock (the C's VM_BUG_ON)."""

        async def body() -> None:
            await unlock_page(Page(pfn=1))

        assert ["bad-unlock"] == run_one(body).kinds

    def test_a_task_ending_with_a_locked_page_leaks_it(self) -> None:
        """The page lock counts as held: ending with it is a lock-leak."""

        async def body() -> None:
            await lock_page(Page(pfn=1))

        assert ["lock-leak"] == run_one(body).kinds


class TestMemremap:
    """Device-private page maps and the refcount convention."""

    def test_memremap_pages_creates_free_device_pages(self) -> None:
        """Pages start free with refcount 0, point at the map, and pfn_to_page finds them."""
        got: list[object] = []

        async def body() -> None:
            pgmap = make_pgmap(FakeDevmem(), nr_pages=3)
            first = pgmap.pages[0]
            got.append([p.pfn - DEVICE_PFN_BASE for p in pgmap.pages])
            got.append((first.refcount, first.state, first.pgmap is pgmap, pgmap.ref))
            got.append((is_device_private_page(first), is_zone_device_page(first)))
            got.append(pfn_to_page(first.pfn) is first)
            ram = await alloc_page()
            assert ram is not None
            got.append((is_device_private_page(ram), is_zone_device_page(ram)))
            got.append(pgmap.range)

        run_one(body)

        assert got[0] == [0, 1, 2]
        assert got[1] == (0, PageState.FREE, True, 1)
        assert got[2:5] == [(True, True), True, (False, False)]
        start = DEVICE_PFN_BASE << 12
        assert got[5] == Range(start, start + 3 * 4096 - 1)

    def test_device_private_map_needs_owner(self) -> None:
        """A device-private map without an owner is refused with a WARN."""
        got: list[int] = []

        async def body() -> None:
            got.append(
                memremap_pages(
                    DevPagemap(ops=FakeDevmem(), type=MEMORY_DEVICE_PRIVATE), 0
                )
            )

        run = run_one(body)

        assert [-errno.EINVAL] == got
        assert ["warn"] == run.kinds

    def test_last_put_gives_the_page_back_through_page_free(self) -> None:
        """zone_device_page_init: count 1, locked, map ref; the last put calls page_free."""
        ops = FakeDevmem()
        got: list[object] = []

        async def body() -> None:
            pgmap = make_pgmap(ops)
            page = pgmap.pages[1]
            await zone_device_page_init(page)
            got.append(
                (page.refcount, page.pg_locked.is_locked(), pgmap.ref, page.state)
            )
            await unlock_page(page)
            page.mapping = object()
            await get_page(page)
            await put_page(page)
            got.append(list(ops.freed))
            await put_page(page)
            got.append(
                (list(ops.freed), page.refcount, pgmap.ref, page.state, page.mapping)
            )

        run = run_one(body)

        assert got == [
            (1, True, 2, PageState.IN_USE),
            [],
            ([DEVICE_PFN_BASE + 1], 0, 1, PageState.FREE, None),
        ]
        assert [] == run.kinds

    def test_memunmap_waits_for_the_pages_and_then_checks_find_the_map_gone(
        self,
    ) -> None:
        """memunmap_pages returns after the last page came back; a later dereference is a use-after-free."""
        ops = FakeDevmem()
        order: list[str] = []
        holder: list[Page] = []

        async def user() -> None:
            pgmap = make_pgmap(ops)
            page = pgmap.pages[0]
            await zone_device_page_init(page)
            await unlock_page(page)
            holder.append(page)
            order.append("handed out")

        async def teardown() -> None:
            await schedule()  # every task runs to its first Op at start
            page = holder[0]
            pgmap = page.pgmap
            assert pgmap is not None
            await memunmap_pages(pgmap)
            order.append(f"unmapped {pgmap.freed}")
            await page_pgmap_checked(page, "late_reader")

        async def dropper() -> None:
            await schedule()
            await put_page(holder[0])
            order.append("dropped")

        def setup() -> list[tuple[str, object]]:
            return [("user", user()), ("teardown", teardown()), ("dropper", dropper())]

        run = run_tasks(setup)  # type: ignore[arg-type]

        assert ["handed out", "dropped", "unmapped True"] == order
        assert ["use-after-free"] == run.kinds


class TestMemremapWarnings:
    """The WARNs of a driver that misuses its page map."""

    def test_handing_out_after_memunmap_warns(self) -> None:
        """zone_device_page_init on a map being torn down takes no live reference: WARN_ON_ONCE."""
        got: list[object] = []

        async def body() -> None:
            pgmap = make_pgmap(FakeDevmem())
            await memunmap_pages(pgmap)
            await zone_device_page_init(pgmap.pages[0])
            got.append((pgmap.ref, pgmap.dying, pgmap.pages[0].refcount))
            await unlock_page(pgmap.pages[0])

        run = run_one(body)

        assert got == [(0, True, 1)]
        assert ["warn"] == run.kinds

    def test_missing_callbacks_are_refused(self) -> None:
        """A device-private map needs migrate_to_ram and page_free: -EINVAL with a WARN each."""

        class NoFree:
            async def migrate_to_ram(self, vmf: VmFaultStruct) -> VmFault:
                return VmFault(0)

        got: list[int] = []

        async def body() -> None:
            got.append(memremap_pages(DevPagemap(owner=1), 0))
            got.append(memremap_pages(DevPagemap(ops=NoFree(), owner=1), 0))  # type: ignore[arg-type]
            got.append(
                memremap_pages(DevPagemap(ops=FakeDevmem(), owner=1, nr_pages=0), 0)
            )

        run = run_one(body)

        assert [-errno.EINVAL] * 3 == got
        assert ["warn", "warn"] == run.kinds


class TestDoSwapPage:
    """CPU faults on swap entries (current variant)."""

    def test_device_private_fault_calls_migrate_to_ram_with_a_locked_referenced_page(
        self,
    ) -> None:
        """With 16ce101db85d the callback sees the fault's reference and page lock; both are dropped after."""
        ops = FakeDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(ops))
            vma = find_vma(mm, BASE)
            assert vma is not None
            got.append(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))
            got.append((page.refcount, page.pg_locked.is_locked()))

        run = run_one(body)

        assert got == [VmFault(0), (1, False)]
        assert [(2, True)] == ops.faults
        assert [] == run.kinds

    def test_reverted_fix_calls_migrate_to_ram_without_reference_or_lock(self) -> None:
        """Without 16ce101db85d (v6.0) the callback runs on the bare entry's page."""
        ops = FakeDevmem()

        async def body() -> None:
            mm = await make_mm()
            mm.reverted_fixes = fixes.check_fixes(["16ce101db85d"])
            await map_device_page(mm, make_pgmap(ops))
            vma = find_vma(mm, BASE)
            assert vma is not None
            await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE)

        run_one(body)

        assert [(1, False)] == ops.faults

    def test_without_1afaeb8293c9_the_callback_has_a_reference_but_no_lock(
        self,
    ) -> None:
        """v6.1 to v6.14: the fault takes a reference under the PTE lock, not the page lock."""
        ops = FakeDevmem()

        async def body() -> None:
            mm = await make_mm()
            mm.reverted_fixes = fixes.check_fixes(["1afaeb8293c9"])
            page = await map_device_page(mm, make_pgmap(ops))
            vma = find_vma(mm, BASE)
            assert vma is not None
            await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE)
            assert page.refcount == 1

        run_one(body)

        assert [(2, False)] == ops.faults

    def test_busy_device_page_makes_the_fault_retry(self) -> None:
        """A device page locked by someone else is not migrated: the fault returns 0."""
        ops = FakeDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(ops))
            await lock_page(page)
            vma = find_vma(mm, BASE)
            assert vma is not None
            got.append(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))
            got.append(page.refcount)
            await unlock_page(page)

        run_one(body)

        assert got == [VmFault(0), 1]
        assert [] == ops.faults

    def test_migration_entry_fault_waits_for_the_page_lock(self) -> None:
        """A fault on a migration entry returns only after the migration unlocks the page."""
        order: list[str] = []
        published, wq = published_cell()

        async def faulter() -> None:
            mm, _page = await wait_published(published, wq)
            vma = find_vma(mm, BASE)
            assert vma is not None
            order.append(
                f"fault {int(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))}"
            )

        async def migrator() -> None:
            _mm, page, _ptep = await publish_migration_entry(published, wq)
            order.append("migration done")
            await unlock_page(page)

        def setup() -> list[tuple[str, object]]:
            return [("faulter", faulter()), ("migrator", migrator())]

        run = run_tasks(setup)  # type: ignore[arg-type]

        assert ["migration done", "fault 0"] == order
        assert [BASE] == [e["addr"] for e in run.named("migration_entry_wait")]


class TestZapAndCopy:
    """munmap, fork and mprotect on device-private entries."""

    def test_munmap_frees_the_device_page_through_page_free(self) -> None:
        """Zapping a device-private entry drops its map count and reference: page_free runs."""
        ops = FakeDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(ops))

            await down_write(mm.mmap_sem)
            got.append(await do_munmap(mm, BASE, 4096))
            await up_write(mm.mmap_sem)
            got.append((page.refcount, page.mapcount, page.state, mm.ptes[BASE].value))

        run = run_one(body)

        assert got == [0, (0, 0, PageState.FREE, None)]
        assert [DEVICE_PFN_BASE] == ops.freed
        assert [] == run.kinds

    def test_exit_frees_the_device_page_through_page_free(self) -> None:
        """The last mmput's exit_mmap zaps the device-private entry: page_free runs."""
        ops = FakeDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(ops))
            await mmput(mm)
            got.append((page.refcount, page.state, mm.ptes[BASE].value))

        run = run_one(body)

        assert got == [(0, PageState.FREE, None)]
        assert [DEVICE_PFN_BASE] == ops.freed
        assert [] == run.kinds

    def test_fork_shares_the_device_page_read_only(self) -> None:
        """A COW copy takes a reference and a map count; both mms get a read entry."""
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(FakeDevmem()))
            child = await dup_mm(TaskStruct(pid=2, comm="child"), mm)
            assert child is not None
            parent_pte, child_pte = mm.ptes[BASE].value, child.ptes[BASE].value
            assert isinstance(parent_pte, SwapPte)
            assert isinstance(child_pte, SwapPte)
            got.append((page.refcount, page.mapcount))
            got.append((parent_pte.entry.type, child_pte.entry.type))

        run_one(body)

        assert got == [(2, 2), (SWP_DEVICE_READ, SWP_DEVICE_READ)]

    def test_mprotect_makes_a_writable_device_private_entry_readable(self) -> None:
        """Removing write permission turns the write entry into a read entry of the same page."""
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(FakeDevmem()))
            got.append(await do_mprotect_pkey(mm, BASE, 4096, VM_READ))
            pte = mm.ptes[BASE].value
            assert isinstance(pte, SwapPte)
            got.append((pte.entry.type, pte.entry.page is page))

        run_one(body)

        assert got == [0, (SWP_DEVICE_READ, True)]


class MigratingDevmem(FakeDevmem):
    """Callbacks whose migrate_to_ram moves the device page to a new RAM page."""

    async def migrate_to_ram(self, vmf: VmFaultStruct) -> VmFault:
        await super().migrate_to_ram(vmf)

        dpage, ptep, mm = vmf.page, vmf.pte, vmf.vma.vm_mm
        assert dpage is not None
        assert ptep is not None
        new = await alloc_page()
        assert new is not None
        await spin_lock(mm.page_table_lock)
        page_add_new_anon_rmap(new, vmf.vma, vmf.address)
        await set_pte_at(mm, vmf.address, ptep, mk_pte(new, True))
        await spin_unlock(mm.page_table_lock)
        await page_remove_rmap(dpage)
        await put_page(dpage)
        return VmFault(0)


class TestHmmRangeFaultDevicePrivate:
    """hmm_range_fault (current) on device-private and migration entries."""

    @staticmethod
    async def _range(mm: MmStruct, owner: object, flags: int) -> HmmRange:

        async def invalidate(
            sub: MmuIntervalNotifier, r: MmuNotifierRange, seq: int
        ) -> bool:
            await mmu_interval_set_seq(sub, seq)
            return True

        assert isinstance(mm, MmStruct)
        mm.notifier_core = cur
        sub = MmuIntervalNotifier(name="sub")
        ops = StaticMmuIntervalNotifierOps(invalidate=invalidate)
        assert 0 == await mmu_interval_notifier_insert(sub, mm, 0, 1 << 40, ops)
        rng = HmmRange(
            notifier=sub,
            start=BASE,
            end=BASE + 4096,
            hmm_pfns=[0],
            default_flags=flags,
            dev_private_owner=owner,
        )
        rng.notifier_seq = await mmu_interval_read_begin(sub)
        return rng

    @staticmethod
    async def _fault(mm: MmStruct, rng: HmmRange) -> int:

        assert isinstance(mm, MmStruct)
        assert isinstance(rng, HmmRange)
        await down_read(mm.mmap_sem)
        ret = await hmm_range_fault(rng)
        await up_read(mm.mmap_sem)
        return ret

    def test_owner_gets_the_device_pfn_without_a_fault(self) -> None:
        """The page map's owner sees its own page: device pfn, VALID and WRITE, no migration."""

        ops = MigratingDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(ops))
            rng = await self._range(mm, ops, HMM_PFN_REQ_FAULT)
            got.append(await self._fault(mm, rng))
            got.append(rng.hmm_pfns == [page.pfn | HMM_PFN_VALID | HMM_PFN_WRITE])

        run_one(body)

        assert got == [0, True]
        assert [] == ops.faults

    def test_read_only_device_entry_reports_no_write(self) -> None:
        """A read device-private entry is reported VALID without WRITE."""

        ops = MigratingDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(ops), write=False)
            rng = await self._range(mm, ops, 0)
            got.append(await self._fault(mm, rng))
            got.append(rng.hmm_pfns == [page.pfn | HMM_PFN_VALID])

        run_one(body)

        assert got == [0, True]

    def test_other_owner_faults_the_page_back_to_ram(self) -> None:
        """Another driver's device page is migrated by the fault; the RAM page is reported."""

        ops = MigratingDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            page = await map_device_page(mm, make_pgmap(ops))
            rng = await self._range(mm, object(), HMM_PFN_REQ_FAULT)
            got.append(await self._fault(mm, rng))
            pte = mm.ptes[BASE].value
            assert pte_present(pte)
            got.append(rng.hmm_pfns == [pte.page.pfn | HMM_PFN_VALID | HMM_PFN_WRITE])
            got.append(page.state)

        run_one(body)

        assert got == [0, True, PageState.FREE]
        assert [(2, True)] == ops.faults
        assert [DEVICE_PFN_BASE] == ops.freed

    def test_other_owner_without_a_fault_request_reports_nothing(self) -> None:
        """Not asked to fault, another owner's page is reported as 0 and stays on the device."""
        ops = MigratingDevmem()
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            await map_device_page(mm, make_pgmap(ops))
            rng = await self._range(mm, object(), 0)
            got.append(await self._fault(mm, rng))
            got.append(rng.hmm_pfns)

        run_one(body)

        assert got == [0, [0]]
        assert [] == ops.faults

    def test_migration_entry_waits_and_rewalks(self) -> None:
        """A migration entry makes the walk wait for the page lock and walk again (-EBUSY inside)."""

        order: list[str] = []
        got: list[object] = []
        published, wq = published_cell()

        async def walker() -> None:
            mm, page = await wait_published(published, wq)
            rng = await self._range(mm, None, HMM_PFN_REQ_FAULT)
            got.append(await self._fault(mm, rng))
            order.append("walk done")
            got.append(rng.hmm_pfns == [page.pfn | HMM_PFN_VALID | HMM_PFN_WRITE])

        async def migrator() -> None:
            mm, page, ptep = await publish_migration_entry(published, wq)
            assert isinstance(mm, MmStruct)
            order.append("walker blocked")
            await spin_lock(mm.page_table_lock)
            await set_pte_at(mm, BASE, ptep, mk_pte(page, True))
            await spin_unlock(mm.page_table_lock)
            await unlock_page(page)

        def setup() -> list[tuple[str, object]]:
            return [("walker", walker()), ("migrator", migrator())]

        run = run_tasks(setup)  # type: ignore[arg-type]

        assert got == [0, True]
        assert ["walker blocked", "walk done"] == order
        assert [BASE] == [e["addr"] for e in run.named("migration_entry_wait")]
