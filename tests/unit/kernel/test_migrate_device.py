"""Sequential tests of mm/migrate_device.c and mm/migrate.c (v6.16) with lib/test_hmm.c."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.support.kernel_harness import BASE, NPAGES, run_one

from hmmsim.kernel import mmu_notifier_current
from hmmsim.kernel.drivers.device import Device, device_pte_set
from hmmsim.kernel.drivers.dmirror import Dmirror, HmmDmirrorCmd
from hmmsim.kernel.drivers.dmirror_current import (
    BACKING_PAGE,
    DEVMEM_CHUNK_PAGES,
    DmirrorDevice,
    dmirror_device_init,
    dmirror_device_remove_chunks,
    dmirror_devmem_alloc_page,
    dmirror_fops_open,
    dmirror_interval_invalidate,
    dmirror_migrate_to_device,
    dmirror_migrate_to_system,
)
from hmmsim.kernel.fork import dup_mm, mm_alloc
from hmmsim.kernel.memremap import is_device_private_page
from hmmsim.kernel.migrate import folio_migrate_mapping, migration_ptes
from hmmsim.kernel.migrate_device import (
    MIGRATE_PFN_MIGRATE,
    MIGRATE_PFN_VALID,
    MIGRATE_PFN_WRITE,
    MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    MIGRATE_VMA_SELECT_SYSTEM,
    MigrateVma,
    migrate_device_finalize,
    migrate_device_range,
    migrate_pfn,
    migrate_pfn_to_page,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
)
from hmmsim.kernel.mm_types import MmStruct, Page, TaskStruct, VmAreaStruct
from hmmsim.kernel.mmap import find_vma, sys_munmap, vm_mmap
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_range_init_owner,
)
from hmmsim.kernel.page_alloc import get_page, put_page
from hmmsim.kernel.pagemap import lock_page, unlock_page
from hmmsim.kernel.rmap import device_private_ptes
from hmmsim.kernel.swapops import (
    SWP_DEVICE_READ,
    SWP_DEVICE_WRITE,
    SWP_MIGRATION_WRITE,
)
from hmmsim.kernel.types import (
    MMU_NOTIFY_MIGRATE,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_IO,
    VM_READ,
    VM_WRITE,
    VmFlags,
)
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.sync import down_read, up_read


async def new_mm(vm_flags: VmFlags = VM_READ | VM_WRITE) -> MmStruct:
    """A process on the current notifier core with NPAGES of anonymous memory at BASE."""
    mm = mm_alloc("mm")
    mm.notifier_core = mmu_notifier_current
    assert BASE == await vm_mmap(mm, BASE, NPAGES * PAGE_SIZE, vm_flags)
    return mm


async def open_dmirror(mm: MmStruct, name: str = "dmirror0") -> Dmirror:
    """open() of a dmirror with device memory."""
    mdevice = DmirrorDevice(name=f"hmm_{name}")
    assert 0 == await dmirror_device_init(mdevice)
    dmirror = Dmirror(name=name, pt=Device(name=f"{name}.dev", mm=mm), mdevice=mdevice)
    assert 0 == await dmirror_fops_open(dmirror, mm)
    return dmirror


async def on_device(mm: MmStruct, *values: int) -> Dmirror:
    """Open a dmirror, store ``values`` in the first pages and migrate them to its memory."""
    dmirror = await open_dmirror(mm)
    for i, value in enumerate(values):
        assert 0 == await cpu_store(mm, BASE + i * PAGE_SIZE, value)
    assert 0 == await dmirror_migrate_to_device(
        dmirror, HmmDmirrorCmd(addr=BASE, npages=len(values))
    )
    return dmirror


def vma_of(mm: MmStruct) -> VmAreaStruct:
    vma = find_vma(mm, BASE)
    assert vma is not None
    return vma


def pte(mm: MmStruct, i: int) -> Any:
    cell = mm.ptes.get(BASE + i * PAGE_SIZE)
    return None if cell is None else cell.value


def run(body: Callable[[], Awaitable[None]]) -> list[str]:
    """Run ``body`` in one execution; return the finding kinds."""

    async def task() -> None:
        await body()

    return run_one(task).kinds


async def setup_locked(args: MigrateVma) -> int:
    mm = args.vma.vm_mm if args.vma is not None else None
    assert mm is not None
    await down_read(mm.mmap_sem)
    ret = await migrate_vma_setup(args)
    await up_read(mm.mmap_sem)
    return ret


def test_migrate_pfn_round_trip() -> None:
    """migrate_pfn encodes a pfn with VALID; migrate_pfn_to_page decodes it, None without VALID."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        assert 0 == await cpu_store(mm, BASE, 7)
        page = pte(mm, 0).page
        seen.append(migrate_pfn(page.pfn) == (page.pfn << 6) | MIGRATE_PFN_VALID)
        seen.append(migrate_pfn_to_page(migrate_pfn(page.pfn)) is page)
        seen.append(migrate_pfn_to_page(MIGRATE_PFN_MIGRATE))

    assert [] == run(body)
    assert [True, True, None] == seen


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-vma", -errno.EINVAL),
        ("vm-io", -errno.EINVAL),
        ("empty", -errno.EINVAL),
        ("start-outside", -errno.EINVAL),
        ("end-outside", -errno.EINVAL),
        ("short-src", -errno.EINVAL),
        ("system-fault-page", -errno.EINVAL),
        ("unlocked-fault-page", -errno.EINVAL),
        ("ok", 0),
    ],
)
def test_setup_checks_its_arguments(case: str, expected: int) -> None:
    """migrate_vma_setup refuses each bad argument with -EINVAL, as the C checks them."""
    seen: list[int] = []

    async def body() -> None:
        mm = await new_mm(VM_READ | VM_WRITE | (VM_IO if case == "vm-io" else 0))
        vma = vma_of(mm)
        args = MigrateVma(
            vma=None if case == "no-vma" else vma,
            src=[0] * NPAGES,
            dst=[0] * NPAGES,
            start=BASE,
            end=BASE + NPAGES * PAGE_SIZE,
            flags=MIGRATE_VMA_SELECT_SYSTEM,
        )
        if case == "empty":
            args.end = BASE
        elif case == "start-outside":
            args.start = BASE - PAGE_SIZE
        elif case == "end-outside":
            args.end = BASE + (NPAGES + 1) * PAGE_SIZE
            args.src = args.dst = [0] * (NPAGES + 1)
        elif case == "short-src":
            args.src = [0]
        elif case == "system-fault-page":
            assert 0 == await cpu_store(mm, BASE, 1)
            args.fault_page = pte(mm, 0).page
        elif case == "unlocked-fault-page":
            dmirror = await open_dmirror(mm)
            assert isinstance(dmirror.mdevice, DmirrorDevice)
            dpage = await dmirror_devmem_alloc_page(dmirror.mdevice)
            assert dpage is not None
            await unlock_page(dpage)
            args.fault_page = dpage
        if args.vma is None:
            seen.append(await migrate_vma_setup(args))
        else:
            seen.append(await setup_locked(args))

    assert [] == run(body)
    assert [expected] == seen


