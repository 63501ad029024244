"""Model of ``mm/mmu_notifier.c`` and the inline helpers of ``include/linux/mmu_notifier.h`` (Linux v5.3).

Secondary MMUs (here: HMM) subscribe to an address space with an
``MmuNotifier``.  The core calls every subscriber's ``invalidate_range_start``
before the CPU page tables of a range change and ``invalidate_range_end``
afterwards; ``release`` when the address space is torn down.  Callers walk
the subscriber list under the global notifier SRCU; structures that a
callback uses are freed only after an SRCU grace period
(``mmu_notifier_call_srcu``).

v5.3 contract kept here: the start loop calls *every* subscriber, remembers a
failure and returns it; the non-blocking variant returns that error and its
caller then must not call ``invalidate_range_end`` (nor change the PTEs).

Deviations:
    * MODEL: the hlist of subscribers is a singly linked list whose head and
      ``next`` pointers are read with one Op each (on the ``MmuNotifierMm``);
      updates happen under ``mmu_notifier_mm->lock`` and are Ops too.  A
      removed subscriber keeps its ``next`` pointer, as with
      ``hlist_del_init_rcu``, so a reader standing on it goes on.
    * MODEL: the SRCU domain is global per execution
      (``current_execution().context["mmu_notifier_srcu"]``), as the kernel's
      static ``srcu`` is global.
    * MODEL: non-blockable callbacks (start and end) run inside
      ``non_block_start()`` / ``non_block_end()``.  This is the v5.4 debugging
      aid, added so that sleeping in a non-blockable callback is reported as
      ``sleep-in-nonblockable``.  The v5.4 WARN on a failing blockable start
      and the lockdep map are *not* added: the v5.3 loop only logs.
    * MODEL: ``mm_take_all_locks`` is not modelled (registration holds
      ``mmap_sem`` for write, which excludes every invalidation the model has).
    * MODEL: ``mmu_notifier_synchronize`` does not exist in v5.3 (removed in
      v5.1; re-added in v5.4 with the mmu_notifier get/put scheme, where it
      is ``synchronize_srcu(&srcu)``, and so in v5.5).  The model's helper
      waits until every callback queued by ``mmu_notifier_call_srcu`` has
      run (``srcu_barrier`` semantics), which is what its callers (tests)
      need; it is stronger than v5.4/v5.5's synchronize_srcu, which only
      waits for the readers.
    * MODEL: ``container_of`` is the ``container`` back-pointer of
      ``MmuNotifier``.
    * MODEL: an mm whose ``notifier_core`` is set (a v5.5 or current world) is served by
      that core instead: the inline helpers below and mmu_notifier_register
      hand the call over, so the mm code (memory, mmap, oom_kill, rmap,
      mprotect, fork) reaches the right mm/mmu_notifier.c unchanged.  With
      ``notifier_core`` None nothing changes (no extra Op).
    * MODEL: patch switches (hmmsim.kernel.fixes; museum exhibits
      release-vs-unregister and release-vs-reclaim).  ``d34883d4e35c`` ("mm:
      mmu_notifier: re-fix freed page still mapped in secondary MMU", v3.10)
      reverted gives v3.9's release and unregister (751efd8610d3: each
      unhooks the subscriber under the lock, then calls ``release``
      outside it).  With ``751efd8610d3`` reverted as well they are v3.8's:
      v5.3's code with ``hlist_del_rcu`` in unregister, which oopses on a
      subscriber that release already unhooked (``null-deref``).  v3.8-v3.10
      drop the SRCU read lock of release before unhooking (v5.3 after); the
      model keeps v5.3's order, which the races do not depend on.
    * MODEL: ghost state for the oracle: ``mm.ghost_starts_in_flight``
      (start calls running), ``mm.ghost_open_invalidations`` (starts the
      caller will close with an end, minus ends), and per subscription
      ``MmuNotifier.ghost_balance`` (its start callbacks that succeeded, or
      were blockable, minus its end callbacks).  Model logic never reads them.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from hmmsim.kernel.atomic import atomic_read
from hmmsim.kernel.debug import (
    BUG_ON,
    non_block_end,
    non_block_start,
    null_pointer_dereference,
)
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.fork import mmdrop, mmgrab
from hmmsim.kernel.mm_types import MmStruct, RcuHead, VmAreaStruct
from hmmsim.kernel.slab import kmalloc_fails
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    MMU_NOTIFIER_RANGE_BLOCKABLE,
    MMU_NOTIFY_UNMAP,
    MmuNotifierEvent,
    err_name,
)
from hmmsim.sync import (
    Cell,
    SpinLock,
    SrcuStruct,
    WaitQueueHead,
    call_srcu,
    current_execution,
    down_write,
    new_oid,
    spin_lock,
    spin_unlock,
    srcu_read_lock,
    srcu_read_unlock,
    synchronize_srcu,
    up_write,
    wait_event,
    wake_up_all,
)
from hmmsim.sync.once import shared_access

__all__ = [
    "FIX_RELEASE_REFIX",
    "FIX_UNREGISTER_NULL_DEREF",
    "MmuNotifier",
    "MmuNotifierCore",
    "MmuNotifierMm",
    "MmuNotifierOps",
    "MmuNotifierRange",
    "MmuNotifierSrcu",
    "StaticMmuNotifierOps",
    "__mmu_notifier_invalidate_range_end",
    "__mmu_notifier_invalidate_range_start",
    "__mmu_notifier_mm_destroy",
    "__mmu_notifier_register",
    "__mmu_notifier_release",
    "do_mmu_notifier_register",
    "hlist_unhashed",
    "mm_has_notifiers",
    "mmu_notifier_call_srcu",
    "mmu_notifier_invalidate_range_end",
    "mmu_notifier_invalidate_range_start",
    "mmu_notifier_invalidate_range_start_nonblock",
    "mmu_notifier_mm_destroy",
    "mmu_notifier_range_blockable",
    "mmu_notifier_range_init",
    "mmu_notifier_range_init_owner",
    "mmu_notifier_register",
    "mmu_notifier_release",
    "mmu_notifier_srcu",
    "mmu_notifier_synchronize",
    "mmu_notifier_unregister",
    "mmu_notifier_unregister_no_release",
]


@dataclass(slots=True, kw_only=True, eq=False)
class MmuNotifierRange:
    """Models ``struct mmu_notifier_range`` (v5.2/v5.3 layout).

    Attributes:
        mm: the address space being invalidated.
        vma: the area, if the caller has one.
        start: first address (inclusive).
        end: last address (exclusive).
        flags: ``MMU_NOTIFIER_RANGE_BLOCKABLE`` or 0.
        event: why the range is invalidated.
        owner: the device-private owner of an MMU_NOTIFY_MIGRATE range
            (v5.9+ ``owner`` field; None otherwise), so a driver can skip
            the invalidation its own migration causes.
    """

    mm: MmStruct
    vma: VmAreaStruct | None = None
    start: int = 0
    end: int = 0
    flags: int = 0
    event: MmuNotifierEvent = MMU_NOTIFY_UNMAP
    owner: object = None


class MmuNotifierCore(Protocol):
    """MODEL: the notifier core serving an mm (a module such as ``mmu_notifier_v55``).

    The kernel is built with one mm/mmu_notifier.c; the model lets each mm
    name its core (``MmStruct.notifier_core``) so the v5.3 and v5.5 designs
    share the mm code (v5.5 and current implement it).  These are the entry
    points the rest of the model uses.
    """

    async def mmu_notifier_release(self, mm: MmStruct) -> None:
        """Tell every subscriber that ``mm`` is going away."""
        ...

    async def mmu_notifier_invalidate_range_start(
        self, range: MmuNotifierRange
    ) -> None:
        """Start a blockable invalidation."""
        ...

    async def mmu_notifier_invalidate_range_start_nonblock(
        self, range: MmuNotifierRange
    ) -> int:
        """Start a non-blockable invalidation; 0 or -EAGAIN."""
        ...

    async def mmu_notifier_invalidate_range_end(self, range: MmuNotifierRange) -> None:
        """Finish an invalidation started successfully."""
        ...

    async def mmu_notifier_mm_destroy(self, mm: MmStruct) -> None:
        """Free the notifier structure of a dead mm."""
        ...

    async def mmu_notifier_register(self, mn: MmuNotifier, mm: MmStruct) -> int:
        """Subscribe ``mn`` to ``mm`` (takes ``mmap_sem`` for write)."""
        ...


ReleaseFn = Callable[["MmuNotifier", MmStruct], Awaitable[None]]
StartFn = Callable[["MmuNotifier", MmuNotifierRange], Awaitable[int]]
EndFn = Callable[["MmuNotifier", MmuNotifierRange], Awaitable[None]]


class MmuNotifierOps(Protocol):
    """Models ``struct mmu_notifier_ops``: every callback may be None."""

    @property
    def release(self) -> ReleaseFn | None:
        """Called when the address space is torn down (or on unregister)."""
        ...

    @property
    def invalidate_range_start(self) -> StartFn | None:
        """Called before PTEs in a range change; 0 or -EAGAIN (non-blockable)."""
        ...

    @property
    def invalidate_range_end(self) -> EndFn | None:
        """Called after the PTEs changed (only if start succeeded)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticMmuNotifierOps:
    """A ``static const struct mmu_notifier_ops`` with designated initialisers."""

    release: ReleaseFn | None = None
    invalidate_range_start: StartFn | None = None
    invalidate_range_end: EndFn | None = None


