"""The migration cases of tools/testing/selftests/mm/hmm-tests.c, on the current (v6.16) model.

"The device" is lib/test_hmm.c's dmirror with device-private memory
(``kernel.drivers.dmirror_current``: a ``DmirrorDevice`` per /dev/hmm_dmirror
unit), migration is ``kernel.migrate_device``, and a CPU access to a page in
device memory faults it back through ``do_swap_page`` -> ``migrate_to_ram``.
Sizes and rounds are those of ``test_hmm_tests`` (NPAGES pages, NTIMES
rounds); docs/selftests.md lists what differs from the kernel test.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from typing import Any, Final

from tests.selftests.test_hmm_tests import (
    NPAGES,
    NTIMES,
    Asserts,
    HmmBuffer,
    mmap_buffer,
)
from tests.selftests.test_hmm_tests_current import new_process
from tests.support.kernel_harness import run_one

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Instance, SimpleInstance, explore
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.drivers.dmirror import (
    HMM_DMIRROR_PROT_NONE,
    HMM_DMIRROR_PROT_WRITE,
    Dmirror,
    HmmDmirrorCmd,
)
from hmmsim.kernel.drivers.dmirror_current import (
    HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
    DmirrorDevice,
    dmirror_device_init,
    dmirror_device_remove_chunks,
    dmirror_fops_open,
    dmirror_fops_release,
    dmirror_migrate_to_device,
    dmirror_migrate_to_system,
    dmirror_read,
    dmirror_snapshot,
)
from hmmsim.kernel.memremap import is_zone_device_page
from hmmsim.kernel.mm_types import MmStruct, pte_page, pte_present
from hmmsim.kernel.mmap import sys_munmap
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.types import (
    PAGE_SIZE,
    VM_NONE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.scenarios._world import complete, new_completion, wait_for_completion

HMM_DMIRROR_READ: Final = "read"
HMM_DMIRROR_SNAPSHOT: Final = "snapshot"
HMM_DMIRROR_MIGRATE_TO_DEV: Final = "migrate-to-dev"
HMM_DMIRROR_MIGRATE_TO_SYS: Final = "migrate-to-sys"
HMM_DMIRROR_RELEASE: Final = "release"


async def dmirror_release(dmirror: Dmirror, cmd: HmmDmirrorCmd) -> int:
    """The HMM_DMIRROR_RELEASE case of dmirror_fops_unlocked_ioctl (lib/test_hmm.c)."""
    del cmd
    assert isinstance(dmirror.mdevice, DmirrorDevice)
    await dmirror_device_remove_chunks(dmirror.mdevice)
    return 0


Request = Callable[[Dmirror, HmmDmirrorCmd], Awaitable[int]]
REQUESTS: Final[dict[str, Request]] = {
    HMM_DMIRROR_READ: dmirror_read,
    HMM_DMIRROR_SNAPSHOT: dmirror_snapshot,
    HMM_DMIRROR_MIGRATE_TO_DEV: dmirror_migrate_to_device,
    HMM_DMIRROR_MIGRATE_TO_SYS: dmirror_migrate_to_system,
    HMM_DMIRROR_RELEASE: dmirror_release,
}


async def hmm_open(mm: MmStruct, unit: int = 0) -> Dmirror:
    """open("/dev/hmm_dmirror<unit>"): a dmirror of a device with private memory."""
    mdevice = DmirrorDevice(name=f"hmm_dmirror{unit}")
    assert 0 == await dmirror_device_init(mdevice)
    dmirror = Dmirror(
        name=f"dmirror{unit}", pt=Device(name=f"dev{unit}", mm=mm), mdevice=mdevice
    )
    assert 0 == await dmirror_fops_open(dmirror, mm)
    return dmirror


async def hmm_dmirror_cmd(
    dmirror: Dmirror, request: str, buffer: HmmBuffer, npages: int
) -> int:
    """The ioctl wrapper of hmm-tests.c: on success copy out the buffer, cpages, faults."""
    cmd = HmmDmirrorCmd(addr=buffer.ptr, npages=npages, ptr=list(buffer.mirror))
    ret = await REQUESTS[request](dmirror, cmd)
    if ret:
        return ret
    buffer.mirror[:npages] = cmd.ptr[:npages]
    buffer.cpages = cmd.cpages
    buffer.faults = cmd.faults
    return 0


async def hmm_migrate_sys_to_dev(
    dmirror: Dmirror, buffer: HmmBuffer, npages: int
) -> int:
    """hmm-tests.c hmm_migrate_sys_to_dev."""
    return await hmm_dmirror_cmd(dmirror, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)


async def hmm_migrate_dev_to_sys(
    dmirror: Dmirror, buffer: HmmBuffer, npages: int
) -> int:
    """hmm-tests.c hmm_migrate_dev_to_sys."""
    return await hmm_dmirror_cmd(dmirror, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages)


def hmm_test(body: Callable[[Asserts], Awaitable[None]]) -> None:
    """Run one case in a fresh execution; no finding and no failed ASSERT."""
    asserts = Asserts()

    async def task() -> None:
        await body(asserts)

    run = run_one(task)

    assert [] == run.kinds
    assert [] == asserts.failures


async def init_buffer(mm: MmStruct, buffer: HmmBuffer, base: int = 0) -> None:
    """Initialize buffer in system memory: page i holds base + i."""
    for i in range(buffer.size // PAGE_SIZE):
        assert 0 == await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, base + i)


def test_migrate() -> None:
    """migrate: every page moves to device memory and the device reads it back."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        await init_buffer(mm, buffer)

        ret = await hmm_migrate_sys_to_dev(fd, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(list(range(NPAGES)), buffer.mirror)
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_migrate_fault() -> None:
    """migrate_fault: CPU reads fault half the pages back; the mix migrates to the device again."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        await init_buffer(mm, buffer)

        ret = await hmm_migrate_sys_to_dev(fd, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(list(range(NPAGES)), buffer.mirror)

        # Fault half the pages back to system memory and check them.
        for i in range(NPAGES // 2):
            t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))

        # Migrate memory to the device again.
        ret = await hmm_migrate_sys_to_dev(fd, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(list(range(NPAGES)), buffer.mirror)
        await dmirror_fops_release(fd)

    hmm_test(body)


def in_system_memory(mm: MmStruct, addr: int) -> bool:
    """The PTE at ``addr`` maps a system page (a CPU access takes no device fault)."""
    ptep = mm.ptes.get(addr)
    if ptep is None or not pte_present(ptep.value):
        return False
    return not is_zone_device_page(pte_page(ptep.value))


def test_migrate_release() -> None:
    """migrate_release: HMM_DMIRROR_RELEASE evicts the device pages; the CPU reads them from system memory."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        await init_buffer(mm, buffer)

        # Migrate memory to device.
        ret = await hmm_migrate_sys_to_dev(fd, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)

        # Check what the device read.
        t.ASSERT_EQ(list(range(NPAGES)), buffer.mirror)

        # Release device memory.
        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_RELEASE, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)

        # The eviction put every page back in system memory: no device fault.
        pages = [buffer.ptr + i * PAGE_SIZE for i in range(NPAGES)]
        t.ASSERT_EQ([True] * NPAGES, [in_system_memory(mm, a) for a in pages])

        # Read the pages back (the kernel test reads half the buffer's ints).
        for i in range(NPAGES // 2):
            t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_migrate_shared() -> None:
    """migrate_shared: shared anonymous memory is not migrated; the device read finds nothing (-ENOENT)."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE | VM_SHARED)

        ret = await hmm_migrate_sys_to_dev(fd, buffer, NPAGES)
        t.ASSERT_EQ(-errno.ENOENT, ret)
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_migrate_mixed() -> None:
    """migrate_mixed (hmm2): PROT_NONE and a hole are -EINVAL; zero, read-only and written pages migrate; another device's page does not."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd0 = await hmm_open(mm, 0)
        fd1 = await hmm_open(mm, 1)
        npages = 6
        buffer = await mmap_buffer(mm, VM_NONE, npages)
        p = buffer.ptr

        # Migrating a protected area should be an error.
        t.ASSERT_EQ(-errno.EINVAL, await hmm_migrate_sys_to_dev(fd1, buffer, npages))

        # Punch a hole after the first page address.
        t.ASSERT_EQ(0, await sys_munmap(mm, p + PAGE_SIZE, PAGE_SIZE))

        # We expect an error if the vma doesn't cover the range.
        t.ASSERT_EQ(-errno.EINVAL, await hmm_migrate_sys_to_dev(fd1, buffer, 3))

        # Page 2 will be a read-only zero page.
        t.ASSERT_EQ(
            0, await do_mprotect_pkey(mm, p + 2 * PAGE_SIZE, PAGE_SIZE, VM_READ)
        )
        t.ASSERT_EQ((0, 0), await cpu_load(mm, p + 2 * PAGE_SIZE))
        val = 3

        # Page 3 will be read-only.
        rw = VM_READ | VM_WRITE
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, p + 3 * PAGE_SIZE, PAGE_SIZE, rw))
        t.ASSERT_EQ(0, await cpu_store(mm, p + 3 * PAGE_SIZE, val))
        t.ASSERT_EQ(
            0, await do_mprotect_pkey(mm, p + 3 * PAGE_SIZE, PAGE_SIZE, VM_READ)
        )

        # Pages 4-5 will be read-write.
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, p + 4 * PAGE_SIZE, 2 * PAGE_SIZE, rw))
        t.ASSERT_EQ(0, await cpu_store(mm, p + 4 * PAGE_SIZE, val))
        t.ASSERT_EQ(0, await cpu_store(mm, p + 5 * PAGE_SIZE, val))

        # Now try to migrate pages 2-5 to device 1.
        buffer.ptr = p + 2 * PAGE_SIZE
        t.ASSERT_EQ(0, await hmm_migrate_sys_to_dev(fd1, buffer, 4))
        t.ASSERT_EQ(4, buffer.cpages)

        # Page 5 won't be migrated to device 0 because it's on device 1.
        buffer.ptr = p + 5 * PAGE_SIZE
        t.ASSERT_EQ(-errno.ENOENT, await hmm_migrate_sys_to_dev(fd0, buffer, 1))
        await dmirror_fops_release(fd0)
        await dmirror_fops_release(fd1)

    hmm_test(body)


