"""Sequential tests of the HMM model (mm/hmm.c at the seed patch, and before it)."""

from __future__ import annotations

import errno
from types import ModuleType
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

from hmmsim.kernel import hmm, hmm_prepatch, mmu_notifier
from hmmsim.kernel.fork import mmget, mmput
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmap import vm_mmap
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_invalidate_range_start_nonblock,
    mmu_notifier_range_init,
    mmu_notifier_synchronize,
)
from hmmsim.kernel.page_alloc import pfn_to_page
from hmmsim.kernel.types import (
    HMM_RANGE_DEFAULT_TIMEOUT,
    MMU_NOTIFY_UNMAP,
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_FAULT_WRITE,
    VM_HUGETLB,
    VM_IO,
    VM_READ,
    VM_WRITE,
)
from hmmsim.kernel.uaccess import cpu_store
from hmmsim.sync import current_execution, down_read, down_write, up_read, up_write

BOTH = pytest.mark.parametrize("mod", [hmm, hmm_prepatch], ids=["v5.3", "prepatch"])
END = BASE + NPAGES * PAGE_SIZE
# Default encodings of HmmRange: VALID=1, WRITE=2; pfn_shift 8.
REQ_READ = 1
REQ_WRITE = 1 | 2


def new_range(
    mod: ModuleType, *, default_flags: int = REQ_READ, n: int = NPAGES
) -> Any:
    return mod.HmmRange(name="range", pfns=[0] * n, default_flags=default_flags)


async def registered(mod: ModuleType, mm: MmStruct, ops: Any = None) -> tuple[Any, Any]:
    mirror = await register_mirror(mod, mm, ops or StubMirrorOps())
    rng = new_range(mod)
    assert 0 == await mod.hmm_range_register(rng, mirror, BASE, END, PAGE_SHIFT)
    return mirror, rng


async def invalidate(mm: MmStruct, *, blockable: bool) -> int:
    rng = MmuNotifierRange(mm=mm)
    mmu_notifier_range_init(rng, MMU_NOTIFY_UNMAP, 0, None, mm, BASE, END)
    if blockable:
        await mmu_notifier_invalidate_range_start(rng)
        await mmu_notifier_invalidate_range_end(rng)
        return 0
    ret = await mmu_notifier_invalidate_range_start_nonblock(rng)
    if ret == 0:
        await mmu_notifier_invalidate_range_end(rng)
    return ret


