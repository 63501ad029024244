"""Dynamic partial-order reduction (DPOR) with sleep sets and source sets.

Flanagan and Godefroid, "Dynamic Partial-Order Reduction for Model Checking
Software", POPL 2005 (FG05): stateless depth-first exploration that finds
the races of each execution and adds backtrack points only where reversing
a race can lead somewhere new.  Sleep sets: Godefroid, "Partial-Order
Methods for the Verification of Concurrent Systems", LNCS 1032, 1996.
Backtrack points are chosen as in source-DPOR, Algorithm 1 of Abdulla,
Aronis, Jonsson and Sagonas, "Optimal Dynamic Partial Order Reduction",
POPL 2014: an *initial* of the reversed sequence, not the racing task.

Two schedules that differ only in the order of adjacent *independent* steps
(:func:`hmmsim.engine.ops.dependent` is false for their Ops) reach the same
state; exploring one of them is enough.  When a step ``x`` of task ``p``
runs, the steps it *races* with are the dependent steps of other tasks that
it immediately follows in happens-before order without happening before
``p`` (vector clocks, :mod:`hmmsim.engine.clock`); of the candidates
found on the several objects of one Op, one that happens before another
is not immediate and does not race.  To reverse a race of
step ``e`` with ``x``, the state before ``e`` must explore some initial of
``v = notdep(e).x`` (the steps after ``e`` that do not happen after it,
then ``x``): a task whose first step in ``v`` depends on no earlier step of
``v``.  If one is already explored, scheduled or asleep there, nothing is
added.  A *sleep set* per state holds tasks whose next step was already
explored from an equivalent state; they are not scheduled until a
dependent step wakes them.  Two independent tasks of m and n steps are
explored in exactly one execution, whatever m and n; n racing
read-then-increment tasks in exactly (n!)^2, one per Mazurkiewicz trace.

Per step, the work is O(tasks) plus race detection through a per-object
index of the execution's accesses (all writes, the reads since the last
write, and the joins of their clocks), never a scan of the whole trace.
Replaying the prefix of the next execution costs no race detection and no
clock work: the clocks and the index of the prefix are kept, and the steps
after the backtrack point are undone (an undo record per step).

Deviations from the papers (each keeps the exploration sound):
    * Blocked tasks (FG05): source-DPOR only sees steps that run, but a
      pending Op that is blocked may never run.  As in FG05, the races of
      the Ops of blocked tasks are reversed at every new state, and those of
      every pending Op at the end of an execution (a deadlock).  When no
      initial of ``v`` is enabled at the state before ``e`` (``x`` itself
      would have to go first while it is blocked there), every enabled task
      is added there, as FG05 does.
    * Data choices (``next_int``) are depth-first nodes nested in the step
      that makes them; every value of every data choice is explored.  The
      footprint of a step is its Op whatever the values chosen.  A task
      enters a sleep set only after all the values of its step were explored
      beneath the state (depth-first order guarantees it).
    * "Co-enabled" (FG05) is approximated by "always", except for two
      pairs.  First, a RELEASE that writes (the holder held the object
      exclusively: ``mutex_unlock``, ``spin_unlock``, ``up_write``,
      ``downgrade_write``) and a guarded ACQUIRE of the same object by
      another task.  The acquisition cannot happen anywhere between the
      holder's acquisition and the release, whether the acquirer already
      waits there (blocked) or reaches its ACQUIRE only after the release,
      so the two are never enabled in the other order and the acquirer
      races with an earlier step (the holder's acquisition) instead.  This
      is FG05's treatment of locks, which only looked at an acquirer
      blocked at the state before the release: one that arrived later made
      the release a race, whose reversal ran the acquirer's earlier steps
      before the release, with the releaser asleep, into a state where the
      acquirer blocked and everything else slept (a sleep-set-blocked
      execution, most of the ``REDUNDANT`` ones).
      Second, a WAKE and a guarded WAIT that reads an object the
      WAKE writes: the program promises (see :mod:`hmmsim.sync.waitqueue`)
      that only the wake-up that sets a waiter's flag writes the object its
      sleep reads, so the sleep was not enabled before that WAKE and never
      races with it.  The clocks still order the sleep after it.
    * A step that ends the execution with a fatal finding (``BUG_ON``, an
      exception, a lock leak) is dependent with every step: it races with
      every other task's pending Op (which it prevents) and with the last
      step of every other task that does not happen before it (which it
      would have prevented); it never enters a sleep set.
    * Tasks spawned during a step (``call_srcu``) start with the clock of the
      spawning step.  Spawns are LOCAL Ops, so two spawns in different tasks
      commute: the children's ids follow the order explored.
    * When every enabled task is asleep the execution is redundant and is
      abandoned (``ABANDON``, outcome ``REDUNDANT``); if it already has
      findings it is run to completion instead, exploring nothing, so that
      its schedule can be replayed as a counterexample.
    * With a preemption bound (``bounded_options``), a backtrack point that
      needs a choice the bound forbids is dropped and ``complete`` becomes
      False; an exploration that never drops one is an ordinary, complete
      DPOR exploration.

Assumptions on the program (as for every stateless explorer): it is
deterministic given its schedule; tasks share state only through the objects
named by their Ops (state read without an Op is protected by a lock whose
Ops order it); a guard reads only the objects of its own Op; a RELEASE is
performed by a task that holds the object.

Invariants (checked with ``assert``):
    * the stack holds the choice points of the current execution in choice
      order, and the task nodes among them are exactly ``_nodes``;
    * states are committed once each, in order: the races of step j are
      found with the clocks and the index of steps ``0..j-1`` and nothing
      more, and a backtrack keeps exactly the states before its point.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Final

from hmmsim.engine.execution import ABANDON, ExecutionResult
from hmmsim.engine.ops import LOCAL, Op, OpKind, dependent
from hmmsim.engine.strategies.base import NONDETERMINISTIC, bounded_options
from hmmsim.engine.view import ExecutionView
from hmmsim.errors import InternalError, ModelError

__all__ = ["Claim", "DporStrategy", "DporUnit", "NodeInfo"]

_BUG = "[hmmsim internal bug]"

# Module-level copies of the kinds the race detection tests (an enum member is
# a slow lookup on its class).
_ACQUIRE: Final = OpKind.ACQUIRE
_RELEASE: Final = OpKind.RELEASE
_WAIT: Final = OpKind.WAIT
_WAKE: Final = OpKind.WAKE

#: A vector clock (:mod:`hmmsim.engine.clock`) kept as its bare list of
#: entries: ``c[t]`` is one more than the index of the last step of task ``t``
#: that happens before the event, and a missing entry is 0, so step ``i`` of
#: task ``t`` happens before ``c`` iff ``t < len(c) and c[t] > i``.  The
#: strategy works on the lists in place of VectorClock objects: a method call
#: per comparison and per join was a tenth of an exploration's time.
_Clock = list[int]


def _join(mine: _Clock, theirs: _Clock) -> None:
    """Set ``mine`` to the pointwise maximum of itself and ``theirs``."""
    if len(theirs) > len(mine):
        mine.extend([0] * (len(theirs) - len(mine)))
    t = 0
    for value in theirs:
        if value > mine[t]:  # noqa: PLR1730 - faster than max() here
            mine[t] = value
        t += 1  # noqa: SIM113 - faster than enumerate() here


class _Node:
    """A task choice point: the state before step ``index``.

    Attributes:
        index: step index of the state.
        pos: position of the node among the choice points (its path is the
            choices before it).
        enabled: the enabled task ids there.
        allowed: the ids the preemption bound allows, or None if all.
        backtrack: tasks to explore from here (the chosen one included).
        done: tasks explored from here, with the Op each performed.
        sleep: tasks asleep here, with their pending Op.
        fatal: tasks whose step from here ended the execution with a finding.
        chosen: the task explored now.
        chosen_op: its Op (set whenever the state is visited).
        full: every enabled task is covered here (see ``saturated``).
    """

    __slots__ = (
        "allowed",
        "backtrack",
        "chosen",
        "chosen_op",
        "done",
        "enabled",
        "fatal",
        "full",
        "index",
        "pos",
        "sleep",
    )

    def __init__(  # noqa: PLR0917 - positional: one is made per new state
        self,
        index: int,
        pos: int,
        enabled: list[int],
        allowed: tuple[int, ...] | None,
        sleep: dict[int, Op],
        chosen: int,
        chosen_op: Op | None,
    ) -> None:
        self.index = index
        self.pos = pos  # position in the stack of choice points
        self.enabled = enabled
        self.allowed = allowed
        self.backtrack = {chosen}
        self.done: dict[int, Op] = {}
        self.sleep = sleep
        self.fatal: set[int] = set()
        self.chosen = chosen
        self.chosen_op = chosen_op
        self.full = False  # saturated() found every enabled task covered

    def covers(self, t: int) -> bool:
        """Return whether exploring ``t`` from here is scheduled, done or redundant."""
        return t in self.backtrack or t in self.done or t in self.sleep

    def saturated(self) -> bool:
        """Return whether every enabled task is covered here (then no race adds one).

        Backtrack and done sets only grow while the node lives, so once true
        it stays true (and is remembered).
        """
        if self.full:
            return True
        backtrack = self.backtrack
        done = self.done
        sleep = self.sleep
        for t in self.enabled:
            if t not in backtrack and t not in done and t not in sleep:
                return False
        self.full = True
        return True

    def child_sleep(self) -> dict[int, Op]:
        """Return the sleep set of the state after the chosen task's step."""
        op = self.chosen_op
        assert op is not None, f"{_BUG} dpor node without the chosen Op"
        asleep = self.sleep
        done = self.done
        if not (asleep or done):
            return {}
        fatal = self.fatal
        sleep = {t: o for t, o in asleep.items() if not dependent(o, op)}
        sleep.update(
            {t: o for t, o in done.items() if t not in fatal and not dependent(o, op)}
        )
        return sleep


