"""Set-up snapshots: build the post-set-up world once, restore it per execution.

A program whose instance has a *set-up phase* (``setup_task`` and
``actor_tasks``, see :class:`~hmmsim.engine.program.PhasedInstance`) runs its
set-up task alone before any actor exists.  With no other task to interleave
and no data choice to make, the set-up is the same in every execution of an
exploration: the same Ops, the same world afterwards.  The first execution
runs it and, when it returns, the engine takes a :class:`SetupSnapshot`: the
world (the instance and the execution's ``context``), serialised once, plus
the set-up's steps.  Later executions restore the world from the snapshot
instead of building it and running the set-up again; the strategy is still
asked for every set-up step (it sees the same view as in a full run, so its
bookkeeping, schedules and counts are unchanged), and the actors are spawned
on the restored world exactly as after a real set-up.

How the world is copied.  Measured on ``concurrent-invalidations`` v5.3 (a
38-step set-up; ``bench/engine_speed.py --snapshot`` prints the numbers) on
the shared 2-core machine, per execution: re-running ``program()`` and the
set-up 750-890 us; ``copy.deepcopy`` of the post-set-up world 800-900 us
(Python-level dispatch per object); ``os.fork`` of the explorer 2,700-7,700
us (and the strategy's state would have to travel back from the child); an
undo log would need every model store to go through tracked objects, which
the model's plain dataclass fields do not.  The winner is a purpose-built
pickle: the world is pickled once, and restoring it is one C-level
``pickle`` load, 130-160 us, about 5x cheaper than the set-up.
The pickler copies only what the execution built: modules, classes, code,
enum members, module-level functions and every object bound to a module-level
name (one level into module-level containers and class dictionaries),
strings and numbers included, are kept *by reference* (pickle persistent
ids), so identity tests against module-level singletons still hold (the mm
model tests ``page.mapping is PAGE_MAPPING_ANON``, a string sentinel); closures and their cells are copied with
the world they capture.  Module-level names are looked up in the packages of
the classes and closures met in the world (and ``__main__``), each scanned
once per snapshot (~1 ms for hmmsim); a singleton bound at module level in a
package none of whose classes or closures the world uses would be copied.

When no snapshot is taken (the execution keeps running the set-up): the
set-up spawned a task, made a data choice, reported a finding, or left its
task holding a lock; the trace is being captured (replays of counterexamples
always run everything); or the world cannot be pickled (a coroutine, a
generator or an OS resource in it).  :attr:`SnapshotCache.skipped` says why.

Soundness rests on the program's contract (as for every stateless explorer):
an execution depends only on its schedule, so the world after the set-up is
the same in every execution; ``tests/unit/engine/test_snapshot.py`` and the
scenario tests check that explorations with and without snapshots agree.
"""

from __future__ import annotations

import enum
import io
import pickle
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hmmsim.engine.ops import Op

