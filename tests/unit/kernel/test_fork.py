"""Fork, copy-on-write, the zero page and shared anonymous memory, sequentially."""

from __future__ import annotations

from typing import Any

from tests.support.kernel_harness import (
    BASE,
    NPAGES,
    StubMirrorOps,
    make_mm,
    register_mirror,
    run_one,
)

from hmmsim.kernel import hmm, memory
from hmmsim.kernel.fork import dup_mm, dup_mmap, mm_alloc, mmput
from hmmsim.kernel.memory import (
    copy_one_pte,
    copy_page_range,
    copy_pte_range,
    do_fault,
    do_read_fault,
    do_shared_fault,
    do_wp_page,
    finish_fault,
    handle_mm_fault,
    is_cow_mapping,
    mm_forbids_zeropage,
    ptep_set_wrprotect,
    vm_normal_page,
    wp_page_copy,
    wp_page_reuse,
)
from hmmsim.kernel.mm_types import (
    PAGE_MAPPING_ANON,
    MmStruct,
    Page,
    PageState,
    Pte,
    TaskStruct,
    mk_pte,
    pte_mkspecial,
    pte_offset_map,
    pte_special,
)
from hmmsim.kernel.mmap import find_vma, vm_mmap, vm_munmap
from hmmsim.kernel.page_alloc import (
    ZERO_PAGE,
    ZERO_PFN,
    alloc_page,
    is_zero_pfn,
    my_zero_pfn,
    pfn_to_page,
)
from hmmsim.kernel.rmap import (
    PageAnon,
    page_add_file_rmap,
    page_add_new_anon_rmap,
    page_dup_rmap,
    page_remove_rmap,
)
from hmmsim.kernel.shmem import (
    ShmemFile,
    linear_page_index,
    shmem_fault,
    shmem_getpage,
    shmem_vm_ops,
    shmem_zero_setup,
)
from hmmsim.kernel.types import (
    FAULT_FLAG_WRITE,
    PAGE_SIZE,
    VM_FAULT_WRITE,
    VM_LOCKED,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    FaultFlag,
)
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.sync import down_read, spin_lock, spin_unlock, up_read

RW = VM_READ | VM_WRITE


def _pte(mm: MmStruct, addr: int = BASE) -> Any:
    return pte_offset_map(mm, addr).value


async def _fork(mm: MmStruct) -> MmStruct:
    child = await dup_mm(TaskStruct(pid=2, comm="child"), mm)
    assert child is not None
    return child


class TestZeroPage:
    """ZERO_PAGE, is_zero_pfn, the read fault and its COW."""

    def test_zero_page_helpers(self) -> None:
        """One zero page per execution, at ZERO_PFN, in use, reading 0."""
        out: list[Any] = []

        async def body() -> None:
            page = ZERO_PAGE(BASE)
            out.append(page is ZERO_PAGE(0) is pfn_to_page(ZERO_PFN))
            out.append((page.state, page.contents, my_zero_pfn(BASE)))
            out.append((is_zero_pfn(ZERO_PFN), is_zero_pfn(0)))
            pte = pte_mkspecial(mk_pte(page, False))
            out.append((pte_special(pte), pte_special(mk_pte(page, False))))

        run_one(body)
        assert [
            True,
            (PageState.IN_USE, 0, ZERO_PFN),
            (True, False),
            (True, False),
        ] == out

    def test_read_maps_the_zero_page_and_munmap_never_frees_it(self) -> None:
        """A read maps the zero page in every mm; unmapping leaves it in use."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            out.append(mm_forbids_zeropage(mm))
            out.append(await cpu_load(mm, BASE))
            out.append(await cpu_load(mm, BASE + PAGE_SIZE))
            a, b = _pte(mm), _pte(mm, BASE + PAGE_SIZE)
            out.append((a.page is b.page, a.special, a.write))
            vma = find_vma(mm, BASE)
            assert vma is not None
            out.append(vm_normal_page(vma, BASE, a))
            assert 0 == await vm_munmap(mm, BASE, NPAGES * PAGE_SIZE)
            out.append((ZERO_PAGE(0).state, ZERO_PAGE(0).refcount))

        run = run_one(body)
        assert [] == run.kinds
        assert [False, (0, 0), (0, 0), (True, True, False), None] == out[:5]
        assert (PageState.IN_USE, 1) == out[5]

    def test_write_after_read_copies_the_zero_page(self) -> None:
        """do_wp_page on the zero page goes to wp_page_copy: a new zeroed page."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_load(mm, BASE)
            out.append(await cpu_store(mm, BASE, 7))
            pte = _pte(mm)
            out.append((is_zero_pfn(pte.page.pfn), pte.write, pte.page.contents))
            out.append((pte.page.mapcount, PageAnon(pte.page)))
            out.append(ZERO_PAGE(0).contents)

        run_one(body)
        assert [0, (False, True, 7), (1, True), 0] == out