@dataclass(slots=True, kw_only=True, eq=False)
class MmuNotifier:
    """Models ``struct mmu_notifier`` (a subscription).

    Attributes:
        ops: the callbacks (None until the owner fills it in).
        container: MODEL: the structure embedding this one (container_of).
        hlist_next: next subscriber in the mm's list.
        hlist_hashed: False once removed (hlist_unhashed).
        ghost_balance: ghost: start callbacks that the caller will close
            with an end, minus end callbacks.
    """

    ops: MmuNotifierOps | None = None
    container: object = None
    name: str = "mmu_notifier"
    hlist_next: MmuNotifier | None = None
    hlist_hashed: bool = False
    # MODEL: ghost state for the oracle
    ghost_balance: int = 0


@dataclass(slots=True, kw_only=True, eq=False)
class MmuNotifierMm:
    """Models ``struct mmu_notifier_mm``: the subscriber list of one mm.

    Attributes:
        first: head of the hlist.
        lock: serialises list updates (readers use SRCU).
    """

    name: str
    lock: SpinLock
    first: MmuNotifier | None = None
    oid: int = field(default_factory=new_oid)

    def holders(self) -> tuple[int, ...]:
        """The list has no holders (its lock does)."""
        return ()


@dataclass(slots=True, kw_only=True, eq=False)
class MmuNotifierSrcu:
    """The global notifier SRCU domain and its queued-callback count (MODEL).

    Attributes:
        srcu: the ``srcu`` of mm/mmu_notifier.c.
        pending: callbacks queued by mmu_notifier_call_srcu and not yet run.
        wq: woken when ``pending`` drops to zero (for mmu_notifier_synchronize).
    """

    srcu: SrcuStruct
    pending: Cell[int]
    wq: WaitQueueHead