class TestHmmMirrorRegister:
    @BOTH
    def test_registers_and_creates_one_hmm(self, mod: ModuleType) -> None:
        """Two mirrors on one mm share one struct hmm holding two references."""
        out: dict[str, Any] = {}

        async def body() -> None:
            mm = await make_mm()
            m1 = await register_mirror(mod, mm, StubMirrorOps(), "m1")
            m2 = await register_mirror(mod, mm, StubMirrorOps(), "m2")
            out.update(same=m1.hmm is m2.hmm, refs=m1.hmm.kref.refcount, mm_hmm=mm.hmm)
            out["order"] = [m.name for m in m1.hmm.mirrors]

        run = run_one(body)
        assert [] == run.kinds
        assert out["same"]
        assert 2 == out["refs"]
        assert ["m2", "m1"] == out["order"]

    def test_einval_without_mirror(self) -> None:
        """A NULL mirror is rejected with -EINVAL."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            await down_write(mm.mmap_sem)
            out.append(await hmm.hmm_mirror_register(None, mm))
            await up_write(mm.mmap_sem)

        run_one(body)
        assert [-errno.EINVAL] == out

    @BOTH
    def test_enomem_when_kmalloc_fails(self, mod: ModuleType) -> None:
        """An allocation failure of struct hmm gives -ENOMEM."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            current_execution().context["failslab"] = 1
            mirror = mod.HmmMirror(ops=StubMirrorOps())
            await down_write(mm.mmap_sem)
            out.append(await mod.hmm_mirror_register(mirror, mm))
            await up_write(mm.mmap_sem)

        run_one(body)
        assert [-errno.ENOMEM] == out

    def test_enomem_when_notifier_registration_fails(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing __mmu_notifier_register frees the new hmm and gives -ENOMEM."""
        out: list[int] = []
        monkeypatch.setattr(mmu_notifier, "kmalloc_fails", lambda: True)

        async def body() -> None:
            mm = await make_mm()
            mirror = hmm.HmmMirror(ops=StubMirrorOps())
            await down_write(mm.mmap_sem)
            out.append(await hmm.hmm_mirror_register(mirror, mm))
            await up_write(mm.mmap_sem)

        run = run_one(body)
        assert [] == run.kinds
        assert [-errno.ENOMEM] == out

    def test_lockdep_without_mmap_sem(self) -> None:
        """Registering without mmap_sem held for write is a lockdep finding."""

        async def body() -> None:
            mm = await make_mm()
            mirror = hmm.HmmMirror(ops=StubMirrorOps())
            await hmm.hmm_mirror_register(mirror, mm)

        assert "lockdep" in run_one(body).kinds


class TestHmmMirrorUnregister:
    @BOTH
    def test_last_reference_frees_hmm_after_grace_period(self, mod: ModuleType) -> None:
        """The hmm is freed by an SRCU callback, which also drops its mm_count."""
        out: dict[str, Any] = {}

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            the_hmm = mirror.hmm
            count = mm.mm_count.value
            await mod.hmm_mirror_unregister(mirror)
            out["freed_at_once"] = the_hmm.freed
            out["mm_hmm"] = mm.hmm
            await mmu_notifier_synchronize()
            out["freed"] = the_hmm.freed
            out["mm_count"] = (count, mm.mm_count.value)

        run = run_one(body)
        assert [] == run.kinds
        assert not out["freed_at_once"]
        assert out["mm_hmm"] is None
        assert out["freed"]
        # -1 for the notifier registration's mmgrab, -1 for the hmm's own.
        assert (3, 1) == out["mm_count"]
        assert ["hmm_free"] == [e for e, _ in run.events if e == "hmm_free"]

    @BOTH
    def test_double_unregister_is_a_bug(self, mod: ModuleType) -> None:
        """Unregistering a mirror twice is caught (the hmm pointer is gone)."""

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            await mod.hmm_mirror_unregister(mirror)
            mirror.hmm = None
            await mod.hmm_mirror_unregister(mirror)

        assert ["bug"] == run_one(body).kinds


class TestHmmRangeRegister:
    @BOTH
    @pytest.mark.parametrize(
        ("start", "end"),
        [(BASE + 1, END), (BASE, END + 1), (END, BASE), (BASE, BASE)],
    )
    def test_einval(self, mod: ModuleType, start: int, end: int) -> None:
        """Misaligned or empty ranges are rejected with -EINVAL."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            out.append(
                await mod.hmm_range_register(
                    new_range(mod), mirror, start, end, PAGE_SHIFT
                )
            )

        run_one(body)
        assert [-errno.EINVAL] == out

    @BOTH
    def test_efault_when_mm_is_exiting(self, mod: ModuleType) -> None:
        """With no user left (mmget_not_zero fails) registration gives -EFAULT."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            mm.mm_users.value = 0
            out.append(
                await mod.hmm_range_register(
                    new_range(mod), mirror, BASE, END, PAGE_SHIFT
                )
            )

        run_one(body)
        assert [-errno.EFAULT] == out

    @BOTH
    def test_valid_only_without_open_invalidations(self, mod: ModuleType) -> None:
        """A range registered during an invalidation starts invalid, then becomes valid."""
        out: list[bool] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            nrange = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(nrange, MMU_NOTIFY_UNMAP, 0, None, mm, 0, PAGE_SIZE)
            await mmu_notifier_invalidate_range_start(nrange)
            rng = new_range(mod)
            await mod.hmm_range_register(rng, mirror, BASE, END, PAGE_SHIFT)
            out.append(await mod.hmm_range_valid(rng))
            await mmu_notifier_invalidate_range_end(nrange)
            out.append(await mod.hmm_range_valid(rng))

        run_one(body)
        assert [False, True] == out

    @BOTH
    def test_range_pins_mm_users(self, mod: ModuleType) -> None:
        """A registered range keeps exit_mmap from running until it is unregistered."""
        out: list[tuple[str, Any]] = []

        async def body() -> None:
            mm = await make_mm()
            ops = StubMirrorOps()
            _, rng = await registered(mod, mm, ops)
            await mmput(mm)  # the owner exits
            out.append(("after owner exit", list(mm.mmap)))
            await mod.hmm_range_unregister(rng)
            out.append(("after unregister", list(mm.mmap)))
            out.append(("released", ops.released))

        run = run_one(body)
        assert [] == run.kinds
        assert out[0][1]
        assert [] == out[1][1]
        assert ["mirror"] == out[2][1]
        assert 1 == len(run.named("exit_mmap"))


class TestHmmRangeUnregister:
    @BOTH
    def test_poisons_the_range(self, mod: ModuleType) -> None:
        """After unregister the range is invalid and its hmm pointer poisoned."""

        async def body() -> None:
            mm = await make_mm()
            _, rng = await registered(mod, mm)
            await mod.hmm_range_unregister(rng)
            assert not rng.valid.value
            await mod.hmm_range_unregister(rng)

        run = run_one(body)
        assert ["bug"] == run.kinds
        assert "poisoned" in run.result.findings[0].message


class TestHmmRangeWaitUntilValid:
    @BOTH
    def test_true_when_valid(self, mod: ModuleType) -> None:
        """A valid range returns true at once."""
        out: list[bool] = []

        async def body() -> None:
            mm = await make_mm()
            _, rng = await registered(mod, mm)
            out.append(
                await mod.hmm_range_wait_until_valid(rng, HMM_RANGE_DEFAULT_TIMEOUT)
            )

        run_one(body)
        assert [True] == out

    @BOTH
    def test_times_out_while_invalidation_open(self, mod: ModuleType) -> None:
        """With an invalidation open and the timeout firing, it returns false."""
        out: list[bool] = []

        async def body() -> None:
            mm = await make_mm()
            _, rng = await registered(mod, mm)
            nrange = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(nrange, MMU_NOTIFY_UNMAP, 0, None, mm, BASE, END)
            await mmu_notifier_invalidate_range_start(nrange)
            out.append(
                await mod.hmm_range_wait_until_valid(rng, HMM_RANGE_DEFAULT_TIMEOUT)
            )
            await mmu_notifier_invalidate_range_end(nrange)

        run = run_one(body, data=[1])
        assert [] == run.kinds
        assert [False] == out
        assert [{"range": "range", "ret": False}] == run.named(
            "hmm_range_wait_until_valid"
        )


class TestHmmRangeFault:
    @BOTH
    def test_faults_every_page(self, mod: ModuleType) -> None:
        """A write request faults all pages in and returns the page count."""
        out: dict[str, Any] = {}

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            rng = new_range(mod, default_flags=REQ_WRITE)
            await mod.hmm_range_register(rng, mirror, BASE, END, PAGE_SHIFT)
            await down_read(mm.mmap_sem)
            out["ret"] = await mod.hmm_range_fault(rng, True)
            await up_read(mm.mmap_sem)
            out["pages"] = [mod.hmm_device_entry_to_page(rng, e) for e in rng.pfns]
            out["pfns"] = [mod.hmm_device_entry_to_pfn(rng, e) for e in rng.pfns]
            out["writable"] = all(e & 2 for e in rng.pfns)
            await mod.hmm_range_unregister(rng)

        run = run_one(body)
        assert [] == run.kinds
        assert NPAGES == out["ret"]
        assert [0, 1, 2, 3] == out["pfns"]
        assert [0, 1, 2, 3] == [p.pfn for p in out["pages"]]
        assert out["writable"]

    @BOTH
    def test_ebusy_when_invalid(self, mod: ModuleType) -> None:
        """An invalidated range gives -EBUSY and mmap_sem stays held (v5.3)."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            _, rng = await registered(mod, mm)
            rng.valid.value = False
            await down_read(mm.mmap_sem)
            out.append(await mod.hmm_range_fault(rng, True))
            out.append(await mod.hmm_range_snapshot(rng))
            out.append(current_execution().current is not None)
            await up_read(mm.mmap_sem)

        run = run_one(body)
        assert [] == run.kinds
        assert [-errno.EBUSY, -errno.EBUSY, True] == out

    @BOTH
    @pytest.mark.parametrize(
        ("flags", "shift", "expected"),
        [
            (VM_READ | VM_WRITE | VM_IO, PAGE_SHIFT, -errno.EFAULT),
            (VM_WRITE, PAGE_SHIFT, -errno.EPERM),
            (VM_READ | VM_WRITE, 21, -errno.EINVAL),
            (VM_READ | VM_WRITE | VM_HUGETLB, 16, -errno.EINVAL),
        ],
    )
    def test_vma_checks(
        self, mod: ModuleType, flags: Any, shift: int, expected: int
    ) -> None:
        """Device VMAs, unreadable VMAs and page-shift mismatches are rejected."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm(vm_flags=flags)
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            rng = new_range(mod)
            base = BASE & ~((1 << shift) - 1)
            await mod.hmm_range_register(rng, mirror, base, base + (1 << shift), shift)
            await down_read(mm.mmap_sem)
            out.append(await mod.hmm_range_fault(rng, True))
            out.append(await mod.hmm_range_snapshot(rng))
            await up_read(mm.mmap_sem)

        run = run_one(body)
        assert [] == run.kinds
        assert [expected, expected] == out

    @BOTH
    def test_write_to_read_only_vma_loops_for_ever(self, mod: ModuleType) -> None:
        """v5.3: a write request on a read-only VMA re-faults for ever (a hang).

        handle_mm_fault checks no permission and returns VM_FAULT_WRITE
        without making the PTE writable; the walk returns -EBUSY while the
        range is valid, so hmm_range_fault never returns (fixed in v5.4 by
        "mm/hmm: hmm_range_fault() infinite loop", c18ce674d548).
        """
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm(vm_flags=VM_READ)
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            rng = new_range(mod, default_flags=REQ_WRITE)
            await mod.hmm_range_register(rng, mirror, BASE, END, PAGE_SHIFT)
            await down_read(mm.mmap_sem)
            out.append(await mod.hmm_range_fault(rng, False))

        run = run_one(body, max_steps=5_000)

        assert ["hang"] == run.kinds
        assert [] == out
        faults = run.named("handle_mm_fault")
        # The first walk maps a read-only page at each address (do_anonymous_page);
        # every later walk faults them all again, with no effect.
        assert len(faults) > 2 * NPAGES
        assert all(f["write"] and f["ret"] == 0 for f in faults[:NPAGES])
        assert all(f["ret"] == int(VM_FAULT_WRITE) for f in faults[NPAGES:])
        assert NPAGES == len(run.named("set_pte"))

    @BOTH
    def test_efault_without_vma(self, mod: ModuleType) -> None:
        """A range past every VMA gives -EFAULT."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            rng = new_range(mod)
            await mod.hmm_range_register(rng, mirror, END, END + PAGE_SIZE, PAGE_SHIFT)
            await down_read(mm.mmap_sem)
            out.append(await mod.hmm_range_fault(rng, True))
            await up_read(mm.mmap_sem)

        run_one(body)
        assert [-errno.EFAULT] == out

    @BOTH
    def test_fault_on_hole_is_the_v53_null_vma_bug(self, mod: ModuleType) -> None:
        """Faulting a hole before a VMA hands a NULL vma to handle_mm_fault."""

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(mod, mm, StubMirrorOps())
            rng = new_range(mod, n=NPAGES + 1)
            await mod.hmm_range_register(rng, mirror, BASE - PAGE_SIZE, END, PAGE_SHIFT)
            await down_read(mm.mmap_sem)
            await mod.hmm_range_fault(rng, True)
            await up_read(mm.mmap_sem)

        run = run_one(body)
        assert ["null-deref"] == run.kinds
        assert "NULL pointer" in run.result.findings[0].message

    @BOTH
    def test_lockdep_without_mmap_sem(self, mod: ModuleType) -> None:
        """Calling hmm_range_fault without mmap_sem is a lockdep finding."""

        async def body() -> None:
            mm = await make_mm()
            _, rng = await registered(mod, mm)
            await mod.hmm_range_fault(rng, True)

        assert "lockdep" in run_one(body).kinds


