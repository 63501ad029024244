"""kmalloc / kfree with failure injection, KASAN-style checks and kmemleak's heap.

Kernel: mm/slab_common.c, mm/failslab.c, mm/kasan and mm/kmemleak.c (Linux
v5.3), reduced to what the model needs.

Two kinds of memory use these helpers.  The model's own structures (``struct
hmm``, a subscription, lib/test_hmm.c's dmirror) carry a ghost ``freed`` flag
and use :func:`kfree` / :func:`kasan_check` where the surrounding code already
made the Op that orders the free.  Memory a *user's* driver allocates goes
through :func:`kmalloc` / :func:`kzalloc` and :func:`kfree_checked`, and is
read or written through :func:`kasan_check_read` / :func:`kasan_check_write`:
each access and each free is an Op on the object, so the explorer orders a
free against every access of the same object, and a use after the free, or a
second free, is a finding.  The objects stay on the execution's heap list,
which the oracle's kmemleak check scans at the end of the execution.

Deviations:
    * MODEL: there is no allocator behind kmalloc; ``kmalloc_fails()`` decides
      whether an allocation fails.  A scenario or test injects failures by
      setting ``current_execution().context["failslab"]`` to the number of
      upcoming kmalloc calls that fail (the kernel's fault injection,
      deterministic here).
    * MODEL: ``kfree`` marks the object freed (a ghost flag) and
      ``kasan_check`` reports a ``use-after-free`` finding when model code
      dereferences such an object, as KASAN would.
    * MODEL: ``kmalloc(obj)`` takes the (already built) Python object instead
      of a size and returns it, or None when an injected failure consumes the
      call; the allocation itself is no Op (nothing else can see the object
      yet, as with ``mm_alloc``).  ``kzalloc`` is the same call: the object's
      constructor does the zeroing.  The object gets a ghost
      :class:`SlabObject` header (attribute ``slab``), so it needs a
      ``__dict__`` or a ``slab`` slot.
    * MODEL: a user's free is ``await kfree_checked(obj)``: an Op writing the
      object, then the kernel's kfree; freeing twice, or freeing memory that
      kmalloc never returned, is a ``double-free`` finding (KASAN's
      "double-free or invalid-free").  The kernel has one ``kfree``; the model
      keeps the Op-less ghost one for its own structures.
    * MODEL: ``kasan_check_read`` / ``kasan_check_write`` (the kernel's
      explicit KASAN checks) stand for every load and store of the object:
      a user's driver calls them where its C would dereference the pointer.
    * MODEL: the heap is ``current_execution().context["slab"]``, in
      allocation order; kmemleak's scan (``hmmsim.oracle.teardown``) runs
      once at the end of the execution instead of periodically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol, TypeVar, cast

from hmmsim.errors import ScenarioError
from hmmsim.sync import current_execution, new_oid, report, shared_access

__all__ = [
    "GFP_KERNEL",
    "Freeable",
    "SlabObject",
    "kasan_check",
    "kasan_check_read",
    "kasan_check_write",
    "kfree",
    "kfree_checked",
    "kmalloc",
    "kmalloc_fails",
    "kzalloc",
    "slab_objects",
]

#: The allocation flags drivers pass (the model ignores them).
GFP_KERNEL: Final = 0

_T = TypeVar("_T")


class Freeable(Protocol):
    """An object with a ghost ``freed`` flag."""

    freed: bool


def kmalloc_fails() -> bool:
    """Return whether the next kmalloc fails (consumes one injected failure)."""
    context = current_execution().context
    pending = context.get("failslab", 0)
    if isinstance(pending, int) and pending > 0:
        context["failslab"] = pending - 1
        return True
    return False


def kfree(obj: Freeable) -> None:
    """Free ``obj`` (marks it freed; later dereferences are reported)."""
    obj.freed = True
    header = getattr(obj, "slab", None)
    if isinstance(header, SlabObject):
        header.freed = True


def kasan_check(obj: Freeable, what: str) -> None:
    """Report ``use-after-free`` if ``obj`` was freed."""
    if obj.freed:
        report("use-after-free", f"KASAN: use-after-free in {what}")


@dataclass(slots=True, kw_only=True, eq=False)
class SlabObject:
    """The ghost header of an object a user's driver allocated.

    Attributes:
        oid: the object id the accesses and the free name (DPOR footprint).
        name: what reports call the object (its type and allocation number).
        allocated: the (step, task name) of the kmalloc.
        freed: whether kfree has run.
        free: the (step, task name) of the kfree, once freed.
    """

    oid: int
    name: str
    allocated: tuple[int, str]
    freed: bool = False
    free: tuple[int, str] | None = None

    def holders(self) -> tuple[int, ...]:
        """No task holds heap memory the way it holds a lock (Op footprint)."""
        return ()


def _here() -> tuple[int, str]:
    execution = current_execution()
    task = execution.current
    return (execution.step, task.name if task else "")


def slab_objects() -> list[object]:
    """Return the execution's heap: every object kmalloc returned, in order."""
    heap = current_execution().context.setdefault("slab", [])
    return cast("list[object]", heap)