def mmu_notifier_srcu() -> MmuNotifierSrcu:
    """Return the execution's notifier SRCU domain (created on first use)."""
    context = current_execution().context
    domain = context.get("mmu_notifier_srcu")
    if domain is None:
        domain = MmuNotifierSrcu(
            srcu=SrcuStruct("mmu_notifier srcu"),
            pending=Cell("mmu_notifier srcu pending", 0),
            wq=WaitQueueHead("mmu_notifier srcu barrier"),
        )
        context["mmu_notifier_srcu"] = domain
    return cast(MmuNotifierSrcu, domain)


# -- include/linux/mmu_notifier.h inline helpers ---------------------------------


def mm_has_notifiers(mm: MmStruct) -> bool:
    """Return whether anyone ever subscribed to ``mm``.

    MODEL: a plain read; the pointer is set under ``mmap_sem`` for write and
    only cleared by __mmdrop, so every caller (which holds ``mmap_sem`` or is
    the last user) sees a stable value.
    """
    return mm.mmu_notifier_mm is not None


def hlist_unhashed(mn: MmuNotifier) -> bool:
    """Return whether ``mn`` is on no list."""
    return not mn.hlist_hashed


def mmu_notifier_range_blockable(range: MmuNotifierRange) -> bool:
    """Return whether the callbacks for ``range`` may sleep."""
    return bool(range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE)


