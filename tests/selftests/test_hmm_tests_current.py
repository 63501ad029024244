"""The mirroring cases of tools/testing/selftests/mm/hmm-tests.c, on the current (v6.16) model.

The same cases as ``test_hmm_tests`` (v5.5), with "the device" a ``Dmirror``
driven by lib/test_hmm.c on today's API (``kernel.drivers.dmirror_current``)
on an mm served by today's notifier core.  The kernel test was written for
this API, so here every expectation is the kernel test's own: where the v5.5
model had to differ (``anon_read_prot``, ``anon_write_prot``, ``snapshot``),
the current model gives the kernel's answer.
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
    fork_process,
    mmap_buffer,
)
from tests.support.kernel_harness import run_one

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Instance, SimpleInstance, explore
from hmmsim.kernel import mmu_notifier_current
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.drivers.dmirror import (
    HMM_DMIRROR_PROT_ERROR,
    HMM_DMIRROR_PROT_READ,
    HMM_DMIRROR_PROT_WRITE,
    HMM_DMIRROR_PROT_ZERO,
    Dmirror,
    HmmDmirrorCmd,
)
from hmmsim.kernel.drivers.dmirror_current import (
    dmirror_fops_open,
    dmirror_fops_release,
    dmirror_read,
    dmirror_snapshot,
    dmirror_write,
)
from hmmsim.kernel.fork import mm_alloc, mmput
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmap import sys_munmap
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.types import PAGE_SIZE, VM_NONE, VM_READ, VM_WRITE
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.scenarios._world import complete, new_completion, wait_for_completion

HMM_DMIRROR_READ: Final = "read"
HMM_DMIRROR_WRITE: Final = "write"
HMM_DMIRROR_SNAPSHOT: Final = "snapshot"

Request = Callable[[Dmirror, HmmDmirrorCmd], Awaitable[int]]
REQUESTS: Final[dict[str, Request]] = {
    HMM_DMIRROR_READ: dmirror_read,
    HMM_DMIRROR_WRITE: dmirror_write,
    HMM_DMIRROR_SNAPSHOT: dmirror_snapshot,
}


async def hmm_open(mm: MmStruct, unit: int = 0) -> Dmirror:
    """open("/dev/hmm_dmirror<unit>") from the process owning ``mm``."""
    dmirror = Dmirror(name=f"dmirror{unit}", pt=Device(name=f"dev{unit}", mm=mm))
    assert 0 == await dmirror_fops_open(dmirror, mm)
    return dmirror


async def hmm_dmirror_cmd(
    dmirror: Dmirror, request: str, buffer: HmmBuffer, npages: int
) -> int:
    """The ioctl wrapper of hmm-tests.c: on success copy out cpages/faults."""
    cmd = HmmDmirrorCmd(addr=buffer.ptr, npages=npages, ptr=list(buffer.mirror))
    ret = await REQUESTS[request](dmirror, cmd)
    if ret:
        return ret
    if request != HMM_DMIRROR_WRITE:
        buffer.mirror[:npages] = cmd.ptr
    buffer.cpages = cmd.cpages
    buffer.faults = cmd.faults
    return 0


async def new_process() -> MmStruct:
    mm = mm_alloc("selftest")
    mm.notifier_core = mmu_notifier_current
    return mm


def hmm_test(body: Callable[[Asserts], Awaitable[None]]) -> None:
    """Run one case in a fresh execution; no finding and no failed ASSERT."""
    asserts = Asserts()

    async def task() -> None:
        await body(asserts)

    run = run_one(task)

    assert [] == run.kinds
    assert [] == asserts.failures


def test_open_close() -> None:
    """open_close: open and close the device."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        await dmirror_fops_release(await hmm_open(mm))

    hmm_test(body)


