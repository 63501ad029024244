"""Sequential tests of the OOM reaper model (mm/oom_kill.c, v5.3) and exit_mmap."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from tests.support.kernel_harness import (
    BASE,
    NPAGES,
    StubMirrorOps,
    make_mm,
    register_mirror,
    run_one,
)

from hmmsim.kernel import atomic, hmm, hmm_prepatch
from hmmsim.kernel.fork import mmput
from hmmsim.kernel.mm_types import PageState, TaskStruct
from hmmsim.kernel.oom_kill import (
    MAX_OOM_REAP_RETRIES,
    mark_oom_victim,
    oom_reap_task,
    oom_reap_task_mm,
)
from hmmsim.kernel.page_alloc import page_allocator
from hmmsim.kernel.types import (
    MMF_OOM_SKIP,
    MMF_UNSTABLE,
    PAGE_SIZE,
    VM_LOCKED,
    VM_READ,
    VM_WRITE,
)
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.sync import down_write, up_write


async def victim(*, mirror_ret: int | None = None, module: Any = hmm) -> TaskStruct:
    mm = await make_mm()
    for i in range(NPAGES):
        await cpu_store(mm, BASE + i * PAGE_SIZE, i + 1)
    if mirror_ret is not None:
        await register_mirror(module, mm, StubMirrorOps(mirror_ret))
    tsk = TaskStruct(pid=42, comm="victim", mm=mm)
    await mark_oom_victim(tsk)
    return tsk


class TestOomReapTask:
    def test_reaps_and_sets_oom_skip(self) -> None:
        """Without refusing notifiers one attempt frees every page, then MMF_OOM_SKIP."""
        out: list[Any] = []

        async def body() -> None:
            tsk = await victim(mirror_ret=0)
            await oom_reap_task(tsk)
            assert tsk.oom_mm is not None
            out.append(await atomic.test_bit(MMF_OOM_SKIP, tsk.oom_mm.flags))
            out.append([p.state for p in page_allocator().pages])

        run = run_one(body)
        assert [] == run.kinds
        assert [True, [PageState.FREE] * NPAGES] == out
        assert [True] == [e["ret"] for e in run.named("oom_reap_task_mm")]
        assert [{"pid": 42, "mm": "mm", "attempts": 1, "gave_up": False}] == (
            run.named("oom_reap_task")
        )

    def test_skips_refused_vma_without_end_and_gives_up(self) -> None:
        """v5.3: -EAGAIN skips the VMA (no end, no unmap); 10 failures then MMF_OOM_SKIP."""
        out: list[Any] = []

        async def body() -> None:
            tsk = await victim(mirror_ret=-errno.EAGAIN)
            await oom_reap_task(tsk)
            assert tsk.oom_mm is not None
            out.append(await atomic.test_bit(MMF_OOM_SKIP, tsk.oom_mm.flags))
            out.append([p.state for p in page_allocator().pages])

        run = run_one(body)
        assert [] == run.kinds
        assert [True, [PageState.IN_USE] * NPAGES] == out
        attempts = run.named("oom_reap_task_mm")
        assert MAX_OOM_REAP_RETRIES == len(attempts)
        assert not any(a["ret"] for a in attempts)
        assert [] == run.named("mmu_notifier_invalidate_range_end")
        assert [] == run.named("pte_clear")
        assert [True] == [e["gave_up"] for e in run.named("oom_reap_task")]

    def test_prepatch_reaps_pages_the_device_still_maps(self) -> None:
        """Before the seed patch the lost -EAGAIN lets the reaper free the pages."""
        out: list[Any] = []

        async def body() -> None:
            tsk = await victim(mirror_ret=-errno.EAGAIN, module=hmm_prepatch)
            await oom_reap_task(tsk, max_retries=2)
            out.append([p.state for p in page_allocator().pages])

        run = run_one(body)
        assert ["sleep-in-nonblockable"] == run.kinds
        assert [[PageState.FREE] * NPAGES] == out

    @pytest.mark.parametrize("retries", [1, 3])
    def test_lower_retry_bound(self, retries: int) -> None:
        """Scenarios can lower the retry bound (MODEL)."""

        async def body() -> None:
            tsk = await victim(mirror_ret=-errno.EAGAIN)
            await oom_reap_task(tsk, max_retries=retries)

        run = run_one(body)
        assert retries == len(run.named("oom_reap_task_mm"))


class TestOomReapTaskMm:
    def test_contended_mmap_sem(self) -> None:
        """A failed mmap_sem trylock is a failed attempt."""
        out: list[bool] = []

        async def body() -> None:
            tsk = await victim()
            assert tsk.oom_mm is not None
            await down_write(tsk.oom_mm.mmap_sem)
            out.append(await oom_reap_task_mm(tsk, tsk.oom_mm))
            await up_write(tsk.oom_mm.mmap_sem)

        run_one(body)
        assert [False] == out

    def test_skip_when_exit_mmap_took_over(self) -> None:
        """With MMF_OOM_SKIP set the attempt succeeds without reaping."""
        out: list[Any] = []

        async def body() -> None:
            tsk = await victim()
            assert tsk.oom_mm is not None
            await atomic.set_bit(MMF_OOM_SKIP, tsk.oom_mm.flags)
            out.append(await oom_reap_task_mm(tsk, tsk.oom_mm))
            out.append(await atomic.test_bit(MMF_UNSTABLE, tsk.oom_mm.flags))

        run_one(body)
        assert [True, False] == out

    def test_locked_vmas_are_not_reaped(self) -> None:
        """VM_LOCKED memory is left alone."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm(vm_flags=VM_READ | VM_WRITE | VM_LOCKED)
            await cpu_store(mm, BASE, 1)
            tsk = TaskStruct(pid=1, comm="v", mm=mm)
            await mark_oom_victim(tsk)
            await mark_oom_victim(tsk)
            out.append(await oom_reap_task_mm(tsk, mm))
            out.append(page_allocator().pages[0].state)

        run_one(body)
        assert [True, PageState.IN_USE] == out


class TestExitMmap:
    def test_oom_victim_path(self) -> None:
        """exit_mmap of a victim reaps, sets MMF_OOM_SKIP and frees everything."""
        out: list[Any] = []

        async def body() -> None:
            tsk = await victim(mirror_ret=0)
            mm = tsk.mm
            assert mm is not None
            await mmput(mm)
            out.append(await atomic.test_bit(MMF_OOM_SKIP, mm.flags))
            out.append([p.state for p in page_allocator().pages])
            out.append(mm.mmap)

        run = run_one(body)
        assert [] == run.kinds
        assert [True, [PageState.FREE] * NPAGES, []] == out
