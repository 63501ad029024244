"""Tests for `hmmsim.kernel.drivers.dmirror_current` (lib/test_hmm.c, v6.16), sequential."""

from __future__ import annotations

import errno

from tests.support.kernel_harness import BASE, make_mm, run_one

from hmmsim.kernel import mmu_notifier_current as cur
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.drivers.dmirror import (
    HMM_DMIRROR_PROT_ERROR,
    HMM_DMIRROR_PROT_NONE,
    HMM_DMIRROR_PROT_READ,
    HMM_DMIRROR_PROT_WRITE,
    HMM_DMIRROR_PROT_ZERO,
    Dmirror,
    DmirrorInterval,
    HmmDmirrorCmd,
)
from hmmsim.kernel.drivers.dmirror_current import (
    dmirror_fault,
    dmirror_fops_open,
    dmirror_fops_release,
    dmirror_read,
    dmirror_snapshot,
    dmirror_snapshot_invalidate,
    dmirror_write,
)
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmap import vm_munmap
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start_nonblock,
    mmu_notifier_range_init,
)
from hmmsim.kernel.mmu_notifier_current import MmuNotifierSubscriptions
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.types import MMU_NOTIFY_UNMAP, PAGE_SIZE, VM_READ, VM_WRITE, VmFlags
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.sync import current_execution, mutex_lock, mutex_unlock


async def opened(
    npages: int = 2, vm_flags: VmFlags | None = None
) -> tuple[MmStruct, Dmirror]:
    mm = await (make_mm(npages) if vm_flags is None else make_mm(npages, vm_flags))
    mm.notifier_core = cur
    dmirror = Dmirror(name="dmirror", pt=Device(name="dev", mm=mm))
    assert 0 == await dmirror_fops_open(dmirror, mm)
    return mm, dmirror


class TestOpenRelease:
    def test_open_inserts_a_whole_address_space_notifier(self) -> None:
        """open() subscribes [0, ULONG_MAX & PAGE_MASK); release removes and frees."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened()
            mmn_mm = mm.mmu_notifier_mm
            assert isinstance(mmn_mm, MmuNotifierSubscriptions)
            seen.extend([dmirror.notifier in mmn_mm.itree, dmirror.notifier.start])
            await dmirror_fops_release(dmirror)
            seen.extend([mmn_mm.itree, dmirror.freed, dmirror.notifier.freed])

        assert [] == run_one(body).kinds
        assert [True, 0, [], True, True] == seen


class TestFault:
    def test_fault_maps_the_device_and_invalidation_zaps_it(self) -> None:
        """dmirror_fault programs the device; munmap's invalidation erases it."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(1)
            seen.append(await dmirror_fault(dmirror, BASE, BASE + PAGE_SIZE, False))
            seen.append(len(dmirror.pt.mapped()))
            seen.append(await vm_munmap(mm, BASE, PAGE_SIZE))
            seen.append(dmirror.pt.mapped())
            seen.append(dmirror.notifier.invalidate_seq.value)

        assert [] == run_one(body).kinds
        assert [0, 1, 0, [], 3] == seen

    def test_nonblocking_invalidate_with_busy_mutex_is_refused(self) -> None:
        """With the mutex taken, a non-blockable invalidation gets -EAGAIN."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(1)
            await dmirror_fault(dmirror, BASE, BASE + PAGE_SIZE, False)
            r = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(
                r, MMU_NOTIFY_UNMAP, 0, None, mm, BASE, BASE + PAGE_SIZE
            )
            await mutex_lock(dmirror.mutex)
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(r))
            await mutex_unlock(dmirror.mutex)
            seen.append(len(dmirror.pt.mapped()))
            seen.append(await mmu_notifier_invalidate_range_start_nonblock(r))
            await mmu_notifier_invalidate_range_end(r)
            seen.append(len(dmirror.pt.mapped()))

        assert [] == run_one(body).kinds
        assert [-errno.EAGAIN, 1, 0, 0] == seen

    def test_unreadable_memory_fails_with_efault(self) -> None:
        """v6.16: faulting PROT_NONE memory is -EFAULT (hmm_vma_walk_test), not -EPERM."""
        seen: list[int] = []

        async def body() -> None:
            _, dmirror = await opened(1, VmFlags(0))
            seen.append(await dmirror_fault(dmirror, BASE, BASE + PAGE_SIZE, False))

        run_one(body)
        assert [-errno.EFAULT] == seen

    def test_write_fault_on_read_only_memory_fails_with_eperm(self) -> None:
        """A device write fault in a read-only VMA is hmm_vma_fault's -EPERM."""
        seen: list[object] = []

        async def body() -> None:
            _, dmirror = await opened(1, VM_READ)
            seen.append(await dmirror_fault(dmirror, BASE, BASE + PAGE_SIZE, True))
            seen.append(dmirror.pt.mapped())

        run_one(body)
        assert [-errno.EPERM, []] == seen

    def test_retry_bound_gives_ebusy(self) -> None:
        """MODEL: after max_retries retries the timeout branch returns -EBUSY."""
        seen: list[int] = []

        async def body() -> None:
            _, dmirror = await opened(1)
            # -1 retries: the timeout has already passed at the first check.
            seen.append(await dmirror_fault(dmirror, BASE, BASE + PAGE_SIZE, False, -1))

        run_one(body)
        assert [-errno.EBUSY] == seen


