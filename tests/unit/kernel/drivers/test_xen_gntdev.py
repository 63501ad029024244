"""gntdev, the grant-table unmap queue, i915 userptr and the pieces they run on."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.kernel_harness import BASE, make_mm, run_one, run_tasks

from hmmsim.kernel import mmu_notifier_current as cur
from hmmsim.kernel.completion import Completion, complete, wait_for_completion
from hmmsim.kernel.drivers.i915_userptr import (
    DrmI915Private,
    I915GemObject,
    i915_gem_object_userptr_submit_init,
    i915_gem_userptr_free,
    i915_gem_userptr_ioctl,
)
from hmmsim.kernel.drivers.xen_gntdev import (
    FIX_DBE97CFF7DD9,
    GntdevGrantMap,
    GntdevPriv,
    gntdev_add_map,
    gntdev_alloc_map,
    gntdev_vm_mmap,
    unmap_grant_pages,
)
from hmmsim.kernel.drivers.xen_grant_table import INVALID_GRANT_HANDLE
from hmmsim.kernel.fork import mm_alloc
from hmmsim.kernel.gup import (
    FOLL_WRITE,
    GUP_PIN_COUNTING_BIAS,
    pin_user_pages_fast,
    unpin_user_pages,
)
from hmmsim.kernel.mm_types import MmStruct, Page
from hmmsim.kernel.mmap import find_vma, sys_munmap
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_init
from hmmsim.kernel.types import MMU_NOTIFY_CLEAR, PAGE_SIZE
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.kernel.workqueue import (
    INIT_DELAYED_WORK,
    DelayedWork,
    schedule_delayed_work,
)
from hmmsim.sync import current_execution

#: Where the tests map grants (away from the harness's anonymous VMA).
GBASE = 0x400000


async def gntdev_mm(
    count: int = 1, reverted: tuple[str, ...] = ()
) -> tuple[MmStruct, GntdevGrantMap]:
    """Return an mm on the current notifier core with ``count`` grants mapped at GBASE."""
    mm = mm_alloc("mm")
    mm.notifier_core = cur
    mm.reverted_fixes = frozenset(reverted)
    priv = GntdevPriv()
    map = await gntdev_alloc_map(priv, count)
    assert map is not None
    await gntdev_add_map(priv, map)
    assert GBASE == await gntdev_vm_mmap(priv, mm, GBASE, map)
    return mm, map


def test_delayed_work_runs_in_a_kworker_and_again_when_requeued() -> None:
    """The first queuing spawns a kworker; a re-queue from the work runs it again there."""
    runs: list[int] = []
    seen: dict[str, Any] = {}

    async def body() -> None:
        dwork = DelayedWork(name="w")

        async def work(item: DelayedWork) -> None:
            runs.append(len(runs))
            if len(runs) < 3:
                assert await schedule_delayed_work(item, 1)

        INIT_DELAYED_WORK(dwork, work)
        assert await schedule_delayed_work(dwork, 5)
        assert not await schedule_delayed_work(dwork, 5)  # still pending
        seen["tasks"] = [t.name for t in current_execution().tasks]

    run = run_one(body)

    assert [] == run.kinds
    assert [0, 1, 2] == runs
    assert ["task", "kworker"] == seen["tasks"]


def test_wait_for_completion_sleeps_until_complete() -> None:
    """The waiter (task 0 runs first) sleeps until the other task completes it."""
    order: list[str] = []

    def setup() -> list[tuple[str, Any]]:
        done = Completion(name="c")

        async def waiter() -> None:
            await wait_for_completion(done)
            order.append("woken")

        async def completer() -> None:
            order.append("complete")
            await complete(done)

        return [("waiter", waiter()), ("completer", completer())]

    run = run_tasks(setup)

    assert [] == run.kinds
    assert ["complete", "woken"] == order


def test_pin_adds_the_bias_and_fails_without_a_vma() -> None:
    """pin_user_pages_fast pins a present page (+bias); unpin undoes it; a hole is -EFAULT."""
    seen: dict[str, Any] = {}

    async def body() -> None:
        mm = await make_mm(1)
        await cpu_store(mm, BASE, 7)
        pages: list[Page] = []
        seen["ret"] = await pin_user_pages_fast(mm, BASE, 1, FOLL_WRITE, pages)
        seen["pinned"] = pages[0].refcount
        await unpin_user_pages(pages, 1)
        seen["unpinned"] = pages[0].refcount
        seen["hole"] = await pin_user_pages_fast(
            mm, BASE + PAGE_SIZE, 1, FOLL_WRITE, []
        )

    run = run_one(body)

    assert [] == run.kinds
    assert 1 == seen["ret"]
    assert seen["unpinned"] + GUP_PIN_COUNTING_BIAS == seen["pinned"]
    assert -14 == seen["hole"]


@pytest.mark.parametrize(
    "reverted", [(), (FIX_DBE97CFF7DD9,)], ids=["fixed", "reverted"]
)
def test_munmap_unmaps_the_grants_through_the_notifier(
    reverted: tuple[str, ...],
) -> None:
    """With nobody else on the pages, munmap's invalidation unmaps the grants at once."""
    seen: dict[str, Any] = {}

    async def body() -> None:
        mm, map = await gntdev_mm(2, reverted)
        seen["mapped"] = [op.mapped for op in map.unmap_ops]
        assert 0 == await sys_munmap(mm, GBASE, 2 * PAGE_SIZE)
        seen["after"] = [(op.mapped, op.handle) for op in map.unmap_ops]
        seen["users"] = map.users.value
        seen["live"] = map.live_grants.value

    run = run_one(body)

    assert [] == run.kinds
    assert [True, True] == seen["mapped"]
    assert [(False, INVALID_GRANT_HANDLE)] * 2 == seen["after"]
    assert 2 == seen["users"]  # the file's and the VMA's references
    if not reverted:
        assert 0 == seen["live"]  # live_grants came with the fix


