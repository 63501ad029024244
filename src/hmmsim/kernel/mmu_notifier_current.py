"""Model of ``mm/mmu_notifier.c`` and ``include/linux/mmu_notifier.h`` of Linux v6.16.

The ``current`` variant: the notifier core as it is in today's kernels.  It
starts from the v5.5 model (:mod:`hmmsim.kernel.mmu_notifier_v55`, commit
99cb252f5e68 added the interval notifiers) and applies every later change
that touches the modelled functions:

* c2655835fd8c (v5.12, Sean Christopherson, "mm/mmu_notifiers: ensure
  range_end() is paired with range_start()"): when an hlist subscriber
  refuses a non-blockable ``invalidate_range_start``,
  ``mn_hlist_invalidate_range_start`` now calls ``invalidate_range_end`` of
  every hlist subscriber that has one, so those whose start succeeded see
  their end; a subscriber that can fail its start may not have an end (a
  WARN says so), since nobody can tell it whether its own start failed;
* 319561669a59 (v5.18, Alistair Popple, "mm/mmu_notifier.c: Fix race in
  mmu_interval_notifier_remove()"): the wait of
  ``mmu_interval_notifier_remove`` reads the mm sequence under the lock
  (``mmu_interval_seq_released``), so it cannot return while the last
  ``mn_itree_inv_end`` still holds the subscription on the deferred list;
* after v5.5 (Jason Gunthorpe's renames): ``struct mmu_notifier_mm`` became
  ``struct mmu_notifier_subscriptions`` (``mm->notifier_subscriptions``),
  ``mmu_notifier_mm_destroy`` became ``mmu_notifier_subscriptions_destroy``;
* v6.6 (Alistair Popple, "mmu_notifiers: rename invalidate_range notifier"
  and the follow-ups): ``invalidate_range`` became
  ``arch_invalidate_secondary_tlbs``, called from the TLB flush instead of
  from ``invalidate_range_end``, so ``__mmu_notifier_invalidate_range_end``
  and ``mn_hlist_invalidate_end`` lost their ``only_end`` argument;
  ``__mmu_notifier_register`` refuses (WARN, -EINVAL) a subscriber with both
  ``arch_invalidate_secondary_tlbs`` and start/end;
* ``__mmu_interval_notifier_insert`` checks ``mm_users`` (a live mm), where
  v5.5 checked ``mm_count``.

Sources read: a stored copy of mm/mmu_notifier.c of the v6.6..v6.9 series
(search index id 40494640355, it still has ``__mmu_notifier_change_pte``;
v6.10 removed change_pte, which touches none of the modelled functions) and
include/linux/mmu_notifier.h of the same series.  Everything else in the
modelled functions is as in v5.5; ``tests/unit/kernel/test_mmu_notifier_current.py``
pins exactly which definitions differ from the v5.5 module (a drift test).

Deviations:
    * MODEL: every deviation of the v5.5 model applies here too (sorted-list
      interval tree, ``Cell`` sequences, ghost state, ``non_block_start``
      around the interval callbacks of a non-blockable range, no
      ``mm_take_all_locks``), see :mod:`hmmsim.kernel.mmu_notifier_v55`.
    * MODEL: the struct types of the interval notifier
      (``MmuIntervalNotifier``, ``MmuIntervalNotifierOps``,
      ``StaticMmuIntervalNotifierOps``) are v5.5's, imported: the C structs
      did not change.  ``MmuNotifierSubscriptions`` extends v5.5's
      ``MmuNotifierMm`` (same fields, renamed after v5.5); the mm field stays
      ``mm.mmu_notifier_mm`` (``mm->notifier_subscriptions`` in C), shared by
      every core of the model.
    * MODEL: local variable names follow v5.5 (``mmn_mm``, ``mn``); later kernels
      renamed them to ``subscriptions`` / ``subscription`` without changing
      the code.  Keeping them makes the drift test show only real changes.
    * MODEL: ``arch_invalidate_secondary_tlbs``, ``clear_young``,
      ``test_young``, ``mmu_notifier_get``/``put`` and the
      ``invalidate_range_start`` lockdep map are not modelled (no scenario
      subscriber uses them), so the -EINVAL check of
      ``__mmu_notifier_register`` never fires; ``subscription->mm`` and
      ``users`` are not set.
    * MODEL: ``mmu_notifier_range_update_to_read_only`` and the
      ``MMU_NOTIFY_MIGRATE`` / ``MMU_NOTIFY_EXCLUSIVE`` events and
      ``range->owner`` (device-private migration) are not modelled.
    * MODEL: patch switch c2655835fd8c (:mod:`hmmsim.kernel.fixes`, for the
      race museum): reverted, ``mn_hlist_invalidate_range_start`` neither
      WARNs about a failing subscriber's end nor unwinds (v5.5..v5.11).
    * MODEL: patch switch 319561669a59: reverted, ``mmu_interval_notifier_remove``
      waits with v5.5's lockless ``READ_ONCE`` of the sequence (v5.5..v5.17).
    * MODEL: ``mmu_notifier_mm_destroy`` stays as an alias of
      ``mmu_notifier_subscriptions_destroy``: it is the entry point name the
      model's dispatch (``MmuNotifierCore``) calls for every core.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from hmmsim.kernel import mmu_notifier as _v53
from hmmsim.kernel.atomic import atomic_read
from hmmsim.kernel.debug import (
    BUG_ON,
    WARN_ON,
    lockdep_assert_held,
    lockdep_assert_held_write,
    might_sleep,
    non_block_end,
    non_block_start,
)
from hmmsim.kernel.fixes import fix_applied
from hmmsim.kernel.fork import mmdrop, mmgrab
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmu_notifier import (
    MmuNotifier,
    MmuNotifierRange,
    mm_has_notifiers,
    mmu_notifier_range_blockable,
    mmu_notifier_srcu,
)
from hmmsim.kernel.mmu_notifier_v55 import (
    ULONG_MAX,
    MmuIntervalNotifier,
    MmuIntervalNotifierOps,
    MmuNotifierMm,
    StaticMmuIntervalNotifierOps,
)
from hmmsim.kernel.slab import kasan_check, kmalloc_fails
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import (
    MMU_NOTIFIER_RANGE_BLOCKABLE,
    MMU_NOTIFY_RELEASE,
    err_name,
)
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    SpinLock,
    down_write,
    shared_access,
    spin_lock,
    spin_unlock,
    srcu_read_lock,
    srcu_read_unlock,
    synchronize_srcu,
    up_write,
    wait_event,
    wake_up_all,
)

#: "mm/mmu_notifiers: ensure range_end() is paired with range_start()" (v5.12).
C2655835FD8C = "c2655835fd8c"
#: "mm/mmu_notifier.c: fix race in mmu_interval_notifier_remove()" (v5.18).
FIX_319561669A59 = "319561669a59"

__all__ = [
    "ULONG_MAX",
    "MmuIntervalNotifier",
    "MmuIntervalNotifierOps",
    "MmuNotifierSubscriptions",
    "StaticMmuIntervalNotifierOps",
    "__mmu_interval_notifier_insert",
    "__mmu_notifier_invalidate_range_end",
    "__mmu_notifier_invalidate_range_start",
    "__mmu_notifier_register",
    "__mmu_notifier_release",
    "__mmu_notifier_subscriptions_destroy",
    "mmu_interval_check_retry",
    "mmu_interval_notifier_insert",
    "mmu_interval_notifier_insert_locked",
    "mmu_interval_notifier_remove",
    "mmu_interval_read_begin",
    "mmu_interval_read_retry",
    "mmu_interval_seq_released",
    "mmu_interval_set_seq",
    "mmu_notifier_invalidate_range_end",
    "mmu_notifier_invalidate_range_start",
    "mmu_notifier_invalidate_range_start_nonblock",
    "mmu_notifier_mm_destroy",
    "mmu_notifier_register",
    "mmu_notifier_release",
    "mmu_notifier_subscriptions_destroy",
    "mn_hlist_invalidate_end",
    "mn_hlist_invalidate_range_start",
    "mn_hlist_release",
    "mn_itree_inv_end",
    "mn_itree_inv_next",
    "mn_itree_inv_start_range",
    "mn_itree_invalidate",
    "mn_itree_is_invalidating",
    "mn_itree_release",
]


@dataclass(slots=True, kw_only=True, eq=False)
class MmuNotifierSubscriptions(MmuNotifierMm):
    """Models ``struct mmu_notifier_subscriptions`` (the post-v5.5 name, v6.16).

    The fields are those of v5.5's ``struct mmu_notifier_mm``
    (:class:`hmmsim.kernel.mmu_notifier_v55.MmuNotifierMm`): the hlist, the
    lock, ``has_itree``, ``invalidate_seq`` (starts at 2),
    ``active_invalidate_ranges``, the interval tree, ``wq`` and
    ``deferred_list``.
    """


def _mmn_mm(mm: MmStruct) -> MmuNotifierSubscriptions:
    mmn_mm = mm.mmu_notifier_mm
    assert isinstance(mmn_mm, MmuNotifierSubscriptions), (
        f"[hmmsim internal bug] {mm.name} has no v6.16 notifier structure"
    )
    return mmn_mm


# -- the interval tree (MODEL: a sorted list) ---------------------------------------


def _interval_tree_insert(
    sub: MmuIntervalNotifier, itree: list[MmuIntervalNotifier]
) -> None:
    itree.append(sub)
    itree.sort(key=lambda s: (s.start, s.last))
    sub.rb_empty = False


def _interval_tree_remove(
    sub: MmuIntervalNotifier, itree: list[MmuIntervalNotifier]
) -> None:
    if sub in itree:
        itree.remove(sub)
    sub.rb_empty = True


def _overlaps(sub: MmuIntervalNotifier, start: int, last: int) -> bool:
    return sub.start <= last and start <= sub.last


def _interval_tree_iter_first(
    itree: list[MmuIntervalNotifier], start: int, last: int
) -> MmuIntervalNotifier | None:
    for sub in itree:
        if _overlaps(sub, start, last):
            return sub
    return None


def _interval_tree_iter_next(
    itree: list[MmuIntervalNotifier], node: MmuIntervalNotifier, start: int, last: int
) -> MmuIntervalNotifier | None:
    if node not in itree:
        return None
    for sub in itree[itree.index(node) + 1 :]:
        if _overlaps(sub, start, last):
            return sub
    return None


# -- the write side ---------------------------------------------------------------


def mn_itree_is_invalidating(mmn_mm: MmuNotifierMm) -> bool:
    """Return whether an invalidation that hit an interval is running.

    Kernel: mm/mmu_notifier.c mn_itree_is_invalidating() (v6.16).  The caller
    holds ``mmn_mm->lock``.
    """
    lockdep_assert_held(mmn_mm.lock)
    return bool(mmn_mm.invalidate_seq.value & 1)


async def mn_itree_inv_start_range(
    mmn_mm: MmuNotifierMm, range: MmuNotifierRange
) -> tuple[MmuIntervalNotifier | None, int]:
    """Open a write-side section; return the first intersecting subscription.

    Kernel: mm/mmu_notifier.c mn_itree_inv_start_range() (v6.16).  MODEL: the
    ``seq`` out-parameter is the second element of the returned pair.

    Returns:
        (first subscription intersecting the range or None, the mm sequence,
        odd if a subscription intersects).
    """
    res: MmuIntervalNotifier | None = None

    await spin_lock(mmn_mm.lock)
    mmn_mm.active_invalidate_ranges += 1
    node = _interval_tree_iter_first(mmn_mm.itree, range.start, range.end - 1)
    if node is not None:
        if not mmn_mm.invalidate_seq.value & 1:  # MODEL: see Deviations
            await WRITE_ONCE(mmn_mm.invalidate_seq, mmn_mm.invalidate_seq.value | 1)
        res = node

    seq = mmn_mm.invalidate_seq.value
    await spin_unlock(mmn_mm.lock)
    trace(
        "mn_itree_inv_start_range",
        mm=range.mm.name,
        start=range.start,
        end=range.end,
        seq=seq,
        active=mmn_mm.active_invalidate_ranges,
    )
    return res, seq


def mn_itree_inv_next(
    interval_sub: MmuIntervalNotifier, range: MmuNotifierRange
) -> MmuIntervalNotifier | None:
    """Return the next subscription intersecting the range (no lock).

    Kernel: mm/mmu_notifier.c mn_itree_inv_next() (v6.16).  The tree cannot
    change while the sequence is odd (see Deviations).
    """
    mmn_mm = _mmn_mm(range.mm)
    return _interval_tree_iter_next(
        mmn_mm.itree, interval_sub, range.start, range.end - 1
    )


async def mn_itree_inv_end(mmn_mm: MmuNotifierMm) -> None:
    """Close a write-side section; the last one makes the sequence even.

    Kernel: mm/mmu_notifier.c mn_itree_inv_end() (v6.16).  Like rtnl_unlock,
    the last end also applies the tree inserts and removes that were queued
    while the tree could not change, then wakes the readers and removers.
    """
    await spin_lock(mmn_mm.lock)
    mmn_mm.active_invalidate_ranges -= 1
    if mmn_mm.active_invalidate_ranges or not mn_itree_is_invalidating(mmn_mm):
        await spin_unlock(mmn_mm.lock)
        return

    # Back to even: the write side is released.
    await WRITE_ONCE(mmn_mm.invalidate_seq, mmn_mm.invalidate_seq.value + 1)
    trace("mn_itree_inv_end", seq=mmn_mm.invalidate_seq.value)

    # Apply the deferred tree updates (hlist_for_each_entry_safe).
    for interval_sub in list(mmn_mm.deferred_list):
        # MODEL: the update touches the subscription: an Op on it, and KASAN.
        await shared_access(interval_sub, write=True, func="mn_itree_inv_end")
        kasan_check(interval_sub, "mn_itree_inv_end")
        if interval_sub.rb_empty:
            _interval_tree_insert(interval_sub, mmn_mm.itree)
        else:
            _interval_tree_remove(interval_sub, mmn_mm.itree)
        mmn_mm.deferred_list.remove(interval_sub)
    await spin_unlock(mmn_mm.lock)

    await wake_up_all(mmn_mm.wq)


async def mn_itree_invalidate(mmn_mm: MmuNotifierMm, range: MmuNotifierRange) -> int:
    """Call every intersecting subscription's ``invalidate``.

    Kernel: mm/mmu_notifier.c mn_itree_invalidate() (v6.16).  A callback may
    refuse only a non-blockable range; then the core closes its own section
    and reports -EAGAIN, so the caller must not call invalidate_range_end.

    Returns:
        0, or -EAGAIN when a callback refused a non-blockable range.
    """
    blockable = mmu_notifier_range_blockable(range)
    interval_sub, cur_seq = await mn_itree_inv_start_range(mmn_mm, range)
    while interval_sub is not None:
        ops = interval_sub.ops
        assert ops is not None, "[hmmsim internal bug] subscription without ops"
        if not blockable:
            non_block_start()  # MODEL: debugging aid, see Deviations
        ret = await ops.invalidate(interval_sub, range, cur_seq)
        if not blockable:
            non_block_end()
        if not ret:
            if WARN_ON(blockable, "interval invalidate failed a blockable range"):
                interval_sub = mn_itree_inv_next(interval_sub, range)
                continue
            # out_would_block: the caller may not call invalidate_range_end,
            # so end our own section here.
            await mn_itree_inv_end(mmn_mm)
            return -errno.EAGAIN
        interval_sub = mn_itree_inv_next(interval_sub, range)
    return 0


async def mn_itree_release(mmn_mm: MmuNotifierMm, mm: MmStruct) -> None:
    """Invalidate every subscription with a blockable RELEASE range over all of VA.

    Kernel: mm/mmu_notifier.c mn_itree_release() (v6.16).
    """
    range = MmuNotifierRange(
        mm=mm,
        start=0,
        end=ULONG_MAX,
        flags=MMU_NOTIFIER_RANGE_BLOCKABLE,
        event=MMU_NOTIFY_RELEASE,
    )
    interval_sub, cur_seq = await mn_itree_inv_start_range(mmn_mm, range)
    while interval_sub is not None:
        ops = interval_sub.ops
        assert ops is not None, "[hmmsim internal bug] subscription without ops"
        ret = await ops.invalidate(interval_sub, range, cur_seq)
        WARN_ON(not ret, "interval invalidate failed at release")
        interval_sub = mn_itree_inv_next(interval_sub, range)

    await mn_itree_inv_end(mmn_mm)


# -- the read side ---------------------------------------------------------------


async def mmu_interval_read_begin(interval_sub: MmuIntervalNotifier) -> int:
    """Begin a read-side critical section against the subscription's VA range.

    Kernel: mm/mmu_notifier.c mmu_interval_read_begin() (v6.16).  It samples
    the subscription's sequence; if that value is the mm's current (odd)
    one, the subscription is being invalidated now and we sleep until the
    mm's sequence moves on.  It does not loop: mmu_interval_read_retry may
    already be true when it returns, so the caller can bound its retries.

    The race it is built for, as a schedule (``test_mmu_notifier_current``
    replays it and checks that read_retry returns true)::

        invalidation (core + driver)          fault (driver)
        ------------------------------        ----------------------------
                                              read_begin: lock
                                                seq = sub->invalidate_seq
                                                (not the mm's: no sleep)
                                              unlock
        inv_start: lock
          mm seq |= 1  (odd), cur_seq
        unlock
        ops->invalidate:
          user_lock
            mmu_interval_set_seq(cur_seq)
            zap the device mappings
          user_unlock
        inv_end: lock
          mm seq += 1  (even)
        unlock
                                              user_lock
                                                read_retry: sub seq != seq
                                                -> true: retry
                                              user_unlock

    No barrier is needed here: any race is caught by the final read_retry,
    which is ordered by the user lock.  Pairs with the WRITE_ONCE in
    mmu_interval_set_seq().

    Returns:
        The sequence value to pass to mmu_interval_read_retry().
    """
    assert interval_sub.mm is not None, "[hmmsim internal bug] sub not inserted"
    mmn_mm = _mmn_mm(interval_sub.mm)

    await spin_lock(mmn_mm.lock)
    seq = await READ_ONCE(interval_sub.invalidate_seq)
    is_invalidating = seq == mmn_mm.invalidate_seq.value
    await spin_unlock(mmn_mm.lock)

    # The subscription's value is always odd (set_seq stores cur_seq of
    # inv_start), and the mm's is even when idle, so the sleep below ends
    # in bounded time even if the sequence wraps.
    if is_invalidating:

        async def seq_moved() -> bool:
            return await READ_ONCE(mmn_mm.invalidate_seq) != seq

        await wait_event(mmn_mm.wq, seq_moved)

    trace(
        "mmu_interval_read_begin",
        sub=interval_sub.name,
        seq=seq,
        waited=is_invalidating,
    )
    return seq


def mmu_interval_read_retry(interval_sub: MmuIntervalNotifier, seq: int) -> bool:
    """Return whether the range was invalidated since mmu_interval_read_begin.

    Kernel: include/linux/mmu_notifier.h mmu_interval_read_retry() (v6.16).
    The caller holds the user lock that the invalidate callback takes around
    mmu_interval_set_seq, so the plain read is ordered (MODEL: no Op).
    """
    return interval_sub.invalidate_seq.value != seq


async def mmu_interval_check_retry(interval_sub: MmuIntervalNotifier, seq: int) -> bool:
    """Lockless early hint that read_retry would be true.

    Kernel: include/linux/mmu_notifier.h mmu_interval_check_retry() (v6.16).
    A false answer proves nothing; only read_retry under the user lock does.
    """
    # Pairs with the WRITE_ONCE in mmu_interval_set_seq().
    return await READ_ONCE(interval_sub.invalidate_seq) != seq


async def mmu_interval_set_seq(interval_sub: MmuIntervalNotifier, cur_seq: int) -> None:
    """Record, in the invalidate callback, that this invalidation reached the sub.

    Kernel: include/linux/mmu_notifier.h mmu_interval_set_seq() (v6.16).  The
    caller holds the user lock that read_retry is called under.
    """
    await WRITE_ONCE(interval_sub.invalidate_seq, cur_seq)
    trace("mmu_interval_set_seq", sub=interval_sub.name, seq=cur_seq)


# -- the hlist part (classic subscribers) -----------------------------------------


async def _hlist_empty(mmn_mm: MmuNotifierMm) -> bool:
    return await _v53._hlist_first_rcu(mmn_mm) is None


async def mn_hlist_release(mmn_mm: MmuNotifierMm, mm: MmStruct) -> None:
    """Call every hlist subscriber's ``release``, unhook them, wait for readers.

    Kernel: mm/mmu_notifier.c mn_hlist_release() (v6.16; unchanged since v5.5).
    """
    srcu = mmu_notifier_srcu().srcu
    id = await srcu_read_lock(srcu)
    mn = await _v53._hlist_first_rcu(mmn_mm)
    while mn is not None:
        # The only chance for the subscriber to drop its secondary mappings
        # before the pages are freed.
        if mn.ops is not None and mn.ops.release is not None:
            await mn.ops.release(mn, mm)
        mn = await _v53._hlist_next_rcu(mmn_mm, mn)

    await spin_lock(mmn_mm.lock)
    while mmn_mm.first is not None:
        # A racing unregister will find it unhashed and only wait.
        await _v53._hlist_del_init_rcu(mmn_mm, mmn_mm.first)
    await spin_unlock(mmn_mm.lock)
    await srcu_read_unlock(srcu, id)

    # A release run by mmu_notifier_unregister must finish before exit_mmap
    # frees the pages.
    await synchronize_srcu(srcu)


async def __mmu_notifier_release(mm: MmStruct) -> None:
    """The last user is gone: invalidate every interval, release every subscriber.

    Kernel: mm/mmu_notifier.c __mmu_notifier_release() (v6.16).
    """
    mmn_mm = _mmn_mm(mm)
    trace("mmu_notifier_release", mm=mm.name)

    if mmn_mm.has_itree:
        await mn_itree_release(mmn_mm, mm)

    if not await _hlist_empty(mmn_mm):
        await mn_hlist_release(mmn_mm, mm)


async def mn_hlist_invalidate_range_start(
    mmn_mm: MmuNotifierMm, range: MmuNotifierRange
) -> int:
    """Call every hlist subscriber's ``invalidate_range_start``; unwind a refusal.

    Kernel: mm/mmu_notifier.c mn_hlist_invalidate_range_start() (v6.16, with
    c2655835fd8c).  Every subscriber is called even after a failure (the v5.4
    WARN flags a failing blockable range or an error other than -EAGAIN).
    Since c2655835fd8c a failure then calls ``invalidate_range_end`` of every
    subscriber that has one: those whose start succeeded expect their end,
    and the caller will not call invalidate_range_end.  Nobody tracks which
    start failed, so a subscriber that can fail its start must not have an
    end: the kernel WARNs when one does, and calls that end too.

    With c2655835fd8c reverted (``hmmsim.kernel.fixes``, for the museum) the
    function is v5.5..v5.11's: no WARN about an end and no unwind, so the
    subscribers whose start succeeded are never ended.

    Returns:
        0, or the error of a failing callback.
    """
    mm = range.mm
    blockable = mmu_notifier_range_blockable(range)
    srcu = mmu_notifier_srcu().srcu
    ret = 0

    id = await srcu_read_lock(srcu)
    mn = await _v53._hlist_first_rcu(mmn_mm)
    while mn is not None:
        ops = mn.ops
        if ops is not None and ops.invalidate_range_start is not None:
            if not mmu_notifier_range_blockable(range):
                non_block_start()
            _ret = await ops.invalidate_range_start(mn, range)
            if not mmu_notifier_range_blockable(range):
                non_block_end()
            if _ret:
                trace(
                    "mmu_notifier_callback_failed",
                    mm=mm.name,
                    notifier=mn.name,
                    ret=_ret,
                    blockable=blockable,
                )
                WARN_ON(
                    mmu_notifier_range_blockable(range) or _ret != -errno.EAGAIN,
                    "hlist invalidate_range_start failed a blockable range",
                )
                # A start that may fail cannot have an end: the end below
                # would run although this start did nothing.
                if fix_applied(mm, C2655835FD8C):  # MODEL: patch switch
                    WARN_ON(
                        ops.invalidate_range_end is not None,
                        f"{mn.name} failed invalidate_range_start but has an "
                        "invalidate_range_end",
                    )
                ret = _ret
            # MODEL: ghost state for the oracle
            if _ret == 0 or blockable:
                mn.ghost_balance += 1
        mn = await _v53._hlist_next_rcu(mmn_mm, mn)

    if ret and fix_applied(mm, C2655835FD8C):  # MODEL: patch switch
        # Only a non-blockable range gets here.  The subscribers whose start
        # succeeded expect their end: call every end now (c2655835fd8c).
        mn = await _v53._hlist_first_rcu(mmn_mm)
        while mn is not None:
            ops = mn.ops
            if ops is None or ops.invalidate_range_end is None:
                mn = await _v53._hlist_next_rcu(mmn_mm, mn)
                continue
            await ops.invalidate_range_end(mn, range)
            # MODEL: ghost state for the oracle
            mn.ghost_balance -= 1
            mn = await _v53._hlist_next_rcu(mmn_mm, mn)
    await srcu_read_unlock(srcu, id)
    return ret


async def __mmu_notifier_invalidate_range_start(range: MmuNotifierRange) -> int:
    """Invalidate the intervals, then call the hlist subscribers.

    Kernel: mm/mmu_notifier.c __mmu_notifier_invalidate_range_start() (v6.16).
    A failure of the interval part returns at once (already unwound); a
    failure of the hlist part is returned as is.

    Returns:
        0, or -EAGAIN (non-blockable range refused by some subscriber).
    """
    mm = range.mm
    mmn_mm = _mmn_mm(mm)
    blockable = mmu_notifier_range_blockable(range)
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

    ret = 0
    if mmn_mm.has_itree:
        ret = await mn_itree_invalidate(mmn_mm, range)
    if not ret and not await _hlist_empty(mmn_mm):
        ret = await mn_hlist_invalidate_range_start(mmn_mm, range)

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


async def mn_hlist_invalidate_end(
    mmn_mm: MmuNotifierMm, range: MmuNotifierRange
) -> None:
    """Call every hlist subscriber's ``invalidate_range_end``.

    Kernel: mm/mmu_notifier.c mn_hlist_invalidate_end() (v6.16).  Since v6.6
    no ``only_end`` argument: ``arch_invalidate_secondary_tlbs`` is called
    from the TLB flush, not from here.
    """
    srcu = mmu_notifier_srcu().srcu
    id = await srcu_read_lock(srcu)
    mn = await _v53._hlist_first_rcu(mmn_mm)
    while mn is not None:
        ops = mn.ops
        if ops is not None and ops.invalidate_range_end is not None:
            if not mmu_notifier_range_blockable(range):
                non_block_start()
            await ops.invalidate_range_end(mn, range)
            if not mmu_notifier_range_blockable(range):
                non_block_end()
            # MODEL: ghost state for the oracle
            mn.ghost_balance -= 1
        mn = await _v53._hlist_next_rcu(mmn_mm, mn)
    await srcu_read_unlock(srcu, id)


async def __mmu_notifier_invalidate_range_end(range: MmuNotifierRange) -> None:
    """Close the interval section, then call the hlist subscribers' ends.

    Kernel: mm/mmu_notifier.c __mmu_notifier_invalidate_range_end() (v6.16;
    the ``only_end`` argument went away in v6.6).  MODEL: the lockdep map
    taken around the body is not modelled.
    """
    mm = range.mm
    mmn_mm = _mmn_mm(mm)
    trace(
        "mmu_notifier_invalidate_range_end",
        mm=mm.name,
        start=range.start,
        end=range.end,
        blockable=mmu_notifier_range_blockable(range),
    )
    if mmn_mm.has_itree:
        await mn_itree_inv_end(mmn_mm)

    if not await _hlist_empty(mmn_mm):
        await mn_hlist_invalidate_end(mmn_mm, range)
    # MODEL: ghost state for the oracle
    mm.ghost_open_invalidations -= 1


# -- registration ------------------------------------------------------------------


async def __mmu_notifier_register(mn: MmuNotifier | None, mm: MmStruct) -> int:
    """Subscribe ``mn`` (or, with None, switch the mm to interval mode).

    Kernel: mm/mmu_notifier.c __mmu_notifier_register() (v6.16).  The caller
    holds ``mmap_sem`` for write.

    Returns:
        0, or -ENOMEM when the notifier structure could not be allocated.
    """
    subscriptions: MmuNotifierSubscriptions | None = None

    lockdep_assert_held_write(mm.mmap_sem)
    BUG_ON(await atomic_read(mm.mm_users) <= 0, "registering on a dead mm")

    # MODEL: no arch_invalidate_secondary_tlbs callback exists in the model,
    # so the v6.6 refusal of a subscriber with both kinds (-EINVAL) never
    # applies.

    if mm.mmu_notifier_mm is None:
        # Stable under mmap_sem for write; allocate before taking any lock.
        if kmalloc_fails():
            return -errno.ENOMEM
        subscriptions = MmuNotifierSubscriptions(
            name=f"{mm.name}->notifier_subscriptions",
            lock=SpinLock(
                f"{mm.name}->notifier_subscriptions->lock",
                lockdep_class="mmu_notifier_subscriptions",
            ),
        )

    # MODEL: mm_take_all_locks() is not modelled and never fails.

    if subscriptions is not None:
        # MODEL: smp_store_release is a plain store, see Deviations.
        mm.mmu_notifier_mm = subscriptions

    target = _mmn_mm(mm)
    if mn is not None:
        # Pairs with the mmdrop of mmu_notifier_unregister.
        await mmgrab(mm)
        await spin_lock(target.lock)
        await _v53._hlist_add_head_rcu(target, mn)
        await spin_unlock(target.lock)
    else:
        target.has_itree = True

    BUG_ON(await atomic_read(mm.mm_users) <= 0, "registering on a dead mm")
    trace(
        "mmu_notifier_register",
        mm=mm.name,
        notifier="itree" if mn is None else mn.name,
    )
    return 0


async def mmu_notifier_register(mn: MmuNotifier | None, mm: MmStruct) -> int:
    """Subscribe ``mn``, taking ``mmap_sem`` for write.

    Kernel: mm/mmu_notifier.c mmu_notifier_register() (v6.16).
    """
    await down_write(mm.mmap_sem)
    ret = await __mmu_notifier_register(mn, mm)
    await up_write(mm.mmap_sem)
    return ret


async def __mmu_notifier_subscriptions_destroy(mm: MmStruct) -> None:
    """Free the notifier structure (the mm_struct itself is being freed).

    Kernel: mm/mmu_notifier.c __mmu_notifier_subscriptions_destroy() (v6.16;
    __mmu_notifier_mm_destroy in v5.5).
    """
    mmn_mm = _mmn_mm(mm)
    await shared_access(mmn_mm, write=True, func="__mmu_notifier_subscriptions_destroy")
    BUG_ON(mmn_mm.first is not None, "subscribers left on a freed mm")
    # MODEL: kfree plus LIST_POISON1 become "no structure".
    mm.mmu_notifier_mm = None


async def __mmu_interval_notifier_insert(
    interval_sub: MmuIntervalNotifier,
    mm: MmStruct,
    mmn_mm: MmuNotifierMm,
    start: int,
    length: int,
    ops: MmuIntervalNotifierOps,
) -> int:
    """Insert ``interval_sub`` into the tree, or defer it to the last end.

    Kernel: mm/mmu_notifier.c __mmu_interval_notifier_insert() (v6.16).

    Returns:
        0, -EOVERFLOW (empty or wrapping interval) or -EINVAL (dead mm).
    """
    interval_sub.mm = mm
    interval_sub.ops = ops
    interval_sub.rb_empty = True
    interval_sub.start = start
    # The tree stores the last address, inclusive.
    if length == 0 or start + length - 1 > ULONG_MAX:
        return -errno.EOVERFLOW
    interval_sub.last = start + length - 1

    # The caller holds an mmget: the mm must still have users.
    if WARN_ON(await atomic_read(mm.mm_users) <= 0, "interval insert on a dead mm"):
        return -errno.EINVAL

    # Pairs with the mmdrop in mmu_interval_notifier_remove().
    await mmgrab(mm)

    # With an invalidation in flight we cannot know which VA it covers, so
    # the new interval counts as hit: its sequence is the current one.  A
    # tree being invalidated may not change: the insert then waits on the
    # deferred list for the last end (no retry, no live lock).  Either way
    # the subscription's sequence is odd (see mmu_interval_read_begin).
    await spin_lock(mmn_mm.lock)
    if mmn_mm.active_invalidate_ranges:
        if mn_itree_is_invalidating(mmn_mm):
            mmn_mm.deferred_list.insert(0, interval_sub)
        else:
            await WRITE_ONCE(mmn_mm.invalidate_seq, mmn_mm.invalidate_seq.value | 1)
            _interval_tree_insert(interval_sub, mmn_mm.itree)
        await WRITE_ONCE(interval_sub.invalidate_seq, mmn_mm.invalidate_seq.value)
    else:
        WARN_ON(mn_itree_is_invalidating(mmn_mm), "odd sequence with nothing active")
        # Odd, not the mm's current value, and far from it.
        await WRITE_ONCE(interval_sub.invalidate_seq, mmn_mm.invalidate_seq.value - 1)
        _interval_tree_insert(interval_sub, mmn_mm.itree)
    await spin_unlock(mmn_mm.lock)
    trace(
        "mmu_interval_notifier_insert",
        sub=interval_sub.name,
        start=start,
        last=interval_sub.last,
        deferred=interval_sub.rb_empty,
        seq=interval_sub.invalidate_seq.value,
    )
    return 0


async def mmu_interval_notifier_insert(
    interval_sub: MmuIntervalNotifier,
    mm: MmStruct,
    start: int,
    length: int,
    ops: MmuIntervalNotifierOps,
) -> int:
    """Subscribe [start, start + length) of ``mm``.

    Kernel: mm/mmu_notifier.c mmu_interval_notifier_insert() (v6.16).  The
    subscription may reach the tree only at the next last end; callers must
    go through mmu_interval_read_begin before building mappings anyway.

    Returns:
        0 or a negative errno (registration or insertion failed).
    """
    mmn_mm = mm.mmu_notifier_mm  # MODEL: smp_load_acquire, see Deviations
    if not isinstance(mmn_mm, MmuNotifierMm) or not mmn_mm.has_itree:
        ret = await mmu_notifier_register(None, mm)
        if ret:
            return ret
        mmn_mm = _mmn_mm(mm)
    return await __mmu_interval_notifier_insert(
        interval_sub, mm, mmn_mm, start, length, ops
    )


async def mmu_interval_notifier_insert_locked(
    interval_sub: MmuIntervalNotifier,
    mm: MmStruct,
    start: int,
    length: int,
    ops: MmuIntervalNotifierOps,
) -> int:
    """Like mmu_interval_notifier_insert; the caller holds ``mmap_sem`` for write.

    Kernel: mm/mmu_notifier.c mmu_interval_notifier_insert_locked() (v6.16).
    """
    lockdep_assert_held_write(mm.mmap_sem)

    mmn_mm = mm.mmu_notifier_mm
    if not isinstance(mmn_mm, MmuNotifierMm) or not mmn_mm.has_itree:
        ret = await __mmu_notifier_register(None, mm)
        if ret:
            return ret
        mmn_mm = _mmn_mm(mm)
    return await __mmu_interval_notifier_insert(
        interval_sub, mm, mmn_mm, start, length, ops
    )


async def mmu_interval_seq_released(mmn_mm: MmuNotifierMm, seq: int) -> bool:
    """Return whether the mm sequence moved past ``seq``, read under the lock.

    Kernel: mm/mmu_notifier.c mmu_interval_seq_released() (v6.16, added by
    319561669a59).  Taking the lock orders the read after the whole of the
    last mn_itree_inv_end, deferred-list processing included.
    """
    await spin_lock(mmn_mm.lock)
    ret = mmn_mm.invalidate_seq.value != seq
    await spin_unlock(mmn_mm.lock)
    return ret


async def mmu_interval_notifier_remove(interval_sub: MmuIntervalNotifier) -> None:
    """Unsubscribe; afterwards no callback of ``interval_sub`` runs anywhere.

    Kernel: mm/mmu_notifier.c mmu_interval_notifier_remove() (v6.16).  While
    the tree is being invalidated the removal is queued for the last end
    (or a still pending insert is cancelled) and we sleep until the mm
    sequence moves on.  Must not be called from an invalidate callback.

    Since 319561669a59 the wait condition is mmu_interval_seq_released,
    which reads the sequence under the lock: the last end increments the
    sequence and takes the subscription off the deferred list inside one
    critical section, so the caller may free the subscription as soon as
    this returns.  MODEL: the lockdep map acquire/release is not modelled.
    With 319561669a59 reverted (:mod:`hmmsim.kernel.fixes`) the condition is
    v5.5's lockless read.
    """
    mm = interval_sub.mm
    assert mm is not None, "[hmmsim internal bug] removing a sub never inserted"
    mmn_mm = _mmn_mm(mm)
    seq = 0

    might_sleep("mmu_interval_notifier_remove")

    await spin_lock(mmn_mm.lock)
    if mn_itree_is_invalidating(mmn_mm):
        # Called after an insert was deferred but before the last end.
        if interval_sub.rb_empty:
            if interval_sub in mmn_mm.deferred_list:
                mmn_mm.deferred_list.remove(interval_sub)
        else:
            mmn_mm.deferred_list.insert(0, interval_sub)
            seq = mmn_mm.invalidate_seq.value
    else:
        WARN_ON(interval_sub.rb_empty, "removing a subscription not in the tree")
        _interval_tree_remove(interval_sub, mmn_mm.itree)
    await spin_unlock(mmn_mm.lock)
    trace("mmu_interval_notifier_remove", sub=interval_sub.name, wait_seq=seq)

    # The sleep needs the caller to hold no lock an invalidate callback takes.
    if seq and fix_applied(mm, FIX_319561669A59):  # MODEL: patch switch

        async def seq_released() -> bool:
            return await mmu_interval_seq_released(mmn_mm, seq)

        await wait_event(mmn_mm.wq, seq_released)
    elif seq:
        # 319561669a59 reverted: v5.5..v5.17 read the sequence without the
        # lock, so the wait can end while the last end still holds us.

        async def seq_moved() -> bool:
            return await READ_ONCE(mmn_mm.invalidate_seq) != seq

        await wait_event(mmn_mm.wq, seq_moved)

    # Pairs with the mmgrab in mmu_interval_notifier_insert().
    await mmdrop(mm)


# -- include/linux/mmu_notifier.h inline helpers (v6.16) --------------------------


async def mmu_notifier_release(mm: MmStruct) -> None:
    """Tell every subscriber that ``mm`` is going away.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_release() (v6.16).
    """
    if mm_has_notifiers(mm):
        await __mmu_notifier_release(mm)


async def mmu_notifier_invalidate_range_start(range: MmuNotifierRange) -> None:
    """Start a blockable invalidation (it may sleep, it may not fail).

    Kernel: include/linux/mmu_notifier.h mmu_notifier_invalidate_range_start()
    (v6.16).  MODEL: the lockdep map taken around the call is not modelled.
    """
    might_sleep("mmu_notifier_invalidate_range_start")
    if mm_has_notifiers(range.mm):
        range.flags |= MMU_NOTIFIER_RANGE_BLOCKABLE
        await __mmu_notifier_invalidate_range_start(range)


async def mmu_notifier_invalidate_range_start_nonblock(range: MmuNotifierRange) -> int:
    """Start an invalidation whose callbacks may not sleep.

    Kernel: include/linux/mmu_notifier.h
    mmu_notifier_invalidate_range_start_nonblock() (v6.16).

    Returns:
        0, or -EAGAIN: the caller must then neither change the PTEs nor call
        mmu_notifier_invalidate_range_end.
    """
    ret = 0
    if mm_has_notifiers(range.mm):
        range.flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE
        ret = await __mmu_notifier_invalidate_range_start(range)
    return ret


async def mmu_notifier_invalidate_range_end(range: MmuNotifierRange) -> None:
    """Finish an invalidation that started successfully.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_invalidate_range_end()
    (v6.16).
    """
    if mmu_notifier_range_blockable(range):
        might_sleep("mmu_notifier_invalidate_range_end")
    if mm_has_notifiers(range.mm):
        await __mmu_notifier_invalidate_range_end(range)


async def mmu_notifier_subscriptions_destroy(mm: MmStruct) -> None:
    """Free the notifier structure of a dead mm.

    Kernel: include/linux/mmu_notifier.h mmu_notifier_subscriptions_destroy()
    (v6.16; mmu_notifier_mm_destroy in v5.5).
    """
    if mm_has_notifiers(mm):
        await __mmu_notifier_subscriptions_destroy(mm)


#: MODEL: the v5.5 name, the entry point ``MmuNotifierCore`` dispatches to.
mmu_notifier_mm_destroy = mmu_notifier_subscriptions_destroy