def test_migrate_multiple() -> None:
    """migrate_multiple: NTIMES rounds of migrating fresh buffers to the device and faulting them back."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        for _ in range(NTIMES):
            buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
            await init_buffer(mm, buffer)

            ret = await hmm_migrate_sys_to_dev(fd, buffer, NPAGES)
            t.ASSERT_EQ(0, ret)
            t.ASSERT_EQ(NPAGES, buffer.cpages)
            t.ASSERT_EQ(list(range(NPAGES)), buffer.mirror)

            # Private device memory: the CPU faults the pages back.
            for i in range(NPAGES):
                t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))
            t.ASSERT_EQ(0, await sys_munmap(mm, buffer.ptr, buffer.size))
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_migrate_to_system() -> None:
    """The coherent branch of migrate_multiple on private memory: HMM_DMIRROR_MIGRATE_TO_SYS moves every page back."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        await init_buffer(mm, buffer)
        t.ASSERT_EQ(0, await hmm_migrate_sys_to_dev(fd, buffer, NPAGES))

        ret = await hmm_migrate_dev_to_sys(fd, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        for i in range(NPAGES):
            t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_double_map() -> None:
    """double_map (hmm2): two devices read; after migrating to device 1, device 0's read faults the pages back."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd0 = await hmm_open(mm, 0)
        fd1 = await hmm_open(mm, 1)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        await init_buffer(mm, buffer)
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, buffer.ptr, buffer.size, VM_READ))

        for fd in (fd0, fd1):
            t.ASSERT_EQ(0, await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES))
            t.ASSERT_EQ(NPAGES, buffer.cpages)
            t.ASSERT_EQ(1, buffer.faults)
            t.ASSERT_EQ(list(range(NPAGES)), buffer.mirror)

        # Migrate pages to device 1 and try to read from device 0.
        t.ASSERT_EQ(0, await hmm_migrate_sys_to_dev(fd1, buffer, NPAGES))
        t.ASSERT_EQ(NPAGES, buffer.cpages)

        t.ASSERT_EQ(0, await hmm_dmirror_cmd(fd0, HMM_DMIRROR_READ, buffer, NPAGES))
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(1, buffer.faults)
        t.ASSERT_EQ(list(range(NPAGES)), buffer.mirror)
        await dmirror_fops_release(fd0)
        await dmirror_fops_release(fd1)

    hmm_test(body)


def test_snapshot_device_pages() -> None:
    """snapshot (hmm2, device part): a page on device 0 is DEV_PRIVATE_LOCAL|WRITE; one on device 1 is NONE to device 0."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd0 = await hmm_open(mm, 0)
        fd1 = await hmm_open(mm, 1)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE, 3)
        p = buffer.ptr
        t.ASSERT_EQ(0, await cpu_store(mm, p, 3))

        # Page 1 will be migrated to device 0, page 2 to device 1.
        buffer.ptr = p + PAGE_SIZE
        t.ASSERT_EQ(0, await hmm_migrate_sys_to_dev(fd0, buffer, 1))
        t.ASSERT_EQ(1, buffer.cpages)
        buffer.ptr = p + 2 * PAGE_SIZE
        t.ASSERT_EQ(0, await hmm_migrate_sys_to_dev(fd1, buffer, 1))
        t.ASSERT_EQ(1, buffer.cpages)

        buffer.ptr = p
        t.ASSERT_EQ(0, await hmm_dmirror_cmd(fd0, HMM_DMIRROR_SNAPSHOT, buffer, 3))
        t.ASSERT_EQ(3, buffer.cpages)
        t.ASSERT_EQ(
            [
                HMM_DMIRROR_PROT_WRITE,
                HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE,
                HMM_DMIRROR_PROT_NONE,
            ],
            buffer.mirror,
        )
        await dmirror_fops_release(fd0)
        await dmirror_fops_release(fd1)

    hmm_test(body)


