"""Museum scenario ``interval-remove-vs-reap``: 319561669a59 on today's kernel.

The built-in race ``oom-vs-mirror-unregister`` (a driver's release removes
its interval notifier while the OOM reaper's invalidation is open) on the
current kernel with Alistair Popple's "mm/mmu_notifier.c: fix race in
mmu_interval_notifier_remove()" (319561669a59, v5.18) reverted, and as
released: the kernel just before and just after that one commit, where the
built-in scenario's variants v5.5 and current differ by more.
"""

from __future__ import annotations

import dataclasses

from hmmsim.kernel.mmu_notifier_current import FIX_319561669A59
from hmmsim.scenarios import register
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.museum._reverts import before_and_after, revert_variant
from hmmsim.scenarios.oom_vs_mirror_unregister import RACE as BUILTIN

__all__ = ["AFTER", "BEFORE", "RACE", "SCENARIO"]

#: Today's kernel without 319561669a59.
BEFORE = revert_variant("current", FIX_319561669A59)
#: Today's kernel.
AFTER = "current"

RACE = dataclasses.replace(
    BUILTIN,
    name="interval-remove-vs-reap",
    title=(
        "A driver removes its interval notifier during the OOM reaper's "
        "invalidation, today's kernel with and without 319561669a59"
    ),
    battery=False,
    group=MUSEUM_GROUP,
)

SCENARIO = register(
    before_and_after(
        RACE, "current", FIX_319561669A59, ("use-after-free",), kernel_version="v6.16"
    )
)
