"""The mirroring cases of tools/testing/selftests/vm/hmm-tests.c, on the v5.5 model.

One test per kernel case, named after it, with the kernel's assertions
(``ASSERT_EQ`` below records a mismatch instead of aborting the task).  The
process is an mm served by the v5.5 notifier core; "the device" is a
``Dmirror`` opened on it (lib/test_hmm.c on the v5.5 API).  Buffers are
``NPAGES`` pages instead of the kernel's 1024 and a page holds one word, so
"``ptr[i] = i`` for every int" becomes "page i holds i".  docs/selftests.md
lists which kernel cases run here, which do not and why, and where the
v5.5 answer differs from the v5.8+ test's.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from tests.support.kernel_harness import run_one

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Instance, SimpleInstance, explore
from hmmsim.kernel import mmu_notifier_v55
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.drivers.dmirror import (
    HMM_DMIRROR_PROT_NONE,
    HMM_DMIRROR_PROT_READ,
    HMM_DMIRROR_PROT_WRITE,
    HMM_DMIRROR_PROT_ZERO,
    Dmirror,
    HmmDmirrorCmd,
    dmirror_fops_open,
    dmirror_fops_release,
    dmirror_read,
    dmirror_snapshot,
    dmirror_write,
)
from hmmsim.kernel.fork import dup_mm, mm_alloc, mmput
from hmmsim.kernel.mm_types import MmStruct, Pte, TaskStruct
from hmmsim.kernel.mmap import sys_munmap, vm_mmap
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.page_alloc import is_zero_pfn
from hmmsim.kernel.types import (
    PAGE_SIZE,
    VM_NONE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VmFlags,
)
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.scenarios._world import complete, new_completion, wait_for_completion

#: Pages per buffer (the kernel's HMM_BUFFER_SIZE is 1024 pages).
NPAGES: Final = 4
#: Rounds of the *_multiple / teardown cases (the kernel's NTIMES is 10).
NTIMES: Final = 3
#: Where the process maps its buffers (mmap(NULL, ...) picks an address).
ADDR: Final = 0x200000

HMM_DMIRROR_READ: Final = "read"
HMM_DMIRROR_WRITE: Final = "write"
HMM_DMIRROR_SNAPSHOT: Final = "snapshot"

Request = Callable[[Dmirror, HmmDmirrorCmd], Awaitable[int]]
REQUESTS: Final[dict[str, Request]] = {
    HMM_DMIRROR_READ: dmirror_read,
    HMM_DMIRROR_WRITE: dmirror_write,
    HMM_DMIRROR_SNAPSHOT: dmirror_snapshot,
}


@dataclass
class HmmBuffer:
    """``struct hmm_buffer``: the CPU buffer, the user-side mirror copy, counts."""

    ptr: int
    size: int
    mirror: list[int] = field(default_factory=list)
    cpages: int = 0
    faults: int = 0


class Asserts:
    """The kselftest ASSERT_* macros, recording mismatches with their line."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def ASSERT_EQ(self, expected: object, seen: object) -> None:
        if expected != seen:
            line = sys._getframe(1).f_lineno
            self.failures.append(f"line {line}: {expected!r} != {seen!r}")


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
    mm.notifier_core = mmu_notifier_v55
    return mm