def test_collect_marks_empty_zero_and_present_pages() -> None:
    """Collection: an empty PTE and the zero page migrate without a page; a written page gets a writable migration entry, locked, unmapped."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        # page 0 untouched, page 1 the zero page, pages 2 and 3 written
        assert (0, 0) == await cpu_load(mm, BASE + PAGE_SIZE)
        assert 0 == await cpu_store(mm, BASE + 2 * PAGE_SIZE, 2)
        assert 0 == await cpu_store(mm, BASE + 3 * PAGE_SIZE, 3)
        page = pte(mm, 2).page
        args = MigrateVma(
            vma=vma_of(mm),
            src=[0] * NPAGES,
            dst=[0] * NPAGES,
            start=BASE,
            end=BASE + NPAGES * PAGE_SIZE,
            flags=MIGRATE_VMA_SELECT_SYSTEM,
        )
        assert 0 == await setup_locked(args)
        seen.append(args.src[:2])
        seen.append(
            args.src[2]
            == migrate_pfn(page.pfn) | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE
        )
        seen.append((args.npages, args.cpages))
        entry = pte(mm, 2)
        seen.append((type(entry).__name__, entry.entry.type, entry.entry.page is page))
        seen.append((page.pg_locked.is_locked(), page.mapcount, page.refcount))
        seen.append(migration_ptes(page) == [(vma_of(mm), BASE + 2 * PAGE_SIZE)])
        # No destination: finalize restores the mapping and unlocks.
        await migrate_vma_pages(args)
        await migrate_vma_finalize(args)
        seen.append((pte(mm, 2).page is page, pte(mm, 2).write))
        seen.append((page.pg_locked.is_locked(), page.mapcount, page.refcount))
        seen.append(await cpu_load(mm, BASE + 2 * PAGE_SIZE))

    assert [] == run(body)
    assert [
        [MIGRATE_PFN_MIGRATE, MIGRATE_PFN_MIGRATE],
        True,
        (NPAGES, NPAGES),
        ("SwapPte", SWP_MIGRATION_WRITE, True),
        (True, 0, 1),
        True,
        (True, True),
        (False, 1, 1),
        (0, 2),
    ] == seen


def new_args(mm: MmStruct, flags: int = MIGRATE_VMA_SELECT_SYSTEM) -> MigrateVma:
    """A migrate_vma over the whole buffer."""
    return MigrateVma(
        vma=vma_of(mm),
        src=[0] * NPAGES,
        dst=[0] * NPAGES,
        start=BASE,
        end=BASE + NPAGES * PAGE_SIZE,
        flags=flags,
    )


def test_locked_page_is_skipped() -> None:
    """A page whose lock is taken elsewhere is not collected: src 0, PTE and counts unchanged."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        assert 0 == await cpu_store(mm, BASE, 5)
        page = pte(mm, 0).page
        await lock_page(page)
        args = new_args(mm)
        assert 0 == await setup_locked(args)
        seen.append(args.src[0])
        seen.append((pte(mm, 0).page is page, page.refcount, page.mapcount))
        await migrate_vma_pages(args)
        await migrate_vma_finalize(args)
        await unlock_page(page)
        seen.append(await cpu_load(mm, BASE))

    assert [] == run(body)
    assert [0, (True, 1, 1), (0, 5)] == seen