def test_anon_read() -> None:
    """anon_read: a device read of private anonymous memory, one fault round."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        for i in range(2, NPAGES):
            await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i)
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, buffer.ptr, buffer.size, VM_READ))
        t.ASSERT_EQ((0, 0), await cpu_load(mm, buffer.ptr + PAGE_SIZE))

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(1, buffer.faults)
        t.ASSERT_EQ([0, 0, *range(2, NPAGES)], buffer.mirror)
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_anon_read_prot() -> None:
    """anon_read_prot: a device read of PROT_NONE memory fails with -EFAULT, as in the kernel test."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        for i in range(NPAGES):
            await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i)
        buffer.mirror = [-i for i in range(NPAGES)]
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, buffer.ptr, buffer.size, VM_NONE))

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES)
        t.ASSERT_EQ(-errno.EFAULT, ret)

        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, buffer.ptr, buffer.size, VM_READ))
        for i in range(NPAGES):
            t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))
        t.ASSERT_EQ([-i for i in range(NPAGES)], buffer.mirror)
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_anon_write() -> None:
    """anon_write: a device write to private anonymous memory reaches the CPU."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        buffer.mirror = list(range(NPAGES))

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_WRITE, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(1, buffer.faults)
        for i in range(NPAGES):
            t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_anon_write_prot() -> None:
    """anon_write_prot: write to read-only memory is -EPERM (hmm_vma_fault), as in the kernel test."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ)

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, 1)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(1, buffer.cpages)
        t.ASSERT_EQ(1, buffer.faults)

        buffer.mirror = list(range(NPAGES))
        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_WRITE, buffer, NPAGES)
        t.ASSERT_EQ(-errno.EPERM, ret)
        for i in range(NPAGES):
            t.ASSERT_EQ((0, 0), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))

        prot = VM_READ | VM_WRITE
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, buffer.ptr, buffer.size, prot))
        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_WRITE, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(1, buffer.faults)
        for i in range(NPAGES):
            t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_anon_write_child() -> None:
    """anon_write_child: a device write in a forked child copies on write."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        for i in range(NPAGES):
            await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i)
        child = await fork_process(mm)
        child_buffer = HmmBuffer(
            ptr=buffer.ptr, size=buffer.size, mirror=[-i for i in range(NPAGES)]
        )

        child_fd = await hmm_open(child)
        ret = await hmm_dmirror_cmd(child_fd, HMM_DMIRROR_WRITE, child_buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, child_buffer.cpages)
        for i in range(NPAGES):
            t.ASSERT_EQ((0, -i), await cpu_load(child, buffer.ptr + i * PAGE_SIZE))
        await dmirror_fops_release(child_fd)
        await mmput(child)

        for i in range(NPAGES):
            t.ASSERT_EQ((0, i), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))

    hmm_test(body)


def test_anon_read_multiple() -> None:
    """anon_read_multiple: NTIMES rounds of device reads of fresh buffers."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        for c in range(NTIMES):
            buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
            for i in range(NPAGES):
                await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i + c)

            ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES)
            t.ASSERT_EQ(0, ret)
            t.ASSERT_EQ(1, buffer.faults)
            t.ASSERT_EQ([i + c for i in range(NPAGES)], buffer.mirror)
            t.ASSERT_EQ(0, await sys_munmap(mm, buffer.ptr, buffer.size))
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_anon_teardown() -> None:
    """anon_teardown: a device read races munmap of half the buffer; success means right data."""
    outcomes: list[tuple[int, int, list[int]]] = []

    def program() -> Instance:
        ready = new_completion("ready")
        state: dict[str, Any] = {}

        async def reader() -> None:
            mm = await new_process()
            fd = await hmm_open(mm)
            buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
            for i in range(NPAGES):
                await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i)
            state["mm"], state["buffer"] = mm, buffer
            await complete(ready)

            ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES)
            outcomes.append((ret, buffer.cpages, list(buffer.mirror)))

        async def unmap_buffer() -> None:
            await wait_for_completion(ready)
            mm, buffer = state["mm"], state["buffer"]
            half = buffer.size // 2
            await sys_munmap(mm, buffer.ptr + half, half)

        return SimpleInstance(
            task_list=[("reader", reader()), ("unmap_buffer", unmap_buffer())]
        )

    result = explore(program, ExploreConfig(max_executions=20_000, shrink=False))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert [] == list(result.kinds)
    successes = [o for o in outcomes if o[0] == 0]
    assert successes, "some interleaving lets the read finish before the munmap"
    for _, cpages, mirror in successes:
        assert NPAGES == cpages
        assert list(range(NPAGES)) == mirror
    assert {-errno.EFAULT} >= {o[0] for o in outcomes if o[0]}


def test_snapshot() -> None:
    """snapshot (system-memory part): the kernel test's codes, hole and PROT_NONE ERROR."""

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        p = [buffer.ptr + i * PAGE_SIZE for i in range(NPAGES)]
        # Page 0: a hole; 1: PROT_NONE; 2: zero page read-only; 3: written.
        t.ASSERT_EQ(0, await sys_munmap(mm, p[0], PAGE_SIZE))
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, p[2], PAGE_SIZE, VM_READ))
        t.ASSERT_EQ((0, 0), await cpu_load(mm, p[2]))
        await cpu_store(mm, p[3], 3)
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, p[1], PAGE_SIZE, VM_NONE))

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_SNAPSHOT, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(
            [
                HMM_DMIRROR_PROT_ERROR,
                HMM_DMIRROR_PROT_ERROR,
                HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ,
                HMM_DMIRROR_PROT_WRITE,
            ],
            buffer.mirror,
        )
        await dmirror_fops_release(fd)

    hmm_test(body)
