"""Liveness: find a task that repeats a loop with no change to any state (a hang).

The step limit only says "this execution was long"; it is a bound, and an
execution cut by it is incomplete, never a finding.  A *hang* is a finding:
a task has gone round a loop and come back to exactly the state it was in
before, nobody else ran meanwhile, and no other task can run now.  Its only
future is to go round the same loop for ever (a retry loop that never
succeeds, a trylock-and-back-off that always backs off, a fault that is
retried while the condition that fails it never changes).

How a repeat is recognised:

* a task's *view* is everything its code can reach: the locals of every
  frame of its coroutine chain, followed through object attributes,
  containers and closures, plus its own lock holds and its pending Op.
  A canonical encoding of the view (objects numbered in visit order, no
  ``id()``) makes two equal states compare equal within one execution;
* the check runs only on a *solo run*: consecutive steps of one task.  As
  only that task changed anything, equal views mean the whole world is back
  in the same state, so the loop really can repeat for ever (the state of
  other tasks did not move);
* cheap filters come first: the solo run must be ``SOLO_STEPS`` long (the
  engine counts; shorter runs cost nothing), the pending Op must recur a third time
  in the solo run, then the code position of every frame must recur, then
  the locals must have the same values (atoms) and types (objects), and only
  then is the full view encoded and compared with the last one there.

What the explorer does with it.  A task whose solo run has come back to a
view it had is *spinning*: the engine offers the strategy the other enabled
tasks instead (a fair scheduler would run them sooner or later, and going
round the loop again reaches no state that was not reached already).  Any
step of another task clears the mark.  When every task that can run is
spinning, the execution ends with a ``hang`` finding, unless another task
could run somewhere on the round that came back (the loop *yields*): a loop
that takes and drops a lock may come back to its view while it holds the
lock another task waits for, and that task can take the lock at the point of
the round where the loop has dropped it.  A yielding loop goes on alone until
another task can run, and that task is then offered instead of it.  (When a
blocked task sleeps in a timed wait that chose "woken", the execution is
``PRUNED`` instead, as for a deadlock: the timeout branch covers it.)

Soundness under DPOR.  The check reads state without Ops, which is safe
because it never depends on the order of independent steps: it fires only
after a solo run, where the state reached is a function of the task's own
steps, and it reports only when no other task can move, a condition that
every linearisation of the same execution reaches with the same state.  If
another task's steps are interleaved with the loop, there is no solo run
and no mark; the mark comes once the others are blocked or done, in every
order.  Being offered only the non-spinning tasks is a scheduling rule that
depends on the state alone, so replay makes the same choices.

Not detected: two or more tasks that livelock together (each changes state
the other sees, so no solo run repeats); a loop whose state grows (a counter
that is never read) is not a repeat.  Those still end at the step limit.
One blind spot the other way: the position of a ``for`` loop's iterator lives
on the frame's value stack, which Python does not expose, so a solo loop over
a list of *identical* items that changes nothing else would look like a
repeat; model loops run over distinct items (pages, addresses), and a retry
loop is a ``while``.
"""

from __future__ import annotations

import enum
import types
from typing import Any, Final

from hmmsim.engine.ops import Op
from hmmsim.engine.task import Task

__all__ = ["SOLO_STEPS", "ProgressMonitor", "view_of"]

#: A solo run is looked at from this many steps on (the engine counts them,
#: so that the short solo runs of ordinary executions cost nothing).
SOLO_STEPS: Final = 8

_ATOMS: Final = (int, float, complex, str, bytes, bool, type(None), range)
_OPAQUE: Final = (
    types.ModuleType,
    types.CodeType,
    types.FrameType,
    types.BuiltinFunctionType,
    type,
)

#: (pending Op func, oid) and the code position of every frame of the task
#: -> (shallow key, full view or None, step) of the last visit there.
_Visits = dict[
    tuple[object, ...], tuple[tuple[object, ...], tuple[object, ...] | None, int]
]

#: How often an Op must recur in a solo run before its position is looked at.
_MIN_ROUNDS: Final = 3


class ProgressMonitor:
    """Marks tasks that are spinning (see the module docstring).

    Attributes:
        spinning: ids of the tasks whose solo run came back to a view it had.
        yielding: whether another task could run somewhere on the round that
            came back (then the spinning task is no hang while it is alone).
    """

    __slots__ = ("_counts", "_opaque", "_run", "_visits", "spinning", "yielding")

    def __init__(self, opaque: tuple[type, ...] = ()) -> None:
        """Start with no task seen; objects of ``opaque`` types are not followed."""
        self.spinning: set[int] = set()
        self.yielding = False
        self._run = -1
        self._visits: _Visits = {}
        self._counts: dict[tuple[str, int], int] = {}
        self._opaque = opaque

    def after_step(self, task: Task, run: int, step: int, others: int) -> None:
        """Look at ``task`` after a step of its solo run that began at step ``run``.

        ``step`` is the number of steps taken so far, and ``others`` the last
        step at which another task could have run instead.  The engine calls
        it only from the ``SOLO_STEPS``-th step of a solo run on, and clears
        ``spinning`` itself whenever another task steps.
        """
        if self._run != run:
            self._run = run
            self._counts = {}
            self._visits = {}
        op = task.pending
        if op is None:
            return
        # Cheap filter: a loop that can be proved to repeat has gone round at
        # least three times, so its Op recurs at least three times.
        counts = self._counts
        key = (op.func, op.oid)
        seen_count = counts.get(key, 0) + 1
        counts[key] = seen_count
        if seen_count < _MIN_ROUNDS:
            return
        chain = _chain(task)
        where = (key, *((f.f_code, f.f_lasti) for f in chain))
        visits = self._visits
        seen = visits.get(where)
        if seen is None:
            visits[where] = ((), None, step)
            return
        shallow = _shallow(chain)
        if seen[0] != shallow:
            visits[where] = (shallow, None, step)
            return
        view = view_of(task, self._opaque)
        if seen[1] == view:
            self.spinning.add(task.id)
            # The round from the last visit to this one: the steps seen[2] to
            # step - 1, chosen at the states seen[2] .. step - 1.
            self.yielding = others >= seen[2]
        visits[where] = (shallow, view, step)

    def runnable(self, enabled: list[int]) -> list[int]:
        """Return ``enabled`` without the spinning tasks (empty: all spin)."""
        spinning = self.spinning
        return [t for t in enabled if t not in spinning]