def test_pinned_page_is_restored() -> None:
    """A page with an extra reference fails migrate_vma_check_page: its PTE is restored and it is unlocked."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        assert 0 == await cpu_store(mm, BASE, 5)
        page = pte(mm, 0).page
        await get_page(page)  # a pin (get_user_pages) the migration cannot move
        args = new_args(mm)
        assert 0 == await setup_locked(args)
        seen.append((args.src[0], args.cpages))
        seen.append((pte(mm, 0).page is page, page.pg_locked.is_locked()))
        seen.append((page.refcount, page.mapcount))
        await put_page(page)

    assert [] == run(body)
    # cpages: the three empty PTEs still migrate (populated with new pages).
    assert [(0, NPAGES - 1), (True, False), (2, 1)] == seen


def test_select_flags_choose_the_pages() -> None:
    """Without SELECT_SYSTEM a system page and the zero page stay (src 0); an empty anonymous PTE may still be populated."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        assert 0 == await cpu_store(mm, BASE, 5)
        assert (0, 0) == await cpu_load(mm, BASE + PAGE_SIZE)
        args = new_args(mm, MIGRATE_VMA_SELECT_DEVICE_PRIVATE)
        assert 0 == await setup_locked(args)
        seen.append(args.src)
        seen.append(type(pte(mm, 0)).__name__)

    assert [] == run(body)
    assert [[0, 0, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_MIGRATE], "Pte"] == seen


