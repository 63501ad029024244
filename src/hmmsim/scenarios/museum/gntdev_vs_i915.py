"""Museum scenario ``gntdev-vs-i915``: two interval subscribers on one mm deadlock.

dbe97cff7dd9 ("xen/gntdev: Avoid blocking in unmap_grant_pages()", v5.19;
QubesOS issue 7481, dom0 on 5.17): Xorg maps a guest's window buffer through
/dev/xen/gntdev, and i915 holds a userptr object over the same addresses
whose pages it pinned at its last submission.  When Xorg unmaps the grant
mapping, the invalidation first reaches i915's callback (which bumps the
object's sequence and keeps its pins) and then gntdev's, which before the
fix waited in ``gnttab_unmap_refs_sync`` until nobody but gntdev held the
pages; i915's next submission sleeps in ``mmu_interval_read_begin`` until
that invalidation is over, and would unpin only after it.  The grant-table
work retries for ever, the two threads sleep for ever.  With the fix the
callback starts the unmap and returns: the invalidation ends, i915 drops
its pins, and the retrying work unmaps the grant.

The model is the kernel's on both sides (kernel.drivers.xen_gntdev,
kernel.drivers.xen_grant_table, kernel.drivers.i915_userptr, the current
notifier core): the scenario only sets the stage.  The userptr object is
created over the address before the grant mapping (I915_GEM_USERPTR needs
nothing mapped there without I915_USERPTR_PROBE) and so is visited first
by the interval tree, whose equal starts go in insertion order (the C
tree descends right on an equal start; the model keeps the list sorted
stably).  With gntdev's interval first, i915's read_begin does not wait;
see docs/museum.md for what that case does.
"""

from __future__ import annotations

from collections.abc import Iterable

from hmmsim.engine import Finding, Instance
from hmmsim.kernel.drivers.i915_userptr import (
    DrmI915Private,
    I915GemObject,
    i915_gem_object_userptr_submit_done,
    i915_gem_object_userptr_submit_init,
    i915_gem_userptr_free,
    i915_gem_userptr_ioctl,
)
from hmmsim.kernel.drivers.xen_gntdev import (
    FIX_DBE97CFF7DD9,
    GntdevGrantMap,
    GntdevPriv,
    gntdev_add_map,
    gntdev_alloc_map,
    gntdev_vm_mmap,
)
from hmmsim.kernel.mmap import sys_munmap
from hmmsim.kernel.types import PAGE_SIZE
from hmmsim.scenarios import register
from hmmsim.scenarios._world import BASE, WorldFactory, WorldInstance, WorldState
from hmmsim.scenarios.museum._reverts import before_and_after, revert_variant
from hmmsim.scenarios.races import race
from hmmsim.sync import (
    current_execution,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
)

__all__ = ["AFTER", "BEFORE", "RACE", "SCENARIO", "execbuf_userptr"]

#: Today's kernel with dbe97cff7dd9 reverted (gntdev of v4.4..v5.18), and as released.
BEFORE = revert_variant("current", FIX_DBE97CFF7DD9)
AFTER = "current"


async def execbuf_userptr(obj: I915GemObject) -> int:
    """The userptr steps of one DRM_IOCTL_I915_GEM_EXECBUFFER2 with ``obj``.

    Kernel: drivers/gpu/drm/i915/gem/i915_gem_execbuffer.c (v5.18):
    eb_lookup_vmas calls i915_gem_object_userptr_submit_init for each
    userptr object, and eb_move_to_gpu checks submit_done under
    ``read_lock(notifier_lock)`` before the batch goes to the GPU.  MODEL:
    nothing else of execbuf (no batch, no retry of -EAGAIN: one attempt).

    Returns:
        0, or the error of submit_init / submit_done.
    """
    mm = obj.notifier.mm
    assert mm is not None
    ret = await i915_gem_object_userptr_submit_init(obj, mm)
    if ret:
        return ret
    await spin_lock(obj.i915.notifier_lock)  # MODEL: read_lock
    ret = i915_gem_object_userptr_submit_done(obj)
    await spin_unlock(obj.i915.notifier_lock)
    return ret