def _chain(task: Task) -> list[types.FrameType]:
    frames: list[types.FrameType] = []
    link: Any = task.coro
    while link is not None:
        frame = getattr(link, "cr_frame", None) or getattr(link, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        link = getattr(link, "cr_await", None) or getattr(link, "gi_yieldfrom", None)
    return frames


def _shallow(chain: list[types.FrameType]) -> tuple[object, ...]:
    """The locals of ``chain`` (atoms by value, other objects by type)."""
    out: list[object] = []
    for frame in chain:
        for name, value in frame.f_locals.items():
            out.append(name)
            out.append(value if isinstance(value, _ATOMS) else type(value))
    return tuple(out)


def view_of(task: Task, opaque: tuple[type, ...] = ()) -> tuple[object, ...]:
    """Return the canonical encoding of everything ``task`` can reach.

    Objects are numbered in the order first visited, so the encoding has no
    ``id()`` in it; a second visit of an object is a back-reference.  Tasks,
    modules, classes and code are named, not followed; so are objects of the
    ``opaque`` types (the engine's own).
    """
    roots: list[object] = [
        tuple(lock.name for lock in task.held),
        task.atomic,
        task.non_block,
        task.woken,
    ]
    for frame in _chain(task):
        roots.append(frame.f_code.co_qualname)
        roots.append(frame.f_lasti)
        roots.append(dict(frame.f_locals))
    return _Encoder(opaque).encode(roots)


class _Encoder:
    __slots__ = ("keep", "numbers", "opaque", "out")

    def __init__(self, opaque: tuple[type, ...]) -> None:
        self.opaque = (*_OPAQUE, *opaque)
        self.numbers: dict[int, int] = {}
        self.keep: list[object] = []  # no id() is reused while encoding
        self.out: list[object] = []

    def encode(self, roots: list[object]) -> tuple[object, ...]:
        stack: list[object] = list(reversed(roots))
        while stack:
            self._visit(stack.pop(), stack)
        return tuple(self.out)

    def _visit(self, obj: object, stack: list[object]) -> None:  # noqa: PLR0912 - one case per kind of object
        out = self.out
        if isinstance(obj, _ATOMS):
            out.append(obj)
            return
        if isinstance(obj, enum.Enum):
            out.append(("enum", type(obj).__qualname__, obj.name))
            return
        if isinstance(obj, Task):
            out.append(("task", obj.id))
            return
        if isinstance(obj, self.opaque):
            out.append(("opaque", getattr(obj, "__qualname__", type(obj).__qualname__)))
            return
        if isinstance(obj, (types.CoroutineType, types.GeneratorType)):
            out.append(("coroutine", obj.__qualname__))
            return
        number = self.numbers.get(id(obj))
        if number is not None:
            out.append(("ref", number))
            return
        self.numbers[id(obj)] = len(self.numbers)
        self.keep.append(obj)
        children: list[object]
        if isinstance(obj, (list, tuple)):
            out.append((type(obj).__name__, len(obj)))
            children = list(obj)
        elif isinstance(obj, dict):
            out.append(("dict", len(obj)))
            children = [x for kv in obj.items() for x in kv]
        elif isinstance(obj, (set, frozenset)):
            out.append(("set", len(obj)))
            children = sorted(obj, key=_set_order)
        elif isinstance(obj, types.MethodType):
            out.append(("method", obj.__func__.__qualname__))
            children = [obj.__self__]
        elif isinstance(obj, types.FunctionType):
            out.append(("function", obj.__qualname__))
            cells = obj.__closure__ or ()
            children = [_cell_contents(c) for c in cells]
        elif isinstance(obj, Op):
            out.append(("op", obj.kind.name, obj.func, obj.oid, obj.write))
            children = [obj.guard]
        else:
            out.append(("object", type(obj).__qualname__))
            children = _attributes(obj)
        stack.extend(reversed(children))


def _cell_contents(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a closure variable not bound yet)
        return None


_SLOTS: dict[type, tuple[str, ...]] = {}


def _attributes(obj: object) -> list[object]:
    cls = type(obj)
    names = _SLOTS.get(cls)
    if names is None:
        found: list[str] = []
        for klass in cls.__mro__:
            slots = klass.__dict__.get("__slots__", ())
            found.extend([slots] if isinstance(slots, str) else slots)
        names = tuple(n for n in found if n not in {"__dict__", "__weakref__"})
        _SLOTS[cls] = names
    values: list[object] = []
    missing = object()
    for name in names:
        value = getattr(obj, name, missing)
        values.append(name)
        values.append(None if value is missing else value)
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        for name, value in attrs.items():
            values.append(name)
            values.append(value)
    return values


def _set_order(value: object) -> str:
    return (
        repr(value) if isinstance(value, (*_ATOMS, tuple)) else type(value).__qualname__
    )