def test_folio_migrate_mapping_counts_references() -> None:
    """folio_migrate_mapping refuses (-EAGAIN) a page with one reference more than expected, and moves the mapping otherwise."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        assert 0 == await cpu_store(mm, BASE, 5)
        assert 0 == await cpu_store(mm, BASE + PAGE_SIZE, 6)
        page, other = pte(mm, 0).page, pte(mm, 1).page
        # Mapped once and one reference: the map count is expected, plus one.
        seen.append(await folio_migrate_mapping(None, other, page, 0))
        seen.append(await folio_migrate_mapping(None, other, page, -1))
        seen.append(other.mapping is page.mapping)

    assert [] == run(body)
    assert [-errno.EAGAIN, 0, True] == seen


def test_migrate_to_device_and_fault_back() -> None:
    """MIGRATE_TO_DEV leaves a writable device-private entry backed by the data; a CPU load migrates it back and frees the device page."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        dmirror = await open_dmirror(mm)
        mdevice = dmirror.mdevice
        assert isinstance(mdevice, DmirrorDevice)
        assert 0 == await cpu_store(mm, BASE, 7)
        old = pte(mm, 0).page
        cmd = HmmDmirrorCmd(addr=BASE, npages=1)
        seen.append(await dmirror_migrate_to_device(dmirror, cmd))
        seen.append((cmd.cpages, cmd.ptr))
        entry = pte(mm, 0)
        dpage = entry.entry.page
        seen.append((entry.entry.type, is_device_private_page(dpage)))
        seen.append((BACKING_PAGE(dpage).contents, old.state.value))
        seen.append(
            [
                (a, p.page is BACKING_PAGE(dpage), p.write)
                for a, p in dmirror.pt.mapped()
            ]
        )
        seen.append((mdevice.calloc, mdevice.cfree, dpage.refcount, dpage.mapcount))
        # The CPU touches it: do_swap_page -> dmirror_devmem_fault.
        seen.append(await cpu_load(mm, BASE))
        seen.append((type(pte(mm, 0)).__name__, pte(mm, 0).write, dmirror.pt.mapped()))
        seen.append((mdevice.cfree, dpage.state.value, dpage in mdevice.free_pages))

    assert [] == run(body)
    assert [
        0,
        (1, [7]),
        (SWP_DEVICE_WRITE, True),
        (7, "free"),
        [(BASE, True, True)],
        (1, 0, 1, 1),
        (0, 7),
        ("Pte", True, []),
        (1, "free", True),
    ] == seen


def test_migrate_populates_empty_and_zero_pages() -> None:
    """Untouched and zero-page PTEs get zeroed device pages (migrate_vma_insert_page); a read-only VMA gets read-only entries."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        dmirror = await open_dmirror(mm)
        assert (0, 0) == await cpu_load(mm, BASE + PAGE_SIZE)
        cmd = HmmDmirrorCmd(addr=BASE, npages=2)
        seen.append(await dmirror_migrate_to_device(dmirror, cmd))
        seen.append((cmd.cpages, cmd.ptr))
        seen.append([pte(mm, i).entry.type for i in range(2)])
        seen.append([pte(mm, i).entry.page.mapcount for i in range(2)])

    assert [] == run(body)
    assert [0, (2, [0, 0]), [SWP_DEVICE_WRITE] * 2, [1, 1]] == seen


def test_migrate_to_system_moves_device_pages_back() -> None:
    """MIGRATE_TO_SYS migrates every device page of the range back and counts them in cpages."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        dmirror = await open_dmirror(mm)
        for i in range(2):
            assert 0 == await cpu_store(mm, BASE + i * PAGE_SIZE, 10 + i)
        assert 0 == await dmirror_migrate_to_device(
            dmirror, HmmDmirrorCmd(addr=BASE, npages=2)
        )
        cmd = HmmDmirrorCmd(addr=BASE, npages=2)
        seen.append(await dmirror_migrate_to_system(dmirror, cmd))
        seen.append(cmd.cpages)
        seen.append([type(pte(mm, i)).__name__ for i in range(2)])
        seen.append([await cpu_load(mm, BASE + i * PAGE_SIZE) for i in range(2)])
        bad = HmmDmirrorCmd(addr=BASE + NPAGES * PAGE_SIZE, npages=1)
        seen.append(await dmirror_migrate_to_system(dmirror, bad))

    assert [] == run(body)
    assert [0, 2, ["Pte", "Pte"], [(0, 10), (0, 11)], -errno.EINVAL] == seen