def mmu_notifier_range_init(
    range: MmuNotifierRange,
    event: MmuNotifierEvent,
    flags: int,
    vma: VmAreaStruct | None,
    mm: MmStruct,
    start: int,
    end: int,
) -> None:
    """Fill in a notifier range.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_range_init() (v5.3).
    """
    range.vma = vma
    range.event = event
    range.mm = mm
    range.start = start
    range.end = end
    range.flags = flags


def mmu_notifier_range_init_owner(
    range: MmuNotifierRange,
    event: MmuNotifierEvent,
    flags: int,
    mm: MmStruct,
    start: int,
    end: int,
    owner: object,
) -> None:
    """Fill in a notifier range that names a device-private owner.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_range_init_owner()
    (v6.16 signature: no vma argument; the range's vma is left unset).
    """
    mmu_notifier_range_init(range, event, flags, None, mm, start, end)
    range.owner = owner


async def mmu_notifier_release(mm: MmStruct) -> None:
    """Tell every subscriber that ``mm`` is going away.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_release().
    """
    if mm.notifier_core is not None:  # MODEL: see Deviations
        await mm.notifier_core.mmu_notifier_release(mm)
        return
    if mm_has_notifiers(mm):
        await __mmu_notifier_release(mm)


async def mmu_notifier_invalidate_range_start(range: MmuNotifierRange) -> None:
    """Start a blockable invalidation; the result is ignored (it may not fail).

    Kernel: include/linux/mmu_notifier.h mmu_notifier_invalidate_range_start().
    """
    if range.mm.notifier_core is not None:  # MODEL: see Deviations
        await range.mm.notifier_core.mmu_notifier_invalidate_range_start(range)
        return
    if mm_has_notifiers(range.mm):
        range.flags |= MMU_NOTIFIER_RANGE_BLOCKABLE
        await __mmu_notifier_invalidate_range_start(range)


async def mmu_notifier_invalidate_range_start_nonblock(
    range: MmuNotifierRange,
) -> int:
    """Start an invalidation whose callbacks may not sleep.

    Kernel: include/linux/mmu_notifier.h
    mmu_notifier_invalidate_range_start_nonblock().

    Returns:
        0, or -EAGAIN when some subscriber could not invalidate without
        sleeping; the caller must then neither touch the PTEs nor call
        mmu_notifier_invalidate_range_end.
    """
    core = range.mm.notifier_core
    if core is not None:  # MODEL: see Deviations
        return await core.mmu_notifier_invalidate_range_start_nonblock(range)
    if mm_has_notifiers(range.mm):
        range.flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE
        return await __mmu_notifier_invalidate_range_start(range)
    return 0


async def mmu_notifier_invalidate_range_end(range: MmuNotifierRange) -> None:
    """Finish an invalidation started successfully.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_invalidate_range_end().
    """
    if range.mm.notifier_core is not None:  # MODEL: see Deviations
        await range.mm.notifier_core.mmu_notifier_invalidate_range_end(range)
        return
    if mm_has_notifiers(range.mm):
        await __mmu_notifier_invalidate_range_end(range, False)


async def mmu_notifier_mm_destroy(mm: MmStruct) -> None:
    """Free the subscriber list of a dead mm.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_mm_destroy().
    """
    if mm.notifier_core is not None:  # MODEL: see Deviations
        await mm.notifier_core.mmu_notifier_mm_destroy(mm)
        return
    if mm_has_notifiers(mm):
        await __mmu_notifier_mm_destroy(mm)


# -- the list, read under SRCU ---------------------------------------------------


async def _hlist_first_rcu(mnmm: MmuNotifierMm) -> MmuNotifier | None:
    await shared_access(mnmm, write=False, func="hlist_for_each_entry_rcu")
    return mnmm.first


async def _hlist_next_rcu(mnmm: MmuNotifierMm, mn: MmuNotifier) -> MmuNotifier | None:
    await shared_access(mnmm, write=False, func="hlist_for_each_entry_rcu")
    return mn.hlist_next


async def _hlist_add_head_rcu(mnmm: MmuNotifierMm, mn: MmuNotifier) -> None:
    await shared_access(mnmm, write=True, func="hlist_add_head_rcu")
    mn.hlist_next = mnmm.first
    mn.hlist_hashed = True
    mnmm.first = mn


async def _hlist_del_init_rcu(mnmm: MmuNotifierMm, mn: MmuNotifier) -> None:
    await shared_access(mnmm, write=True, func="hlist_del_init_rcu")
    await _hlist_del_init_rcu_locked(mnmm, mn)