class TestHmmRangeSnapshot:
    @BOTH
    def test_reports_present_pages_without_faulting(self, mod: ModuleType) -> None:
        """Only pages already mapped are reported; holes stay NONE."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await cpu_store(mm, BASE + PAGE_SIZE, 7)
            _, rng = await registered(mod, mm)
            await down_read(mm.mmap_sem)
            out.append(await mod.hmm_range_snapshot(rng))
            await up_read(mm.mmap_sem)
            out.append([mod.hmm_device_entry_to_pfn(rng, e) for e in rng.pfns])
            out.append(pfn_to_page(0).contents)

        run = run_one(body)
        assert [] == run.kinds
        assert [NPAGES, [-1, 0, -1, -1], 7] == out


class TestHmmInvalidateRangeStart:
    @BOTH
    def test_blockable_invalidation_calls_every_mirror(self, mod: ModuleType) -> None:
        """A blockable invalidation updates every mirror and leaves notifiers at 0."""
        ops1, ops2 = StubMirrorOps(), StubMirrorOps()
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            m1 = await register_mirror(mod, mm, ops1, "m1")
            await register_mirror(mod, mm, ops2, "m2")
            await invalidate(mm, blockable=True)
            out.append(m1.hmm.notifiers)
            out.append(m1.hmm.mmu_notifier.ghost_balance)

        run = run_one(body)
        assert [] == run.kinds
        assert [(BASE, END, True)] == ops1.updates == ops2.updates
        assert [0, 0] == out
        assert [1, 0] == [e["value"] for e in run.named("hmm_notifiers")]

    def test_v53_propagates_mirror_eagain(self) -> None:
        """v5.3: a mirror's -EAGAIN fails the non-blockable start and is unwound."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            mirror, rng = await registered(hmm, mm, StubMirrorOps(-errno.EAGAIN))
            out.append(await invalidate(mm, blockable=False))
            out.append((mirror.hmm.notifiers, mirror.hmm.mmu_notifier.ghost_balance))
            out.append(await hmm.hmm_range_valid(rng))

        run = run_one(body)
        assert [] == run.kinds
        assert [-errno.EAGAIN, (0, 0), True] == out

    def test_prepatch_loses_mirror_eagain(self) -> None:
        """Before the seed patch the shadowed ret makes the start return 0."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(
                hmm_prepatch, mm, StubMirrorOps(-errno.EAGAIN)
            )
            rng = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(rng, MMU_NOTIFY_UNMAP, 0, None, mm, BASE, END)
            out.append(await mmu_notifier_invalidate_range_start_nonblock(rng))
            out.append(mirror.hmm.notifiers)

        run = run_one(body)
        assert [] == run.kinds
        assert [0, 1] == out

    def test_prepatch_skips_later_mirrors(self) -> None:
        """Before the seed patch, mirrors after a refusing one are not called."""
        first, second = StubMirrorOps(), StubMirrorOps(-errno.EAGAIN)

        async def body() -> None:
            mm = await make_mm()
            await register_mirror(hmm_prepatch, mm, first, "first")
            await register_mirror(hmm_prepatch, mm, second, "second")  # list head
            rng = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(rng, MMU_NOTIFY_UNMAP, 0, None, mm, BASE, END)
            await mmu_notifier_invalidate_range_start_nonblock(rng)

        run_one(body)
        assert 1 == len(second.updates)
        assert [] == first.updates

    @pytest.mark.parametrize(
        ("mod", "notifiers"), [(hmm, 0), (hmm_prepatch, 1)], ids=["v5.3", "prepatch"]
    )
    def test_mirrors_sem_contended(self, mod: ModuleType, notifiers: int) -> None:
        """A failed mirrors_sem trylock: v5.3 unwinds notifiers, prepatch leaks it."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            mirror, rng = await registered(mod, mm)
            the_hmm = mirror.hmm
            await down_write(the_hmm.mirrors_sem)
            out.append(await invalidate(mm, blockable=False))
            await up_write(the_hmm.mirrors_sem)
            out.append(the_hmm.notifiers)
            out.append(the_hmm.mmu_notifier.ghost_balance)
            out.append(await mod.hmm_range_valid(rng))

        run = run_one(body)
        assert [] == run.kinds
        assert [-errno.EAGAIN, notifiers, 0, notifiers == 0] == out

    def test_prepatch_hmm_lock_contended(self) -> None:
        """Before the seed patch a contended hmm->lock makes the start fail early."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            mirror, _ = await registered(hmm_prepatch, mm)
            from hmmsim.sync import mutex_lock, mutex_unlock  # noqa: PLC0415

            await mutex_lock(mirror.hmm.lock)
            out.append(await invalidate(mm, blockable=False))
            await mutex_unlock(mirror.hmm.lock)
            out.append(mirror.hmm.notifiers)

        run_one(body)
        assert [-errno.EAGAIN, 0] == out

    def test_v53_warns_on_blockable_failure(self) -> None:
        """v5.3 WARNs when a mirror fails a blockable update, and treats it as done."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(
                hmm, mm, StubMirrorOps(blocking_ret=-errno.EAGAIN)
            )
            await invalidate(mm, blockable=True)
            out.append(mirror.hmm.notifiers)

        run = run_one(body)
        assert ["warn"] == run.kinds
        assert [0] == out

    def test_skips_hmm_being_freed(self) -> None:
        """A callback racing with the last hmm_put sees a zero kref and does nothing."""
        out: list[int] = []

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(hmm, mm, StubMirrorOps())
            mirror.hmm.kref.refcount = 0
            rng = MmuNotifierRange(mm=mm)
            mmu_notifier_range_init(rng, MMU_NOTIFY_UNMAP, 0, None, mm, BASE, END)
            out.append(await mmu_notifier_invalidate_range_start_nonblock(rng))
            await mmu_notifier_invalidate_range_end(rng)
            out.append(mirror.hmm.notifiers)

        run_one(body)
        assert [0, 0] == out

    def test_use_after_free_is_reported(self) -> None:
        """A callback on an hmm already kfree'd is a use-after-free finding."""

        async def body() -> None:
            mm = await make_mm()
            mirror = await register_mirror(hmm, mm, StubMirrorOps())
            mirror.hmm.freed = True
            await invalidate(mm, blockable=True)

        assert ["use-after-free"] == run_one(body).kinds