def test_own_migration_invalidation_is_skipped() -> None:
    """dmirror_interval_invalidate ignores MMU_NOTIFY_MIGRATE of its own device, but not another owner's."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        dmirror = await open_dmirror(mm)
        assert 0 == await cpu_store(mm, BASE, 1)
        await device_pte_set(dmirror.pt, BASE, pte(mm, 0).page, True)
        for owner in (dmirror.mdevice, object()):
            range = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init_owner(
                range, MMU_NOTIFY_MIGRATE, 0, mm, BASE, BASE + PAGE_SIZE, owner
            )
            seen.append(await dmirror_interval_invalidate(dmirror.notifier, range, 2))
            seen.append(len(dmirror.pt.mapped()))

    assert [] == run(body)
    assert [True, 1, True, 0] == seen


def test_unlocked_fault_page_accepted_before_1afaeb() -> None:
    """With 1afaeb8293c9 reverted, migrate_vma_setup takes an unlocked fault page (the C had no such check)."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        mm.reverted_fixes = frozenset({"1afaeb8293c9"})
        dmirror = await open_dmirror(mm)
        assert isinstance(dmirror.mdevice, DmirrorDevice)
        dpage = await dmirror_devmem_alloc_page(dmirror.mdevice)
        assert dpage is not None
        await unlock_page(dpage)
        args = new_args(mm, MIGRATE_VMA_SELECT_DEVICE_PRIVATE)
        args.fault_page = dpage
        seen.append(await setup_locked(args))

    assert [] == run(body)
    assert [0] == seen


def test_devmem_allocator_adds_chunks_until_full() -> None:
    """dmirror_devmem_alloc_page hands out a chunk's pages, adds a chunk when empty, and fails when max_chunks is reached."""
    seen: list[object] = []

    async def body() -> None:
        mdevice = DmirrorDevice(name="hmm_dmirror0", max_chunks=2)
        pages: list[Page] = []
        while True:
            page = await dmirror_devmem_alloc_page(mdevice)
            if page is None:
                break
            pages.append(page)
        seen.append((len(pages), len(mdevice.devmem_chunks), mdevice.calloc))
        seen.append(all(p.pg_locked.is_locked() and p.refcount == 1 for p in pages))
        for page in pages:
            await unlock_page(page)
            await put_page(page)  # page_free: back to the device's free list
        seen.append((mdevice.cfree, len(mdevice.free_pages)))

    assert [] == run(body)
    assert [
        (2 * DEVMEM_CHUNK_PAGES, 2, 2 * DEVMEM_CHUNK_PAGES),
        True,
        (2 * DEVMEM_CHUNK_PAGES, 2 * DEVMEM_CHUNK_PAGES),
    ] == seen