def test_migrate_teardown() -> None:
    """anon_teardown with device pages: migration to the device races munmap of half the buffer, every interleaving."""
    outcomes: list[tuple[int, int, list[int]]] = []

    def program() -> Instance:
        ready = new_completion("ready")
        state: dict[str, Any] = {}

        async def migrator() -> None:
            mm = await new_process()
            fd = await hmm_open(mm)
            buffer = await mmap_buffer(mm, VM_READ | VM_WRITE, 2)
            await init_buffer(mm, buffer)
            state["mm"], state["buffer"] = mm, buffer
            await complete(ready)

            ret = await hmm_migrate_sys_to_dev(fd, buffer, 2)
            outcomes.append((ret, buffer.cpages, list(buffer.mirror)))

        async def unmap_buffer() -> None:
            await wait_for_completion(ready)
            mm, buffer = state["mm"], state["buffer"]
            half = buffer.size // 2
            await sys_munmap(mm, buffer.ptr + half, half)

        return SimpleInstance(
            task_list=[("migrator", migrator()), ("unmap_buffer", unmap_buffer())]
        )

    result = explore(program, ExploreConfig(max_executions=20_000, shrink=False))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert [] == list(result.kinds)
    successes = [o for o in outcomes if o[0] == 0]
    assert successes, "some interleaving migrates both pages before the munmap"
    for _, cpages, mirror in successes:
        assert 2 == cpages
        assert [0, 1] == mirror
    assert {-errno.EINVAL, -errno.ENOENT} >= {o[0] for o in outcomes if o[0]}


