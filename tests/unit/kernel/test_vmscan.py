"""Tests of page reclaim (mm/vmscan.c, v5.3): the isolation reference and when the page is freed."""

from __future__ import annotations

from typing import Any

from tests.support.kernel_harness import (
    BASE,
    StubMirrorOps,
    make_mm,
    register_mirror,
    run_one,
)

from hmmsim.kernel import hmm
from hmmsim.kernel.mm_types import Page, PageState, Pte
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.page_alloc import (
    alloc_page,
    free_unref_page_list,
    get_page,
    get_page_unless_zero,
    page_ref_freeze,
    put_page,
)
from hmmsim.kernel.rmap import page_dup_rmap, try_to_unmap
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.kernel.vmscan import (
    isolate_lru_pages,
    putback_inactive_pages,
    shrink_inactive_list,
    shrink_page_list,
)


def _names(run: Any) -> list[str]:
    return [e for e, _ in run.events]


class TestShrinkInactiveList:
    def test_page_is_freed_only_after_invalidate_range_end(self) -> None:
        """Reclaim clears the PTE inside the bracket and frees the page after its end."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            await register_mirror(hmm, mm, StubMirrorOps(0))
            pte = mm.ptes[BASE].value
            vma = find_vma(mm, BASE)
            assert isinstance(pte, Pte)
            assert vma is not None
            out.append(await shrink_inactive_list(pte.page, vma, BASE))
            out.append((mm.ptes[BASE].value, pte.page.state, pte.page.refcount))

        run = run_one(body)

        assert [] == run.kinds
        assert [1, (None, PageState.FREE, 0)] == out
        names = _names(run)
        start = names.index("mmu_notifier_invalidate_range_start")
        clear = names.index("pte_clear")
        end = names.index("mmu_notifier_invalidate_range_end")
        free = names.index("page_free")
        assert start < clear < end < free
        assert [{"nr_reclaimed": 1, "kept": 0}] == run.named("shrink_page_list")

    def test_the_mappings_put_page_inside_the_bracket_does_not_free(self) -> None:
        """With the isolation reference held, try_to_unmap leaves the page allocated."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            pte = mm.ptes[BASE].value
            vma = find_vma(mm, BASE)
            assert isinstance(pte, Pte)
            assert vma is not None
            page_list: list[Page] = []
            out.append(await isolate_lru_pages(pte.page, page_list))
            out.append(pte.page.refcount)
            out.append(await try_to_unmap(pte.page, vma, BASE))
            out.append((pte.page.state, pte.page.refcount, pte.page.mapcount))

        run = run_one(body)

        assert [] == run.kinds
        assert [1, 2, True, (PageState.IN_USE, 1, 0)] == out
        assert [] == run.named("page_free")

    def test_a_page_someone_else_holds_is_kept_and_freed_by_the_last_holder(
        self,
    ) -> None:
        """page_ref_freeze fails on an extra reference: put back, freed at its last put."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            pte = mm.ptes[BASE].value
            vma = find_vma(mm, BASE)
            assert isinstance(pte, Pte)
            assert vma is not None
            page = pte.page
            await get_page(page)  # e.g. a driver's hmm_range_fault reference
            out.append(await shrink_inactive_list(page, vma, BASE))
            out.append((page.state, page.refcount, mm.ptes[BASE].value))
            await put_page(page)
            out.append(page.state)

        run = run_one(body)

        assert [] == run.kinds
        assert [0, (PageState.IN_USE, 1, None), PageState.FREE] == out
        assert [{"nr_reclaimed": 0, "kept": 1}] == run.named("shrink_page_list")

    def test_a_page_still_mapped_elsewhere_is_kept_mapped_and_allocated(
        self,
    ) -> None:
        """A mapping try_to_unmap does not reach keeps the page: put back, not freed."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            pte = mm.ptes[BASE].value
            vma = find_vma(mm, BASE)
            assert isinstance(pte, Pte)
            assert vma is not None
            page = pte.page
            await page_dup_rmap(page)  # a second PTE (e.g. a fork child)
            await get_page(page)  # and that PTE's reference
            out.append(await shrink_inactive_list(page, vma, BASE))
            out.append((page.state, page.refcount, page.mapcount))

        run = run_one(body)

        assert [] == run.kinds
        assert [0, (PageState.IN_USE, 1, 1)] == out
        assert [{"nr_reclaimed": 0, "kept": 1}] == run.named("shrink_page_list")

    def test_a_page_freed_before_isolation_is_not_reclaimed(self) -> None:
        """A page whose count already reached zero is not isolated (it left the LRU)."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            vma = find_vma(mm, BASE)
            assert vma is not None
            page = await alloc_page()
            assert page is not None
            await put_page(page)
            out.append(await shrink_inactive_list(page, vma, BASE))
            out.append((page.state, page.refcount))

        run = run_one(body)

        assert [] == run.kinds
        assert [0, (PageState.FREE, 0)] == out
        assert [] == run.named("shrink_page_list")

    def test_an_unmapped_isolated_page_is_freed_without_an_invalidation(self) -> None:
        """A page no PTE maps any more skips try_to_unmap and is freed at once."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            vma = find_vma(mm, BASE)
            assert vma is not None
            page = await alloc_page()
            assert page is not None
            page_list: list[Page] = []
            await isolate_lru_pages(page, page_list)
            await put_page(page)  # the page's own user let it go meanwhile
            out.append(await shrink_page_list(page_list, vma, BASE))
            await putback_inactive_pages(page_list)
            out.append((page.state, page_list))

        run = run_one(body)

        assert [] == run.kinds
        assert [1, (PageState.FREE, [])] == out
        assert "mmu_notifier_invalidate_range_start" not in _names(run)


class TestPageRefHelpers:
    def test_get_page_unless_zero_and_page_ref_freeze(self) -> None:
        """The conditional get and the freeze act only on the expected counts."""
        out: list[Any] = []

        async def body() -> None:
            page = await alloc_page()
            assert page is not None
            out.append(await page_ref_freeze(page, 2))
            out.append(await get_page_unless_zero(page))
            out.append(await page_ref_freeze(page, 2))
            out.append(await get_page_unless_zero(page))
            out.append(page.refcount)
            await free_unref_page_list([page])
            out.append(page.state)

        run = run_one(body)

        assert [] == run.kinds
        assert [False, True, True, False, 0, PageState.FREE] == out
