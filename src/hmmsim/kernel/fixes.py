"""Patch switches: the upstream fixes a world's kernel can leave out.

A variant models one kernel release with every fix up to it.  A museum
exhibit (:mod:`hmmsim.museum`) shows a race on the kernel *just before* the
commit that fixed it and verifies the kernel just after; when no variant
falls between the two, the exhibit builds the world of the later variant
with that one commit reverted.  The kernel code guards the fixed lines with
:func:`fix_applied`, so ``diff`` of the two branches reads like the commit.

Every switch is listed in :data:`FIXES` (commit id -> subject); asking about
an unlisted id is a model error, so a typo cannot silently select the wrong
branch.

Deviations:
    * MODEL: in the kernel a fix is present or absent at build time; here
      the set of reverted fixes is recorded on the mm
      (``MmStruct.reverted_fixes``, set when the world is built and never
      changed), and :func:`fix_applied` reads it.  It is configuration, not
      shared state, so reading it is not an Op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from hmmsim.errors import ModelError

if TYPE_CHECKING:
    from hmmsim.kernel.mm_types import MmStruct

__all__ = ["FIXES", "check_fixes", "fix_applied"]

#: The switchable upstream fixes: 12-digit commit id -> commit subject.
#: Add a line here with the kernel code that tests it.
FIXES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "000000000000": "hmmsim self-test switch (no kernel change)",
        "c18ce674d548": "mm/hmm: hmm_range_fault() infinite loop",
        "319561669a59": (
            "mm/mmu_notifier.c: fix race in mmu_interval_notifier_remove()"
        ),
        "c2655835fd8c": (
            "mm/mmu_notifiers: ensure range_end() is paired with range_start()"
        ),
        "2bcbeaefde2f": (
            "mm/hmm: always return EBUSY for invalid ranges in hmm_range_{fault,snapshot}"
        ),
        "751efd8610d3": (
            "mmu_notifier_unregister NULL Pointer deref and multiple ->release() callouts"
        ),
        "d34883d4e35c": "mm: mmu_notifier: re-fix freed page still mapped in secondary MMU",
        "6d7c3cde93c1": (
            "mm/hmm: fix use after free with struct hmm in the mmu notifiers"
        ),
        "16ce101db85d": "mm/memory.c: fix race when faulting a device private page",
        "60bae7370896": "mm/migrate_device.c: flush TLB while holding PTL",
        "1afaeb8293c9": "mm/migrate: Trylock device page in do_swap_page",
        "dbe97cff7dd9": "xen/gntdev: Avoid blocking in unmap_grant_pages()",
    }
)


def check_fixes(commits: Iterable[str]) -> frozenset[str]:
    """Return ``commits`` as a frozenset after checking each is in :data:`FIXES`.

    Raises:
        ModelError: an id is not a known switch; the message names it.
    """
    result = frozenset(commits)
    unknown = sorted(result - FIXES.keys())
    if unknown:
        raise ModelError(
            f"unknown fix {unknown[0]!r}: not a patch switch in hmmsim.kernel.fixes.FIXES"
        )
    return result


def fix_applied(mm: MmStruct, commit: str) -> bool:
    """Return whether the kernel serving ``mm`` carries fix ``commit``.

    Raises:
        ModelError: ``commit`` is not listed in :data:`FIXES`.
    """
    if commit not in FIXES:
        raise ModelError(
            f"unknown fix {commit!r}: not a patch switch in hmmsim.kernel.fixes.FIXES"
        )
    return commit not in mm.reverted_fixes
