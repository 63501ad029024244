"""Sequential tests of the mm model: lifetimes, pages, faults, munmap, mprotect."""

from __future__ import annotations

import errno
from typing import Any

from tests.support.kernel_harness import BASE, NPAGES, make_mm, run_one, run_tasks

from hmmsim.kernel.atomic import set_bit
from hmmsim.kernel.fork import mm_alloc, mmdrop, mmget, mmget_not_zero, mmgrab, mmput
from hmmsim.kernel.memory import handle_mm_fault
from hmmsim.kernel.mm_types import PageState, Pte, pte_offset_map
from hmmsim.kernel.mmap import __do_munmap as do_munmap_downgrade
from hmmsim.kernel.mmap import do_munmap, find_vma, sys_munmap, vm_munmap
from hmmsim.kernel.mmu_notifier import (
    MmuNotifier,
    MmuNotifierRange,
    StaticMmuNotifierOps,
    mmu_notifier_register,
)
from hmmsim.kernel.mprotect import do_mprotect_pkey
from hmmsim.kernel.page_alloc import (
    alloc_page,
    get_page,
    is_zero_pfn,
    page_allocator,
    put_page,
)
from hmmsim.kernel.types import (
    FAULT_FLAG_WRITE,
    MMF_UNSTABLE,
    PAGE_SIZE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_FAULT_WRITE,
    VM_NONE,
    VM_READ,
    VM_WRITE,
    FaultFlag,
)
from hmmsim.kernel.uaccess import cpu_load, cpu_store
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    WaitQueueHead,
    down_read,
    down_write,
    up_read,
    up_write,
    wait_event,
    wake_up_all,
)

END = BASE + NPAGES * PAGE_SIZE


class RecordingNotifier:
    """An mmu notifier that records its calls (mm, start, end, blockable, event)."""

    def __init__(self, ret: int = 0) -> None:
        self.calls: list[tuple[str, int, int, bool, str]] = []
        self.ret = ret
        self.ops = StaticMmuNotifierOps(
            invalidate_range_start=self.start, invalidate_range_end=self.end
        )

    def _record(self, what: str, r: MmuNotifierRange) -> None:
        self.calls.append((what, r.start, r.end, bool(r.flags & 1), r.event.name))

    async def start(self, mn: MmuNotifier, r: MmuNotifierRange) -> int:
        self._record("start", r)
        return self.ret

    async def end(self, mn: MmuNotifier, r: MmuNotifierRange) -> None:
        self._record("end", r)


class _Flag:
    """A one-shot flag tasks can sleep on (a Cell and a wait queue)."""

    def __init__(self, name: str) -> None:
        self.done = Cell(f"{name}.done", False)
        self.wq = WaitQueueHead(f"{name}.wq")

    async def set(self) -> None:
        await WRITE_ONCE(self.done, True)
        await wake_up_all(self.wq)

    async def wait(self) -> None:
        async def is_done() -> bool:
            return await READ_ONCE(self.done)

        await wait_event(self.wq, is_done)


