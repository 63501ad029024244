"""Tests for `hmmsim.kernel.hmm_current` (mm/hmm.c hmm_range_fault, v6.16), run sequentially."""

from __future__ import annotations

import errno

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel import mmu_notifier_current as cur
from hmmsim.kernel.atomic import set_bit
from hmmsim.kernel.hmm_current import (
    HMM_NEED_ALL_BITS,
    HMM_NEED_FAULT,
    HMM_NEED_WRITE_FAULT,
    HmmRange,
    HmmVmaWalk,
    hmm_pfn_to_map_order,
    hmm_pfn_to_page,
    hmm_pte_need_fault,
    hmm_range_fault,
    hmm_range_need_fault,
)
from hmmsim.kernel.hmm_flags import (
    HMM_PFN_ERROR,
    HMM_PFN_FLAGS,
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
)
from hmmsim.kernel.mm_types import MmStruct, Pte
from hmmsim.kernel.mmu_notifier import MmuNotifierRange
from hmmsim.kernel.mmu_notifier_current import (
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    mmu_interval_notifier_insert,
    mmu_interval_read_begin,
    mmu_interval_set_seq,
)
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.types import (
    MMF_UNSTABLE,
    PAGE_SIZE,
    VM_IO,
    VM_NONE,
    VM_READ,
    VM_WRITE,
    VmFlags,
)
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.sync import down_read, up_read


async def invalidate(sub: MmuIntervalNotifier, r: MmuNotifierRange, seq: int) -> bool:
    await mmu_interval_set_seq(sub, seq)
    return True


OPS = StaticMmuIntervalNotifierOps(invalidate=invalidate)


async def setup(
    npages: int = 2, vm_flags: VmFlags = VM_READ | VM_WRITE
) -> tuple[MmStruct, HmmRange]:
    mm = await make_mm(npages, vm_flags)
    mm.notifier_core = cur
    sub = MmuIntervalNotifier(name="sub")
    assert 0 == await mmu_interval_notifier_insert(sub, mm, 0, 1 << 40, OPS)
    rng = HmmRange(
        notifier=sub,
        start=BASE,
        end=BASE + npages * PAGE_SIZE,
        hmm_pfns=[0] * npages,
    )
    rng.notifier_seq = await mmu_interval_read_begin(sub)
    return mm, rng


async def fault(mm: MmStruct, rng: HmmRange) -> int:
    await down_read(mm.mmap_sem)
    ret = await hmm_range_fault(rng)
    await up_read(mm.mmap_sem)
    return ret


def page_pfn(mm: MmStruct, addr: int) -> int:
    pte = mm.ptes[addr].value
    assert isinstance(pte, Pte)
    return pte.page.pfn


class TestFlags:
    def test_encoding_matches_include_linux_hmm_h(self) -> None:
        """VALID/WRITE/ERROR are the top bits; REQ_* alias them; FLAGS covers them."""
        assert 1 << 63 == HMM_PFN_VALID
        assert 1 << 62 == HMM_PFN_WRITE
        assert 1 << 61 == HMM_PFN_ERROR
        assert int(HMM_PFN_VALID) == int(HMM_PFN_REQ_FAULT)
        assert int(HMM_PFN_WRITE) == int(HMM_PFN_REQ_WRITE)
        assert HMM_PFN_VALID | HMM_PFN_WRITE | HMM_PFN_ERROR == (
            HMM_PFN_FLAGS & (HMM_PFN_VALID | HMM_PFN_WRITE | HMM_PFN_ERROR)
        )
        assert 0 == hmm_pfn_to_map_order(HMM_PFN_VALID | 5)