async def _hlist_del_init_rcu_locked(mnmm: MmuNotifierMm, mn: MmuNotifier) -> None:
    if not mn.hlist_hashed:
        return
    if mnmm.first is mn:
        mnmm.first = mn.hlist_next
    else:
        prev = mnmm.first
        while prev is not None and prev.hlist_next is not mn:
            prev = prev.hlist_next
        if prev is not None:
            prev.hlist_next = mn.hlist_next
    # Like hlist_del_init_rcu, ``next`` is kept for readers standing on mn.
    mn.hlist_hashed = False


async def _hlist_del_rcu(mnmm: MmuNotifierMm, mn: MmuNotifier) -> None:
    """``hlist_del_rcu``: unlink a subscriber that must still be on the list.

    Only the reverted patch switches use it (see Deviations).  On a node that
    ``hlist_del_init_rcu`` already unhooked, ``pprev`` is NULL and the
    kernel's store through it oopses.
    """
    await shared_access(mnmm, write=True, func="hlist_del_rcu")
    if not mn.hlist_hashed:
        null_pointer_dereference(
            f"hlist_del_rcu({mn.name}): pprev of an unhashed node (hlist_del_init_rcu)"
        )
    await _hlist_del_init_rcu_locked(mnmm, mn)
    # MODEL: the kernel poisons pprev (LIST_POISON2); the model marks the
    # node unhashed, which no later code of the reverted kernels tests.


# -- mm/mmu_notifier.c --------------------------------------------------------------


#: Patch switch: "mm: mmu_notifier: re-fix freed page still mapped in
#: secondary MMU" (v3.10).  Reverted: v3.9's release and unregister.
FIX_RELEASE_REFIX = "d34883d4e35c"

#: Patch switch: "mmu_notifier_unregister NULL Pointer deref and multiple
#: ->release() callouts" (v3.9), meaningful with FIX_RELEASE_REFIX reverted:
#: reverted too, v3.8's unregister (hlist_del_rcu).
FIX_UNREGISTER_NULL_DEREF = "751efd8610d3"


async def _mmu_notifier_release_v3_9(
    mm: MmStruct, mnmm: MmuNotifierMm, srcu: SrcuStruct
) -> None:
    """__mmu_notifier_release() of v3.9 (751efd8610d3; d34883d4e35c reverted).

    Each subscriber is unhooked under the lock first and its ``release`` is
    called after the lock is dropped: from the unhook on, an invalidation
    (reclaim) no longer reaches it, while it still maps pages until its
    ``release`` runs.
    """
    id = await srcu_read_lock(srcu)
    await spin_lock(mnmm.lock)
    while mnmm.first is not None:
        mn = mnmm.first
        # Unlink: an unregister racing with us then skips its release call.
        await _hlist_del_init_rcu(mnmm, mn)
        await spin_unlock(mnmm.lock)

        # Clear the secondary mappings.
        if mn.ops is not None and mn.ops.release is not None:
            await mn.ops.release(mn, mm)

        await spin_lock(mnmm.lock)
    await spin_unlock(mnmm.lock)
    # Every release this function made is done: unregister may go on.
    await srcu_read_unlock(srcu, id)

    # Callbacks an unregister unhooked may still run: wait for them.
    await synchronize_srcu(srcu)


async def __mmu_notifier_release(mm: MmStruct) -> None:
    """Call every ``release``, unhook every subscriber and wait for readers.

    Kernel: mm/mmu_notifier.c __mmu_notifier_release() (v5.3).  It runs when
    the last user is gone, so no one can register concurrently; callbacks
    may still be running on other CPUs, hence the final grace period.
    """
    mnmm = mm.mmu_notifier_mm
    assert mnmm is not None, "[hmmsim internal bug] release without notifiers"
    srcu = mmu_notifier_srcu().srcu
    trace("mmu_notifier_release", mm=mm.name)
    if not fix_applied(mm, FIX_RELEASE_REFIX) and fix_applied(
        mm, FIX_UNREGISTER_NULL_DEREF
    ):
        await _mmu_notifier_release_v3_9(mm, mnmm, srcu)
        return
    id = await srcu_read_lock(srcu)
    mn = await _hlist_first_rcu(mnmm)
    while mn is not None:
        # Each subscriber's release runs under SRCU; it must tear its
        # secondary mappings down because the pages are freed right after.
        if mn.ops is not None and mn.ops.release is not None:
            await mn.ops.release(mn, mm)
        mn = await _hlist_next_rcu(mnmm, mn)

    await spin_lock(mnmm.lock)
    # Unhook everyone; an unregister racing with us then finds its
    # subscriber already unhashed and skips its own release call.
    while mnmm.first is not None:
        await _hlist_del_init_rcu(mnmm, mnmm.first)
    await spin_unlock(mnmm.lock)
    await srcu_read_unlock(srcu, id)

    # Wait for callbacks still running elsewhere before the pages go.
    await synchronize_srcu(srcu)


