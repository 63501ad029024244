"""Op: what a task is about to do, handed to the engine before it happens.

Every primitive in :mod:`hmmsim.sync` builds an :class:`Op` and awaits it.
Awaiting an Op suspends the task and gives the Op to the engine, which
decides when the task may perform it.  When the engine resumes the task the
primitive carries out the operation's effect and runs on to its next Op.

An Op names the shared objects it touches (``oid`` and optionally
``more_oids``) and whether it writes them.  Two Ops are *dependent* when they
touch a common object and at least one of them writes: this is the only
dependency relation the strategies use (lock operations count as writes to
the lock).  An Op with ``oid == LOCAL`` touches nothing shared.

A primitive may add to ``more_oids`` while its step takes effect the objects
it turned out to touch (a wake-up adds the entries of the tasks it woke):
the explorer reads the footprint of a step once it ran, and that of a
pending Op before, so the footprint an Op has before it runs must already
order it against every step that changes what it adds (a wake-up writes its
queue, which every ``prepare_to_wait`` reads).

An Op may carry a ``guard``: a callable that tells whether the Op can be
performed now (a lock acquisition is guarded by "the lock is free").  A task
whose pending Op's guard is false is *blocked*.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator
from typing import Any, Final, Protocol

__all__ = ["LOCAL", "Op", "OpKind", "SyncObject", "dependent"]

#: Object id of an Op that touches no shared object (sleep, yield, spawn).
LOCAL: Final = -1


class OpKind(enum.IntEnum):
    """Kinds of operations; they only label steps (dependency uses oids)."""

    ACQUIRE = 0
    RELEASE = 1
    TRYLOCK = 2
    READ = 3
    WRITE = 4
    WAIT = 5
    WAKE = 6
    SLEEP = 7
    YIELD = 8
    SPAWN = 9
    CHECK = 10


class SyncObject(Protocol):
    """What the engine needs to know about an object an Op touches."""

    @property
    def name(self) -> str:
        """Human name, e.g. ``hmm->ranges_lock``."""
        ...

    def holders(self) -> tuple[int, ...]:
        """Task ids currently holding this object (empty if none)."""
        ...


class Op:
    """One operation a task is about to perform (awaitable).

    Attributes:
        kind: label of the operation.
        oid: id of the main shared object touched, or ``LOCAL``.
        write: whether the Op modifies the object(s).
        func: name of the modelled function, e.g. ``spin_lock``.
        obj: the object, for reports (its name and holders); may be None.
        guard: returns True when the Op can be performed now; None = always.
        more_oids: further objects touched with the same access mode.
        timed: a blocked wait that a timeout could end (see engine docs).
    """

    __slots__ = ("func", "guard", "kind", "more_oids", "obj", "oid", "timed", "write")

    def __init__(  # noqa: PLR0917 - hot path: primitives build Ops positionally
        self,
        kind: OpKind,
        oid: int,
        write: bool,
        func: str,
        obj: SyncObject | None = None,
        guard: Callable[[], bool] | None = None,
        more_oids: tuple[int, ...] = (),
        timed: bool = False,
    ) -> None:
        """Build an Op; see the class docstring for the fields."""
        self.kind = kind
        self.oid = oid
        self.write = write
        self.func = func
        self.obj = obj
        self.guard = guard
        self.more_oids = more_oids
        self.timed = timed

    def __await__(self) -> Generator[Op, Any, None]:
        """Suspend the task and hand this Op to the engine."""
        yield self

    def describe(self) -> str:
        """Return ``func(object)``, e.g. ``mutex_lock(hmm->lock)``."""
        if self.obj is None:
            return f"{self.func}()"
        return f"{self.func}({self.obj.name})"

    def __repr__(self) -> str:
        return f"Op({self.kind.name}, {self.describe()}, oid={self.oid}, write={self.write})"


def dependent(a: Op, b: Op) -> bool:
    """Return whether two Ops do not commute (common object, one writes)."""
    if not (a.write or b.write):
        return False
    if a.oid == b.oid and a.oid != LOCAL:
        return True
    if not (a.more_oids or b.more_oids):
        return False
    left = {a.oid, *a.more_oids}
    left.discard(LOCAL)
    return any(o in left for o in (b.oid, *b.more_oids) if o != LOCAL)