def build(make_world: WorldFactory, variant: str) -> Instance:
    """Build one execution's world and actors."""
    world = make_world(variant, mirrors=0)
    mm = world.mm
    i915 = DrmI915Private()
    priv = GntdevPriv()
    made: dict[str, object] = {}

    def the_obj() -> I915GemObject:
        obj = made["obj"]
        assert isinstance(obj, I915GemObject)
        return obj

    def the_map() -> GntdevGrantMap:
        map = made["map"]
        assert isinstance(map, GntdevGrantMap)
        return map

    async def setup() -> None:
        # The userptr object over BASE, made before the grant mapping.
        obj = await i915_gem_userptr_ioctl(i915, mm, "obj0", BASE, PAGE_SIZE)
        assert isinstance(obj, I915GemObject), f"[hmmsim internal bug] set-up: {obj}"
        made["obj"] = obj
        # IOCTL_GNTDEV_MAP_GRANT_REF of one grant, then mmap(2) of it at BASE.
        map = await gntdev_alloc_map(priv, 1)
        assert map is not None, "[hmmsim internal bug] set-up: no page"
        made["map"] = map
        await mutex_lock(priv.lock)
        await gntdev_add_map(priv, map)
        await mutex_unlock(priv.lock)
        ret = await gntdev_vm_mmap(priv, mm, BASE, map)
        assert ret == BASE, (
            f"[hmmsim internal bug] set-up: gntdev mmap failed with {ret}"
        )
        # A first submission pins the grant page (obj->userptr.pvec).
        ret = await execbuf_userptr(obj)
        assert ret == 0, f"[hmmsim internal bug] set-up: execbuf failed with {ret}"

    async def munmap() -> int:
        # Xorg drops the old window buffer: munmap(2) of the grant mapping.
        return await sys_munmap(mm, BASE, PAGE_SIZE)

    async def execbuf() -> int:
        # Xorg's next rendering with the userptr object, then its GEM_CLOSE.
        obj = the_obj()
        ret = await execbuf_userptr(obj)
        await i915_gem_userptr_free(obj)
        return ret

    def check_unmapped(state: WorldState) -> Iterable[Finding]:
        # Every task finished: the grant must be unmapped by now.
        map = the_map()
        if any(op.mapped for op in map.unmap_ops):
            yield Finding(
                kind="grant-leak",
                message=(
                    f"every task finished and {map.name}'s grant is still mapped "
                    f"(page#{map.pages[0].pfn} count {map.pages[0].refcount}): "
                    "the unmap of the invalidation never completed"
                ),
                step=current_execution().step,
            )
        del state

    return WorldInstance(
        world=world,
        setup=setup,
        actors=[("munmap", munmap), ("execbuf", execbuf)],
        check=check_unmapped,
    )


RACE = race(
    name="gntdev-vs-i915",
    title=(
        "gntdev's invalidate waits for i915's pins while i915 waits for the "
        "invalidation (QubesOS 7481)"
    ),
    description=(
        "Set-up: an i915 userptr object over BASE (one page), then a Xen "
        "gntdev grant mapped at BASE by mmap(2); a first execbuf pins the "
        "grant page into the object.  Actors: 'munmap' unmaps the grant "
        "mapping (the invalidation calls i915's callback, then gntdev's, "
        "which unmaps the grant); 'execbuf' submits the object again "
        "(mmu_interval_read_begin, then unbind and re-pin if it was "
        "invalidated) and frees it.  Checks that every task ends and the "
        "grant is unmapped."
    ),
    battery=False,
)(build)

SCENARIO = register(
    before_and_after(
        RACE, "current", FIX_DBE97CFF7DD9, ("hang",), kernel_version="v6.16"
    )
)