async def __mmu_notifier_invalidate_range_start(range: MmuNotifierRange) -> int:
    """Call every subscriber's ``invalidate_range_start``.

    Kernel: mm/mmu_notifier.c __mmu_notifier_invalidate_range_start() (v5.3):
    every subscriber is called even after a failure; the last error is
    returned.

    Returns:
        0, or the error of a failing callback (-EAGAIN when non-blockable).
    """
    mm = range.mm
    mnmm = mm.mmu_notifier_mm
    assert mnmm is not None, "[hmmsim internal bug] start without notifiers"
    blockable = mmu_notifier_range_blockable(range)
    srcu = mmu_notifier_srcu().srcu
    ret = 0
    # MODEL: ghost state for the oracle
    mm.ghost_starts_in_flight += 1
    trace(
        "mmu_notifier_invalidate_range_start",
        mm=mm.name,
        start=range.start,
        end=range.end,
        blockable=blockable,
        event=range.event.name,
    )

    id = await srcu_read_lock(srcu)
    mn = await _hlist_first_rcu(mnmm)
    while mn is not None:
        ops = mn.ops
        if ops is not None and ops.invalidate_range_start is not None:
            if not mmu_notifier_range_blockable(range):
                non_block_start()  # MODEL: v5.4 debugging aid, see Deviations
            _ret = await ops.invalidate_range_start(mn, range)
            if not mmu_notifier_range_blockable(range):
                non_block_end()
            if _ret:
                # v5.3 only logs the failure (pr_info) and remembers it.
                trace(
                    "mmu_notifier_callback_failed",
                    mm=mm.name,
                    notifier=mn.name,
                    ret=_ret,
                    blockable=blockable,
                )
                ret = _ret
            # MODEL: ghost state for the oracle
            if _ret == 0 or blockable:
                mn.ghost_balance += 1
        mn = await _hlist_next_rcu(mnmm, mn)
    await srcu_read_unlock(srcu, id)

    # MODEL: ghost state for the oracle
    mm.ghost_starts_in_flight -= 1
    if ret == 0 or blockable:
        mm.ghost_open_invalidations += 1
    trace(
        "mmu_notifier_invalidate_range_start_ret",
        mm=mm.name,
        start=range.start,
        end=range.end,
        blockable=blockable,
        ret=ret,
        err=err_name(ret),
    )
    return ret


async def __mmu_notifier_invalidate_range_end(
    range: MmuNotifierRange,
    only_end: bool,
) -> None:
    """Call every subscriber's ``invalidate_range_end``.

    Kernel: mm/mmu_notifier.c __mmu_notifier_invalidate_range_end() (v5.3).
    ``only_end`` concerns the ``invalidate_range`` callback, which the model
    does not have.
    """
    del only_end  # MODEL: no ->invalidate_range callback
    mm = range.mm
    mnmm = mm.mmu_notifier_mm
    assert mnmm is not None, "[hmmsim internal bug] end without notifiers"
    srcu = mmu_notifier_srcu().srcu
    trace(
        "mmu_notifier_invalidate_range_end",
        mm=mm.name,
        start=range.start,
        end=range.end,
        blockable=mmu_notifier_range_blockable(range),
    )
    id = await srcu_read_lock(srcu)
    mn = await _hlist_first_rcu(mnmm)
    while mn is not None:
        ops = mn.ops
        if ops is not None and ops.invalidate_range_end is not None:
            if not mmu_notifier_range_blockable(range):
                non_block_start()  # MODEL: v5.4 debugging aid, see Deviations
            await ops.invalidate_range_end(mn, range)
            if not mmu_notifier_range_blockable(range):
                non_block_end()
            # MODEL: ghost state for the oracle
            mn.ghost_balance -= 1
        mn = await _hlist_next_rcu(mnmm, mn)
    await srcu_read_unlock(srcu, id)
    # MODEL: ghost state for the oracle
    mm.ghost_open_invalidations -= 1


