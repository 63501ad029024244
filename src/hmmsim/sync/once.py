"""Once-accessed cells: READ_ONCE / WRITE_ONCE / smp_load_acquire / smp_store_release.

A :class:`Cell` holds a value that tasks read or write without a lock (or
that a lockless reader observes).  Every access is an Op, so the explorer
sees the race.

Deviations:
    * MODEL: memory is sequentially consistent; acquire/release variants
      behave like the plain once-accesses (no weak-memory reorderings).
"""

from __future__ import annotations

from typing import Final, Generic, Protocol, TypeVar

from hmmsim.engine.ops import Op, OpKind
from hmmsim.sync._base import new_oid

__all__ = [
    "READ_ONCE",
    "WRITE_ONCE",
    "Cell",
    "shared_access",
    "smp_load_acquire",
    "smp_store_release",
]

T = TypeVar("T")

# Module-level copies of the kinds: an enum member is a slow lookup on its
# class (about 50 ns more than a global, on every access).
_READ: Final = OpKind.READ
_WRITE: Final = OpKind.WRITE


class Cell(Generic[T]):
    """A shared variable accessed with once-semantics.

    ``value`` may be read directly only by code that holds the lock that
    serialises every writer, or by the oracle (which never races).
    """

    __slots__ = ("name", "oid", "value")

    def __init__(self, name: str, value: T) -> None:
        """Create a cell with an initial value (no scheduling point)."""
        self.name = name
        self.oid = new_oid()
        self.value = value

    def holders(self) -> tuple[int, ...]:
        """Cells have no holders."""
        return ()

    def __repr__(self) -> str:
        return f"Cell({self.name!r}, {self.value!r})"


async def READ_ONCE(cell: Cell[T]) -> T:
    """Read ``cell`` once (a scheduling point)."""
    await Op(_READ, cell.oid, False, "READ_ONCE", cell)
    return cell.value


async def WRITE_ONCE(cell: Cell[T], value: T) -> None:
    """Write ``value`` to ``cell`` once (a scheduling point)."""
    await Op(_WRITE, cell.oid, True, "WRITE_ONCE", cell)
    cell.value = value


async def smp_load_acquire(cell: Cell[T]) -> T:
    """Read with acquire semantics (sequentially consistent in the model)."""
    await Op(OpKind.READ, cell.oid, False, "smp_load_acquire", cell)
    return cell.value


async def smp_store_release(cell: Cell[T], value: T) -> None:
    """Write with release semantics (sequentially consistent in the model)."""
    await Op(OpKind.WRITE, cell.oid, True, "smp_store_release", cell)
    cell.value = value


class _HasOid(Protocol):
    @property
    def oid(self) -> int: ...

    @property
    def name(self) -> str: ...

    def holders(self) -> tuple[int, ...]: ...


async def shared_access(obj: _HasOid, *more: _HasOid, write: bool, func: str) -> None:
    """Announce an access to model state that other tasks touch without a lock.

    Use it where the C accesses memory racily and the model keeps the state
    in plain fields (a page's contents, a device page-table entry): the access
    becomes a scheduling point whose footprint is ``obj`` and ``more``.
    """
    await Op(
        OpKind.WRITE if write else OpKind.READ,
        obj.oid,
        write,
        func,
        obj,
        None,
        tuple([o.oid for o in more]) if more else (),
    )