class _DataNode:
    """A data choice point, nested in step ``step`` (-1: before the first step).

    Values ``value`` .. ``stop - 1`` are explored (``stop`` is ``bound``
    unless a work unit owns only part of the range).
    """

    __slots__ = ("bound", "step", "stop", "value")

    def __init__(
        self, *, step: int, bound: int, value: int = 0, stop: int = -1
    ) -> None:
        self.step = step
        self.bound = bound
        self.value = value
        self.stop = bound if stop < 0 else stop


class _Accesses:
    """The accesses of the current execution to one object.

    Attributes:
        writes: every write, as (step index, task, its kind (RELEASE and
            WAKE matter), reads came between it and the previous write).
        write_clock: clock of the last write.
        readers: task -> index of its last read since the last write.
        read_clock: join of the clocks of the reads since the last write.
    """

    __slots__ = ("read_clock", "readers", "write_clock", "writes")

    def __init__(self) -> None:
        self.writes: list[tuple[int, int, OpKind, bool]] = []
        self.write_clock: _Clock | None = None
        self.readers: dict[int, int] = {}
        self.read_clock: _Clock | None = None


#: What a commit changed in one record: the record, its previous
#: ``write_clock``, ``read_clock`` and ``readers``, and the task's previous
#: index in ``readers`` (-1: none).
_Change = tuple[_Accesses, _Clock | None, _Clock | None, dict[int, int], int]