class TestFork:
    """dup_mm, dup_mmap, copy_page_range, copy_pte_range, copy_one_pte."""

    def test_dup_mm_copies_vmas_and_shares_pages_copy_on_write(self) -> None:
        """Both mms map the same page read-only; counts are 2."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            mm.mmap[0].vm_flags |= VM_LOCKED
            await cpu_store(mm, BASE, 5)
            child = await _fork(mm)
            out.append([(v.vm_start, v.vm_end, v.vm_flags) for v in child.mmap])
            out.append((child.name, child.notifier_core is mm.notifier_core))
            p, c = _pte(mm), _pte(child)
            out.append((p.page is c.page, p.write, c.write))
            out.append((p.page.refcount, p.page.mapcount))
            out.append(_pte(child, BASE + PAGE_SIZE))

        run = run_one(body)
        assert [] == run.kinds
        assert [(BASE, BASE + NPAGES * PAGE_SIZE, RW)] == out[0]
        assert [("child", True), (True, False, False), (2, 2), None] == out[1:]

    def test_cow_break_in_child_then_reuse_in_parent(self) -> None:
        """The child's write copies; the parent's then reuses its page."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 5)
            page = _pte(mm).page
            child = await _fork(mm)
            await cpu_store(child, BASE, 6)
            c = _pte(child)
            out.append((c.page is page, c.write, c.page.contents))
            out.append((page.refcount, page.mapcount))
            await cpu_store(mm, BASE, 8)
            p = _pte(mm)
            out.append((p.page is page, p.write, page.contents))
            out.append(await cpu_load(child, BASE))
            await mmput(child)
            out.append((page.state, c.page.state))

        run = run_one(body)
        assert [] == run.kinds
        assert [
            (False, True, 6),
            (1, 1),
            (True, True, 8),
            (0, 6),
            (PageState.IN_USE, PageState.FREE),
        ] == out

    def test_copy_page_range_invalidates_the_parent_blockably(self) -> None:
        """A COW VMA: one blockable PROTECTION_PAGE bracket over the VMA."""
        ops = StubMirrorOps()

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            await register_mirror(hmm, mm, ops)
            await _fork(mm)

        run = run_one(body)
        starts = run.named("mmu_notifier_invalidate_range_start")
        assert [("PROTECTION_PAGE", True)] == [
            (str(f["event"]).removeprefix("MMU_NOTIFY_"), f["blockable"])
            for f in starts
        ]
        assert [(BASE, BASE + NPAGES * PAGE_SIZE, True)] == ops.updates

    def test_cow_break_invalidates_with_clear(self) -> None:
        """wp_page_copy brackets the PTE change with a blockable CLEAR."""
        ops = StubMirrorOps()

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            child = await _fork(mm)
            await register_mirror(hmm, child, ops)
            await cpu_store(child, BASE, 2)

        run = run_one(body)
        starts = run.named("mmu_notifier_invalidate_range_start")
        assert [("CLEAR", BASE, BASE + PAGE_SIZE)] == [
            (str(f["event"]).removeprefix("MMU_NOTIFY_"), f["start"], f["end"])
            for f in starts
            if f["mm"] == "child"
        ]

    def test_shared_vma_is_not_copied(self) -> None:
        """copy_page_range skips a VM_SHARED VMA: the child refaults it."""
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc("mm")
            assert BASE == await vm_mmap(mm, BASE, PAGE_SIZE, RW | VM_SHARED)
            await cpu_store(mm, BASE, 3)
            child = mm_alloc("child")
            out.append(await dup_mmap(child, mm))
            out.append(_pte(child))
            out.append(await copy_page_range(child, mm, mm.mmap[0]))
            out.append(_pte(mm).write)

        run_one(body)
        assert [0, None, 0, True] == out

    def test_copy_helpers_directly(self) -> None:
        """is_cow_mapping, copy_pte_range and copy_one_pte on one PTE."""
        out: list[Any] = []

        async def body() -> None:
            out.append((is_cow_mapping(RW), is_cow_mapping(RW | VM_SHARED)))
            mm = await make_mm()
            await cpu_store(mm, BASE, 4)
            child = mm_alloc("child")
            vma = mm.mmap[0]
            out.append(await copy_pte_range(child, mm, vma, BASE, BASE + PAGE_SIZE))
            out.append((_pte(mm).write, _pte(child).page is _pte(mm).page))
            other = mm_alloc("other")
            await spin_lock(other.page_table_lock)
            await spin_lock(mm.page_table_lock)
            src = pte_offset_map(mm, BASE)
            dst = pte_offset_map(other, BASE)
            out.append(await copy_one_pte(other, mm, dst, src, vma, BASE))
            await spin_unlock(mm.page_table_lock)
            await spin_unlock(other.page_table_lock)
            out.append(_pte(other).page.mapcount)

        run_one(body)
        assert [(True, False), 0, (False, True), 0, 3] == out