def test_rmap_record_follows_device_private_entries() -> None:
    """The record try_to_migrate walks: written by migrate_vma_insert_page and fork, erased by zap."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        await on_device(mm, 7)
        dpage = pte(mm, 0).entry.page
        seen.append([(v.vm_mm.name, a) for v, a in device_private_ptes(dpage)])
        child = await dup_mm(TaskStruct(pid=2, comm="child"), mm)
        assert child is not None
        seen.append([(v.vm_mm.name, a) for v, a in device_private_ptes(dpage)])
        seen.append(vma_of(child) in [v for v, _ in device_private_ptes(dpage)])
        assert 0 == await sys_munmap(mm, BASE, PAGE_SIZE)
        seen.append([(v.vm_mm.name, a) for v, a in device_private_ptes(dpage)])
        seen.append((dpage.refcount, dpage.mapcount))

    assert [] == run(body)
    assert [
        [("mm", BASE)],
        [("mm", BASE), ("child", BASE)],
        True,
        [("child", BASE)],
        (1, 1),
    ] == seen


def test_release_evicts_the_pages_of_every_mm() -> None:
    """HMM_DMIRROR_RELEASE: migrate_device_range's try_to_migrate finds a device page in a parent and its fork child."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        dmirror = await on_device(mm, 7)
        mdevice = dmirror.mdevice
        assert isinstance(mdevice, DmirrorDevice)
        dpage = pte(mm, 0).entry.page
        pgmap = dpage.pgmap
        child = await dup_mm(TaskStruct(pid=2, comm="child"), mm)
        assert child is not None
        seen.append((pte(mm, 0).entry.type, pte(child, 0).entry.type))

        await dmirror_device_remove_chunks(mdevice)

        # Both mappings now share one system page holding the data, read-only
        # (the fork made the device-private entries read-only).
        seen.append((type(pte(mm, 0)).__name__, type(pte(child, 0)).__name__))
        seen.append(pte(mm, 0).page is pte(child, 0).page)
        seen.append((pte(mm, 0).write, pte(mm, 0).page.mapcount))
        seen.append((dpage.state.value, pgmap.freed, mdevice.devmem_chunks))
        seen.append((dmirror.pt.mapped(), device_private_ptes(dpage)))
        seen.append((await cpu_load(mm, BASE), await cpu_load(child, BASE)))

    assert [] == run(body)
    assert [
        (SWP_DEVICE_READ, SWP_DEVICE_READ),
        ("Pte", "Pte"),
        True,
        (False, 2),
        ("free", True, []),
        ([], []),
        ((0, 7), (0, 7)),
    ] == seen


def test_migrate_device_range_skips_free_and_locked_pages() -> None:
    """migrate_device_pfn_lock: a free page (count 0) and a page locked by someone else give 0."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        await on_device(mm, 7, 8)
        d0, d1 = pte(mm, 0).entry.page, pte(mm, 1).entry.page
        await lock_page(d1)
        pgmap = d0.pgmap
        assert pgmap is not None
        assert pgmap.range is not None
        start = pgmap.range.start >> PAGE_SHIFT
        src = [0] * DEVMEM_CHUNK_PAGES
        assert 0 == await migrate_device_range(src, start, DEVMEM_CHUNK_PAGES)
        # Only d0 is collected: the other pages are free, d1 is locked.
        seen.append(
            [
                (migrate_pfn_to_page(e) is d0, bool(e & MIGRATE_PFN_MIGRATE))
                for e in src
                if e
            ]
        )
        seen.append((pte(mm, 0).entry.type, pte(mm, 1).entry.type))
        # Give the page back: finalize with no destination restores it.
        await migrate_device_finalize(src, [0] * DEVMEM_CHUNK_PAGES, DEVMEM_CHUNK_PAGES)
        await unlock_page(d1)
        seen.append((pte(mm, 0).entry.type, d0.refcount, d0.mapcount))
        seen.append((await cpu_load(mm, BASE), await cpu_load(mm, BASE + PAGE_SIZE)))

    assert [] == run(body)
    assert [
        [(True, True)],
        (SWP_MIGRATION_WRITE, SWP_DEVICE_WRITE),
        (SWP_DEVICE_WRITE, 1, 1),
        ((0, 7), (0, 8)),
    ] == seen


def test_fault_migrates_a_page_shared_with_a_fork_child() -> None:
    """A CPU fault on a device page a fork child maps too: try_to_migrate unmaps the child's entry, both map the copy."""
    seen: list[object] = []

    async def body() -> None:
        mm = await new_mm()
        await on_device(mm, 7)
        dpage = pte(mm, 0).entry.page
        child = await dup_mm(TaskStruct(pid=2, comm="child"), mm)
        assert child is not None

        # The parent's CPU touches the page: migrate_to_ram collects the
        # parent's entry, migrate_device_unmap finds the page still mapped
        # (by the child) and try_to_migrate replaces the child's entry too.
        seen.append(await cpu_load(mm, BASE))
        seen.append((type(pte(mm, 0)).__name__, type(pte(child, 0)).__name__))
        seen.append((pte(mm, 0).page is pte(child, 0).page, dpage.state.value))
        seen.append(await cpu_load(child, BASE))

    assert [] == run(body)
    assert [(0, 7), ("Pte", "Pte"), (True, "free"), (0, 7)] == seen