class TestNeedFault:
    def test_per_page_request_counts_only_through_the_mask(self) -> None:
        """A per-page REQ_FAULT is ignored unless pfn_flags_mask lets it through."""
        rng = HmmRange(hmm_pfns=[HMM_PFN_REQ_FAULT])
        walk = HmmVmaWalk(range=rng)

        assert 0 == hmm_pte_need_fault(walk, HMM_PFN_REQ_FAULT, 0)
        rng.pfn_flags_mask = HMM_PFN_REQ_FAULT
        assert HMM_NEED_FAULT == hmm_pte_need_fault(walk, HMM_PFN_REQ_FAULT, 0)

    def test_write_request_on_a_read_only_entry_needs_a_write_fault(self) -> None:
        """REQ_WRITE against a valid read-only CPU entry needs both fault bits."""
        rng = HmmRange(default_flags=HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)
        walk = HmmVmaWalk(range=rng)

        assert HMM_NEED_ALL_BITS == hmm_pte_need_fault(walk, 0, HMM_PFN_VALID)
        assert 0 == hmm_pte_need_fault(walk, 0, HMM_PFN_VALID | HMM_PFN_WRITE)

    def test_range_need_fault_short_cuts_without_any_fault_request(self) -> None:
        """No default and no mask bit for REQ_FAULT: nothing is ever needed."""
        rng = HmmRange(hmm_pfns=[HMM_PFN_REQ_FAULT] * 2)
        walk = HmmVmaWalk(range=rng)

        assert 0 == hmm_range_need_fault(walk, rng.hmm_pfns, 2, 0)
        rng.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE
        rng.hmm_pfns = [HMM_PFN_REQ_FAULT, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE]
        assert HMM_NEED_FAULT == hmm_range_need_fault(walk, rng.hmm_pfns[:1], 1, 0)
        assert HMM_NEED_ALL_BITS == hmm_range_need_fault(walk, rng.hmm_pfns, 2, 0)
        assert HMM_NEED_WRITE_FAULT & hmm_range_need_fault(walk, rng.hmm_pfns, 2, 0)