class TestHmmInvalidateRangeEnd:
    def test_prepatch_sleeps_in_nonblockable_end(self) -> None:
        """Before the seed patch the end takes a mutex in non-blocking context."""

        async def body() -> None:
            mm = await make_mm()
            await register_mirror(hmm_prepatch, mm, StubMirrorOps())
            await invalidate(mm, blockable=False)

        run = run_one(body)
        assert ["sleep-in-nonblockable"] == run.kinds

    def test_v53_end_does_not_sleep(self) -> None:
        """v5.3 takes a spinlock in the end: no sleep in non-blocking context."""

        async def body() -> None:
            mm = await make_mm()
            await register_mirror(hmm, mm, StubMirrorOps())
            await invalidate(mm, blockable=False)

        assert [] == run_one(body).kinds


class TestHmmRelease:
    @BOTH
    def test_exit_releases_every_mirror(self, mod: ModuleType) -> None:
        """The last mmput runs exit_mmap, mmu_notifier_release and each mirror's release."""
        ops1, ops2 = StubMirrorOps(), StubMirrorOps()
        order: list[str] = []

        async def body() -> None:
            mm = await make_mm()
            await register_mirror(mod, mm, ops1, "m1")
            await register_mirror(mod, mm, ops2, "m2")
            await mmget(mm)
            await mmput(mm)
            order.append("still alive")
            await mmput(mm)

        run = run_one(body)
        assert [] == run.kinds
        assert ["m1"] == ops1.released
        assert ["m2"] == ops2.released
        names = [e for e, _ in run.events]
        assert names.index("exit_mmap") < names.index("mmu_notifier_release")

    @BOTH
    def test_warns_with_ranges_left(self, mod: ModuleType) -> None:
        """hmm_release WARNs if a range is still registered (impossible with mmget)."""

        async def body() -> None:
            mm = await make_mm()
            mirror, _ = await registered(mod, mm)
            await mod.hmm_release(mirror.hmm.mmu_notifier, mm)

        assert ["warn"] == run_one(body).kinds


