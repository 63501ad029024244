"""Small helpers of the kernel model: reprs, pfn decoding, debug checks, walks."""

from __future__ import annotations

import errno
from types import ModuleType
from typing import Any

import pytest
from tests.support.kernel_harness import BASE, NPAGES, StubMirrorOps, make_mm, run_one

from hmmsim.kernel import atomic, hmm, hmm_prepatch
from hmmsim.kernel.debug import mmap_assert_locked
from hmmsim.kernel.fork import mm_alloc
from hmmsim.kernel.mm_types import Page, Pte, VmAreaStruct, pte_offset_map, vma_pages
from hmmsim.kernel.pagewalk import MmWalk, walk_page_range
from hmmsim.kernel.types import PAGE_SHIFT, PAGE_SIZE, VM_READ, err_name
from hmmsim.sync import down_read, up_read

BOTH = pytest.mark.parametrize("mod", [hmm, hmm_prepatch], ids=["v5.3", "prepatch"])


def test_reprs_and_names() -> None:
    """The model's structs print their key fields."""
    out: list[str] = []

    async def body() -> None:
        mm = await make_mm()
        vma = mm.mmap[0]
        page = Page(pfn=3)
        out.extend([repr(mm), repr(vma), repr(page), repr(Pte(page, True)), page.name])
        out.append(repr(hmm.HmmRange(name="r")))
        out.append(repr(hmm.Hmm(name="h", mm=mm)))
        out.append(repr(hmm_prepatch.HmmRange(name="r")))
        out.append(repr(hmm_prepatch.Hmm(name="h", mm=mm)))
        out.append(str(vma_pages(vma)))
        assert () == page.holders()

    run_one(body)
    assert "MmStruct('mm')" == out[0]
    assert "Pte(pfn=3, rw)" == out[3]
    assert str(NPAGES) == out[-1]


def test_err_name() -> None:
    """Negative errnos print as their macro names."""
    assert "-EAGAIN" == err_name(-errno.EAGAIN)
    assert "3" == err_name(3)


def test_atomic_clear_bit_and_mmap_assert() -> None:
    """clear_bit clears; mmap_assert_locked reports when mmap_sem is not held."""
    out: list[bool] = []

    async def body() -> None:
        mm = mm_alloc()
        await atomic.set_bit(3, mm.flags)
        await atomic.clear_bit(3, mm.flags)
        out.append(await atomic.test_bit(3, mm.flags))
        await down_read(mm.mmap_sem)
        mmap_assert_locked(mm)
        await up_read(mm.mmap_sem)
        mmap_assert_locked(mm)

    assert ["lockdep"] == run_one(body).kinds
    assert [False] == out


def test_walk_page_range_rejects_empty_range() -> None:
    """An empty walk is -EINVAL."""
    out: list[int] = []

    async def body() -> None:
        mm = mm_alloc()
        out.append(
            await walk_page_range(PAGE_SIZE, PAGE_SIZE, MmWalk(mm=mm, private=None))
        )

    run_one(body)
    assert [-errno.EINVAL] == out


@BOTH
def test_pfns_bad_and_device_private_request(mod: ModuleType) -> None:
    """hmm_pfns_bad marks errors; device-private CPU entries fault only on request."""
    rng = mod.HmmRange(pfns=[0] * 2, start=BASE, end=BASE + 2 * PAGE_SIZE)
    rng.pfn_flags_mask = ~0
    walk = MmWalk(mm=mm_alloc(), private=mod.HmmVmaWalk(range=rng))
    assert 0 == mod.hmm_pfns_bad(BASE, BASE + 2 * PAGE_SIZE, walk)
    assert [rng.values[0]] * 2 == rng.pfns
    state = mod.HmmVmaWalk(range=rng, fault=True)
    device = rng.flags[0] | rng.flags[2]
    assert (False, False) == mod.hmm_pte_need_fault(state, 1, device, False, False)
    assert (True, True) == mod.hmm_pte_need_fault(state, 7, device, False, False)
    assert (False, False) == mod.hmm_pte_need_fault(state, 0, 0, False, False)
    state.fault = False
    assert (False, False) == mod.hmm_range_need_fault(state, [1], 1, 0)
    assert 0 == mod.pte_to_hmm_pfn_flags(rng, None)


@BOTH
def test_snapshot_across_two_vmas_and_a_hole(mod: ModuleType) -> None:
    """A snapshot walks each VMA in turn and reports a hole between them as NONE."""
    out: list[Any] = []

    async def body() -> None:
        mm = await make_mm(npages=1)
        from hmmsim.kernel.mmap import vm_mmap  # noqa: PLC0415

        await vm_mmap(mm, BASE + 2 * PAGE_SIZE, PAGE_SIZE, VM_READ)
        mirror = mod.HmmMirror(ops=StubMirrorOps())
        from hmmsim.sync import down_write, up_write  # noqa: PLC0415

        await down_write(mm.mmap_sem)
        await mod.hmm_mirror_register(mirror, mm)
        await up_write(mm.mmap_sem)
        rng = mod.HmmRange(pfns=[0] * 3)
        await mod.hmm_range_register(
            rng, mirror, BASE, BASE + 3 * PAGE_SIZE, PAGE_SHIFT
        )
        await down_read(mm.mmap_sem)
        out.append(await mod.hmm_range_snapshot(rng))
        out.append(await mod.hmm_range_fault(rng, True))
        await up_read(mm.mmap_sem)
        pte_offset_map(mm, BASE)

    run = run_one(body)
    assert [] == run.kinds
    # The first VMA ends before the hole: the walk of the second VMA starts
    # at BASE + PAGE_SIZE (find_vma returns the VMA above the hole).
    assert 3 == out[0]


def test_vma_dataclass_fields() -> None:
    """VmAreaStruct keeps the C field names."""
    assert {
        "vm_mm",
        "vm_start",
        "vm_end",
        "vm_flags",
        "vm_ops",
        "vm_pgoff",
        "vm_file",
        "vm_private_data",
    } == set(VmAreaStruct.__dataclass_fields__)