async def mmap_buffer(mm: MmStruct, prot: VmFlags, npages: int = NPAGES) -> HmmBuffer:
    size = npages * PAGE_SIZE
    assert ADDR == await vm_mmap(mm, ADDR, size, prot)
    return HmmBuffer(ptr=ADDR, size=size, mirror=[0] * npages)


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
    """anon_read: a device read of private anonymous memory, one fault round.

    The second page, read by the CPU after mprotect(PROT_READ), maps the
    zero page; the v5.5 walk reports it like a read-only page.
    """

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        # Leave the first two pages zero (pte_none and the zero page).
        for i in range(2, NPAGES):
            await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i)
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, buffer.ptr, buffer.size, VM_READ))
        t.ASSERT_EQ((0, 0), await cpu_load(mm, buffer.ptr + PAGE_SIZE))
        zero_pte = mm.ptes[buffer.ptr + PAGE_SIZE].value
        t.ASSERT_EQ(True, isinstance(zero_pte, Pte) and is_zero_pfn(zero_pte.page.pfn))

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(1, buffer.faults)
        t.ASSERT_EQ([0, 0, *range(2, NPAGES)], buffer.mirror)
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_anon_read_prot() -> None:
    """anon_read_prot: a device read of PROT_NONE memory fails, the mirror is untouched.

    v5.5: hmm_range_fault refuses an unreadable VMA with -EPERM; the kernel
    test (written for v5.8, where hmm_vma_walk_test gives -EFAULT) expects
    -EFAULT.
    """

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        for i in range(NPAGES):
            await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i)
        buffer.mirror = [-i for i in range(NPAGES)]
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, buffer.ptr, buffer.size, VM_NONE))

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES)
        t.ASSERT_EQ(-errno.EPERM, ret)

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
    """anon_write_prot: read of read-only memory works, write fails until mprotect RW.

    As the kernel test expects, the refused write is -EPERM: v5.4+'s
    hmm_vma_walk_hole_ refuses a write fault in a VMA without VM_WRITE
    ("mm/hmm: hmm_range_fault() infinite loop", c18ce674d548).
    """

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


async def fork_process(parent: MmStruct) -> MmStruct:
    """fork(): the child's mm is a copy of the parent's (dup_mm)."""
    child = await dup_mm(TaskStruct(pid=2, comm="selftest-child"), parent)
    assert child is not None
    return child


async def anon_write_child_body(t: Asserts, shared: VmFlags) -> None:
    """Body of anon_write_child(_shared): ``shared`` is VM_NONE or VM_SHARED."""
    mm = await new_process()
    buffer = await mmap_buffer(mm, VM_READ | VM_WRITE | shared)
    # Initialize buffer->ptr so we can tell if it is written.
    for i in range(NPAGES):
        await cpu_store(mm, buffer.ptr + i * PAGE_SIZE, i)
    # Initialize data that the device will write to buffer->ptr.
    buffer.mirror = [-i for i in range(NPAGES)]

    # fork(): the child runs to its exit, the parent waits for it.
    child = await fork_process(mm)
    child_buffer = HmmBuffer(
        ptr=buffer.ptr, size=buffer.size, mirror=list(buffer.mirror)
    )

    # Child: it sees the parent's values.
    for i in range(NPAGES):
        t.ASSERT_EQ((0, i), await cpu_load(child, buffer.ptr + i * PAGE_SIZE))
    t.ASSERT_EQ([-i for i in range(NPAGES)], child_buffer.mirror)

    # The child process needs its own mirror to its own mm.
    child_fd = await hmm_open(child)
    ret = await hmm_dmirror_cmd(child_fd, HMM_DMIRROR_WRITE, child_buffer, NPAGES)
    t.ASSERT_EQ(0, ret)
    t.ASSERT_EQ(NPAGES, child_buffer.cpages)
    t.ASSERT_EQ(1, child_buffer.faults)
    # Check what the device wrote.
    for i in range(NPAGES):
        t.ASSERT_EQ((0, -i), await cpu_load(child, buffer.ptr + i * PAGE_SIZE))
    await dmirror_fops_release(child_fd)
    await mmput(child)  # exit(0)

    # Parent: private memory did not change, shared memory did.
    for i in range(NPAGES):
        expected = -i if shared else i
        t.ASSERT_EQ((0, expected), await cpu_load(mm, buffer.ptr + i * PAGE_SIZE))


def test_anon_write_child() -> None:
    """anon_write_child: a device write in a forked child copies on write.

    The parent's private pages become copy-on-write at fork; the child's
    device write faults them for write and gets copies, so the parent's
    buffer keeps its values.
    """

    async def body(t: Asserts) -> None:
        await anon_write_child_body(t, VM_NONE)

    hmm_test(body)