def test_fixed_unmap_returns_at_once_and_completes_after_the_unpin() -> None:
    """With the fix, a pinned grant page defers the unmap to the kworker, which ends it once unpinned."""
    seen: dict[str, Any] = {}

    async def body() -> None:
        mm, map = await gntdev_mm()
        pages: list[Page] = []
        assert 1 == await pin_user_pages_fast(mm, GBASE, 1, FOLL_WRITE, pages)
        assert 0 == await sys_munmap(mm, GBASE, PAGE_SIZE)
        seen["during"] = (map.unmap_ops[0].mapped, map.users.value)
        # A second invalidation of the same grant does not unmap it twice.
        assert 0 == await unmap_grant_pages(map, 0, 1)
        await unpin_user_pages(pages, 1)
        seen["map"] = map

    run = run_one(body)

    assert [] == run.kinds
    assert (True, 3) == seen[
        "during"
    ]  # still mapped; the async unmap holds a reference
    map = seen["map"]
    assert not map.unmap_ops[0].mapped
    assert INVALID_GRANT_HANDLE == map.unmap_ops[0].handle
    assert (2, 0) == (map.users.value, map.live_grants.value)
    assert 1 == len(run.named("gnttab_unmap_refs"))


def test_reverted_unmap_waits_for_the_pin_for_ever() -> None:
    """Before the fix, munmap sleeps in gnttab_unmap_refs_sync while the kworker retries alone."""

    async def body() -> None:
        mm, _ = await gntdev_mm(1, (FIX_DBE97CFF7DD9,))
        assert 1 == await pin_user_pages_fast(mm, GBASE, 1, FOLL_WRITE, [])
        await sys_munmap(mm, GBASE, PAGE_SIZE)

    run = run_one(body)

    assert ["hang"] == run.kinds
    detail = "\n".join(run.result.findings[0].detail)
    assert "task waits in schedule(unmap_refs.wait)" in detail
    assert run.named("gnttab_unmap_busy")


def test_userptr_keeps_its_pins_until_an_invalidation_then_repins() -> None:
    """submit_init keeps pvec while the sequence holds; after an invalidation it unpins and pins again."""
    seen: dict[str, Any] = {}

    async def body() -> None:
        mm = await make_mm(1)
        mm.notifier_core = cur
        await cpu_store(mm, BASE, 1)
        obj = await i915_gem_userptr_ioctl(DrmI915Private(), mm, "obj", BASE, PAGE_SIZE)
        assert isinstance(obj, I915GemObject)
        assert 0 == await i915_gem_object_userptr_submit_init(obj, mm)
        assert obj.pvec is not None
        page = obj.pvec[0]
        seen["first"] = page.refcount
        assert 0 == await i915_gem_object_userptr_submit_init(obj, mm)
        seen["again"] = page.refcount
        # An invalidation of the range that leaves the page mapped.
        vma = find_vma(mm, BASE)
        range = MmuNotifierRange(mm=mm)
        mmu_notifier_range_init(
            range, MMU_NOTIFY_CLEAR, 0, vma, mm, BASE, BASE + PAGE_SIZE
        )
        await cur.mmu_notifier_invalidate_range_start(range)
        await cur.mmu_notifier_invalidate_range_end(range)
        seen["stale"] = obj.notifier_seq
        assert 0 == await i915_gem_object_userptr_submit_init(obj, mm)
        seen["repinned"] = (page.refcount, obj.notifier_seq)
        await i915_gem_userptr_free(obj)
        seen["freed"] = (page.refcount, obj.pvec, obj.freed)

    run = run_one(body)

    assert [] == run.kinds
    assert seen["first"] == seen["again"]  # the fast path pins nothing more
    assert seen["first"] >= GUP_PIN_COUNTING_BIAS
    refcount, seq = seen["repinned"]
    assert seen["first"] == refcount  # the old pin dropped, a new one taken
    assert seq != seen["stale"]
    assert 2 == len(run.named("pin_user_pages_fast"))
    refcount, pvec, freed = seen["freed"]
    assert refcount == seen["first"] - GUP_PIN_COUNTING_BIAS
    assert pvec is None
    assert freed