class TestWriteProtectFault:
    """do_wp_page, wp_page_reuse, wp_page_copy, ptep_set_wrprotect."""

    def test_helpers(self) -> None:
        """Write-protect, then reuse in place; copy when told to."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 9)
            vma = mm.mmap[0]
            ptep = pte_offset_map(mm, BASE)
            await spin_lock(mm.page_table_lock)
            await ptep_set_wrprotect(mm, BASE, ptep)
            orig = ptep.value
            assert isinstance(orig, Pte)
            out.append(orig.write)
            await wp_page_reuse(vma, BASE, ptep, orig)  # unlocks
            now = ptep.value
            assert isinstance(now, Pte)
            out.append((now.write, now.page is orig.page))
            await spin_lock(mm.page_table_lock)
            await ptep_set_wrprotect(mm, BASE, ptep)
            orig = ptep.value
            assert isinstance(orig, Pte)
            # Mapped once: do_wp_page reuses.
            out.append(await do_wp_page(vma, BASE, ptep, orig))
            orig = ptep.value
            assert isinstance(orig, Pte)
            old = orig.page
            old.refcount += 1  # the reference do_wp_page would have taken
            out.append(await wp_page_copy(vma, BASE, ptep, orig, old))
            new = ptep.value
            assert isinstance(new, Pte)
            out.append((new.page is old, new.page.contents, old.state))

        run = run_one(body)
        assert [] == run.kinds
        assert [
            False,
            (True, True),
            VM_FAULT_WRITE,
            VM_FAULT_WRITE,
            (False, 9, PageState.FREE),
        ] == out


class TestRmap:
    """page_add_new_anon_rmap, page_add_file_rmap, page_dup_rmap, page_remove_rmap."""

    def test_counts(self) -> None:
        """Map counts go up and down; PageAnon follows page->mapping."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            page = await alloc_page()
            assert page is not None
            out.append(PageAnon(page))
            page_add_new_anon_rmap(page, mm.mmap[0], BASE)
            out.append((page.mapcount, page.mapping is PAGE_MAPPING_ANON))
            await page_dup_rmap(page)
            await page_add_file_rmap(page)
            out.append(page.mapcount)
            await page_remove_rmap(page)
            out.append(page.mapcount)

        run_one(body)
        assert [False, (1, True), 3, 2] == out


