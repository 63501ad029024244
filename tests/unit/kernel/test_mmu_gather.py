"""Tests of the TLB gather (mm/mmu_gather.c, v5.3) and of who frees zapped pages when."""

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

from hmmsim.kernel import hmm
from hmmsim.kernel.fork import mmput
from hmmsim.kernel.mm_types import Page, PageState, TaskStruct
from hmmsim.kernel.mmu_gather import (
    MmuGather,
    __tlb_remove_page,
    tlb_finish_mmu,
    tlb_gather_mmu,
)
from hmmsim.kernel.oom_kill import mark_oom_victim, oom_reap_task
from hmmsim.kernel.page_alloc import alloc_page, get_page, page_allocator
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.kernel.uaccess import cpu_store


def tlb_remove(tlb: MmuGather, page: Page) -> bool:
    """__tlb_remove_page, callable from a class body (no name mangling)."""
    return __tlb_remove_page(tlb, page)


def _order(run: Any) -> tuple[list[int], list[int], list[int]]:
    """Indexes of the invalidate_range_end, pte_clear and page_free events."""
    names = [e for e, _ in run.events]
    ends = [i for i, n in enumerate(names) if n == "mmu_notifier_invalidate_range_end"]
    clears = [i for i, n in enumerate(names) if n == "pte_clear"]
    frees = [i for i, n in enumerate(names) if n == "page_free"]
    return ends, clears, frees


class TestMmuGather:
    def test_full_mm_gather_and_release_at_finish(self) -> None:
        """tlb_finish_mmu drops each gathered reference; only the last one frees."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            tlb = MmuGather(mm=mm)
            tlb_gather_mmu(tlb, mm, 0, 1 << 64)
            out.append(tlb.fullmm)
            kept = await alloc_page()
            gone = await alloc_page()
            assert kept is not None
            assert gone is not None
            await get_page(kept)  # someone else still holds it
            out.append(tlb_remove(tlb, kept))
            tlb_remove(tlb, gone)
            out.append((kept.state, gone.state))
            await tlb_finish_mmu(tlb, 0, 1 << 64)
            out.append((kept.state, kept.refcount, gone.state, tlb.pages))

        run = run_one(body)

        assert [] == run.kinds
        assert [
            True,
            False,
            (PageState.IN_USE, PageState.IN_USE),
            (PageState.IN_USE, 1, PageState.FREE, []),
        ] == out
        assert [{"mm": "mm", "nr": 2}] == run.named("tlb_release_pages")

    def test_partial_range_is_not_full_mm(self) -> None:
        """A gather over part of the address space is not a full-mm teardown."""
        out: list[bool] = []

        async def body() -> None:
            mm = await make_mm()
            tlb = MmuGather(mm=mm)
            tlb_gather_mmu(tlb, mm, BASE, BASE + PAGE_SIZE)
            out.append(tlb.fullmm)
            await tlb_finish_mmu(tlb, BASE, BASE + PAGE_SIZE)

        run = run_one(body)

        assert [] == run.kinds
        assert [False] == out
        assert [] == run.named("tlb_release_pages")


class TestFreedAfterTheEnd:
    def test_exit_mmap_frees_pages_after_invalidate_range_end(self) -> None:
        """exit_mmap clears every PTE inside the bracket and frees the pages after it."""

        async def body() -> None:
            mm = await make_mm()
            for i in range(NPAGES):
                await cpu_store(mm, BASE + i * PAGE_SIZE, i + 1)
            await register_mirror(hmm, mm, StubMirrorOps(0))
            await mmput(mm)

        run = run_one(body)

        assert [] == run.kinds
        ends, clears, frees = _order(run)
        assert NPAGES == len(clears) == len(frees)
        assert max(clears) < ends[-1] < min(frees)

    def test_oom_reaper_frees_pages_after_invalidate_range_end(self) -> None:
        """The reaper frees a reaped VMA's pages in tlb_finish_mmu, after the end."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            for i in range(NPAGES):
                await cpu_store(mm, BASE + i * PAGE_SIZE, i + 1)
            await register_mirror(hmm, mm, StubMirrorOps(0))
            tsk = TaskStruct(pid=42, comm="victim", mm=mm)
            await mark_oom_victim(tsk)
            await oom_reap_task(tsk)
            out.append([p.state for p in page_allocator().pages])

        run = run_one(body)

        assert [] == run.kinds
        assert [[PageState.FREE] * NPAGES] == out
        ends, clears, frees = _order(run)
        assert NPAGES == len(clears) == len(frees)
        assert max(clears) < ends[0] < min(frees)
