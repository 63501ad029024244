"""The callbacks of v5.3 and pre-patch HMM with 6d7c3cde93c1 reverted (v5.2's mm_get_hmm)."""

from __future__ import annotations

from types import ModuleType

import pytest
from tests.support.kernel_harness import (
    StubMirrorOps,
    make_mm,
    register_mirror,
    run_one,
)

from hmmsim.kernel import hmm, hmm_prepatch
from hmmsim.kernel.mmu_notifier import MmuNotifierRange
from hmmsim.kernel.types import MMU_NOTIFY_UNMAP

MODULES = [pytest.param(hmm, id="v5.3"), pytest.param(hmm_prepatch, id="prepatch")]
REVERTED = frozenset({hmm.FIX_HMM_SRCU_FREE})


@pytest.mark.parametrize("mod", MODULES)
def test_release_reaches_the_mirrors_through_mm_get_hmm(mod: ModuleType) -> None:
    """With the hmm still installed, the reverted release calls every mirror's release."""
    ops = StubMirrorOps()

    async def body() -> None:
        mm = await make_mm()
        mm.reverted_fixes = REVERTED
        mirror = await register_mirror(mod, mm, ops, "m1")
        await mod.hmm_release(mirror.hmm.mmu_notifier, mm)

    run = run_one(body)

    assert [] == run.kinds
    assert ["m1"] == ops.released


@pytest.mark.parametrize("mod", MODULES)
def test_release_without_an_hmm_dereferences_null(mod: ModuleType) -> None:
    """Once mm->hmm is gone, v5.2's release uses the NULL mm_get_hmm returned: an oops."""

    async def body() -> None:
        mm = await make_mm()
        mm.reverted_fixes = REVERTED
        mirror = await register_mirror(mod, mm, StubMirrorOps(), "m1")
        mm.hmm = None  # what hmm_free does first, under page_table_lock
        await mod.hmm_release(mirror.hmm.mmu_notifier, mm)

    run = run_one(body)

    assert ["null-deref"] == run.kinds
    assert "hmm_release" in run.result.findings[0].message


@pytest.mark.parametrize("mod", MODULES)
def test_end_without_an_hmm_hits_vm_bug_on(mod: ModuleType) -> None:
    """Once mm->hmm is gone, v5.2's invalidate_range_end stops at VM_BUG_ON(!hmm)."""

    async def body() -> None:
        mm = await make_mm()
        mm.reverted_fixes = REVERTED
        mirror = await register_mirror(mod, mm, StubMirrorOps(), "m1")
        mm.hmm = None
        nrange = MmuNotifierRange(mm=mm, start=0, end=1 << 20, event=MMU_NOTIFY_UNMAP)
        await mod.hmm_invalidate_range_end(mirror.hmm.mmu_notifier, nrange)

    run = run_one(body)

    assert ["bug"] == run.kinds
    assert "hmm_invalidate_range_end: !hmm" in run.result.findings[0].message
