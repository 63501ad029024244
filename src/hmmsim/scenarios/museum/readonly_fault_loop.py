"""Museum scenario ``readonly-fault-loop``: c18ce674d548 on v5.5, reverted and not.

The built-in race ``fault-on-readonly-vma`` (a device write fault on a
read-only VMA) on the v5.5 kernel with Ralph Campbell's "mm/hmm:
hmm_range_fault() infinite loop" (c18ce674d548, v5.4) reverted, and as
released: the kernel just before and just after that one commit, where the
built-in scenario's variants v5.3 and v5.5 differ by much more.
"""

from __future__ import annotations

import dataclasses

from hmmsim.kernel.hmm_v55 import C18CE674D548
from hmmsim.scenarios import register
from hmmsim.scenarios.base import MUSEUM_GROUP
from hmmsim.scenarios.fault_on_readonly_vma import RACE as BUILTIN
from hmmsim.scenarios.museum._reverts import before_and_after, revert_variant

__all__ = ["AFTER", "BEFORE", "RACE", "SCENARIO"]

#: v5.5 without c18ce674d548.
BEFORE = revert_variant("v5.5", C18CE674D548)
#: v5.5 as released.
AFTER = "v5.5"

RACE = dataclasses.replace(
    BUILTIN,
    name="readonly-fault-loop",
    title="A device write fault on a read-only VMA, v5.5 with and without c18ce674d548",
    battery=False,
    group=MUSEUM_GROUP,
)

SCENARIO = register(
    before_and_after(RACE, "v5.5", C18CE674D548, ("hang",), kernel_version="v5.5")
)