__all__ = ["SetupSnapshot", "SnapshotCache"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupSnapshot:
    """The world right after a set-up, and the set-up's steps.

    Attributes:
        setup_name: the set-up task's name.
        ops: the Op of every set-up step (for the strategy's view).
        next_oid: the next object id after the set-up.
        lock_events: the lock acquisitions the set-up reported to the lock
            listeners, in order, as (choices made by then, held classes,
            class taken).
        blob: the pickled (instance, context, warned_once).
        shared: the objects the blob refers to by persistent id.
    """

    setup_name: str
    ops: tuple[Op, ...]
    next_oid: int
    lock_events: tuple[tuple[int, tuple[str, ...], str], ...]
    blob: bytes
    shared: tuple[object, ...]

    def load(self) -> Any:
        """Return a fresh copy of the pickled (instance, context, warned_once)."""
        unpickler = pickle.Unpickler(io.BytesIO(self.blob))
        unpickler.persistent_load = self.shared.__getitem__  # type: ignore[method-assign]  # C-level lookup
        return unpickler.load()


class SnapshotCache:
    """The set-up snapshot of one program, shared by an exploration's executions.

    Attributes:
        program: the program the snapshot belongs to (compared by identity).
        snapshot: the snapshot, once taken.
        skipped: why no snapshot could be taken (empty while none was tried).
        restored: how many executions started from the snapshot.
    """

    __slots__ = ("program", "restored", "skipped", "snapshot")

    def __init__(self) -> None:
        """Start empty."""
        self.program: object = None
        self.snapshot: SetupSnapshot | None = None
        self.skipped = ""
        self.restored = 0

    def get(self, program: object) -> SetupSnapshot | None:
        """Return the snapshot of ``program``, if one was taken."""
        if self.program is program:
            return self.snapshot
        return None

    def wants(self, program: object) -> bool:
        """Return whether a snapshot of ``program`` should be taken now."""
        return self.program is not program or (
            self.snapshot is None and not self.skipped
        )

    def take(
        self,
        program: object,
        *,
        root: object,
        forbidden: Sequence[object] = (),
        setup_name: str,
        ops: Sequence[Op],
        next_oid: int,
        lock_events: Sequence[tuple[int, tuple[str, ...], str]],
    ) -> None:
        """Pickle ``root`` and keep the snapshot (or record why it cannot be).

        ``forbidden`` objects (the execution, its tasks) must not be part of
        the world: a world that refers to one is not snapshotted.
        """
        self.program = program
        self.snapshot = None
        self.skipped = ""
        try:
            blob, shared = _dump(root, forbidden)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            self.skipped = f"the world cannot be pickled: {exc}"
            return
        self.snapshot = SetupSnapshot(
            setup_name=setup_name,
            ops=tuple(ops),
            next_oid=next_oid,
            lock_events=tuple(lock_events),
            blob=blob,
            shared=shared,
        )

    def skip(self, program: object, reason: str) -> None:
        """Record that ``program``'s set-up cannot be snapshotted, and why."""
        self.program = program
        self.snapshot = None
        self.skipped = reason


# -- the pickler ----------------------------------------------------------------

_SHARED_TYPES = (
    type,
    types.ModuleType,
    types.CodeType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    enum.Enum,
)
_ATOMS = (int, str, float, bool, bytes, type(None))


def _scan_package(package: str, found: dict[int, object]) -> None:
    """Add the objects one hop from the globals of ``package``'s modules, by id.

    The objects are kept with their ids, so that no id can be reused while
    the pickler looks them up.
    """
    prefix = package + "."
    for name, module in list(sys.modules.items()):
        if name != package and not name.startswith(prefix):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        found[id(namespace)] = namespace
        for value in list(namespace.values()):
            found[id(value)] = value
            if isinstance(value, dict):
                for item in list(value.values()):
                    found[id(item)] = item
            elif isinstance(value, (list, tuple, set, frozenset)):
                for item in list(value):
                    found[id(item)] = item
            elif isinstance(value, type):
                for item in list(vars(value).values()):
                    found[id(item)] = item


class _WorldPickler(pickle.Pickler):
    """Pickles what an execution built; refers to everything else by id."""

    def __init__(self, file: io.BytesIO, forbidden: Sequence[object]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shared: list[object] = []
        self._index: dict[int, int] = {}
        self._module_level: dict[int, object] = {}
        self._scanned: set[str] = set()
        self._forbidden = {id(o) for o in forbidden}
        self._scan("__main__")

    def _scan(self, module: str) -> None:
        package = module.partition(".")[0]
        if package not in self._scanned:
            self._scanned.add(package)
            _scan_package(package, self._module_level)

    def persistent_id(self, obj: object) -> int | None:
        if isinstance(obj, _ATOMS):
            # By value, unless it is a module-level constant the model may
            # test by identity (a string sentinel compared with ``is``).
            if obj is None or id(obj) not in self._module_level:
                return None
            return self._share(obj)
        if id(obj) in self._forbidden:
            raise TypeError(f"the world refers to the engine's {type(obj).__name__}")
        # Module-level objects are looked for in the package of their class
        # (and of the closures met so far); a package is scanned once.
        self._scan(type(obj).__module__)
        if (
            id(obj) in self._module_level
            or isinstance(obj, _SHARED_TYPES)
            or (
                isinstance(obj, types.FunctionType)
                and "<locals>" not in obj.__qualname__
            )
        ):
            return self._share(obj)
        return None

    def _share(self, obj: object) -> int:
        key = id(obj)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.shared)
            self.shared.append(obj)
        return index

    def reducer_override(self, obj: object) -> Any:
        if isinstance(obj, types.FunctionType):
            # A closure: copy it with its cells (its code and globals are shared).
            self._scan(str(obj.__globals__.get("__name__", "__main__")))
            if (
                obj.__kwdefaults__ is None
                and obj.__qualname__ == obj.__code__.co_qualname
            ):
                # The common case, rebuilt by one C-level call per load.
                return (
                    types.FunctionType,
                    (
                        obj.__code__,
                        obj.__globals__,
                        obj.__name__,
                        obj.__defaults__,
                        obj.__closure__,
                    ),
                )
            return (
                _make_function,
                (
                    obj.__code__,
                    obj.__globals__,
                    obj.__name__,
                    obj.__defaults__,
                    obj.__closure__,
                    obj.__kwdefaults__,
                    obj.__qualname__,
                ),
            )
        if isinstance(obj, types.CellType):
            try:
                contents = obj.cell_contents
            except ValueError:  # an empty cell
                return (types.CellType, ())
            # Set after creation (by pickle's C-level setattr of the state),
            # so that cycles through the cell resolve.
            return (types.CellType, (), (None, {"cell_contents": contents}))
        if isinstance(obj, (types.CoroutineType, types.GeneratorType)):
            raise TypeError(f"a running {type(obj).__name__} is part of the world")
        return NotImplemented


def _make_function(  # noqa: PLR0917 - pickle passes the reduce arguments positionally
    code: types.CodeType,
    namespace: dict[str, Any],
    name: str,
    defaults: tuple[object, ...] | None,
    closure: tuple[types.CellType, ...] | None,
    kwdefaults: dict[str, object] | None,
    qualname: str,
) -> types.FunctionType:
    function = types.FunctionType(code, namespace, name, defaults, closure)
    function.__kwdefaults__ = kwdefaults
    function.__qualname__ = qualname
    return function


def _dump(
    root: object, forbidden: Sequence[object]
) -> tuple[bytes, tuple[object, ...]]:
    buffer = io.BytesIO()
    pickler = _WorldPickler(buffer, forbidden)
    pickler.dump(root)
    return buffer.getvalue(), tuple(pickler.shared)
