"""Model of ``struct kref``: kref_init, kref_get, kref_get_unless_zero, kref_put.

Each operation is an atomic read-modify-write (an Op that writes the kref).
Findings of kind ``kref``: ``kref_get`` on a zero count (the kernel's
refcount_t "addition on 0; use-after-free"), and ``kref_put`` on a zero count
("underflow; use-after-free").  After the release function ran, the kref is
marked ``released``; :func:`kref_check_live` lets model code report the use
of an object after its last ``kref_put``.  ``kref_read`` and
``kref_check_live`` read the count, which other tasks change, so they are
read Ops too (awaited), never plain function calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hmmsim.engine.ops import Op, OpKind
from hmmsim.sync._base import new_oid, report

__all__ = [
    "Kref",
    "kref_check_live",
    "kref_get",
    "kref_get_unless_zero",
    "kref_init",
    "kref_put",
    "kref_read",
]


class Kref:
    """Models ``struct kref`` (a refcount_t)."""

    __slots__ = ("name", "oid", "refcount", "released")

    def __init__(self, name: str) -> None:
        """Create a kref with count 1, as kref_init leaves it."""
        self.name = name
        self.oid = new_oid()
        self.refcount = 1
        self.released = False

    def holders(self) -> tuple[int, ...]:
        """A kref has no holders."""
        return ()

    def __repr__(self) -> str:
        return f"Kref({self.name!r}, {self.refcount})"


def kref_init(kref: Kref) -> None:
    """Set the count to 1 (done before the object is published: no Op)."""
    kref.refcount = 1
    kref.released = False


async def kref_read(kref: Kref) -> int:
    """Return the current count (a read Op of the kref: another task may put it)."""
    await Op(OpKind.READ, kref.oid, False, "kref_read", kref)
    return kref.refcount


async def kref_get(kref: Kref) -> None:
    """Increment the count; reports ``kref`` if it was zero."""
    await Op(OpKind.WRITE, kref.oid, True, "kref_get", kref)
    if kref.refcount == 0:
        report(
            "kref",
            f"kref_get({kref.name}) on a zero count: addition on 0, use-after-free",
        )
    kref.refcount += 1


async def kref_get_unless_zero(kref: Kref) -> bool:
    """Increment the count unless it is zero; return whether it did."""
    await Op(OpKind.WRITE, kref.oid, True, "kref_get_unless_zero", kref)
    if kref.refcount == 0:
        return False
    kref.refcount += 1
    return True


async def kref_put(kref: Kref, release: Callable[[Kref], Awaitable[None]]) -> int:
    """Decrement the count; call ``release`` when it reaches zero.

    Returns:
        1 if this call released the object, else 0.
    """
    await Op(OpKind.WRITE, kref.oid, True, "kref_put", kref)
    if kref.refcount == 0:
        report(
            "kref", f"kref_put({kref.name}) on a zero count: underflow, use-after-free"
        )
        return 0  # pragma: no cover - report() above is fatal and does not return
    kref.refcount -= 1
    if kref.refcount:
        return 0
    kref.released = True
    await release(kref)
    return 1


async def kref_check_live(kref: Kref, what: str) -> None:
    """Report ``kref`` if the object owning ``kref`` was already released.

    A read Op of the kref: whether the last ``kref_put`` came first depends on
    the interleaving, so the explorer must order the check against it.
    """
    await Op(OpKind.READ, kref.oid, False, "kref_check_live", kref)
    if kref.released:
        report("kref", f"{what}: use of {kref.name} after its last kref_put")
