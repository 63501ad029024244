"""The unmap queue of Xen's grant table: gnttab_unmap_refs_async / _sync.

Kernel: drivers/xen/grant-table.c (v5.18; unchanged since 745282256c75
"xen/gntdev: safely unmap grants in case they are still in use", v4.4, and
still so today): ``gnttab_unmap_refs_async`` unmaps a batch of grants only
once nobody but the grant's own reference holds the pages: while any page
has ``page_count > 1`` it queues ``gnttab_unmap_work`` again, with a delay
of GNTTAB_UNMAP_REFS_DELAY ms times (age + 1), and it retries for as long
as it takes.  ``gnttab_unmap_refs_sync`` runs the same and sleeps on a
completion until the batch is done.

Sources read: drivers/xen/grant-table.c of v5.1x (search index ids 6315762
and 41340421643, the latter with the later ``xh`` argument), which agree on
every modelled line.

Deviations:
    * MODEL: ``gnttab_unmap_refs`` (the GNTTABOP_unmap_grant_ref hypercall,
      ClearPageForeign and clear_foreign_p2m_mapping) is one write of the
      batch's grant handles: each ``unmap_ops[i]`` gets status 0 (GNTST_okay)
      and the grant is no longer mapped (:class:`GrantHandle`); the
      hypervisor never fails it.
    * MODEL: ``age`` saturates at :data:`UNMAP_AGE_MAX` instead of UINT_MAX:
      it only scales the delay, which time-free ``msleep`` ignores, and a
      counter that keeps growing would hide from the engine that the retry
      loop is back in the same state (a hang, not a long execution).
    * MODEL: the batch's arrays (``unmap_ops``, ``kunmap_ops``, ``pages``)
      are Python lists of the batch's own entries (pointers into the map's
      arrays in C); ``kunmap_ops`` is not modelled (one handle per grant).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from hmmsim.kernel.completion import (
    Completion,
    complete,
    init_completion,
    wait_for_completion,
)
from hmmsim.kernel.mm_types import Page
from hmmsim.kernel.page_alloc import page_count
from hmmsim.kernel.trace import trace
from hmmsim.kernel.workqueue import (
    INIT_DELAYED_WORK,
    DelayedWork,
    msecs_to_jiffies,
    schedule_delayed_work,
)
from hmmsim.sync import new_oid, shared_access

__all__ = [
    "GNTTAB_UNMAP_REFS_DELAY",
    "INVALID_GRANT_HANDLE",
    "UNMAP_AGE_MAX",
    "GntabUnmapQueueData",
    "GrantHandle",
    "gnttab_unmap_refs",
    "gnttab_unmap_refs_async",
    "gnttab_unmap_refs_sync",
]

#: Milliseconds between two tries, times (age + 1).
GNTTAB_UNMAP_REFS_DELAY: Final = 5
#: MODEL: the saturation of ``age`` (UINT_MAX in C), see Deviations.
UNMAP_AGE_MAX: Final = 2
#: include/xen/grant_table.h: a handle that maps nothing.
INVALID_GRANT_HANDLE: Final = -1


@dataclass(slots=True, kw_only=True, eq=False)
class GrantHandle:
    """Models one ``struct gnttab_unmap_grant_ref``: a mapped grant.

    Attributes:
        name: name used in reports.
        handle: the hypervisor's handle (INVALID_GRANT_HANDLE when unmapped).
        status: the hypercall's status for this entry (0 is GNTST_okay).
        mapped: ghost: the hypervisor still maps the grant.
    """

    name: str
    handle: int = INVALID_GRANT_HANDLE
    status: int = 0
    mapped: bool = False
    oid: int = field(default_factory=new_oid)

    def holders(self) -> tuple[int, ...]:
        """A grant entry has no holders."""
        return ()


DoneFn = Callable[[int, "GntabUnmapQueueData"], Awaitable[None]]


@dataclass(slots=True, kw_only=True, eq=False)
class GntabUnmapQueueData:
    """Models ``struct gntab_unmap_queue_data`` (include/xen/grant_table.h).

    Attributes:
        gnttab_work: the delayed work that retries the unmap.
        data: the caller's context for ``done``.
        done: called once the batch is unmapped, with the hypercall's result.
        unmap_ops: the grants of the batch.
        pages: the pages the grants are mapped at.
        count: the number of grants.
        age: how many times the work ran.
        offset: MODEL: where ``unmap_ops`` starts in the map's array (the
            pointer difference ``data->unmap_ops - map->unmap_ops`` in C).
    """

    gnttab_work: DelayedWork = field(
        default_factory=lambda: DelayedWork(name="gnttab_work")
    )
    data: object = None
    done: DoneFn | None = None
    unmap_ops: list[GrantHandle] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    count: int = 0
    age: int = 0
    offset: int = 0


@dataclass(slots=True, kw_only=True, eq=False)
class UnmapRefsCallbackData:
    """Models ``struct unmap_refs_callback_data`` (on gnttab_unmap_refs_sync's stack)."""

    completion: Completion = field(
        default_factory=lambda: Completion(name="unmap_refs")
    )
    result: int = 0


async def gnttab_unmap_refs(
    unmap_ops: list[GrantHandle], pages: list[Page], count: int
) -> int:
    """Unmap ``count`` grants (the hypercall); return its result.

    Kernel: drivers/xen/grant-table.c gnttab_unmap_refs() (v5.18).  MODEL:
    see Deviations (no ``kunmap_ops``; the hypercall always succeeds).
    """
    del pages  # MODEL: ClearPageForeign is not modelled
    for op in unmap_ops[:count]:
        await shared_access(op, write=True, func="HYPERVISOR_grant_table_op")
        op.status = 0
        op.mapped = False
    trace("gnttab_unmap_refs", count=count)
    return 0


async def gnttab_unmap_work(work: DelayedWork) -> None:
    """The delayed work: one more try of the batch.

    Kernel: drivers/xen/grant-table.c gnttab_unmap_work() (v5.18).
    """
    unmap_data = work.container  # MODEL: container_of
    assert isinstance(unmap_data, GntabUnmapQueueData), (
        "[hmmsim internal bug] gnttab_unmap_work of another work item"
    )
    if unmap_data.age != UNMAP_AGE_MAX:
        unmap_data.age += 1
    await __gnttab_unmap_refs_async(unmap_data)


async def __gnttab_unmap_refs_async(item: GntabUnmapQueueData) -> None:
    """Unmap the batch if no page has another user, else try again later.

    Kernel: drivers/xen/grant-table.c __gnttab_unmap_refs_async() (v5.18).
    The test is ``page_count > 1``: the grant's own reference is the only
    one allowed, so any get_page or pin of the page by someone else (a GPU
    driver's userptr, an O_DIRECT read) postpones the unmap until it is
    dropped, however long that takes.
    """
    for pc in range(item.count):
        if await page_count(item.pages[pc]) > 1:
            delay = GNTTAB_UNMAP_REFS_DELAY * (item.age + 1)
            trace("gnttab_unmap_busy", page=item.pages[pc].pfn, age=item.age)
            await schedule_delayed_work(item.gnttab_work, msecs_to_jiffies(delay))
            return

    ret = await gnttab_unmap_refs(item.unmap_ops, item.pages, item.count)
    done = item.done
    assert done is not None, "[hmmsim internal bug] unmap batch without done"
    await done(ret, item)


async def gnttab_unmap_refs_async(item: GntabUnmapQueueData) -> None:
    """Unmap the batch now, or as soon as its pages are free (asynchronous).

    Kernel: drivers/xen/grant-table.c gnttab_unmap_refs_async() (v5.18).
    ``item->done`` runs in the caller or in a kworker, later.
    """
    INIT_DELAYED_WORK(item.gnttab_work, gnttab_unmap_work)
    item.gnttab_work.container = item
    item.age = 0

    await __gnttab_unmap_refs_async(item)


async def unmap_refs_callback(result: int, data: GntabUnmapQueueData) -> None:
    """The ``done`` of gnttab_unmap_refs_sync: record the result, wake the caller.

    Kernel: drivers/xen/grant-table.c unmap_refs_callback() (v5.18).
    """
    d = data.data
    assert isinstance(d, UnmapRefsCallbackData), (
        "[hmmsim internal bug] not a sync batch"
    )
    d.result = result
    await complete(d.completion)


async def gnttab_unmap_refs_sync(item: GntabUnmapQueueData) -> int:
    """Unmap the batch and sleep until it is done.

    Kernel: drivers/xen/grant-table.c gnttab_unmap_refs_sync() (v5.18).  The
    sleep has no timeout: it lasts until every page of the batch is back to
    a count of 1.

    Returns:
        The result of the hypercall.
    """
    data = UnmapRefsCallbackData()
    init_completion(data.completion)
    item.data = data
    item.done = unmap_refs_callback
    await gnttab_unmap_refs_async(item)
    await wait_for_completion(data.completion)

    return data.result
