"""Sequential tests of the nouveau SVM model (nouveau_svm.c, v5.5 and today): both notifiers."""

from __future__ import annotations

import errno
from typing import Any

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel import mmu_notifier_current as current_core
from hmmsim.kernel import mmu_notifier_v55 as v55
from hmmsim.kernel.drivers import nouveau_svm_current
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.drivers.nouveau_svm import (
    NouveauSvmm,
    SvmNotifier,
    nouveau_svm_fault,
    nouveau_svm_range_invalidate,
    nouveau_svmm_init,
    nouveau_svmm_invalidate_range_start,
)
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_init
from hmmsim.kernel.mmu_notifier_v55 import MmuIntervalNotifier
from hmmsim.kernel.types import MMU_NOTIFY_UNMAP, PAGE_SIZE
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.sync import mutex_lock, mutex_unlock

BLOCKABLE = 1  # MMU_NOTIFIER_RANGE_BLOCKABLE


async def svm_process() -> tuple[MmStruct, NouveauSvmm]:
    """A process with one written page at BASE and nouveau SVM enabled."""
    mm = await make_mm()
    mm.notifier_core = v55
    await cpu_store(mm, BASE, 7)
    svmm = NouveauSvmm(name="svmm", vmm=Device(name="gpu0", mm=mm))
    assert 0 == await nouveau_svmm_init(svmm, mm)
    return mm, svmm


def unmap_range(mm: MmStruct, flags: int) -> MmuNotifierRange:
    """An MMU_NOTIFY_UNMAP range over BASE's page."""
    r = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(
        r, MMU_NOTIFY_UNMAP, flags, None, mm, BASE, BASE + PAGE_SIZE
    )
    return r


class TestHlistNotifier:
    def test_refuses_every_non_blockable_start_and_zaps_a_blockable_one(self) -> None:
        """-EAGAIN for a non-blockable range (GPU entry kept); 0 and a zap when blockable."""
        out: list[Any] = []

        async def body() -> None:
            mm, svmm = await svm_process()
            assert 0 == await nouveau_svm_fault(svmm, BASE)
            out.append(len(svmm.vmm.mapped()))
            out.append(
                await nouveau_svmm_invalidate_range_start(
                    svmm.notifier, unmap_range(mm, 0)
                )
            )
            out.append(len(svmm.vmm.mapped()))
            out.append(
                await nouveau_svmm_invalidate_range_start(
                    svmm.notifier, unmap_range(mm, BLOCKABLE)
                )
            )
            out.append(len(svmm.vmm.mapped()))

        run = run_one(body)

        assert [] == run.kinds
        assert [1, -errno.EAGAIN, 1, 0, 0] == out


class TestIntervalNotifier:
    def test_non_blockable_invalidate_trylocks_the_svmm_mutex(self) -> None:
        """The interval callback succeeds non-blocking unless svmm->mutex is held."""
        out: list[bool] = []

        async def body() -> None:
            mm, svmm = await svm_process()
            sn = SvmNotifier(notifier=MmuIntervalNotifier(name="sn"), svmm=svmm)
            sn.notifier.container = sn
            out.append(
                await nouveau_svm_range_invalidate(sn.notifier, unmap_range(mm, 0), 3)
            )
            await mutex_lock(svmm.mutex)
            out.append(
                await nouveau_svm_range_invalidate(sn.notifier, unmap_range(mm, 0), 5)
            )
            await mutex_unlock(svmm.mutex)
            out.append(sn.notifier.invalidate_seq.value == 3)

        run = run_one(body)

        assert [] == run.kinds
        assert [True, False, True] == out

    def test_a_fault_maps_the_page_and_removes_its_interval_notifier(self) -> None:
        """nouveau_svm_fault maps BASE on the GPU and leaves no subscription behind."""
        out: list[Any] = []

        async def body() -> None:
            mm, svmm = await svm_process()
            out.append(await nouveau_svm_fault(svmm, BASE, write=True))
            mnmm = mm.mmu_notifier_mm
            assert isinstance(mnmm, v55.MmuNotifierMm)
            out.append((mnmm.has_itree, len(mnmm.itree)))
            out.append([(a, e.write) for a, e in svmm.vmm.mapped()])

        run = run_one(body)

        assert [] == run.kinds
        assert 0 == out[0]
        assert (True, 0) == out[1]
        assert [(BASE, True)] == out[2]


class TestCurrent:
    def test_today_fault_maps_and_refusal_is_unchanged(self) -> None:
        """Today's port: the fault maps BASE and removes its notifier; the interval
        callback trylocks; the hlist notifier still refuses a non-blockable start."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            mm.notifier_core = current_core
            await cpu_store(mm, BASE, 7)
            svmm = NouveauSvmm(name="svmm", vmm=Device(name="gpu0", mm=mm))
            out.append(await nouveau_svm_current.nouveau_svmm_init(svmm, mm))
            out.append(await nouveau_svm_current.nouveau_svm_fault(svmm, BASE))
            out.append([a for a, _ in svmm.vmm.mapped()])
            sn = SvmNotifier(notifier=MmuIntervalNotifier(name="sn"), svmm=svmm)
            sn.notifier.container = sn
            await mutex_lock(svmm.mutex)
            out.append(
                await nouveau_svm_current.nouveau_svm_range_invalidate(
                    sn.notifier, unmap_range(mm, 0), 3
                )
            )
            await mutex_unlock(svmm.mutex)
            out.append(
                await nouveau_svm_current.nouveau_svm_range_invalidate(
                    sn.notifier, unmap_range(mm, 0), 3
                )
            )
            out.append(
                await nouveau_svmm_invalidate_range_start(
                    svmm.notifier, unmap_range(mm, 0)
                )
            )

        run = run_one(body)

        assert [] == run.kinds
        assert [0, 0, [BASE], False, True, -errno.EAGAIN] == out


class TestFaultErrors:
    def test_fault_errors_of_both_ports(self) -> None:
        """A fault outside every VMA is -EFAULT; an exhausted retry bound is -EBUSY;
        today's port cancels (-EFAULT) when the mm is gone."""
        out: list[Any] = []

        async def body() -> None:
            mm, svmm = await svm_process()
            out.append(await nouveau_svm_fault(svmm, BASE + 64 * PAGE_SIZE))
            out.append(await nouveau_svm_fault(svmm, BASE, max_retries=-1))
            mm = await make_mm()
            mm.notifier_core = current_core
            await cpu_store(mm, BASE, 7)
            cur = NouveauSvmm(name="cur", vmm=Device(name="gpu1", mm=mm))
            assert 0 == await nouveau_svm_current.nouveau_svmm_init(cur, mm)
            out.append(
                await nouveau_svm_current.nouveau_svm_fault(cur, BASE + 64 * PAGE_SIZE)
            )
            out.append(
                await nouveau_svm_current.nouveau_svm_fault(cur, BASE, max_retries=-1)
            )
            mm.mm_users.value = 0
            out.append(await nouveau_svm_current.nouveau_svm_fault(cur, BASE))

        run = run_one(body)

        assert [] == run.kinds
        assert [
            -errno.EFAULT,
            -errno.EBUSY,
            -errno.EFAULT,
            -errno.EBUSY,
            -errno.EFAULT,
        ] == out