#: A committed step, its clock and how to undo the commit: (the task that
#: took it, its clock, the task's clock before it, how many tasks there were
#: before it, whether its Op writes, what it changed in the records).  A plain
#: tuple, one made per new step: a class instance cost 7x more to build.
_Step = tuple[int, _Clock, _Clock, int, bool, list[_Change]]


def _objects_of(op: Op) -> tuple[int, ...]:
    if op.more_oids:
        return tuple(o for o in dict.fromkeys((op.oid, *op.more_oids)) if o != LOCAL)
    return () if op.oid == LOCAL else (op.oid,)


@dataclass(frozen=True, slots=True, kw_only=True)
class DporUnit:
    """One part of a DPOR exploration (see :mod:`hmmsim.engine.partition`).

    The unit replays ``prefix`` and explores, below it, either the whole tree
    (empty prefix, no root), the tasks ``branches`` at the state the prefix
    leads to (a *task root*), or the values ``values`` of the data choice the
    prefix leads to (a *data root*).  The choice points of the prefix, and a
    task root, belong to the coordinator: races that reverse there become
    :class:`Claim` s instead of backtrack points.

    Attributes:
        prefix: the encoded choices before the root.
        done_before: for each task choice of the prefix, the tasks explored
            there before the chosen one whose step was not fatal (they go to
            sleep beneath it).
        branches: task root: the tasks to explore, in order.
        root_done: task root: the tasks explored at the root elsewhere, not
            fatal (they sleep beneath every branch).
        values: data root: the range ``[low, high)`` of values to explore.
    """

    prefix: tuple[int, ...] = ()
    done_before: tuple[tuple[int, ...], ...] = ()
    branches: tuple[int, ...] = ()
    root_done: tuple[int, ...] = ()
    values: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A race reversed at a choice point the coordinator owns.

    ``every``: explore every task of ``tasks`` there (none of the usable
    initials is enabled); else one of them, unless one already is.
    ``pos`` is the node's position: its path is the unit's first ``pos``
    choices.
    """

    pos: int
    tasks: tuple[int, ...]
    every: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """A task choice point a sliced unit hands over to the coordinator.

    Attributes:
        path: the encoded choices before it.
        done_before: as in :class:`DporUnit`, for the task choices of ``path``.
        claimed: every task explored, being explored or to be explored there.
        final: task -> whether its step from here was fatal, for the tasks
            whose every step from here has run.
    """

    path: tuple[int, ...]
    done_before: tuple[tuple[int, ...], ...]
    claimed: tuple[int, ...]
    final: tuple[tuple[int, bool], ...]


class DporStrategy:
    """Stateless DPOR with sleep sets and source sets (see the module docstring).

    Attributes:
        preemption_bound: bound on preemptions, or None.
        complete: False once a backtrack point was dropped by the bound.
        redundant: executions abandoned because every enabled task slept.
    """

    name = "dpor"
    exhaustive = True

    def __init__(
        self,
        *,
        preemption_bound: int | None = None,
        unit: DporUnit | None = None,
        slice_executions: int | None = None,
    ) -> None:
        """Start before the first execution.

        Args:
            preemption_bound: bound on preemptions, or None.
            unit: explore only this part of the tree (default: all of it).
            slice_executions: after this many executions, stop and hand the
                rest of the unit's work over as new units (``frontier``).
        """
        self.preemption_bound = preemption_bound
        self.complete = True
        self.redundant = 0
        #: True for a part of the tree: its result alone is never VERIFIED.
        self.partial = unit is not None and (
            bool(unit.prefix) or bool(unit.branches) or unit.values is not None
        )
        self._unit = unit or DporUnit()
        unit = self._unit
        self._slice = slice_executions
        self._executions = 0
        # Choice points before _base replay the unit's prefix and are never
        # backtracked; task nodes before _shared belong to the coordinator.
        self._base = len(unit.prefix)
        tasks_in_prefix = sum(1 for c in unit.prefix if not c & 1)
        self._task_root = bool(unit.branches)
        self._shared = tasks_in_prefix + (1 if self._task_root else 0)
        #: What the unit hands back: claims at coordinator nodes, final
        #: statuses (pos, task, fatal) of tasks there, and, when sliced, the
        #: nodes it owned and the units of its remaining work.
        self.claims: list[Claim] = []
        self._claimed: set[Claim] = set()
        self.statuses: list[tuple[int, int, bool]] = []
        self.nodes: list[NodeInfo] = []
        self.frontier: list[DporUnit] = []
        # The choice points of the current execution, in choice order.
        self._stack: list[_Node | _DataNode] = []
        # The task nodes of the stack: _nodes[i] is the state before step i.
        self._nodes: list[_Node] = []
        self._pos = 0
        # The first state after the backtrack point: the states before it
        # are replayed, with their clocks and races already known.
        self._fresh_from = 0
        self._started = False
        # Happens-before state of the committed steps of the execution: task
        # clocks, per-task step indices, per-object accesses, and the steps.
        # A backtrack rolls them back to the backtrack point.
        self._clocks: list[_Clock] = []
        self._task_steps: list[list[int]] = []
        self._objects: dict[int, _Accesses] = {}
        self._steps: list[_Step] = []
        self._committed = -1  # -1: not even the initial tasks are registered
        # Per execution.
        self._execution: ExecutionView | None = None
        # Races of pending Ops already reversed, as (step, task, task's clock
        # entry): a blocked task's races are looked at in every state.
        self._reversed: set[tuple[int, int, int]] = set()
        self._abandoned = False
        self._coasting = False

    # -- the Strategy protocol ------------------------------------------------

    def begin_execution(self) -> bool:
        """Move to the deepest unexplored branch; False when none is left."""
        if self._started:
            if not self._next_branch():
                return False
            if self._slice is not None and self._executions >= self._slice:
                self._split()
                return False
            self._rollback(self._fresh_from - 1)
        self._started = True
        self._pos = 0
        self._execution = None
        self._reversed = set()
        self._abandoned = False
        self._coasting = False
        return True

    @property
    def open_points(self) -> int:
        """Read-only progress stat: backtrack entries not yet explored (O(stack)).

        Unlike a count of executions, this tells how much work is known to
        remain; it grows as races are found and falls to zero at exhaustion.
        """
        return sum(
            sum(1 for t in node.backtrack if t not in node.done and t != node.chosen)
            for node in self._stack
            if isinstance(node, _Node)
        )

    @property
    def explored_fraction(self) -> float:
        """Read-only progress stat: the share of the tree explored so far (O(stack)).

        The weighted-backtrack estimate (Kilby, Slaney, Thiebaux and Walsh,
        "Estimating Search Tree Size", AAAI 2006): along the current path,
        each choice point's finished branches count for their share of the
        point, and the point for its share of its parent.  DPOR adds
        branches as it finds races, so the fraction runs high early on (the
        tree looks smaller than it is).  Choice points of a unit's prefix
        are left out.
        """
        fraction, weight = 0.0, 1.0
        for node in self._stack[self._base :]:
            if isinstance(node, _Node):
                done = len(node.done)
                total = done + sum(
                    1
                    for t in node.backtrack
                    if t not in node.done and t not in node.sleep
                )
            else:
                done, total = node.value, node.stop
            if total:
                fraction += weight * done / total
                weight /= total
        return fraction

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        """Check the new state for races, then replay or open a choice point."""
        if self._coasting:
            return _no_preemption(execution, enabled)
        self._execution = execution
        n = len(execution.step_tasks)
        if n > self._committed:
            # A new state (_advance, inlined): commit the step that led here,
            # then reverse the races of the Ops of the tasks blocked here.
            # FG05 checks the pending Ops of blocked tasks at every state: a
            # race that keeps a task blocked (an acquisition of the lock it
            # waits for) is reversed even if the task never gets to run in
            # this execution.
            if self._committed < 0 or n - self._committed != 1:
                self._advance(execution, n)
            else:
                self._commit(execution, n - 1)
                self._committed = n
            count = execution.task_count
            if len(enabled) < count:
                pending = execution.pending
                for p in range(count):
                    if p not in enabled:
                        x = pending(p)
                        if x is not None and x.guard is not None:
                            self._pending_races(p, x)
        pos = self._pos
        stack = self._stack
        if pos < len(stack):
            # Replaying the prefix of the execution (most steps): no race
            # detection, no clock work.
            node = stack[pos]
            if type(node) is not _Node or node.enabled != enabled:
                raise ModelError(
                    NONDETERMINISTIC
                    + f"dpor replay diverged at choice {pos}: the program offers tasks "
                    f"{enabled} where it offered {_describe(node)}"
                )
            self._pos = pos + 1
            chosen = node.chosen
            node.chosen_op = execution.pending(chosen)
            return chosen
        if pos == len(stack) and pos <= self._base:
            return self._open_unit(execution, enabled, n)
        return self._open(execution, enabled, n)

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        """Replay the value of a known data choice, or open one at value 0."""
        if self._coasting:
            return 0
        self._execution = execution
        pos = self._pos
        stack = self._stack
        self._pos = pos + 1
        if pos < len(stack):
            node = stack[pos]
            if not isinstance(node, _DataNode) or node.bound != bound:
                raise ModelError(
                    NONDETERMINISTIC
                    + f"dpor replay diverged at choice {pos}: the program asks for "
                    f"{label} in range({bound}) where it made {_describe(node)}"
                )
            return node.value
        step = len(execution.step_tasks) - 1
        if pos < self._base:
            value = self._prefix_value(pos, data=True)
            if value >= bound:
                raise InternalError(
                    f"dpor unit prefix diverged at choice {pos}: value {value} "
                    f"for {label} in range({bound})"
                )
            stack.append(_DataNode(step=step, bound=bound, value=value, stop=value + 1))
            return value
        values = self._unit.values
        if pos == self._base and self._task_root:
            raise InternalError(
                f"dpor unit prefix diverged at choice {pos}: the program asks for "
                f"{label} where the unit expects a task choice"
            )
        if pos == self._base and values is not None:
            low, high = values
            stack.append(_DataNode(step=step, bound=bound, value=low, stop=high))
            return low
        stack.append(_DataNode(step=step, bound=bound))
        return 0

    def end_execution(self, result: ExecutionResult) -> None:
        """Check the final state for races (blocked tasks, a fatal last step)."""
        execution = self._execution
        if execution is not None and not (self._abandoned or self._coasting):
            n = len(execution.step_tasks)
            # A fatal finding reported while a task ran (not by the deadlock
            # check or the end-of-execution properties) was made by the last
            # step, and ended the execution there.
            findings = result.findings
            fatal = (
                n > 0
                and bool(findings)
                and any(f.fatal and f.task and f.step == n - 1 for f in findings)
            )
            self._advance(execution, n)
            if fatal:
                node = self._nodes[n - 1]
                node.fatal.add(execution.step_tasks[n - 1])
                if node.pos < self._base:
                    self.statuses.append((node.pos, node.chosen, True))
                self._fatal_races(execution, n - 1)
            skip = execution.step_tasks[n - 1] if fatal else -1
            for p in range(execution.task_count):
                pending = execution.pending(p)
                if p != skip and pending is not None:
                    self._pending_races(p, pending)
        assert self._pos == len(self._stack), (
            f"{_BUG} dpor execution ended after {self._pos} of "
            f"{len(self._stack)} known choices"
        )
        self._execution = None
        self._executions += 1

    # -- choice points --------------------------------------------------------

    def _open(self, execution: ExecutionView, enabled: list[int], n: int) -> int:
        nodes = self._nodes
        assert len(nodes) == n, f"{_BUG} dpor has {len(nodes)} nodes at step {n}"
        sleep: dict[int, Op] = {}
        if n:
            parent = nodes[n - 1]
            if parent.sleep or parent.done:  # else child_sleep() is empty
                sleep = parent.child_sleep()
        bound = self.preemption_bound
        if bound is None:
            allowed, cut = enabled, False
        else:
            allowed, cut = bounded_options(execution, enabled, bound)
        available = [t for t in allowed if t not in sleep] if sleep else allowed
        if not available:
            # Never because of the bound: the previous task, the only one a
            # cut allows, is never asleep right after its own step.
            self.redundant += 1
            if execution.findings:
                self._coasting = True
                return _no_preemption(execution, enabled)
            self._abandoned = True
            return ABANDON
        prev = execution.step_tasks[-1] if n else -1
        chosen = prev if prev in available else available[0]
        node = _Node(
            n,
            len(self._stack),
            enabled.copy(),
            tuple(allowed) if cut else None,
            sleep,
            chosen,
            execution.pending(chosen),
        )
        self._stack.append(node)
        nodes.append(node)
        self._pos += 1
        return chosen

    def _prefix_value(self, pos: int, *, data: bool) -> int:
        choice = self._unit.prefix[pos]
        if bool(choice & 1) != data:
            kind = "a data choice" if data else "a task choice"
            raise InternalError(
                f"dpor unit prefix diverged at choice {pos}: the program makes "
                f"{kind} where the prefix has {choice}"
            )
        return choice >> 1

    def _open_unit(self, execution: ExecutionView, enabled: list[int], n: int) -> int:
        """Open a choice point of the unit's prefix, or its task root."""
        pos = self._pos
        unit = self._unit
        if pos < self._base:
            chosen = self._prefix_value(pos, data=False)
            backtrack: tuple[int, ...] = (chosen,)
            done = unit.done_before[n] if n < len(unit.done_before) else ()
        elif self._task_root:
            backtrack = unit.branches
            done = unit.root_done
            chosen = min(backtrack)
        elif unit.values is None:
            return self._open(execution, enabled, n)
        else:
            raise InternalError(
                f"dpor unit prefix diverged at choice {pos}: the program offers "
                f"tasks {enabled} where the unit expects a data choice"
            )
        sleep = self._nodes[n - 1].child_sleep() if n else {}
        if chosen not in enabled or chosen in sleep:
            raise InternalError(
                f"dpor unit prefix diverged at choice {pos}: task {chosen} is not "
                f"available among {enabled}"
            )
        allowed, cut = bounded_options(execution, enabled, self.preemption_bound)
        node = _Node(
            n,
            pos,
            enabled.copy(),
            tuple(allowed) if cut else None,
            sleep,
            chosen,
            execution.pending(chosen),
        )
        node.backtrack = set(backtrack)
        for t in done:
            op = execution.pending(t)
            assert op is not None, f"{_BUG} dpor unit: task {t} done but not pending"
            node.done[t] = op
        self._stack.append(node)
        self._nodes.append(node)
        self._pos = pos + 1
        return chosen

    def _next_branch(self) -> bool:
        stack = self._stack
        nodes = self._nodes
        base = self._base
        while len(stack) > base:
            top = stack[-1]
            if isinstance(top, _DataNode):
                if top.value + 1 < top.stop:
                    top.value += 1
                    self._fresh_from = top.step + 1
                    break
                stack.pop()
                continue
            op = top.chosen_op
            assert op is not None, f"{_BUG} dpor node {top.index} never visited"
            top.done[top.chosen] = op
            backtrack = top.backtrack
            # Most nodes only ever explored the task chosen first.
            candidates = (
                [t for t in backtrack if t not in top.done and t not in top.sleep]
                if len(backtrack) > 1
                else []
            )
            if candidates:
                top.chosen = min(candidates)
                top.chosen_op = None
                self._fresh_from = top.index + 1
                break
            if top.pos == base and self._task_root:
                self.statuses.extend(
                    (base, t, t in top.fatal)
                    for t in sorted(top.done)
                    if t not in self._unit.root_done
                )
            stack.pop()
            nodes.pop()
        else:
            return False
        assert len(nodes) == self._fresh_from, (
            f"{_BUG} dpor keeps {len(nodes)} nodes for {self._fresh_from} old states"
        )
        return True

    # -- happens-before -------------------------------------------------------

    def _advance(self, execution: ExecutionView, n: int) -> None:
        """Bring the clocks and the access index up to state ``n``."""
        committed = self._committed
        if committed < 0:
            for _ in range(len(self._clocks), execution.task_count):
                self._clocks.append([])
                self._task_steps.append([])
            self._committed = committed = 0
        assert n - committed in (0, 1), f"{_BUG} dpor skipped states {committed}..{n}"
        if committed < n:
            self._commit(execution, committed)
            self._committed = n

    def _commit(self, execution: ExecutionView, j: int) -> None:  # noqa: PLR0912, PLR0915 - the per-step hot path
        """Add step ``j`` to the clocks and the access index."""
        q = execution.step_tasks[j]
        op = execution.ops[j]
        write = op.write
        clocks = self._clocks
        previous = clocks[q]
        clock = previous.copy()
        objects = self._objects
        # The races of the step (as _races_of finds them) and its clock, in
        # one pass over the objects it touches.
        races: list[int] = []
        records = []
        main = op.oid
        oids = _objects_of(op) if op.more_oids else () if main == LOCAL else (main,)
        for oid in oids:
            record = objects.get(oid)
            if record is None:
                record = objects[oid] = _Accesses()
            else:
                # _races_with, inlined.
                readers = record.readers
                if write and readers:
                    found = False
                    for t, i in readers.items():
                        if not (t < len(previous) and previous[t] > i):
                            races.append(i)
                            found = True
                    if not found:
                        i = self._last_racing_write(record, q, op, previous)
                        if i >= 0:
                            races.append(i)
                else:
                    i = self._last_racing_write(record, q, op, previous)
                    if i >= 0:
                        races.append(i)
                other = record.write_clock
                if other is not None:
                    _join(clock, other)
                if write:
                    other = record.read_clock
                    if other is not None:
                        _join(clock, other)
            records.append(record)
        if len(races) > 1:
            races = self._immediate(races)
        if q < len(clock):
            clock[q] = j + 1
        else:
            clock.extend([0] * (q - len(clock)))
            clock.append(j + 1)
        clocks[q] = clock
        self._task_steps[q].append(j)
        kind = op.kind
        changes: list[_Change] = []
        # A record is changed in place only by appending to ``writes`` and
        # setting one key of ``readers``; the change keeps the rest.
        for record in records:
            readers = record.readers
            changes.append(
                (
                    record,
                    record.write_clock,
                    record.read_clock,
                    readers,
                    readers.get(q, -1),
                )
            )
            if write:
                record.writes.append((j, q, kind, bool(readers)))
                record.write_clock = clock
                if readers:
                    record.readers = {}
                    record.read_clock = None
            else:
                readers[q] = j
                read_clock = record.read_clock
                if read_clock is None:
                    record.read_clock = clock
                else:
                    read_clock = read_clock.copy()
                    _join(read_clock, clock)
                    record.read_clock = read_clock
        # Tasks spawned during step j start with its clock.  Clocks are never
        # mutated once stored: every commit extends a copy.
        self._steps.append((q, clock, previous, len(clocks), write, changes))
        if execution.task_count > len(clocks):
            for _ in range(len(clocks), execution.task_count):
                clocks.append(clock)
                self._task_steps.append([])
        for e in races:
            self._reverse_race(e, q, clock, end=j)

    def _rollback(self, keep: int) -> None:
        """Undo the commits of steps ``keep`` and later (and the initial tasks if < 0)."""
        if keep < 0:
            self._clocks = []
            self._task_steps = []
            self._objects = {}
            self._steps = []
            self._committed = -1
            return
        steps = self._steps
        clocks = self._clocks
        task_steps = self._task_steps
        while len(steps) > keep:
            task, _, previous, tasks, write, changes = steps.pop()
            if len(clocks) > tasks:  # the step spawned tasks
                del clocks[tasks:]
                del task_steps[tasks:]
            clocks[task] = previous
            task_steps[task].pop()
            for record, write_clock, read_clock, readers, reader_index in reversed(
                changes
            ):
                record.write_clock = write_clock
                record.read_clock = read_clock
                record.readers = readers
                if write:
                    record.writes.pop()
                elif reader_index < 0:
                    del readers[task]
                else:
                    readers[task] = reader_index
        self._committed = len(steps)

    # -- races ----------------------------------------------------------------

    def _races_of(self, p: int, x: Op, clock: _Clock) -> list[int]:
        """Return the steps that race with ``x``, next Op of ``p`` (clock ``clock``).

        They are the steps ``x`` immediately depends on that do not happen
        before ``p``: the reads since the last write (if ``x`` writes) and
        else the last write (skipping RELEASEs never co-enabled with ``x``),
        latest first.
        """
        races: list[int] = []
        objects = self._objects
        main = x.oid
        oids = _objects_of(x) if x.more_oids else () if main == LOCAL else (main,)
        for oid in oids:
            record = objects.get(oid)
            if record is not None:
                self._races_with(record, p, x, clock, races)
        if len(races) > 1:
            races = self._immediate(races)
        return races

    def _immediate(self, races: list[int]) -> list[int]:
        """Return the immediate ones of several candidate races, latest first.

        A candidate that happens before another one reaches ``x`` through
        it (a step ``x`` depends on, on another of its objects): not a race.
        """
        steps = self._steps
        immediate = []
        for e in sorted(set(races), reverse=True):
            r = steps[e][0]  # its task
            for d in races:
                if d != e:
                    clock = steps[d][1]  # its clock
                    if r < len(clock) and clock[r] > e:
                        break
            else:
                immediate.append(e)
        return immediate

    def _races_with(
        self, record: _Accesses, p: int, x: Op, clock: _Clock, races: list[int]
    ) -> None:
        """Append the steps of ``record`` that ``x`` races with (see ``_races_of``)."""
        if x.write and record.readers:
            found = False
            n = len(clock)
            for t, i in record.readers.items():
                if not (t < n and clock[t] > i):
                    races.append(i)
                    found = True
            if found:
                return
        i = self._last_racing_write(record, p, x, clock)
        if i >= 0:
            races.append(i)

    def _pending_races(self, p: int, x: Op) -> None:
        """Reverse the races of ``x``, the pending Op of ``p``, with the steps so far."""
        clock = self._clocks[p]
        # A race reversed once stays reversed for the rest of the execution:
        # v only grows at its end, so the initial found stays an initial.
        reversed_ = self._reversed
        here = clock[p] if p < len(clock) else 0
        x_clock: _Clock | None = None  # made once a race is new
        for e in self._races_of(p, x, clock):
            key = (e, p, here)
            if key not in reversed_:
                reversed_.add(key)
                if x_clock is None:
                    x_clock = self._clock_of(x, clock)
                self._reverse_race(e, p, x_clock, end=len(self._steps))

    def _clock_of(self, x: Op, clock: _Clock) -> _Clock:
        """Return the clock ``x`` would have: ``clock`` joined with those it depends on."""
        x_clock = clock.copy()
        objects = self._objects
        write = x.write
        main = x.oid
        oids = _objects_of(x) if x.more_oids else () if main == LOCAL else (main,)
        for oid in oids:
            record = objects.get(oid)
            if record is not None:
                if record.write_clock is not None:
                    _join(x_clock, record.write_clock)
                if write and record.read_clock is not None:
                    _join(x_clock, record.read_clock)
        return x_clock

    def _fatal_races(self, execution: ExecutionView, j: int) -> None:
        """Reverse the races of step ``j``, which ended the execution.

        A fatal step is dependent with every step: it prevents the pending
        Op of every other task, and would have prevented the last step of
        every other task that does not happen before it.
        """
        node = self._nodes[j]
        q = execution.step_tasks[j]
        _, _, previous, tasks, _, _ = self._steps[j]
        for p in range(tasks):
            if p != q and execution.pending(p) is not None:
                self._reverse(node, (p,))
        for t, clock in enumerate(self._clocks):
            # A task's own entry is its last step.
            last = (clock[t] if t < len(clock) else 0) - 1
            if (
                t != q
                and 0 <= last < j
                and not (t < len(previous) and previous[t] > last)
            ):
                self._reverse_race(last, q, None, end=j)

    def _last_racing_write(
        self, record: _Accesses, p: int, x: Op, clock: _Clock
    ) -> int:
        n = len(clock)
        # The writes never co-enabled with x (see the module docstring): the
        # RELEASEs before a guarded ACQUIRE (unless x writes and reads came
        # between), and the wake-ups that enabled a guarded WAIT.
        guarded = x.guard is not None
        acquire = guarded and x.kind is _ACQUIRE
        wait = guarded and x.kind is _WAIT
        write = x.write
        writes = record.writes
        k = len(writes)
        while k:  # latest first; an index, not reversed(): most calls look at one
            k -= 1
            i, t, kind, reads_before = writes[k]
            if t < n and clock[t] > i:
                # Every earlier access to the object happens before this write.
                return -1
            if acquire and kind is _RELEASE and not (write and reads_before):
                continue  # never co-enabled
            if wait and kind is _WAKE:
                continue  # the wake-up that enabled the sleep: no race
            return i
        return -1

    def _reverse_race(
        self, e: int, p: int, x_clock: _Clock | None, *, end: int
    ) -> None:
        """Reverse the race of step ``e`` with ``x``, the next Op of ``p``.

        ``x`` comes after the steps before ``end``.  ``x_clock`` says which
        of them happen before ``x``; None means all of them (``x`` is a fatal
        step, dependent with everything).
        """
        node = self._nodes[e]
        if node.saturated():
            return  # every task enabled there is explored, scheduled or asleep
        steps = self._steps
        r = steps[e][0]  # its task
        # g[t]: the first step of task t after e, if it does not happen after
        # e: then it and the steps of t up to the last one that does not are
        # in v = notdep(e).x.
        first_in_v: dict[int, int] = {}
        for t, indices in enumerate(self._task_steps):
            k = bisect_right(indices, e)
            if k < len(indices) and indices[k] < end:
                g = indices[k]
                clock = steps[g][1]  # its clock
                if not (r < len(clock) and clock[r] > e):
                    first_in_v[t] = g
        initials = []
        for t, g in first_in_v.items():
            clock = steps[g][1]
            n = len(clock)
            if not any(
                u != t and u < n and clock[u] > h for u, h in first_in_v.items()
            ):
                initials.append(t)
        if p not in first_in_v and (
            not first_in_v
            if x_clock is None
            else not any(
                u < len(x_clock) and x_clock[u] > h for u, h in first_in_v.items()
            )
        ):
            initials.append(p)
        self._reverse(node, initials)

    def _reverse(self, node: _Node, initials: tuple[int, ...] | list[int]) -> None:
        """Make ``node`` explore one of ``initials`` (or, if none is enabled, all)."""
        enabled = node.enabled
        usable = [t for t in initials if t in enabled]
        shared = node.index < self._shared
        allowed = node.allowed
        if not usable:
            # FG05: the race needs a task that is blocked here to go first.
            if shared:
                missing = [t for t in enabled if not node.covers(t)]
                tasks = [t for t in missing if allowed is None or t in allowed]
                if len(tasks) < len(missing):
                    self.complete = False
                if tasks:
                    self._claim(Claim(node.pos, tuple(tasks), True))
                return
            for t in enabled:
                if not node.covers(t):
                    self._add_backtrack(node, t)
            return
        if any(node.covers(t) for t in usable):
            return
        if shared:
            tasks = [t for t in usable if allowed is None or t in allowed]
            if tasks:
                self._claim(Claim(node.pos, tuple(tasks), False))
            else:
                self.complete = False
            return
        for t in usable:
            if allowed is None or t in allowed:
                node.backtrack.add(t)
                return
        self.complete = False

    def _claim(self, claim: Claim) -> None:
        if claim not in self._claimed:
            self._claimed.add(claim)
            self.claims.append(claim)

    # -- slicing --------------------------------------------------------------

    def _open_values(self, i: int, top: int) -> bool:
        """Return whether the step chosen at stack entry ``i`` has values left."""
        stack = self._stack
        for j in range(i + 1, len(stack)):
            entry = stack[j]
            if not isinstance(entry, _DataNode):
                return False
            if j == top or entry.value + 1 < entry.stop:
                return True
        return False

    def _split(self) -> None:
        """Hand the rest of the unit over as nodes and units (the stack is left)."""
        self.partial = True
        stack = self._stack
        top = len(stack) - 1
        base = self._base
        unit = self._unit
        path: list[int] = []
        chain: list[tuple[int, ...]] = []
        for i, entry in enumerate(stack):
            fresh = i == top
            if isinstance(entry, _DataNode):
                low = entry.value if fresh else entry.value + 1
                if i >= base and low < entry.stop:
                    self.frontier.append(
                        DporUnit(
                            prefix=tuple(path),
                            done_before=tuple(chain),
                            values=(low, entry.stop),
                        )
                    )
                path.append(entry.value << 1 | 1)
                continue
            fatal = entry.fatal
            if i < base:
                before = (
                    unit.done_before[len(chain)]
                    if len(chain) < len(unit.done_before)
                    else ()
                )
            else:
                final = {t: t in fatal for t in entry.done}
                # The status of the chosen task's step is final unless it made
                # data choices with values still to explore (the coordinator
                # learns it when the units of those values are processed).
                if not fresh and (
                    entry.chosen in fatal or not self._open_values(i, top)
                ):
                    final[entry.chosen] = entry.chosen in fatal
                claimed = set(entry.backtrack) | set(entry.done)
                self.nodes.append(
                    NodeInfo(
                        path=tuple(path),
                        done_before=tuple(chain),
                        claimed=tuple(sorted(claimed)),
                        final=tuple(sorted(final.items())),
                    )
                )
                remaining = sorted(
                    t
                    for t in entry.backtrack
                    if t not in entry.done
                    and t not in entry.sleep
                    and (fresh or t != entry.chosen)
                )
                before = tuple(sorted(t for t in entry.done if t not in fatal))
                if remaining:
                    asleep = tuple(
                        sorted(t for t, is_fatal in final.items() if not is_fatal)
                    )
                    self.frontier.append(
                        DporUnit(
                            prefix=tuple(path),
                            done_before=tuple(chain),
                            branches=tuple(remaining),
                            root_done=asleep,
                        )
                    )
            chain.append(before)
            path.append(entry.chosen << 1)

    def _add_backtrack(self, node: _Node, t: int) -> None:
        if node.allowed is not None and t not in node.allowed:
            self.complete = False
            return
        node.backtrack.add(t)


def _no_preemption(execution: ExecutionView, enabled: list[int]) -> int:
    step_tasks = execution.step_tasks
    prev = step_tasks[-1] if step_tasks else -1
    return prev if prev in enabled else enabled[0]


def _describe(node: _Node | _DataNode) -> str:
    if isinstance(node, _Node):
        return f"tasks {node.enabled}"
    return f"a data choice in range({node.bound})"