class TestReadWriteSnapshot:
    def test_read_faults_once_then_copies(self) -> None:
        """A device read of fresh memory takes one fault round and sees CPU data."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(2)
            await cpu_store(mm, BASE, 11)
            await cpu_store(mm, BASE + PAGE_SIZE, 12)
            cmd = HmmDmirrorCmd(addr=BASE, npages=2)
            seen.append(await dmirror_read(dmirror, cmd))
            seen.extend([cmd.ptr, cmd.cpages, cmd.faults])

        assert [] == run_one(body).kinds
        assert [0, [11, 12], 2, 1] == seen

    def test_write_is_seen_by_the_cpu(self) -> None:
        """A device write lands in the pages the CPU reads."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(2)
            cmd = HmmDmirrorCmd(addr=BASE, npages=2, ptr=[21, 22])
            seen.append(await dmirror_write(dmirror, cmd))
            seen.extend([cmd.cpages, cmd.faults])
            seen.append(await cpu_load(mm, BASE))
            seen.append(await cpu_load(mm, BASE + PAGE_SIZE))

        assert [] == run_one(body).kinds
        assert [0, 2, 1, (0, 21), (0, 22)] == seen

    def test_snapshot_reports_per_page_codes_without_faulting(self) -> None:
        """SNAPSHOT: written page WRITE, untouched page NONE; nothing faulted."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(2)
            await cpu_store(mm, BASE, 1)
            cmd = HmmDmirrorCmd(addr=BASE, npages=2)
            seen.append(await dmirror_snapshot(dmirror, cmd))
            seen.append(cmd.ptr)
            seen.append(mm.ptes[BASE + PAGE_SIZE].value)
            mmn_mm = mm.mmu_notifier_mm
            assert isinstance(mmn_mm, MmuNotifierSubscriptions)
            seen.append(len(mmn_mm.itree))

        assert [] == run_one(body).kinds
        assert [0, [HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_PROT_NONE], None, 1] == seen

    def test_snapshot_of_the_zero_page_reports_zero_read(self) -> None:
        """A CPU read of untouched memory maps the zero page: ZERO | READ."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(1, VM_READ)
            await cpu_load(mm, BASE)
            cmd = HmmDmirrorCmd(addr=BASE, npages=1)
            seen.append(await dmirror_snapshot(dmirror, cmd))
            seen.append(cmd.ptr)

        assert [] == run_one(body).kinds
        assert [0, [HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ]] == seen

    def test_snapshot_of_a_hole_reports_error(self) -> None:
        """A page outside every VMA is reported ERROR (hmm_vma_walk_hole)."""
        seen: list[object] = []

        async def body() -> None:
            _, dmirror = await opened(1)
            cmd = HmmDmirrorCmd(addr=BASE - PAGE_SIZE, npages=2)
            seen.append(await dmirror_snapshot(dmirror, cmd))
            seen.append(cmd.ptr)

        assert [] == run_one(body).kinds
        assert [0, [HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_NONE]] == seen

    def test_snapshot_of_read_only_memory_reports_read(self) -> None:
        """A page of its own mapped read-only is reported READ."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(1, VM_READ | VM_WRITE)
            await cpu_store(mm, BASE, 1)
            assert 0 == await do_mprotect_pkey(mm, BASE, PAGE_SIZE, VM_READ)
            cmd = HmmDmirrorCmd(addr=BASE, npages=1)
            seen.append(await dmirror_snapshot(dmirror, cmd))
            seen.append(cmd.ptr)

        assert [] == run_one(body).kinds
        assert [0, [HMM_DMIRROR_PROT_READ]] == seen


class TestErrorPaths:
    def test_open_fails_with_enomem_and_frees_the_dmirror(self) -> None:
        """A failed notifier allocation makes open() return -ENOMEM and kfree."""
        seen: list[object] = []

        async def body() -> None:
            mm = await make_mm(1)
            mm.notifier_core = cur
            dmirror = Dmirror(name="dmirror", pt=Device(name="dev", mm=mm))
            current_execution().context["failslab"] = 1
            seen.append(await dmirror_fops_open(dmirror, mm))
            seen.append(dmirror.freed)

        run_one(body)
        assert [-errno.ENOMEM, True] == seen

    def test_wrapping_commands_are_einval(self) -> None:
        """READ, WRITE and SNAPSHOT of a range ending before it starts: -EINVAL."""
        seen: list[int] = []

        async def body() -> None:
            _, dmirror = await opened(1)
            seen.append(
                await dmirror_read(dmirror, HmmDmirrorCmd(addr=BASE, npages=-1))
            )
            seen.append(
                await dmirror_write(dmirror, HmmDmirrorCmd(addr=BASE, npages=-1))
            )
            seen.append(
                await dmirror_snapshot(dmirror, HmmDmirrorCmd(addr=BASE, npages=-1))
            )

        run_one(body)
        assert [-errno.EINVAL] * 3 == seen

    def test_dead_mm_fault_is_zero_and_snapshot_einval(self) -> None:
        """With no mm user left, a fault maps nothing (0) and a snapshot is -EINVAL."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(1)
            mm.mm_users.value = 0
            seen.append(await dmirror_fault(dmirror, BASE, BASE + PAGE_SIZE, False))
            seen.append(dmirror.pt.mapped())
            cmd = HmmDmirrorCmd(addr=BASE, npages=1)
            seen.append(await dmirror_snapshot(dmirror, cmd))

        run_one(body)
        assert [0, [], -errno.EINVAL] == seen

    def test_snapshot_retry_bound_gives_ebusy(self) -> None:
        """MODEL: a snapshot whose timeout has passed returns -EBUSY, notifier removed."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(1)
            cmd = HmmDmirrorCmd(addr=BASE, npages=1)
            seen.append(await dmirror_snapshot(dmirror, cmd, -1))
            mmn_mm = mm.mmu_notifier_mm
            assert isinstance(mmn_mm, MmuNotifierSubscriptions)
            seen.append(len(mmn_mm.itree))

        assert [] == run_one(body).kinds
        assert [-errno.EBUSY, 1] == seen

    def test_snapshot_invalidate_bumps_the_sequence_or_refuses(self) -> None:
        """The snapshot notifier's callback sets the seq; busy + non-blockable: False."""
        seen: list[object] = []

        async def body() -> None:
            mm, dmirror = await opened(1)
            dmi = DmirrorInterval(dmirror=dmirror)
            r = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(
                r, MMU_NOTIFY_UNMAP, 0, None, mm, BASE, BASE + PAGE_SIZE
            )
            seen.append(await dmirror_snapshot_invalidate(dmi.notifier, r, 7))
            seen.append(dmi.notifier.invalidate_seq.value)
            r.flags = 1  # MMU_NOTIFIER_RANGE_BLOCKABLE
            seen.append(await dmirror_snapshot_invalidate(dmi.notifier, r, 9))
            r.flags = 0
            await mutex_lock(dmirror.mutex)
            seen.append(await dmirror_snapshot_invalidate(dmi.notifier, r, 11))
            await mutex_unlock(dmirror.mutex)
            seen.append(dmi.notifier.invalidate_seq.value)

        assert [] == run_one(body).kinds
        assert [True, 7, True, False, 9] == seen