class TestMmput:
    def test_last_mmput_runs_exit_mmap_and_frees_pages(self) -> None:
        """Only the last mm_users reference tears the address space down."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            await mmget(mm)
            await mmput(mm)
            out.append(len(mm.mmap))
            await mmput(mm)
            out.append((len(mm.mmap), mm.freed, page_allocator().pages[0].state))

        run = run_one(body)
        assert [] == run.kinds
        assert [1, (0, True, PageState.FREE)] == out

    def test_mmget_not_zero_and_mmgrab(self) -> None:
        """mmget_not_zero fails on a dead mm; mmgrab keeps the struct alive."""
        out: list[Any] = []

        async def body() -> None:
            mm = mm_alloc()
            await mmgrab(mm)
            await mmput(mm)
            out.append((await mmget_not_zero(mm), mm.freed))
            await mmdrop(mm)
            out.append(mm.freed)

        run = run_one(body)
        assert [] == run.kinds
        assert [(False, False), True] == out


class TestPageAllocator:
    def test_freed_page_is_reused_with_new_generation(self) -> None:
        """The most recently freed frame is handed out next, with its generation bumped."""
        out: list[Any] = []

        async def body() -> None:
            first = await alloc_page()
            second = await alloc_page()
            assert first is not None
            assert second is not None
            first.contents = 99
            await get_page(first)
            await put_page(first)
            out.append(first.state)
            await put_page(first)
            again = await alloc_page()
            assert again is not None
            out.append((again is first, again.generation, again.contents))

        run = run_one(body)
        assert [] == run.kinds
        assert [PageState.IN_USE, (True, 2, 0)] == out
        assert [1, 1, 2] == [e["generation"] for e in run.named("page_alloc")]

    def test_exhaustion_returns_none(self) -> None:
        """With max_pages reached, alloc_page fails."""
        out: list[Any] = []

        async def body() -> None:
            page_allocator().max_pages = 1
            out.append(await alloc_page() is not None)
            out.append(await alloc_page())

        run_one(body)
        assert [True, None] == out

    def test_put_page_on_free_page_is_a_bug(self) -> None:
        """Dropping a reference nobody holds is a VM_BUG_ON."""

        async def body() -> None:
            page = await alloc_page()
            assert page is not None
            await put_page(page)
            await put_page(page)

        assert ["bug"] == run_one(body).kinds


class TestHandleMmFault:
    def test_read_then_write_fault(self) -> None:
        """A read fault maps the zero page; a write fault replaces it by a new page."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            vma = find_vma(mm, BASE)
            assert vma is not None
            await down_read(mm.mmap_sem)
            out.append(await handle_mm_fault(vma, BASE, FaultFlag(0)))
            pte = pte_offset_map(mm, BASE).value
            assert isinstance(pte, Pte)
            out.append((pte.write, pte.special, is_zero_pfn(pte.page.pfn)))
            out.append(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))
            await up_read(mm.mmap_sem)
            pte = pte_offset_map(mm, BASE).value
            assert isinstance(pte, Pte)
            out.append((pte.write, pte.special, is_zero_pfn(pte.page.pfn)))
            out.append((pte.page.contents, pte.page.mapcount, pte.page.refcount))

        run_one(body)
        assert [
            0,
            (False, True, True),
            VM_FAULT_WRITE,
            (True, False, False),
            (0, 1, 1),
        ] == out

    def test_write_fault_on_read_only_vma_succeeds_without_write_access(self) -> None:
        """handle_mm_fault checks no permission: a write fault on a read-only VMA
        maps a read-only page, and a second one "succeeds" leaving it read-only."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm(vm_flags=VM_READ)
            vma = find_vma(mm, BASE)
            assert vma is not None
            out.append(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))
            pte = pte_offset_map(mm, BASE).value
            assert isinstance(pte, Pte)
            out.append(pte.write)
            out.append(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))
            out.append(pte_offset_map(mm, BASE).value is pte)

        run = run_one(body)
        assert [] == run.kinds
        # do_anonymous_page, then do_wp_page -> wp_page_reuse (maybe_mkwrite: no).
        assert [0, False, VM_FAULT_WRITE, True] == out
        assert 1 == len(run.named("set_pte"))

    def test_cpu_access_to_a_forbidden_vma_is_a_bad_area(self) -> None:
        """The arch handler's access_error stops CPU writes to read-only and any
        access to PROT_NONE VMAs before handle_mm_fault."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm(vm_flags=VM_READ)
            out.append(await cpu_store(mm, BASE, 1))
            out.append(await cpu_load(mm, BASE))
            out.append(await cpu_store(mm, BASE, 1))
            vma = find_vma(mm, BASE + PAGE_SIZE)
            assert vma is not None
            vma.vm_flags = VM_NONE
            out.append(await cpu_load(mm, BASE + PAGE_SIZE))

        run = run_one(body)
        assert [] == run.kinds
        assert [-errno.EFAULT, (0, 0), -errno.EFAULT, (-errno.EFAULT, 0)] == out
        # Only the read of BASE reached handle_mm_fault (it mapped the zero page).
        assert 1 == len(run.named("handle_mm_fault"))

    def test_oom_and_unstable(self) -> None:
        """No page gives VM_FAULT_OOM; a reaped mm gives VM_FAULT_SIGBUS."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            vma = find_vma(mm, BASE)
            assert vma is not None
            page_allocator().max_pages = 0
            out.append(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))
            # A read needs no page: the zero page.
            out.append(await handle_mm_fault(vma, BASE, FaultFlag(0)))
            page_allocator().max_pages = None
            await set_bit(MMF_UNSTABLE, mm.flags)
            out.append(await handle_mm_fault(vma, BASE + PAGE_SIZE, FAULT_FLAG_WRITE))
            out.append(await handle_mm_fault(vma, BASE + PAGE_SIZE, FaultFlag(0)))
            out.append(page_allocator().pages[0].state)

        run_one(body)
        assert [
            VM_FAULT_OOM,
            0,
            VM_FAULT_SIGBUS,
            VM_FAULT_SIGBUS,
            PageState.FREE,
        ] == out

    def test_write_fault_after_mprotect_reuses_page(self) -> None:
        """After RO then RW mprotect, a write fault makes the same page writable."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 5)
            await do_mprotect_pkey(mm, BASE, PAGE_SIZE, VM_READ)
            out.append(await cpu_store(mm, BASE, 6))
            await do_mprotect_pkey(mm, BASE, PAGE_SIZE, VM_READ | VM_WRITE)
            vma = find_vma(mm, BASE)
            assert vma is not None
            out.append(await handle_mm_fault(vma, BASE, FAULT_FLAG_WRITE))
            out.append(await cpu_load(mm, BASE))
            out.append(len(page_allocator().pages))

        run = run_one(body)
        assert [] == run.kinds
        assert [-errno.EFAULT, VM_FAULT_WRITE, (0, 5), 1] == out