def _release_race(
    name: str, racer: Callable[[MmStruct, HmmBuffer], Awaitable[int]]
) -> tuple[list[int], list[list[tuple[int, int]]], Any]:
    """Explore every interleaving of HMM_DMIRROR_RELEASE with ``racer`` (two pages on the device).

    Returns the racer's results, what the CPU reads from both pages once
    both tasks are done, and the exploration result.
    """
    raced: list[int] = []
    after: list[list[tuple[int, int]]] = []

    def program() -> Instance:
        ready = new_completion("ready")
        done = new_completion("done")
        state: dict[str, Any] = {}

        async def releaser() -> None:
            mm = await new_process()
            fd = await hmm_open(mm)
            buffer = await mmap_buffer(mm, VM_READ | VM_WRITE, 2)
            await init_buffer(mm, buffer)
            assert 0 == await hmm_migrate_sys_to_dev(fd, buffer, 2)
            assert 2 == buffer.cpages
            state["mm"], state["buffer"] = mm, buffer
            await complete(ready)

            assert 0 == await hmm_dmirror_cmd(fd, HMM_DMIRROR_RELEASE, buffer, 2)
            await wait_for_completion(done)
            after.append(
                [await cpu_load(mm, buffer.ptr + i * PAGE_SIZE) for i in range(2)]
            )
            await dmirror_fops_release(fd)

        async def racing() -> None:
            await wait_for_completion(ready)
            raced.append(await racer(state["mm"], state["buffer"]))
            await complete(done)

        return SimpleInstance(task_list=[("releaser", releaser()), (name, racing())])

    result = explore(program, ExploreConfig(max_executions=20_000, shrink=False))
    return raced, after, result


def test_migrate_release_vs_munmap() -> None:
    """HMM_DMIRROR_RELEASE races munmap of one of the two device pages, every interleaving.

    The munmap zaps the device-private entry before the release's rmap walk
    reaches it (the page is freed, or only dropped by the release's own
    reference), or finds the migration entry the walk installed, or the
    page already evicted; the remaining page always comes back with its data.
    """

    async def unmap_page1(mm: MmStruct, buffer: HmmBuffer) -> int:
        return await sys_munmap(mm, buffer.ptr + PAGE_SIZE, PAGE_SIZE)

    raced, after, result = _release_race("unmap_page1", unmap_page1)

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert [] == list(result.kinds)
    assert {0} == set(raced)
    assert {((0, 0), (-errno.EFAULT, 0))} == {tuple(a) for a in after}
