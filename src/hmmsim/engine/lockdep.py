"""Lock-order checking (lockdep) as a listener of the execution's lock events.

The primitives tell the running execution that a task is about to take a lock
(``Execution.lock_acquiring``, before a blocking acquisition waits, as the
kernel's ``lock_acquire()`` does).  The execution passes the lock classes the
task holds and the class it goes to take to its *lock listeners*; it does no
lock-order work itself.  :class:`LockOrderChecker` is the listener the runner
installs: it adds the edges to a :class:`LockGraph` shared by the executions
of one exploration and reports an edge that closes a cycle as a non-fatal
``lock-order`` finding, once per set of classes, even if no execution
deadlocked.  Trylocks do not call it: they cannot wait, and lockdep adds no
dependency for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Protocol

from hmmsim.engine.schedule import Choice, Schedule

__all__ = ["LockGraph", "LockListener", "LockOrderChecker", "Reporter"]


class Reporter(Protocol):
    """What a listener sees of the running execution: where it is, and report."""

    @property
    def seed(self) -> int:
        """The execution's seed."""
        ...

    @property
    def step(self) -> int:
        """The index of the running step."""
        ...

    @property
    def choices(self) -> Sequence[Choice]:
        """The choices made so far."""
        ...

    def report(
        self,
        kind: str,
        message: str,
        *,
        fatal: bool = True,
        detail: tuple[str, ...] = (),
    ) -> None:
        """Record a finding."""
        ...


class LockListener(Protocol):
    """Told about every blocking lock acquisition, before it waits."""

    def lock_acquiring(
        self, reporter: Reporter, held: Sequence[str], lock_class: str
    ) -> None:
        """A task holding locks of classes ``held`` goes to take one of ``lock_class``.

        Called only when the task holds at least one lock.
        """
        ...


class LockGraph:
    """Lock-order graph shared by the executions of one exploration (lockdep).

    An edge ``A -> B`` means some task went to take a lock of class B while
    holding one of class A.  An edge that closes a cycle (``B -> A`` when
    ``A -> B`` exists, or any longer cycle) is an inversion, reported once
    per set of classes even if no execution deadlocked.

    Attributes:
        edges: every edge, in the order first seen.
        reported: the class sets of the cycles already reported.
    """

    __slots__ = ("edges", "reported", "successors")

    def __init__(self) -> None:
        """Start with no edges."""
        self.edges: dict[tuple[str, str], Schedule | None] = {}
        self.reported: set[frozenset[str]] = set()
        self.successors: dict[str, list[str]] = {}

    def add(self, first: str, second: str) -> list[str] | None:
        """Add the edge ``first -> second``; return the cycle it closes, if any.

        Returns:
            None if the edge was known or closes no cycle, else the classes
            ``[second, ..., first]`` of a path back from ``second`` to ``first``.
        """
        edge = (first, second)
        if edge in self.edges:
            return None
        self.edges[edge] = None
        self.successors.setdefault(first, []).append(second)
        return self.path(second, first)

    def path(self, start: str, goal: str) -> list[str] | None:
        """Return a shortest path of classes from ``start`` to ``goal``, or None."""
        parents: dict[str, str] = {start: start}
        frontier = [start]
        while frontier:
            later: list[str] = []
            for node in frontier:
                for succ in self.successors.get(node, ()):
                    if succ in parents:
                        continue
                    parents[succ] = node
                    if succ == goal:
                        path = [goal]
                        while path[-1] != start:
                            path.append(parents[path[-1]])
                        return path[::-1]
                    later.append(succ)
            frontier = later
        return None


class LockOrderChecker:
    """The lockdep listener of one execution: grows a LockGraph, reports inversions.

    Each edge added to the graph records the schedule (so far) of the
    execution that added it: an inversion may close with an edge of a later
    execution, and its report then gives the schedule that shows the earlier
    edge too, since a replay of the reporting execution alone does not.

    Attributes:
        graph: the lock-order graph (shared by an exploration's executions).
        edges_here: the edges this execution added first.
    """

    __slots__ = ("edges_here", "graph")

    def __init__(self, graph: LockGraph | None = None) -> None:
        """Check against ``graph`` (default: a new, empty one)."""
        self.graph = graph if graph is not None else LockGraph()
        self.edges_here: set[tuple[str, str]] = set()

    def lock_acquiring(
        self, reporter: Reporter, held: Sequence[str], lock_class: str
    ) -> None:
        """Add an edge from every held class to ``lock_class``; report cycles."""
        graph = self.graph
        for held_class in held:
            if held_class != lock_class:
                edge = (held_class, lock_class)
                if edge in graph.edges:
                    continue
                cycle = graph.add(held_class, lock_class)
                graph.edges[edge] = Schedule(
                    seed=reporter.seed, choices=tuple(reporter.choices)
                )
                self.edges_here.add(edge)
                if cycle is not None:
                    self._report(reporter, held_class, lock_class, cycle)

    def _report(
        self, reporter: Reporter, held: str, taken: str, cycle: list[str]
    ) -> None:
        # A cycle is reported when its last edge is added, and edges are never
        # removed, so no cycle is reported twice.
        graph = self.graph
        graph.reported.add(frozenset(cycle))
        elsewhere = ", ".join(
            f"{later} while holding {earlier}" for earlier, later in pairwise(cycle)
        )
        earlier = [e for e in pairwise(cycle) if e not in self.edges_here]
        message = (
            f"possible circular locking dependency: {taken} is taken while "
            f"holding {held}, and elsewhere {elsewhere}"
        )
        detail: tuple[str, ...] = ()
        if earlier:
            # The replay of this execution alone does not show the earlier
            # edges: say so, and give the schedule that does.
            message += (
                " (seen in another execution: this schedule alone does not show it)"
            )
            detail = (
                f"{held} -> {taken}: this execution, step {reporter.step}",
                *(
                    f"{a} -> {b}: an earlier execution, schedule "
                    f"{_choices_text(graph.edges.get((a, b)))}"
                    for a, b in earlier
                ),
            )
        reporter.report("lock-order", message, fatal=False, detail=detail)


def _choices_text(schedule: Schedule | None) -> str:
    """Return ``seed S: t0 t1 d1 ...`` for a schedule in a finding's detail."""
    if schedule is None:  # pragma: no cover - every edge records its schedule
        return "unknown"
    data = schedule.to_json()
    choices = data["choices"]
    assert isinstance(choices, list), "[hmmsim internal bug] schedule JSON"
    return f"seed {schedule.seed}: {' '.join(str(c) for c in choices)}"