class TestCpuAccess:
    def test_efault_outside_any_vma(self) -> None:
        """Loads and stores outside every VMA fail with -EFAULT."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            out.append(await cpu_load(mm, END))
            out.append(await cpu_store(mm, BASE - PAGE_SIZE, 1))

        run_one(body)
        assert [(-errno.EFAULT, 0), -errno.EFAULT] == out


class TestMunmap:
    def test_notifier_bracket_around_the_zap(self) -> None:
        """munmap calls a blockable start, clears PTEs, the end, and only then frees pages."""
        notifier = RecordingNotifier()
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            for i in range(NPAGES):
                await cpu_store(mm, BASE + i * PAGE_SIZE, i)
            mn = MmuNotifier(ops=notifier.ops, name="rec")
            assert 0 == await mmu_notifier_register(mn, mm)
            out.append(await vm_munmap(mm, BASE + PAGE_SIZE, 2 * PAGE_SIZE))
            out.append([(v.vm_start, v.vm_end) for v in mm.mmap])
            out.append((mm.ghost_open_invalidations, mn.ghost_balance))

        run = run_one(body)
        assert [] == run.kinds
        lo, hi = BASE + PAGE_SIZE, BASE + 3 * PAGE_SIZE
        assert [
            ("start", lo, hi, True, "MMU_NOTIFY_UNMAP"),
            ("end", lo, hi, True, "MMU_NOTIFY_UNMAP"),
        ] == notifier.calls
        assert 0 == out[0]
        assert [(BASE, lo), (hi, END)] == out[1]
        assert (0, 0) == out[2]
        names = [e for e, _ in run.events]
        start = names.index("mmu_notifier_invalidate_range_start")
        end = names.index("mmu_notifier_invalidate_range_end")
        clears = [i for i, n in enumerate(names) if n == "pte_clear"]
        frees = [i for i, n in enumerate(names) if n == "page_free"]
        assert 2 == len(clears)
        assert all(start < i < end for i in clears)
        # mmu_gather: the pages are freed by tlb_finish_mmu, after the end.
        assert 2 == len(frees)
        assert all(end < i for i in frees)

    def test_einval_and_nothing_mapped(self) -> None:
        """A misaligned munmap is -EINVAL; unmapping a hole is a no-op."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            out.append(await vm_munmap(mm, BASE + 1, PAGE_SIZE))
            out.append(await vm_munmap(mm, END, PAGE_SIZE))

        run_one(body)
        assert [-errno.EINVAL, 0] == out

    def test_munmap_syscall_downgrades_mmap_sem_before_the_unmap(self) -> None:
        """munmap(2) holds mmap_sem only for read inside the bracket; vm_munmap for write."""
        seen: list[tuple[str, bool, bool]] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)

            async def start(mn: MmuNotifier, r: MmuNotifierRange) -> int:
                sem = mm.mmap_sem
                # The VMA is already detached: nobody finds it any more.
                vma = find_vma(mm, BASE)
                gone = vma is None or vma.vm_start > BASE
                seen.append(("start", sem.writer is None and bool(sem.readers), gone))
                return 0

            mn = MmuNotifier(
                ops=StaticMmuNotifierOps(invalidate_range_start=start), name="rec"
            )
            assert 0 == await mmu_notifier_register(mn, mm)
            assert 0 == await sys_munmap(mm, BASE, PAGE_SIZE)
            seen.append(("after", not mm.mmap_sem.readers, mm.mmap_sem.writer is None))
            assert 0 == await vm_munmap(mm, BASE + PAGE_SIZE, PAGE_SIZE)

        run = run_one(body)

        assert [] == run.kinds
        assert [
            ("start", True, True),
            ("after", True, True),
            ("start", False, True),
        ] == seen

    def test_a_reader_runs_beside_the_downgraded_unmap(self) -> None:
        """After the downgrade another task takes mmap_sem for read while munmap unmaps."""
        order: list[str] = []

        def setup() -> list[tuple[str, Any]]:
            state: dict[str, Any] = {}

            async def unmapper() -> None:
                mm = await make_mm()
                await cpu_store(mm, BASE, 1)
                state["mm"] = mm

                async def start(mn: MmuNotifier, r: MmuNotifierRange) -> int:
                    order.append("munmap: invalidate_range_start")
                    # Let the reader run now (sequential: lowest enabled id).
                    await state["reader_gate"].wait()
                    order.append("munmap: resumes")
                    return 0

                mn = MmuNotifier(
                    ops=StaticMmuNotifierOps(invalidate_range_start=start), name="r"
                )
                await mmu_notifier_register(mn, mm)
                await state["go"].set()
                await sys_munmap(mm, BASE, PAGE_SIZE)

            async def reader() -> None:
                await state["go"].wait()
                mm = state["mm"]
                await down_read(mm.mmap_sem)
                order.append("reader: down_read")
                await up_read(mm.mmap_sem)
                await state["reader_gate"].set()

            state["go"] = _Flag("go")
            state["reader_gate"] = _Flag("gate")
            return [("munmap", unmapper()), ("reader", reader())]

        run = run_tasks(setup)

        assert [] == run.kinds
        assert [
            "munmap: invalidate_range_start",
            "reader: down_read",
            "munmap: resumes",
        ] == order

    def test_do_munmap_with_downgrade_returns_one(self) -> None:
        """__do_munmap with downgrade returns 1 and leaves a read hold to drop."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await down_write(mm.mmap_sem)
            out.append(await do_munmap_downgrade(mm, BASE, PAGE_SIZE, True))
            out.append((mm.mmap_sem.writer, len(mm.mmap_sem.readers)))
            await up_read(mm.mmap_sem)

        run = run_one(body)
        assert [] == run.kinds
        assert [1, (None, 1)] == out

    def test_do_munmap_needs_mmap_sem(self) -> None:
        """do_munmap asserts mmap_sem is held for write."""

        async def body() -> None:
            mm = await make_mm()
            await down_write(mm.mmap_sem)
            await up_write(mm.mmap_sem)
            await do_munmap(mm, BASE, PAGE_SIZE)

        assert ["lockdep"] == run_one(body).kinds


class TestMprotect:
    def test_write_protect_bracket(self) -> None:
        """Removing write permission write-protects PTEs inside a PROTECTION_VMA bracket."""
        notifier = RecordingNotifier()
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE, 1)
            mn = MmuNotifier(ops=notifier.ops, name="rec")
            await mmu_notifier_register(mn, mm)
            out.append(await do_mprotect_pkey(mm, BASE, 2 * PAGE_SIZE, VM_READ))
            pte = pte_offset_map(mm, BASE).value
            assert isinstance(pte, Pte)
            out.append(pte.write)
            out.append([(v.vm_start, v.vm_end, int(v.vm_flags)) for v in mm.mmap])

        run = run_one(body)
        assert [] == run.kinds
        hi = BASE + 2 * PAGE_SIZE
        assert [
            ("start", BASE, hi, True, "MMU_NOTIFY_PROTECTION_VMA"),
            ("end", BASE, hi, True, "MMU_NOTIFY_PROTECTION_VMA"),
        ] == notifier.calls
        assert [0, False, [(BASE, hi, 1), (hi, END, 3)]] == out

    def test_errors(self) -> None:
        """Misaligned is -EINVAL, an unmapped part is -ENOMEM, empty is a no-op."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            out.append(await do_mprotect_pkey(mm, BASE + 1, PAGE_SIZE, VM_READ))
            out.append(await do_mprotect_pkey(mm, END, PAGE_SIZE, VM_READ))
            out.append(
                await do_mprotect_pkey(mm, BASE, 2 * NPAGES * PAGE_SIZE, VM_READ)
            )
            out.append(await do_mprotect_pkey(mm, BASE, 0, VM_READ))
            out.append(await do_mprotect_pkey(mm, BASE, PAGE_SIZE, VM_READ))

        run_one(body)
        assert [-errno.EINVAL, -errno.ENOMEM, -errno.ENOMEM, 0, 0] == out
