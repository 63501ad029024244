"""Tests for `hmmsim.kernel.hmm_v55` (mm/hmm.c hmm_range_fault, v5.5), run sequentially."""

from __future__ import annotations

import errno

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel import mmu_notifier_v55 as v55
from hmmsim.kernel.hmm_v55 import (
    HMM_FAULT_SNAPSHOT,
    HmmRange,
    hmm_device_entry_to_page,
    hmm_device_entry_to_pfn,
    hmm_range_fault,
)
from hmmsim.kernel.mm_types import MmStruct, Pte
from hmmsim.kernel.mmu_notifier import MmuNotifierRange
from hmmsim.kernel.mmu_notifier_v55 import (
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    mmu_interval_notifier_insert,
    mmu_interval_read_begin,
    mmu_interval_set_seq,
)
from hmmsim.kernel.types import (
    HMM_PFN_NONE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    PAGE_SIZE,
    VM_IO,
    VM_NONE,
    VM_READ,
    VM_WRITE,
    VmFlags,
)
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.sync import down_read, up_read


async def invalidate(sub: MmuIntervalNotifier, r: MmuNotifierRange, seq: int) -> bool:
    await mmu_interval_set_seq(sub, seq)
    return True


OPS = StaticMmuIntervalNotifierOps(invalidate=invalidate)


async def setup(
    npages: int = 2, vm_flags: VmFlags = VM_READ | VM_WRITE
) -> tuple[MmStruct, HmmRange]:
    mm = await make_mm(npages, vm_flags)
    mm.notifier_core = v55
    sub = MmuIntervalNotifier(name="sub")
    assert 0 == await mmu_interval_notifier_insert(sub, mm, 0, 1 << 40, OPS)
    rng = HmmRange(
        notifier=sub, start=BASE, end=BASE + npages * PAGE_SIZE, pfns=[0] * npages
    )
    rng.notifier_seq = await mmu_interval_read_begin(sub)
    return mm, rng


async def fault(mm: MmStruct, rng: HmmRange, flags: int = 0) -> int:
    await down_read(mm.mmap_sem)
    ret = await hmm_range_fault(rng, flags)
    await up_read(mm.mmap_sem)
    return ret


class TestHmmRangeFault:
    def test_faults_missing_pages_for_read(self) -> None:
        """Requested pages are faulted in; the count of valid entries is returned."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup()
            rng.default_flags = rng.flags[HMM_PFN_VALID]
            seen.append(await fault(mm, rng))
            seen.extend(bool(e & rng.flags[HMM_PFN_VALID]) for e in rng.pfns)
            cell = mm.ptes[BASE]
            assert isinstance(cell.value, Pte)
            seen.append(hmm_device_entry_to_page(rng, rng.pfns[0]) is cell.value.page)
            seen.append(
                hmm_device_entry_to_pfn(rng, rng.pfns[0]) == cell.value.page.pfn
            )

        assert [] == run_one(body).kinds
        assert [2, True, True, True, True] == seen

    def test_write_request_gives_writable_entries(self) -> None:
        """With HMM_PFN_WRITE requested, entries come back writable."""
        seen: list[bool] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.default_flags = rng.flags[HMM_PFN_VALID] | rng.flags[HMM_PFN_WRITE]
            await fault(mm, rng)
            seen.append(bool(rng.pfns[0] & rng.flags[HMM_PFN_WRITE]))

        run_one(body)
        assert [True] == seen

    def test_snapshot_does_not_fault(self) -> None:
        """HMM_FAULT_SNAPSHOT reports present pages and NONE for missing ones."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup()
            await cpu_store(mm, BASE, 7)
            rng.default_flags = rng.flags[HMM_PFN_VALID]
            seen.append(await fault(mm, rng, HMM_FAULT_SNAPSHOT))
            seen.append(bool(rng.pfns[0] & rng.flags[HMM_PFN_VALID]))
            seen.append(rng.pfns[1] == rng.values[HMM_PFN_NONE])
            seen.append(mm.ptes[BASE + PAGE_SIZE].value)

        assert [] == run_one(body).kinds
        assert [2, True, True, None] == seen

    def test_ebusy_once_the_sequence_moved(self) -> None:
        """A changed subscription sequence makes hmm_range_fault return -EBUSY."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup()
            assert rng.notifier is not None
            await mmu_interval_set_seq(rng.notifier, rng.notifier_seq + 2)
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EBUSY] == seen

    def test_unreadable_vma_is_eperm(self) -> None:
        """A VMA without VM_READ gives -EPERM and NONE entries."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup(1, VM_NONE)
            seen.append(await fault(mm, rng))
            seen.append(rng.pfns == [rng.values[HMM_PFN_NONE]])

        run_one(body)
        assert [-errno.EPERM, True] == seen

    def test_device_vma_is_efault(self) -> None:
        """A VM_IO mapping is refused with -EFAULT."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1, VM_READ | VM_IO)
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EFAULT] == seen

    def test_fault_in_a_hole_is_efault_with_an_error_entry(self) -> None:
        """v5.4+: faulting a hole gives -EFAULT (no NULL vma passed to handle_mm_fault).

        hmm_vma_do_fault marks the entry ERROR, then hmm_range_fault clears
        every entry from ``last`` on, that one included, as the C does.
        """
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.start, rng.end = BASE - PAGE_SIZE, BASE + PAGE_SIZE
            rng.pfns = [0, 0]
            rng.default_flags = rng.flags[HMM_PFN_VALID]
            seen.append(await fault(mm, rng))
            seen.append(rng.pfns == [rng.values[HMM_PFN_NONE]] * 2)

        run = run_one(body)

        assert [] == run.kinds
        assert [-errno.EFAULT, True] == seen
        assert [] == run.named("handle_mm_fault")

    def test_no_vma_at_all_is_efault(self) -> None:
        """A range above every VMA gives -EFAULT."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.start, rng.end = BASE + 64 * PAGE_SIZE, BASE + 65 * PAGE_SIZE
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EFAULT] == seen