class TestShmem:
    """shmem_zero_setup, shmem_fault, shmem_getpage and the do_fault path."""

    def test_shared_memory_survives_fork_without_cow(self) -> None:
        """Parent and child see each other's stores: one page, no copy."""
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc("mm")
            assert BASE == await vm_mmap(mm, BASE, 2 * PAGE_SIZE, RW | VM_SHARED)
            vma = mm.mmap[0]
            out.append((vma.vm_ops is shmem_vm_ops, isinstance(vma.vm_file, ShmemFile)))
            out.append(await cpu_load(mm, BASE))  # a page-cache page, not zero
            out.append((_pte(mm).write, is_zero_pfn(_pte(mm).page.pfn)))
            await cpu_store(mm, BASE, 1)
            child = await _fork(mm)
            out.append(await cpu_load(child, BASE))
            await cpu_store(child, BASE, 2)
            out.append(await cpu_load(mm, BASE))
            page = _pte(mm).page
            out.append((page is _pte(child).page, page.refcount, page.mapcount))
            await mmput(child)
            out.append((page.refcount, page.mapcount, page.state))

        run = run_one(body)
        assert [] == run.kinds
        assert [
            (True, True),
            (0, 0),
            (True, False),
            (0, 1),
            (0, 2),
            (True, 3, 2),
            (2, 1, PageState.IN_USE),
        ] == out

    def test_fault_helpers(self) -> None:
        """linear_page_index, shmem_getpage, shmem_fault and the do_*fault steps."""
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc("mm")
            assert BASE == await vm_mmap(mm, BASE, 4 * PAGE_SIZE, RW | VM_SHARED)
            vma = mm.mmap[0]
            vma.vm_pgoff = 10
            out.append(linear_page_index(vma, BASE + 2 * PAGE_SIZE))
            file = vma.vm_file
            assert isinstance(file, ShmemFile)
            page = await shmem_getpage(file, 12)
            assert page is not None
            out.append((page.refcount, page.mapping is file))
            ret, same = await shmem_fault(vma, BASE + 2 * PAGE_SIZE)
            out.append((ret, same is page, page.refcount))
            # A class body would mangle the name: style.md section 9.2.
            __do_fault = getattr(memory, "__do_fault")
            code, got = await __do_fault(vma, BASE + 2 * PAGE_SIZE)
            out.append((code, got is page, page.refcount))
            assert got is not None
            ptep = pte_offset_map(mm, BASE + 2 * PAGE_SIZE)
            out.append(await finish_fault(vma, BASE + 2 * PAGE_SIZE, ptep, got, False))
            out.append((page.refcount, page.mapcount))
            await down_read(mm.mmap_sem)
            out.append(await do_read_fault(vma, BASE, pte_offset_map(mm, BASE)))
            ptep = pte_offset_map(mm, BASE + PAGE_SIZE)
            out.append(await do_shared_fault(vma, BASE + PAGE_SIZE, ptep))
            ptep = pte_offset_map(mm, BASE + 3 * PAGE_SIZE)
            out.append(
                await do_fault(vma, BASE + 3 * PAGE_SIZE, ptep, FAULT_FLAG_WRITE)
            )
            out.append(sorted(file.i_pages))
            out.append(await handle_mm_fault(vma, BASE, FaultFlag(0)))
            await up_read(mm.mmap_sem)

        run = run_one(body)
        assert [] == run.kinds
        assert [12, (2, True), (0, True, 3), (0, True, 4), 0, (4, 1)] == out[:6]
        assert [0, 0, 0, [10, 11, 12, 13], 0] == out[6:]

    def test_zero_setup(self) -> None:
        """shmem_zero_setup gives the VMA a file and shmem_vm_ops."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            vma = mm.mmap[0]
            out.append(shmem_zero_setup(vma))
            out.append((vma.vm_ops is shmem_vm_ops, vma.vm_file is not None))

        run_one(body)
        assert [0, (True, True)] == out


def test_page_dataclass_has_map_count_and_mapping() -> None:
    """struct page keeps page_mapcount() and page->mapping."""
    page = Page(pfn=0)
    assert (0, None) == (page.mapcount, page.mapping)
