"""VectorClock: the happens-before relation between the steps of one execution.

A vector clock maps task ids to step positions.  The clock of a step says,
for every task, how far into the execution that task's steps reach which
*happen before* the step (Lamport, "Time, Clocks, and the Ordering of Events
in a Distributed System", CACM 1978; Mattern, "Virtual Time and Global States
of Distributed Systems", 1989).  In hmmsim a step happens before a later one
when they are ordered by program order (same task), by a dependency (two Ops
that do not commute, see :func:`hmmsim.engine.ops.dependent`), by a spawn
(the parent's step before its child's first), or transitively.

Entries are *global* step positions, not per-task counters: entry ``t`` is
one more than the index of the last step of task ``t`` that happens before
(or is) the event, and 0 when there is none.  So "step ``i`` of task ``t``
happens before the event with clock ``c``" is simply ``c.get(t) > i``
(:meth:`VectorClock.covers`).  The entries of a task only ever grow along an
execution, so the usual vector-clock algebra (pointwise maximum for a join,
pointwise order for happens-before) holds.

Used by the DPOR strategy (race detection) and available to the shrinker
(swapping adjacent independent steps).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["VectorClock"]


class VectorClock:
    """A mutable vector clock over dense task ids (see the module docstring).

    Missing entries are 0, so clocks of different lengths compare as if
    padded with zeros.  Clocks are compared by value; they are mutable and
    therefore unhashable.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[int] = ()) -> None:
        """Create a clock; ``entries[t]`` is the entry of task ``t``."""
        values = list(entries)
        if any(v < 0 for v in values):
            raise ValueError(f"vector clock entries must be >= 0, got {values}")
        self._entries = values

    def get(self, tid: int) -> int:
        """Return the entry of task ``tid`` (0 if it has none)."""
        entries = self._entries
        return entries[tid] if tid < len(entries) else 0

    def set(self, tid: int, value: int) -> None:
        """Set the entry of task ``tid``; entries never decrease."""
        entries = self._entries
        if tid >= len(entries):
            entries.extend([0] * (tid + 1 - len(entries)))
        if value < entries[tid]:
            raise ValueError(
                f"vector clock entry of task {tid} cannot go back "
                f"from {entries[tid]} to {value}"
            )
        entries[tid] = value

    def covers(self, tid: int, index: int) -> bool:
        """Return whether step ``index`` of task ``tid`` happens before this clock."""
        entries = self._entries
        return tid < len(entries) and entries[tid] > index

    def join(self, other: VectorClock) -> None:
        """Set this clock to the pointwise maximum of itself and ``other``."""
        mine = self._entries
        theirs = other._entries
        if len(theirs) > len(mine):
            mine.extend([0] * (len(theirs) - len(mine)))
        for tid, value in enumerate(theirs):
            if value > mine[tid]:  # noqa: PLR1730 - 3x faster than max() here
                mine[tid] = value

    def joined(self, other: VectorClock) -> VectorClock:
        """Return a new clock: the pointwise maximum of this one and ``other``."""
        result = self.copy()
        result.join(other)
        return result

    def copy(self) -> VectorClock:
        """Return an independent copy."""
        clock = VectorClock.__new__(VectorClock)
        clock._entries = self._entries.copy()
        return clock

    def entries(self) -> tuple[int, ...]:
        """Return the entries without trailing zeros."""
        entries = self._entries
        end = len(entries)
        while end and not entries[end - 1]:
            end -= 1
        return tuple(entries[:end])

    def __le__(self, other: object) -> bool:
        """Pointwise order: every entry of ``self`` is at most ``other``'s."""
        if not isinstance(other, VectorClock):
            return NotImplemented
        return all(v <= other.get(t) for t, v in enumerate(self._entries))

    def __lt__(self, other: object) -> bool:
        """Strict pointwise order: ``self <= other`` and they differ."""
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self <= other and self != other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self.entries() == other.entries()

    __hash__ = None  # type: ignore[assignment]  # mutable: compared by value, not hashable

    def concurrent(self, other: VectorClock) -> bool:
        """Return whether neither clock is ordered before the other."""
        return not (self <= other or other <= self)

    def __repr__(self) -> str:
        return f"VectorClock({list(self.entries())})"