def kmalloc(obj: _T, flags: int = GFP_KERNEL) -> _T | None:
    """Allocate ``obj`` on the heap; None when an injected failure hits.

    Kernel: include/linux/slab.h kmalloc() (MODEL: see Deviations).

    Raises:
        ScenarioError: ``obj`` was allocated already, or cannot carry the
            ghost header (no ``__dict__`` and no ``slab`` slot).
    """
    del flags
    if kmalloc_fails():
        return None
    if isinstance(getattr(obj, "slab", None), SlabObject):
        raise ScenarioError(f"kmalloc: {type(obj).__name__} object allocated twice")
    heap = slab_objects()
    name = f"{type(obj).__name__}#{len(heap)}"
    header = SlabObject(oid=new_oid(), name=name, allocated=_here())
    try:
        object.__setattr__(obj, "slab", header)
    except AttributeError:
        raise ScenarioError(
            f"kmalloc: a {type(obj).__name__} cannot carry hmmsim's ghost header: "
            "give the class a __dict__ (no slots) or a 'slab' slot"
        ) from None
    heap.append(obj)
    return obj


def kzalloc(obj: _T, flags: int = GFP_KERNEL) -> _T | None:
    """Allocate zeroed memory (the object's constructor zeroes it): kmalloc.

    Kernel: include/linux/slab.h kzalloc().
    """
    return kmalloc(obj, flags)


def _header(obj: object, what: str) -> SlabObject:
    header = getattr(obj, "slab", None)
    if not isinstance(header, SlabObject):
        raise ScenarioError(
            f"{what}: a {type(obj).__name__} that kmalloc did not return "
            "(allocate driver memory with kmalloc or kzalloc)"
        )
    return header


async def _access(obj: object, what: str, *, write: bool) -> None:
    header = _header(obj, what)
    await shared_access(header, write=write, func=what)
    if header.freed:
        free = header.free
        where = f" (freed at step {free[0]} by {free[1]})" if free else ""
        report(
            "use-after-free",
            f"KASAN: use-after-free in {what}: {'write' if write else 'read'} "
            f"of {header.name}{where}",
        )


async def kasan_check_read(obj: object, what: str) -> None:
    """A load from ``obj`` (an Op): report ``use-after-free`` if it was freed.

    Kernel: include/linux/kasan-checks.h kasan_check_read().
    """
    await _access(obj, what, write=False)


async def kasan_check_write(obj: object, what: str) -> None:
    """A store to ``obj`` (an Op): report ``use-after-free`` if it was freed.

    Kernel: include/linux/kasan-checks.h kasan_check_write().
    """
    await _access(obj, what, write=True)


async def kfree_checked(obj: object | None) -> None:
    """Free memory kmalloc returned (an Op on it); NULL is a no-op.

    Kernel: mm/slab.c kfree() as KASAN checks it: a second free is reported
    as ``double-free``.
    """
    if obj is None:
        return
    header = getattr(obj, "slab", None)
    if not isinstance(header, SlabObject):
        # A fatal finding: the task does not run on.
        report(
            "double-free",
            f"KASAN: invalid-free: kfree of a {type(obj).__name__} that kmalloc "
            "did not return",
        )
    else:
        await shared_access(header, write=True, func="kfree")
        if header.freed:
            free = header.free
            where = f" at step {free[0]} by {free[1]}" if free else ""
            report("double-free", f"KASAN: double-free of {header.name} (freed{where})")
        header.freed = True
        header.free = _here()
        if hasattr(obj, "freed"):
            cast("Freeable", obj).freed = True