async def do_mmu_notifier_register(
    mn: MmuNotifier, mm: MmStruct, take_mmap_sem: bool
) -> int:
    """Subscribe ``mn`` to ``mm``.

    Kernel: mm/mmu_notifier.c do_mmu_notifier_register() (v5.3).

    Returns:
        0, or -ENOMEM when the subscriber list could not be allocated.
    """
    BUG_ON(await atomic_read(mm.mm_users) <= 0, "registering on a dead mm")

    ret = -errno.ENOMEM
    mmu_notifier_mm: MmuNotifierMm | None = None
    if not kmalloc_fails():
        mmu_notifier_mm = MmuNotifierMm(
            name=f"{mm.name}->mmu_notifier_mm",
            lock=SpinLock(
                f"{mm.name}->mmu_notifier_mm->lock", lockdep_class="mmu_notifier_mm"
            ),
        )
    if mmu_notifier_mm is None:
        # out:
        return ret

    if take_mmap_sem:
        await down_write(mm.mmap_sem)
    # MODEL: mm_take_all_locks() is not modelled and never fails.
    ret = 0

    if not mm_has_notifiers(mm):
        mm.mmu_notifier_mm = mmu_notifier_mm
    target = mm.mmu_notifier_mm
    assert target is not None, "[hmmsim internal bug] no notifier list"

    await mmgrab(mm)

    await spin_lock(target.lock)
    await _hlist_add_head_rcu(target, mn)
    await spin_unlock(target.lock)

    # out_clean:
    if take_mmap_sem:
        await up_write(mm.mmap_sem)
    trace("mmu_notifier_register", mm=mm.name, notifier=mn.name)
    return ret


async def mmu_notifier_register(mn: MmuNotifier, mm: MmStruct) -> int:
    """Subscribe ``mn`` to ``mm``, taking ``mmap_sem`` for write.

    Kernel: mm/mmu_notifier.c mmu_notifier_register().
    """
    if mm.notifier_core is not None:  # MODEL: see Deviations
        return await mm.notifier_core.mmu_notifier_register(mn, mm)
    return await do_mmu_notifier_register(mn, mm, True)


async def __mmu_notifier_register(mn: MmuNotifier, mm: MmStruct) -> int:
    """Subscribe ``mn`` to ``mm``; the caller holds ``mmap_sem`` for write.

    Kernel: mm/mmu_notifier.c __mmu_notifier_register().
    """
    return await do_mmu_notifier_register(mn, mm, False)


async def __mmu_notifier_mm_destroy(mm: MmStruct) -> None:
    """Free the subscriber list (the mm_struct itself is being freed).

    Kernel: mm/mmu_notifier.c __mmu_notifier_mm_destroy().
    """
    mnmm = mm.mmu_notifier_mm
    assert mnmm is not None, "[hmmsim internal bug] destroying no notifier list"
    await shared_access(mnmm, write=True, func="__mmu_notifier_mm_destroy")
    BUG_ON(mnmm.first is not None, "subscribers left on a freed mm")
    # MODEL: kfree plus LIST_POISON1 become "no list".
    mm.mmu_notifier_mm = None


async def _mmu_notifier_unregister_v3_9(
    mn: MmuNotifier, mm: MmStruct, srcu: SrcuStruct
) -> None:
    """The unhook of mmu_notifier_unregister() in v3.9 (d34883d4e35c reverted).

    Whoever unhooks ``mn`` under the lock calls its ``release``: here, or
    __mmu_notifier_release.
    """
    mnmm = mm.mmu_notifier_mm
    assert mnmm is not None, "[hmmsim internal bug] unregister without a list"
    await spin_lock(mnmm.lock)
    if not hlist_unhashed(mn):
        # Synchronize with __mmu_notifier_release.
        id = await srcu_read_lock(srcu)
        await _hlist_del_rcu(mnmm, mn)
        await spin_unlock(mnmm.lock)

        if mn.ops is not None and mn.ops.release is not None:
            await mn.ops.release(mn, mm)

        # Let __mmu_notifier_release finish.
        await srcu_read_unlock(srcu, id)
    else:
        await spin_unlock(mnmm.lock)