class TestHmmGetOrCreate:
    @BOTH
    def test_reuses_existing_hmm(self, mod: ModuleType) -> None:
        """A second call returns the installed hmm with one more reference."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await down_write(mm.mmap_sem)
            first = await mod.hmm_get_or_create(mm)
            second = await mod.hmm_get_or_create(mm)
            await up_write(mm.mmap_sem)
            assert first is not None
            out.extend([first is second, first.kref.refcount])

        run_one(body)
        assert [True, 2] == out

    @BOTH
    def test_creates_new_when_old_is_dying(self, mod: ModuleType) -> None:
        """An installed hmm whose kref is zero is replaced by a new one."""
        out: list[Any] = []

        async def body() -> None:
            mm = await make_mm()
            await down_write(mm.mmap_sem)
            first = await mod.hmm_get_or_create(mm)
            assert first is not None
            first.kref.refcount = 0
            second = await mod.hmm_get_or_create(mm)
            await up_write(mm.mmap_sem)
            out.extend([first is second, mm.hmm is second])

        run_one(body)
        assert [False, True] == out


@BOTH
def test_device_entry_helpers(mod: ModuleType) -> None:
    """Special values and entries without VALID decode to no page."""
    hmm = mod
    rng = mod.HmmRange()
    assert hmm.hmm_device_entry_to_page(rng, rng.values[0]) is None
    assert hmm.hmm_device_entry_to_page(rng, rng.values[2]) is None
    assert hmm.hmm_device_entry_to_page(rng, 4 << 8) is None
    assert -1 == hmm.hmm_device_entry_to_pfn(rng, rng.values[0])
    assert -1 == hmm.hmm_device_entry_to_pfn(rng, rng.values[1])
    assert -1 == hmm.hmm_device_entry_to_pfn(rng, rng.values[2])
    assert -1 == hmm.hmm_device_entry_to_pfn(rng, 4 << 8)
    assert (5 << 8) | 1 == hmm.hmm_device_entry_from_pfn(rng, 5)
    assert PAGE_SIZE == hmm.hmm_range_page_size(rng)


def test_mapping_twice_is_eexist() -> None:
    """Mapping over an existing VMA fails (MAP_FIXED_NOREPLACE semantics)."""
    out: list[int] = []

    async def body() -> None:
        mm = await make_mm()
        out.append(await vm_mmap(mm, BASE, PAGE_SIZE, VM_READ))
        out.append(await vm_mmap(mm, BASE + 1, PAGE_SIZE, VM_READ))
        out.append(await vm_mmap(mm, BASE, 0, VM_READ))

    run_one(body)
    assert [-errno.EEXIST, -errno.EINVAL, -errno.EINVAL] == out
