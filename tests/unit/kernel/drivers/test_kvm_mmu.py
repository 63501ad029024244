"""Tests for `hmmsim.kernel.drivers.kvm_mmu`."""

from __future__ import annotations

import errno

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel.drivers.device import device_access
from hmmsim.kernel.drivers.kvm_mmu import (
    Kvm,
    kvm_gfn_to_pfn,
    kvm_mmu_notifier_invalidate_range_end,
    kvm_mmu_notifier_invalidate_range_start,
    kvm_mmu_page_fault,
    kvm_register,
    kvm_unregister,
    mmu_notifier_retry,
    mmu_notifier_to_kvm,
)
from hmmsim.kernel.mmu_notifier import MmuNotifierRange
from hmmsim.kernel.types import MMU_NOTIFIER_RANGE_BLOCKABLE, PAGE_SIZE, VM_READ
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.sync import mutex_lock, mutex_unlock


async def _kvm(**kw: object) -> Kvm:
    mm = await make_mm(**kw)  # type: ignore[arg-type]
    kvm = Kvm(name="kvm0", mm=mm)
    assert 0 == await kvm_register(kvm)
    return kvm


def _range(kvm: Kvm, blockable: bool) -> MmuNotifierRange:
    return MmuNotifierRange(
        mm=kvm.mm,
        start=BASE,
        end=BASE + PAGE_SIZE,
        flags=MMU_NOTIFIER_RANGE_BLOCKABLE if blockable else 0,
    )


class TestKvm:
    """The seq/count protocol of the KVM-style MMU."""

    def test_fault_maps_and_vcpu_reads(self) -> None:
        """A guest fault maps the page; the vCPU then reads the CPU's value."""
        got: list[object] = []

        async def body() -> None:
            kvm = await _kvm()
            await cpu_store(kvm.mm, BASE, 9)
            got.append(await kvm_mmu_page_fault(kvm, BASE, False))
            got.append(await device_access(kvm.shadow, BASE, False))
            got.append(mmu_notifier_to_kvm(kvm.mmu_notifier) is kvm)

        run_one(body)

        assert [0, 9, True] == got

    def test_start_and_end_count_and_zap(self) -> None:
        """start zaps and raises the count; end lowers it and bumps the seq."""
        got: list[object] = []

        async def body() -> None:
            kvm = await _kvm()
            await kvm_mmu_page_fault(kvm, BASE, True)
            rng = _range(kvm, True)
            got.append(
                await kvm_mmu_notifier_invalidate_range_start(kvm.mmu_notifier, rng)
            )
            got.append(
                (
                    kvm.mmu_notifier_count,
                    kvm.shadow.mapped(),
                    mmu_notifier_retry(kvm, 0),
                )
            )
            await kvm_mmu_notifier_invalidate_range_end(kvm.mmu_notifier, rng)
            got.append((kvm.mmu_notifier_count, kvm.mmu_notifier_seq.value))
            got.append((mmu_notifier_retry(kvm, 0), mmu_notifier_retry(kvm, 1)))

        run_one(body)

        assert [0, (1, [], True), (0, 1), (True, False)] == got

    def test_nonblocking_start_with_busy_flush_lock_returns_eagain(self) -> None:
        """A non-blockable start refuses when flush_lock is taken; nothing is counted."""
        got: list[object] = []

        async def body() -> None:
            kvm = await _kvm()
            await mutex_lock(kvm.flush_lock)
            got.append(
                await kvm_mmu_notifier_invalidate_range_start(
                    kvm.mmu_notifier, _range(kvm, False)
                )
            )
            got.append(kvm.mmu_notifier_count)
            await mutex_unlock(kvm.flush_lock)

        run_one(body)

        assert [-errno.EAGAIN, 0] == got

    def test_fault_outside_memory_and_write_to_readonly_fail(self) -> None:
        """No VMA gives -EFAULT; a write fault on a read-only VMA cannot pin."""
        got: list[object] = []

        async def body() -> None:
            kvm = await _kvm(vm_flags=VM_READ)
            got.append(await kvm_mmu_page_fault(kvm, BASE - PAGE_SIZE, False))
            got.append(await kvm_gfn_to_pfn(kvm, BASE, True))

        run_one(body)

        assert [-errno.EFAULT, None] == got

    def test_fault_gives_up_while_an_invalidation_is_open(self) -> None:
        """With the count raised, every retry fails and -EAGAIN is returned."""
        got: list[object] = []

        async def body() -> None:
            kvm = await _kvm()
            await kvm_mmu_notifier_invalidate_range_start(
                kvm.mmu_notifier, _range(kvm, True)
            )
            got.append(await kvm_mmu_page_fault(kvm, BASE, False, max_retries=1))
            got.append(kvm.shadow.mapped())

        run_one(body)

        assert [-errno.EAGAIN, []] == got

    def test_unregister_releases_the_shadow_table(self) -> None:
        """mmu_notifier_unregister calls release, which zaps the shadow table."""
        got: list[object] = []

        async def body() -> None:
            kvm = await _kvm()
            await kvm_mmu_page_fault(kvm, BASE, False)
            await kvm_unregister(kvm)
            got.append((kvm.released, kvm.shadow.mapped()))

        run_one(body)

        assert [(True, [])] == got
