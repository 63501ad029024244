"""Drift guard for the intentional copies between kernel versions of the model.

``kernel.mmu_notifier_current`` starts as a copy of ``kernel.mmu_notifier_v55``
and ``kernel.drivers.dmirror_current`` as a copy of ``kernel.drivers.dmirror``;
each copy differs exactly where the kernel changed (or where the driver meets
a changed API).  Definitions are compared as code, docstrings left out (they
name the version), so an edit to one copy that is not a kernel change fails
here until it is made in both or declared below.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

from hmmsim.kernel import mmu_notifier_current as cur

KERNEL: Final = Path(__file__).resolve().parents[3] / "src" / "hmmsim" / "kernel"

#: mm/mmu_notifier.c changes since v5.5 (see the current module's docstring).
NOTIFIER_CHANGES: Final = frozenset(
    {
        # post-v5.5 rename of struct mmu_notifier_mm (the model's accessor follows).
        "_mmn_mm",
        # c2655835fd8c: ends paired with starts after a refusal.
        "mn_hlist_invalidate_range_start",
        # v6.6: only_end removed with the invalidate_range callback.
        "mn_hlist_invalidate_end",
        "__mmu_notifier_invalidate_range_end",
        "mmu_notifier_invalidate_range_end",
        # post-v5.5 rename; v6.6 arch_invalidate_secondary_tlbs check (not modelled).
        "__mmu_notifier_register",
        # mm_users instead of mm_count.
        "__mmu_interval_notifier_insert",
        # 319561669a59: the wait reads the sequence under the lock.
        "mmu_interval_notifier_remove",
    }
)

#: lib/test_hmm.c functions that differ between the v5.5 port and v6.16.
DMIRROR_CHANGES: Final = frozenset(
    {
        "dmirror_do_fault",  # hmm_pfns and HMM_PFN_* bits
        "dmirror_range_fault",  # hmm_range_fault(range), 0 or -errno
        "dmirror_fault",  # default_flags = HMM_PFN_REQ_FAULT (| REQ_WRITE)
        "dmirror_mkentry",  # HMM_PFN_* bits
        "dmirror_range_snapshot",  # default_flags 0 instead of HMM_FAULT_SNAPSHOT
        "dmirror_snapshot",  # hmm_pfns, dev_private_owner
        # v5.9+: the MMU_NOTIFY_MIGRATE of the device's own migration is skipped.
        "dmirror_interval_invalidate",
    }
)


def definitions(path: Path) -> dict[str, str]:
    """Map each top-level function and class to its code without docstrings."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for sub in ast.walk(node):
                body = getattr(sub, "body", None)
                if (
                    isinstance(body, list)
                    and body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                ):
                    body[0].value.value = ""
            found[node.name] = ast.dump(node)
    return found


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("mmu_notifier_v55.py", "mmu_notifier_current.py", NOTIFIER_CHANGES),
        ("drivers/dmirror.py", "drivers/dmirror_current.py", DMIRROR_CHANGES),
    ],
)
def test_shared_definitions_differ_only_where_the_kernel_changed(
    old: str, new: str, changed: frozenset[str]
) -> None:
    """A definition in both modules has the same code unless declared changed."""
    before = definitions(KERNEL / old)
    after = definitions(KERNEL / new)

    differing = {
        name for name in before.keys() & after.keys() if before[name] != after[name]
    }

    assert changed == differing


def test_notifier_definitions_added_and_removed_are_the_renames_and_the_fix() -> None:
    """current adds the post-v5.5 names and 319561669a59's helper, drops the old names."""
    before = definitions(KERNEL / "mmu_notifier_v55.py")
    after = definitions(KERNEL / "mmu_notifier_current.py")

    assert {
        "MmuNotifierSubscriptions",
        "__mmu_notifier_subscriptions_destroy",
        "mmu_notifier_subscriptions_destroy",
        "mmu_interval_seq_released",
    } == after.keys() - before.keys()
    # The structs are imported from v5.5 (the C structs did not change).
    assert {
        "MmuIntervalNotifierOps",
        "StaticMmuIntervalNotifierOps",
        "MmuIntervalNotifier",
        "MmuNotifierMm",
        "__mmu_notifier_mm_destroy",
        "mmu_notifier_mm_destroy",
    } == before.keys() - after.keys()


def test_the_old_destroy_name_is_the_renamed_function() -> None:
    """mmu_notifier_mm_destroy of current is mmu_notifier_subscriptions_destroy."""
    assert cur.mmu_notifier_mm_destroy is cur.mmu_notifier_subscriptions_destroy
