"""Tests for `hmmsim.kernel.rmap`."""

from __future__ import annotations

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel.mm_types import PageState, Pte
from hmmsim.kernel.mmap import find_vma
from hmmsim.kernel.page_alloc import alloc_page
from hmmsim.kernel.rmap import try_to_unmap_one
from hmmsim.kernel.uaccess import cpu_store


class TestTryToUnmapOne:
    """Reclaim of one lazily-freed page."""

    def test_unmaps_and_frees_the_page_inside_a_notifier_bracket(self) -> None:
        """Called without reclaim's isolation reference, the mapping's put_page is the last one."""
        got: list[object] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            pte = mm.ptes[BASE].value
            assert isinstance(pte, Pte)
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


def test_an_anonymous_page_stays_anonymous_across_a_copy_of_the_world() -> None:
    """PageAnon holds after a pickle round trip (set-up snapshots copy the world)."""
    import pickle  # noqa: PLC0415 - only this test needs it

    from hmmsim.kernel.mm_types import PAGE_MAPPING_ANON, Page  # noqa: PLC0415
    from hmmsim.kernel.rmap import PageAnon  # noqa: PLC0415

    page = Page(pfn=3, mapcount=1, refcount=1, mapping=PAGE_MAPPING_ANON)

    copy = pickle.loads(pickle.dumps(page))

    assert PageAnon(copy)
    assert copy.mapping is PAGE_MAPPING_ANON
