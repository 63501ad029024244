"""i915 userptr objects as interval-notifier subscribers.

Kernel: drivers/gpu/drm/i915/gem/i915_gem_userptr.c of v5.17/v5.18 (the
rework ed29c2691188 of v5.13 onwards: one ``mmu_interval_notifier`` per
object, pages pinned at execbuf time, not in the callback).  Read from a
stored copy of the file of that series (search index id 11817366: it has
``to_gt()`` and the boolean ``dma_resv_wait_timeout``, so v5.17..v5.18).

What matters for the gntdev exhibit:

* ``i915_gem_object_userptr_submit_init`` (called by execbuf for every
  userptr object) calls ``mmu_interval_read_begin`` on the object's
  interval *before* anything else, which sleeps while an invalidation
  that already reached this object's callback is still running;
* the pages of the previous submission stay pinned (``obj->userptr.pvec``,
  pin_user_pages_fast, GUP_PIN_COUNTING_BIAS on each page's count) until
  a later submit_init finds the sequence changed and unbinds the object
  (``i915_gem_object_userptr_unbind`` -> put_pages -> drop_ref ->
  unpin_user_pages), or the object is freed: so the pins are dropped only
  *after* read_begin returned;
* ``i915_gem_userptr_invalidate`` does not drop the pins either: it bumps
  the sequence under ``notifier_lock`` and waits for the GPU to be idle
  ("we will unbind on next submission, still have userptr pins").

Deviations:
    * MODEL: the GPU is idle: no GTT bindings (i915_gem_object_unbind
      returns 0, no pinned pages), no outstanding fences
      (``dma_resv_wait_timeout`` returns at once), and the task is not
      exiting (PF_EXITING is clear).
    * MODEL: the object lock (``obj->base.resv``, a ww_mutex taken with
      i915_gem_object_lock_interruptible) is a Mutex, taken without a
      ww_acquire_ctx, never interrupted; ``notifier_lock`` (an rwlock) is
      a SpinLock.
    * MODEL: the object's pages (``obj->mm.pages``, an sg_table) are the
      list of pinned pages; ``____i915_gem_object_get_pages`` is the call
      of ``i915_gem_userptr_get_pages``; put_pages does not dirty or mark
      the pages accessed.
    * MODEL: freeing the object (GEM_CLOSE of the last handle) runs its
      teardown in the closing task: in C ``i915_gem_free_object`` defers it
      to RCU and the free worker (__i915_gem_free_objects: pages first,
      then ``->release``, i.e. i915_gem_userptr_release's
      mmu_interval_notifier_remove).
    * MODEL: execbuf is reduced to the userptr steps of
      ``eb_lookup_vmas`` / ``eb_reinit_userptr`` and ``eb_move_to_gpu``:
      submit_init, then submit_done under ``notifier_lock``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Final

from hmmsim.kernel.gup import (
    FOLL_WRITE,
    FollFlags,
    pin_user_pages_fast,
    unpin_user_pages,
)
from hmmsim.kernel.mm_types import MmStruct, Page
from hmmsim.kernel.mmu_notifier import MmuNotifierRange, mmu_notifier_range_blockable
from hmmsim.kernel.mmu_notifier_current import (
    ULONG_MAX,
    MmuIntervalNotifier,
    StaticMmuIntervalNotifierOps,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
)
from hmmsim.kernel.trace import trace
from hmmsim.kernel.types import PAGE_SHIFT, PAGE_SIZE
from hmmsim.sync import (
    Mutex,
    SpinLock,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
)

__all__ = [
    "I915_USERPTR_OPS",
    "DrmI915Private",
    "I915GemObject",
    "i915_gem_object_userptr_submit_done",
    "i915_gem_object_userptr_submit_init",
    "i915_gem_userptr_free",
    "i915_gem_userptr_invalidate",
    "i915_gem_userptr_ioctl",
]


@dataclass(slots=True, kw_only=True, eq=False)
class DrmI915Private:
    """Models the part of ``struct drm_i915_private`` userptr uses."""

    name: str = "i915"
    notifier_lock: SpinLock = field(init=False)

    def __post_init__(self) -> None:
        """Make ``i915->mm.notifier_lock``."""
        self.notifier_lock = SpinLock(f"{self.name}->mm.notifier_lock")


@dataclass(slots=True, kw_only=True, eq=False)
class I915GemObject:
    """Models a userptr ``struct drm_i915_gem_object``.

    Attributes:
        name: name used in reports.
        i915: the device.
        size: ``obj->base.size``.
        ptr: ``obj->userptr.ptr``, the user address.
        notifier: ``obj->userptr.notifier``.
        notifier_seq: ``obj->userptr.notifier_seq`` of the pinned pages.
        pvec: ``obj->userptr.pvec``, the pinned pages, or None.
        page_ref: ``obj->userptr.page_ref``: users of ``pvec``.
        pages: ``obj->mm.pages``: the object's backing store, or None.
        lock: ``obj->base.resv``'s lock (the object lock).
        freed: ghost: the object was freed.
    """

    name: str
    i915: DrmI915Private
    size: int
    ptr: int
    notifier: MmuIntervalNotifier = field(init=False)
    notifier_seq: int = ULONG_MAX
    pvec: list[Page] | None = None
    page_ref: int = 0
    pages: list[Page] | None = None
    lock: Mutex = field(init=False)
    freed: bool = False

    def __post_init__(self) -> None:
        """Make the subscription (not inserted yet) and the object lock."""
        self.notifier = MmuIntervalNotifier(
            name=f"{self.name}->userptr.notifier", container=self
        )
        self.lock = Mutex(f"{self.name}->base.resv")


def _num_pages(obj: I915GemObject) -> int:
    return obj.size >> PAGE_SHIFT


async def i915_gem_userptr_invalidate(
    mni: MmuIntervalNotifier, range: MmuNotifierRange, cur_seq: int
) -> bool:
    """The interval callback: bump the sequence, wait for the GPU.

    Kernel: i915_gem_userptr.c i915_gem_userptr_invalidate() (v5.18).  The
    pins stay: the next submission unbinds.

    Returns:
        False for a non-blockable range, else True.
    """
    obj = mni.container
    assert isinstance(obj, I915GemObject), "[hmmsim internal bug] not a userptr"

    if not mmu_notifier_range_blockable(range):
        return False

    await spin_lock(obj.i915.notifier_lock)  # MODEL: write_lock, see Deviations
    await mmu_interval_set_seq(mni, cur_seq)
    await spin_unlock(obj.i915.notifier_lock)

    # MODEL: not PF_EXITING; dma_resv_wait_timeout on an idle object returns
    # at once (see Deviations).
    return True


I915_USERPTR_OPS: Final = StaticMmuIntervalNotifierOps(
    invalidate=i915_gem_userptr_invalidate
)


async def i915_gem_userptr_ioctl(
    i915: DrmI915Private, mm: MmStruct, name: str, user_ptr: int, user_size: int
) -> I915GemObject | int:
    """DRM_IOCTL_I915_GEM_USERPTR: make an object of user memory.

    Kernel: i915_gem_userptr.c i915_gem_userptr_ioctl() (v5.18), without
    I915_USERPTR_PROBE: nothing needs to be mapped at ``user_ptr`` yet, the
    pages are pinned at the first submission.  MODEL: returns the object
    (the handle in C) or the error of mmu_interval_notifier_insert.
    """
    if user_ptr % PAGE_SIZE or user_size % PAGE_SIZE or not user_size:
        return -errno.EINVAL
    obj = I915GemObject(name=name, i915=i915, size=user_size, ptr=user_ptr)
    ret = await mmu_interval_notifier_insert(
        obj.notifier, mm, obj.ptr, obj.size, I915_USERPTR_OPS
    )
    if ret:
        return ret
    trace("i915_gem_userptr_ioctl", obj=name, start=user_ptr, size=user_size)
    return obj


async def i915_gem_object_userptr_drop_ref(obj: I915GemObject) -> None:
    """Drop a user of ``pvec``; the last one unpins the pages.

    Kernel: i915_gem_userptr.c i915_gem_object_userptr_drop_ref() (v5.18);
    the caller holds the object lock.
    """
    pvec = None
    obj.page_ref -= 1
    if not obj.page_ref:
        pvec = obj.pvec
        obj.pvec = None
    assert obj.page_ref >= 0, "[hmmsim internal bug] GEM_BUG_ON(page_ref < 0)"

    if pvec is not None:
        await unpin_user_pages(pvec, _num_pages(obj))


async def i915_gem_userptr_get_pages(obj: I915GemObject) -> int:
    """The object's get_pages: back it with ``pvec``.

    Kernel: i915_gem_userptr.c i915_gem_userptr_get_pages() (v5.18).

    Returns:
        0, or -EAGAIN when no pages are pinned.
    """
    if not obj.page_ref:
        return -errno.EAGAIN
    obj.page_ref += 1
    assert obj.pvec is not None
    obj.pages = list(obj.pvec)  # MODEL: the sg_table
    return 0


async def i915_gem_userptr_put_pages(
    obj: I915GemObject, pages: list[Page] | None
) -> None:
    """The object's put_pages: give the backing store up.

    Kernel: i915_gem_userptr.c i915_gem_userptr_put_pages() (v5.18).
    """
    if pages is None:
        return
    # MODEL: set_page_dirty / mark_page_accessed are not modelled.
    await i915_gem_object_userptr_drop_ref(obj)


async def i915_gem_object_userptr_unbind(obj: I915GemObject) -> int:
    """Unbind the object from the GPU and drop its pages (object lock held).

    Kernel: i915_gem_userptr.c i915_gem_object_userptr_unbind() (v5.18).
    MODEL: no GTT bindings and no pinned pages (see Deviations).

    Returns:
        0.
    """
    pages, obj.pages = obj.pages, None  # __i915_gem_object_unset_pages
    if pages is not None:
        await i915_gem_userptr_put_pages(obj, pages)
    return 0


async def i915_gem_object_userptr_submit_init(obj: I915GemObject, mm: MmStruct) -> int:
    """Make sure the object's pages are pinned and current, for execbuf.

    Kernel: i915_gem_userptr.c i915_gem_object_userptr_submit_init()
    (v5.18).  MODEL: takes the mm (current->mm in C).

    Returns:
        0, -EFAULT (another mm, or the pages cannot be pinned), -EAGAIN
        (an invalidation came while pinning: execbuf retries).
    """
    num_pages = _num_pages(obj)
    gup_flags = FollFlags(0)

    if obj.notifier.mm is not mm:
        return -errno.EFAULT

    notifier_seq = await mmu_interval_read_begin(obj.notifier)

    await mutex_lock(obj.lock)

    if notifier_seq == obj.notifier_seq and obj.pvec is not None:
        await mutex_unlock(obj.lock)
        return 0

    ret = await i915_gem_object_userptr_unbind(obj)
    await mutex_unlock(obj.lock)
    if ret:
        return ret

    pvec: list[Page] = []
    gup_flags |= FOLL_WRITE  # not a read-only object

    pinned = ret = 0
    while pinned < num_pages:
        ret = await pin_user_pages_fast(
            mm, obj.ptr + pinned * PAGE_SIZE, num_pages - pinned, gup_flags, pvec
        )
        if ret < 0:
            break
        pinned += ret
    else:
        ret = 0

        await mutex_lock(obj.lock)
        if mmu_interval_read_retry(
            obj.notifier, notifier_seq if not obj.page_ref else obj.notifier_seq
        ):
            ret = -errno.EAGAIN
        else:
            users = obj.page_ref  # page_ref++: the value before the increment
            obj.page_ref += 1
            if not users:
                obj.pvec = pvec
                obj.notifier_seq = notifier_seq
                pvec = []
                ret = await i915_gem_userptr_get_pages(obj)
            obj.page_ref -= 1
        await mutex_unlock(obj.lock)

    # out: unpin what is not kept.
    if pvec:
        await unpin_user_pages(pvec, pinned)
    trace(
        "i915_gem_object_userptr_submit_init", obj=obj.name, seq=notifier_seq, ret=ret
    )
    return ret


def i915_gem_object_userptr_submit_done(obj: I915GemObject) -> int:
    """Check, under ``notifier_lock``, that no invalidation came meanwhile.

    Kernel: i915_gem_userptr.c i915_gem_object_userptr_submit_done() (v5.18).

    Returns:
        0, or -EAGAIN (collided with the notifier: execbuf retries).
    """
    if mmu_interval_read_retry(obj.notifier, obj.notifier_seq):
        return -errno.EAGAIN
    return 0


async def i915_gem_userptr_free(obj: I915GemObject) -> None:
    """Free the object: drop its pages, then its subscription.

    Kernel: i915_gem_object.c __i915_gem_free_objects() ->
    __i915_gem_object_pages_fini() (put_pages) then ``->release``, i.e.
    i915_gem_userptr.c i915_gem_userptr_release() (v5.18).  MODEL: run by
    the closing task (see Deviations).
    """
    await mutex_lock(obj.lock)
    await i915_gem_object_userptr_unbind(obj)
    await mutex_unlock(obj.lock)

    assert not obj.page_ref, "[hmmsim internal bug] GEM_WARN_ON(page_ref)"
    await mmu_interval_notifier_remove(obj.notifier)
    obj.freed = True
    trace("i915_gem_userptr_release", obj=obj.name)
