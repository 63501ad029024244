"""SRCU reduced to what the mmu-notifier core needs.

``srcu_read_lock`` opens a read-side section and returns its index;
``srcu_read_unlock`` closes it.  ``synchronize_srcu`` waits until every
section that was open when it was called has closed.  ``call_srcu`` runs a
callback after such a grace period, in a task of its own.

Deviations:
    * MODEL: one global grace period per call instead of two-phase flips;
      readers that start after ``synchronize_srcu`` was called are not waited
      for, which is the guarantee SRCU gives.
    * MODEL: ``call_srcu`` callbacks run in a spawned task named
      ``srcu-callback`` (the kernel runs them from a workqueue/softirq).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hmmsim.engine.ops import LOCAL, Op, OpKind
from hmmsim.sync._base import current_execution, current_task, new_oid, report
from hmmsim.sync.debug import might_sleep

__all__ = [
    "SrcuStruct",
    "call_srcu",
    "srcu_read_lock",
    "srcu_read_unlock",
    "synchronize_srcu",
]


class SrcuStruct:
    """Models ``struct srcu_struct``.

    Attributes:
        active: open read-side sections, index -> task id.
        next_index: index of the next section.
    """

    __slots__ = ("active", "name", "next_index", "oid")

    def __init__(self, name: str) -> None:
        """Create an SRCU domain with no readers."""
        self.name = name
        self.oid = new_oid()
        self.active: dict[int, int] = {}
        # Per task, so that read-side sections of different tasks commute.
        self.next_index: dict[int, int] = {}

    def holders(self) -> tuple[int, ...]:
        """Return the tasks inside read-side sections."""
        return tuple(sorted(set(self.active.values())))


async def srcu_read_lock(srcu: SrcuStruct) -> int:
    """Open a read-side section; return its index for srcu_read_unlock."""
    # Readers commute with each other: a read-mode Op, ordered only against
    # synchronize_srcu (whose Ops write).  Indexes are per task for the same
    # reason: the order of two readers must not change what they get.
    await Op(OpKind.ACQUIRE, srcu.oid, False, "srcu_read_lock", srcu)
    tid = current_task().id
    count = srcu.next_index.get(tid, 0)
    srcu.next_index[tid] = count + 1
    index = (tid << 32) | count
    srcu.active[index] = tid
    return index


async def srcu_read_unlock(srcu: SrcuStruct, index: int) -> None:
    """Close the read-side section ``index``."""
    await Op(OpKind.RELEASE, srcu.oid, False, "srcu_read_unlock", srcu)
    if srcu.active.pop(index, None) is None:
        report(
            "bad-unlock",
            f"srcu_read_unlock({srcu.name}, {index}) of a section that is not open",
        )


async def synchronize_srcu(srcu: SrcuStruct) -> None:
    """Wait until every read-side section open now has closed."""
    might_sleep("synchronize_srcu")
    await Op(OpKind.READ, srcu.oid, True, "synchronize_srcu", srcu)
    waited = tuple(srcu.active)

    def grace_period_over() -> bool:
        return not any(i in srcu.active for i in waited)

    await Op(
        OpKind.WAIT, srcu.oid, True, "synchronize_srcu:wait", srcu, grace_period_over
    )


async def _callback_task(srcu: SrcuStruct, func: Callable[[], Awaitable[None]]) -> None:
    await synchronize_srcu(srcu)
    await func()


async def call_srcu(srcu: SrcuStruct, func: Callable[[], Awaitable[None]]) -> None:
    """Queue ``func`` to run after a grace period (in its own task)."""
    await Op(OpKind.SPAWN, LOCAL, False, "call_srcu", srcu)
    current_execution().spawn("srcu-callback", _callback_task(srcu, func))