class TestHmmRangeFault:
    def test_faults_missing_pages_for_read_and_returns_zero(self) -> None:
        """Requested pages are faulted in; 0 (not a count) is returned."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup()
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))
            seen.extend(bool(e & HMM_PFN_VALID) for e in rng.hmm_pfns)
            seen.append(hmm_pfn_to_page(rng.hmm_pfns[1]).pfn == page_pfn(mm, BASE))

        run = run_one(body)

        assert [] == run.kinds
        assert [0, True, True, True] == seen
        # One handle_mm_fault per page, each followed by a re-walk.
        assert 2 == len(run.named("handle_mm_fault"))

    def test_write_request_gives_writable_entries(self) -> None:
        """With HMM_PFN_REQ_WRITE, entries come back VALID | WRITE with the pfn."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.default_flags = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE
            seen.append(await fault(mm, rng))
            pfn = page_pfn(mm, BASE)
            seen.append(rng.hmm_pfns[0] == pfn | HMM_PFN_VALID | HMM_PFN_WRITE)

        run_one(body)
        assert [0, True] == seen

    def test_read_fault_of_an_untouched_page_reports_the_zero_page(self) -> None:
        """A read fault maps the zero page: VALID, not WRITE, its pfn."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))
            seen.append(rng.hmm_pfns[0] & HMM_PFN_WRITE)
            seen.append(rng.hmm_pfns[0] & ~HMM_PFN_FLAGS == page_pfn(mm, BASE))

        run_one(body)
        assert [0, 0, True] == seen

    def test_snapshot_with_default_flags_zero_does_not_fault(self) -> None:
        """default_flags 0 reports present pages and 0 for missing ones."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup()
            await cpu_store(mm, BASE, 7)
            seen.append(await fault(mm, rng))
            seen.append(bool(rng.hmm_pfns[0] & HMM_PFN_VALID))
            seen.append(rng.hmm_pfns[0] & HMM_PFN_WRITE != 0)
            seen.append(rng.hmm_pfns[1])
            seen.append(mm.ptes[BASE + PAGE_SIZE].value)

        run = run_one(body)

        assert [] == run.kinds
        assert [0, True, True, 0, None] == seen

    def test_ebusy_once_the_sequence_moved(self) -> None:
        """A changed subscription sequence makes hmm_range_fault return -EBUSY."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup()
            assert rng.notifier is not None
            await mmu_interval_set_seq(rng.notifier, rng.notifier_seq + 2)
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))

        run = run_one(body)

        assert [-errno.EBUSY] == seen
        assert [] == run.named("handle_mm_fault")

    def test_ebusy_after_a_cpu_write_replaced_the_zero_page(self) -> None:
        """The COW of the zero page invalidates the range: the next call is -EBUSY."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.default_flags = HMM_PFN_REQ_FAULT
            # A read fault maps the zero page without any invalidation; the
            # CPU write then replaces it inside wp_page_copy's CLEAR bracket.
            assert 0 == await fault(mm, rng)
            await cpu_store(mm, BASE, 9)
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EBUSY] == seen

    def test_write_request_on_a_read_only_vma_is_eperm(self) -> None:
        """REQ_WRITE in a VMA without VM_WRITE: -EPERM, nothing faulted."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1, VM_READ)
            rng.default_flags = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE
            seen.append(await fault(mm, rng))

        run = run_one(body)

        assert [-errno.EPERM] == seen
        assert [] == run.named("handle_mm_fault")

    def test_read_request_on_a_read_only_vma_succeeds(self) -> None:
        """A read request in a read-only VMA faults the zero page in: 0."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1, VM_READ)
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [0] == seen

    def test_unreadable_vma_is_efault_when_asked_and_error_otherwise(self) -> None:
        """hmm_vma_walk_test: PROT_NONE is -EFAULT for a request, ERROR for a snapshot."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup(1, VM_NONE)
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))
            rng.default_flags = 0
            seen.append(await fault(mm, rng))
            seen.append(rng.hmm_pfns == [HMM_PFN_ERROR])

        run_one(body)
        assert [-errno.EFAULT, 0, True] == seen

    def test_mprotect_none_after_a_fault_is_efault(self) -> None:
        """A page made PROT_NONE by mprotect cannot be faulted for the device."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1)
            await cpu_load(mm, BASE)
            assert 0 == await do_mprotect_pkey(mm, BASE, PAGE_SIZE, VM_NONE)
            assert rng.notifier is not None
            rng.notifier_seq = await mmu_interval_read_begin(rng.notifier)
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EFAULT] == seen

    def test_device_vma_is_efault(self) -> None:
        """A VM_IO mapping is refused with -EFAULT when a fault is asked for."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1, VM_READ | VM_IO)
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EFAULT] == seen

    def test_hole_is_efault_when_asked_and_error_in_a_snapshot(self) -> None:
        """No VMA: a requested page is -EFAULT, a snapshot entry is ERROR."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.start, rng.end = BASE - PAGE_SIZE, BASE + PAGE_SIZE
            rng.hmm_pfns = [0, 0]
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))
            rng.default_flags = 0
            seen.append(await fault(mm, rng))
            seen.append(rng.hmm_pfns == [HMM_PFN_ERROR, 0])

        run = run_one(body)

        assert [] == run.kinds
        assert [-errno.EFAULT, 0, True] == seen
        assert [] == run.named("handle_mm_fault")

    def test_range_above_every_vma_is_efault(self) -> None:
        """A range above the last VMA gives -EFAULT for a request."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.start, rng.end = BASE + 64 * PAGE_SIZE, BASE + 65 * PAGE_SIZE
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EFAULT] == seen

    def test_without_mmap_lock_lockdep_complains(self) -> None:
        """mmap_assert_locked: calling without mmap_lock is a lockdep finding."""

        async def body() -> None:
            _, rng = await setup(1)
            await hmm_range_fault(rng)

        assert "lockdep" in run_one(body).kinds


class TestMoreFaults:
    def test_write_request_over_the_zero_page_faults_again(self) -> None:
        """A present read-only PTE with REQ_WRITE is faulted for write (COW)."""
        seen: list[object] = []

        async def body() -> None:
            mm, rng = await setup(1)
            rng.default_flags = HMM_PFN_REQ_FAULT
            assert 0 == await fault(mm, rng)
            zero = rng.hmm_pfns[0] & ~HMM_PFN_FLAGS
            assert rng.notifier is not None
            rng.notifier_seq = await mmu_interval_read_begin(rng.notifier)
            rng.default_flags = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE
            seen.append(await fault(mm, rng))
            # The COW of the zero page invalidated the range meanwhile.
            rng.notifier_seq = await mmu_interval_read_begin(rng.notifier)
            seen.append(await fault(mm, rng))
            seen.append(bool(rng.hmm_pfns[0] & HMM_PFN_WRITE))
            seen.append(rng.hmm_pfns[0] & ~HMM_PFN_FLAGS != zero)

        run_one(body)
        assert [-errno.EBUSY, 0, True, True] == seen

    def test_failing_fault_is_efault(self) -> None:
        """handle_mm_fault failing (the reaper made the mm unstable): -EFAULT."""
        seen: list[int] = []

        async def body() -> None:
            mm, rng = await setup(1)
            await set_bit(MMF_UNSTABLE, mm.flags)
            rng.default_flags = HMM_PFN_REQ_FAULT
            seen.append(await fault(mm, rng))

        run_one(body)
        assert [-errno.EFAULT] == seen

    def test_repr_names_the_range(self) -> None:
        """HmmRange's repr shows its name and bounds."""
        assert "HmmRange('r', [0x1000, 0x2000))" == repr(
            HmmRange(name="r", start=0x1000, end=0x2000)
        )