def test_anon_write_child_shared() -> None:
    """anon_write_child_shared: a device write in a forked child of shared memory.

    MAP_SHARED anonymous memory is one shmem file for both processes: no
    copy-on-write, the parent sees what the child's device wrote.
    """

    async def body(t: Asserts) -> None:
        await anon_write_child_body(t, VM_SHARED)

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
            t.ASSERT_EQ(NPAGES, buffer.cpages)
            t.ASSERT_EQ(1, buffer.faults)
            t.ASSERT_EQ([i + c for i in range(NPAGES)], buffer.mirror)
            t.ASSERT_EQ(0, await sys_munmap(mm, buffer.ptr, buffer.size))
        await dmirror_fops_release(fd)

    hmm_test(body)


def test_anon_teardown() -> None:
    """anon_teardown: a device read races munmap of half the buffer; success means right data.

    The kernel runs NTIMES rounds with a random delay before the munmap; the
    model explores every interleaving of one round with DPOR instead.
    """
    outcomes: list[tuple[int, int, int, list[int]]] = []

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
            await complete(ready)  # pthread_create(unmap_buffer)

            ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, NPAGES)
            outcomes.append((ret, buffer.cpages, buffer.faults, list(buffer.mirror)))

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
    for _, cpages, faults, mirror in successes:
        assert NPAGES == cpages
        assert 1 == faults
        assert list(range(NPAGES)) == mirror
    assert {-errno.EFAULT} >= {o[0] for o in outcomes if o[0]}


def test_snapshot() -> None:
    """snapshot (system-memory part): per-page codes without faulting anything.

    Kernel (hmm2, v5.8+): hole -> ERROR, PROT_NONE -> ERROR, zero page ->
    ZERO|READ, read-only -> READ, read-write -> WRITE, then device pages.
    v5.5: a hole is reported NONE (hmm_vma_walk_hole fills NONE when not
    faulting), a PROT_NONE VMA makes the whole snapshot -EPERM (checked
    separately), the zero page is ZERO|READ as in the test (checked after
    a CPU read of the untouched page), no device-private pages.
    """

    async def body(t: Asserts) -> None:
        mm = await new_process()
        fd = await hmm_open(mm)
        buffer = await mmap_buffer(mm, VM_READ | VM_WRITE)
        p = [buffer.ptr + i * PAGE_SIZE for i in range(NPAGES)]
        # Page 0: a hole; page 1: untouched; page 2: read-only; page 3: written.
        t.ASSERT_EQ(0, await sys_munmap(mm, p[0], PAGE_SIZE))
        await cpu_store(mm, p[2], 2)
        await cpu_store(mm, p[3], 3)
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, p[2], PAGE_SIZE, VM_READ))

        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_SNAPSHOT, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(NPAGES, buffer.cpages)
        t.ASSERT_EQ(
            [
                HMM_DMIRROR_PROT_NONE,
                HMM_DMIRROR_PROT_NONE,
                HMM_DMIRROR_PROT_READ,
                HMM_DMIRROR_PROT_WRITE,
            ],
            buffer.mirror,
        )
        # Nothing was faulted in by the snapshot.
        t.ASSERT_EQ(None, mm.ptes[p[1]].value)

        # A CPU read maps the zero page: ZERO | READ.
        t.ASSERT_EQ((0, 0), await cpu_load(mm, p[1]))
        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_SNAPSHOT, buffer, NPAGES)
        t.ASSERT_EQ(0, ret)
        t.ASSERT_EQ(HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ, buffer.mirror[1])

        # v5.5: a PROT_NONE VMA in the range fails the whole snapshot.
        t.ASSERT_EQ(0, await do_mprotect_pkey(mm, p[1], PAGE_SIZE, VM_NONE))
        snap = HmmBuffer(ptr=p[1], size=PAGE_SIZE, mirror=[0])
        ret = await hmm_dmirror_cmd(fd, HMM_DMIRROR_SNAPSHOT, snap, 1)
        t.ASSERT_EQ(-errno.EPERM, ret)
        await dmirror_fops_release(fd)

    hmm_test(body)
