"""Sequential tests of the cached-access CPU TLBs, flush_tlb_range, the mmu_gather flush and MADV_DONTNEED."""

from __future__ import annotations

import errno

from tests.support.kernel_harness import BASE, NPAGES, make_mm, run_one

from hmmsim.kernel.madvise import MADV_DONTNEED, do_madvise
from hmmsim.kernel.memory import ptep_get_and_clear
from hmmsim.kernel.mm_types import MmStruct, pte_offset_map, pte_present
from hmmsim.kernel.mmap import find_vma, sys_munmap
from hmmsim.kernel.mmu_gather import (
    MmuGather,
    tlb_flush_mmu_tlbonly,
    tlb_remove_tlb_entry,
)
from hmmsim.kernel.tlbflush import (
    cpu_load_cached,
    cpu_store_cached,
    cpu_tlbs,
    flush_tlb_range,
)
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.kernel.uaccess import cpu_load
from hmmsim.sync import spin_lock, spin_unlock


def entries(mm: MmStruct) -> list[int]:
    """The cached addresses, in order."""
    return sorted(addr for _, addr in cpu_tlbs(mm).entries)


def test_cached_access_fills_then_hits() -> None:
    """The first cached store faults and walks; the next access hits the filled entry."""
    seen: list[object] = []

    async def body() -> None:
        mm = await make_mm()
        seen.append(await cpu_store_cached(mm, BASE, 3))
        seen.append(entries(mm))
        seen.append(await cpu_store_cached(mm, BASE, 4))
        seen.append((entries(mm), await cpu_load_cached(mm, BASE)))

    run = run_one(body)
    assert [] == run.kinds
    assert [0, [], 0, ([BASE], (0, 4))] == seen
    assert [4] == [f["value"] for f in run.named("cpu_tlb_access")][-1:]


def test_stale_entry_outlives_a_cleared_pte_until_flushed() -> None:
    """Clearing the PTE leaves the TLB entry: the access still reaches the old page, until flush_tlb_range drops it."""
    seen: list[object] = []

    async def body() -> None:
        mm = await make_mm()
        assert 0 == await cpu_store_cached(mm, BASE, 3)
        assert (0, 3) == await cpu_load_cached(mm, BASE)
        ptep = pte_offset_map(mm, BASE)
        await spin_lock(mm.page_table_lock)
        old = await ptep_get_and_clear(mm, BASE, ptep)
        await spin_unlock(mm.page_table_lock)
        seen.append(await cpu_load_cached(mm, BASE))  # stale hit
        vma = find_vma(mm, BASE)
        assert vma is not None
        await flush_tlb_range(vma, BASE, BASE + PAGE_SIZE)
        seen.append(entries(mm))
        seen.append(await cpu_load_cached(mm, BASE))  # faults: the zero page
        del old

    assert [] == run_one(body).kinds
    assert [(0, 3), [], (0, 0)] == seen


def test_munmap_flushes_the_zapped_range() -> None:
    """munmap's zap widens the gather's flush range, so tlb_finish_mmu empties the TLB and the access faults."""
    seen: list[object] = []

    async def body() -> None:
        mm = await make_mm()
        assert 0 == await cpu_store_cached(mm, BASE, 3)
        assert (0, 3) == await cpu_load_cached(mm, BASE)
        assert 0 == await sys_munmap(mm, BASE, PAGE_SIZE)
        seen.append(entries(mm))
        seen.append(await cpu_load_cached(mm, BASE))

    assert [] == run_one(body).kinds
    assert [[], (-errno.EFAULT, 0)] == seen


def test_gather_flush_range() -> None:
    """tlb_remove_tlb_entry widens [flush_start, flush_end); tlb_flush_mmu_tlbonly flushes it once and resets it."""
    seen: list[object] = []

    async def body() -> None:
        mm = await make_mm()
        tlb = MmuGather(mm=mm)
        await tlb_flush_mmu_tlbonly(tlb)  # nothing recorded: no flush
        tlb_remove_tlb_entry(tlb, BASE + 2 * PAGE_SIZE)
        tlb_remove_tlb_entry(tlb, BASE)
        seen.append((tlb.flush_start, tlb.flush_end))
        assert 0 == await cpu_store_cached(mm, BASE, 1)
        assert (0, 1) == await cpu_load_cached(mm, BASE)
        await tlb_flush_mmu_tlbonly(tlb)
        seen.append((tlb.flush_start, tlb.flush_end, entries(mm)))

    run = run_one(body)
    assert [] == run.kinds
    assert [(BASE, BASE + 3 * PAGE_SIZE), (0, 0, [])] == seen
    assert 1 == len(run.named("flush_tlb_range"))


def test_madvise_dontneed_drops_the_pages() -> None:
    """MADV_DONTNEED zaps and frees the pages and flushes the TLB; the next load reads a fresh zero page."""
    seen: list[object] = []

    async def body() -> None:
        mm = await make_mm()
        for i in range(NPAGES):
            assert 0 == await cpu_store_cached(mm, BASE + i * PAGE_SIZE, i + 1)
        assert (0, 1) == await cpu_load_cached(mm, BASE)
        pte = pte_offset_map(mm, BASE).value
        assert pte_present(pte)
        seen.append(await do_madvise(mm, BASE, 2 * PAGE_SIZE, MADV_DONTNEED))
        seen.append((pte_offset_map(mm, BASE).value, pte.page.state.value, entries(mm)))
        seen.append(await cpu_load(mm, BASE))
        seen.append(await cpu_load(mm, BASE + 2 * PAGE_SIZE))

    assert [] == run_one(body).kinds
    assert [0, (None, "free", []), (0, 0), (0, 3)] == seen


def test_madvise_refuses_bad_arguments() -> None:
    """do_madvise: misaligned start or another behaviour is -EINVAL, an unmapped part -ENOMEM, an empty length 0."""
    seen: list[int] = []

    async def body() -> None:
        mm = await make_mm()
        seen.append(await do_madvise(mm, BASE + 1, PAGE_SIZE, MADV_DONTNEED))
        seen.append(await do_madvise(mm, BASE, PAGE_SIZE, 3))
        seen.append(await do_madvise(mm, BASE, 0, MADV_DONTNEED))
        seen.append(await do_madvise(mm, BASE, (NPAGES + 1) * PAGE_SIZE, MADV_DONTNEED))

    assert [] == run_one(body).kinds
    assert [-errno.EINVAL, -errno.EINVAL, 0, -errno.ENOMEM] == seen
