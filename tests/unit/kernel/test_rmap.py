"""Tests for `hmmsim.kernel.rmap`."""

from __future__ import annotations

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel.mm_types import PageState
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.page_alloc import alloc_page
from hmmsim.kernel.rmap import try_to_unmap_one
from hmmsim.kernel.uaccess import cpu_store


class TestTryToUnmapOne:
    """Reclaim of one lazily-freed page."""

    def test_unmaps_and_frees_the_page_inside_a_notifier_bracket(self) -> None:
        """The PTE is cleared and the page freed between a blockable start and end."""
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            pte = mm.ptes[BASE].value
            assert pte is not None
            vma = find_vma(mm, BASE)
            assert vma is not None
            got.append(await try_to_unmap_one(pte.page, vma, BASE + 3))
            got.append((mm.ptes[BASE].value, pte.page.state))

        run = run_one(body)

        assert [True, (None, PageState.FREE)] == got
        assert [True] == [e["unmapped"] for e in run.named("try_to_unmap_one")]

    def test_page_no_longer_mapped_there_is_left_alone(self) -> None:
        """A page that the PTE does not map is not touched."""
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            other = await alloc_page()
            vma = find_vma(mm, BASE)
            assert other is not None
            assert vma is not None
            await try_to_unmap_one(other, vma, BASE)
            got.append((mm.ptes[BASE].value is not None, other.state))

        run = run_one(body)

        assert [(True, PageState.IN_USE)] == got
        assert [False] == [e["unmapped"] for e in run.named("try_to_unmap_one")]