async def mmu_notifier_unregister(mn: MmuNotifier, mm: MmStruct) -> None:
    """Unsubscribe ``mn``, calling its ``release`` if the core has not yet.

    Kernel: mm/mmu_notifier.c mmu_notifier_unregister() (v5.3).  After it
    returns no callback of ``mn`` runs any more (synchronize_srcu).
    """
    srcu = mmu_notifier_srcu().srcu
    BUG_ON(await atomic_read(mm.mm_count) <= 0, "unregister from a freed mm")

    if not fix_applied(mm, FIX_RELEASE_REFIX) and fix_applied(
        mm, FIX_UNREGISTER_NULL_DEREF
    ):
        await _mmu_notifier_unregister_v3_9(mn, mm, srcu)
    elif not hlist_unhashed(mn):
        # The core did not run release for us: do it here, under SRCU, so
        # that the subscriber's mappings are gone when we return.
        id = await srcu_read_lock(srcu)
        if mn.ops is not None and mn.ops.release is not None:
            await mn.ops.release(mn, mm)
        await srcu_read_unlock(srcu, id)

        mnmm = mm.mmu_notifier_mm
        assert mnmm is not None, "[hmmsim internal bug] hashed without a list"
        await spin_lock(mnmm.lock)
        if not fix_applied(mm, FIX_RELEASE_REFIX):
            # v3.8: release may have unhooked mn since the test above.
            await _hlist_del_rcu(mnmm, mn)
        else:
            # Can't race with __mmu_notifier_release: both unhook under the
            # lock, and the init variant tolerates an unhooked node.
            await _hlist_del_init_rcu(mnmm, mn)
        await spin_unlock(mnmm.lock)

    # Wait for any callback of mn still running, release included.
    await synchronize_srcu(srcu)

    BUG_ON(await atomic_read(mm.mm_count) <= 0, "unregister from a freed mm")
    await mmdrop(mm)


async def mmu_notifier_unregister_no_release(mn: MmuNotifier, mm: MmStruct) -> None:
    """Unsubscribe ``mn`` without calling release and without waiting.

    Kernel: mm/mmu_notifier.c mmu_notifier_unregister_no_release().  Not a
    fence: callbacks of ``mn`` may still be running; free its memory with
    mmu_notifier_call_srcu.
    """
    mnmm = mm.mmu_notifier_mm
    assert mnmm is not None, "[hmmsim internal bug] unregister without a list"
    await spin_lock(mnmm.lock)
    await _hlist_del_init_rcu(mnmm, mn)
    await spin_unlock(mnmm.lock)

    BUG_ON(await atomic_read(mm.mm_count) <= 0, "unregister from a freed mm")
    await mmdrop(mm)


async def mmu_notifier_call_srcu(
    rcu: RcuHead, func: Callable[[RcuHead], Awaitable[None]]
) -> None:
    """Run ``func(rcu)`` after a notifier SRCU grace period.

    Kernel: mm/mmu_notifier.c mmu_notifier_call_srcu().
    """
    domain = mmu_notifier_srcu()
    await shared_access(domain.pending, write=True, func="mmu_notifier_call_srcu")
    domain.pending.value += 1

    async def callback() -> None:
        await func(rcu)
        # MODEL: bookkeeping for mmu_notifier_synchronize (srcu_barrier)
        await shared_access(domain.pending, write=True, func="srcu_callback_done")
        domain.pending.value -= 1
        if domain.pending.value == 0:
            await wake_up_all(domain.wq)

    await call_srcu(domain.srcu, callback)


async def mmu_notifier_synchronize() -> None:
    """Wait until every callback queued by mmu_notifier_call_srcu has run.

    Kernel: mm/mmu_notifier.c mmu_notifier_synchronize() of v5.4/v5.5
    (synchronize_srcu there; see Deviations: absent from v5.3, and the
    model waits for the queued callbacks as srcu_barrier would).
    """
    domain = mmu_notifier_srcu()

    async def drained() -> bool:
        await shared_access(domain.pending, write=False, func="srcu_barrier")
        return domain.pending.value == 0

    await wait_event(domain.wq, drained)
