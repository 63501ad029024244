"""Shared-state audit: find model code that touches a shared object without an Op.

DPOR orders two steps only when their Ops are dependent.  A decision taken on
shared state read *outside* an Op (``if lock.owner is None``, ``cell.value``
without ``READ_ONCE``, ``kref.refcount``) is invisible to it, and DPOR may
then call a buggy program verified while DFS finds the bug.  This audit, on
in hmmsim's own tests and available to model authors, catches such code as
it runs and raises :class:`~hmmsim.errors.ModelError` naming the object, the
field and the model's file and line.

How.  :func:`enable` wraps the fields of the shared objects (``Cell.value``,
the owner of a spinlock or mutex, an rwsem's writer and readers, a kref's
count, a wait queue's waiters, an SRCU domain's sections, and the fields of
any class passed to :func:`watch`) in a descriptor that checks each access
made while a task runs.  An access is fine when:

* it comes from the primitives, the engine or the oracle (the primitives are
  audited by hand: each reads shared state only after its own Op, or reads
  what only the running task changes, see ``lockdep_is_held``); the helper
  methods that read state for anyone (``lock.is_locked()``, ``holders()``,
  ``can_read()`` ...) answer for their caller, so model code calling them is
  audited as if it read the field;
* the running step's Op touches the object (the primitive's effect, or model
  code right after ``await shared_access(obj)`` or ``READ_ONCE(cell)``), and
  a write comes under a write Op;
* the running task has taken no step yet (its code up to its first Op runs
  while it is created: before any step for the first tasks, inside the
  creating step for a spawned one);
* the running task created the object (it is private until published; as in
  Eraser, an object used directly after publication is caught only once
  another task's access makes the lockset rule apply);
* the running task holds the object (a lock asking about itself);
* no other task is alive (a set-up task before it starts the others);
* the running task holds a lock, and every task that touched the object this
  way held one lock in common (Eraser's lockset rule: the lock orders the
  accesses, and its Ops are dependent).

Anything else is a model error.  :func:`disable` restores the plain fields,
so the audit costs nothing when off.
"""

from __future__ import annotations

import os
import sys
from types import CodeType, FrameType
from typing import Any, Final

from hmmsim.engine import execution as _ex
from hmmsim.errors import ModelError
from hmmsim.sync import _base
from hmmsim.sync._lock import ExclusiveLock
from hmmsim.sync.kref import Kref
from hmmsim.sync.once import Cell
from hmmsim.sync.rwsem import RwSemaphore
from hmmsim.sync.srcu import SrcuStruct
from hmmsim.sync.waitqueue import WaitQueueHead

__all__ = ["created", "disable", "enable", "enabled", "watch"]

#: Where trusted code lives: an access from these files is not audited.
_TRUSTED_DIRS: Final = tuple(
    f"{os.sep}hmmsim{os.sep}{part}{os.sep}"
    for part in ("sync", "engine", "oracle", "report")
)

_BUILTIN: Final[tuple[tuple[type, tuple[str, ...]], ...]] = (
    (Cell, ("value",)),
    (ExclusiveLock, ("owner",)),
    (RwSemaphore, ("writer", "readers")),
    (Kref, ("refcount", "released")),
    (WaitQueueHead, ("waiters",)),
    (SrcuStruct, ("active", "next_index")),
)

_watched: dict[tuple[type, str], object] = {}
_extra: list[tuple[type, tuple[str, ...]]] = []
_TRUSTED: Final = "trusted"
_UNTRUSTED: Final = "untrusted"
_DELEGATE: Final = "delegate"

#: Code objects of the accessing functions -> _TRUSTED, _UNTRUSTED or _DELEGATE.
_trusted_code: dict[CodeType, object] = {}


class _Audited:
    """A field descriptor that audits each access, then delegates."""

    __slots__ = ("field", "inner")

    def __init__(self, inner: Any, field: str) -> None:
        self.inner = inner
        self.field = field

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if _ex._current is not None:
            frame = _accessor(sys._getframe(1))
            if frame is not None:
                _check(obj, self.field, frame, write=False)
        return self.inner.__get__(obj, owner)

    def __set__(self, obj: object, value: object) -> None:
        if _ex._current is not None:
            frame = _accessor(sys._getframe(1))
            if frame is not None:
                _check(obj, self.field, frame, write=True)
        self.inner.__set__(obj, value)


def _accessor(frame: FrameType | None) -> FrameType | None:
    """Return the untrusted frame answerable for an access, or None if trusted.

    The state-reading helper methods of the primitives (``is_locked``,
    ``holders`` ...) answer for their caller: model code calling them is
    judged as if it read the field itself.
    """
    while frame is not None:
        trust = _trusted_code.get(frame.f_code)
        if trust is None:
            trust = _learn(frame.f_code)
        if trust is not _DELEGATE:
            return None if trust is _TRUSTED else frame
        frame = frame.f_back
    return None  # pragma: no cover - a helper method always has a caller


def enabled() -> bool:
    """Return whether the audit is on."""
    return bool(_watched)


def enable() -> None:
    """Turn the audit on (idempotent)."""
    for cls, fields in (*_BUILTIN, *_extra):
        _wrap(cls, fields)
    _base._audit_created = created


def disable() -> None:
    """Turn the audit off and restore the plain fields."""
    for (cls, field), inner in _watched.items():
        setattr(cls, field, inner)
    _watched.clear()
    _base._audit_created = None


def watch(cls: type, *fields: str) -> None:
    """Audit ``fields`` of ``cls`` too (slotted fields; objects need an ``oid``).

    For model structs whose fields other tasks touch through
    :func:`~hmmsim.sync.shared_access` Ops, such as a page's contents.
    """
    for field in fields:
        inner = cls.__dict__.get(field)
        if inner is None or not hasattr(inner, "__set__"):
            raise ModelError(
                f"watch({cls.__qualname__}, {field!r}): not a slotted field"
            )
    _extra.append((cls, fields))
    if _watched:
        _wrap(cls, fields)


def _wrap(cls: type, fields: tuple[str, ...]) -> None:
    for field in fields:
        if (cls, field) in _watched:
            continue
        inner = cls.__dict__[field]
        _watched[cls, field] = inner
        setattr(cls, field, _Audited(inner, field))


def _learn(code: CodeType) -> object:
    if code in _delegates():
        trust = _DELEGATE
    elif any(part in code.co_filename for part in _TRUSTED_DIRS):
        trust = _TRUSTED
    else:
        trust = _UNTRUSTED
    _trusted_code[code] = trust
    return trust


def _delegates() -> set[CodeType]:
    """Code of the helper methods that read state on behalf of their caller."""
    methods = (
        ExclusiveLock.holders,
        ExclusiveLock.is_free,
        ExclusiveLock.is_locked,
        RwSemaphore.holders,
        RwSemaphore.can_read,
        RwSemaphore.can_write,
        SrcuStruct.holders,
    )
    return {m.__code__ for m in methods}


def _check(obj: object, field: str, frame: FrameType, *, write: bool) -> None:
    execution = _ex._current
    assert execution is not None, "[hmmsim internal bug] audit outside an execution"
    task = execution.current
    if task is None or not execution.ops or task.id not in execution.step_tasks:
        return
    oid: int = getattr(obj, "oid", -1)
    op = execution.ops[-1]
    if (op.oid == oid or oid in op.more_oids) and (op.write or not write):
        return
    holders = getattr(obj, "holders", None)
    if holders is not None and task.id in holders():
        return
    creators: dict[int, int] = execution.context.get("audit-creators", {})  # type: ignore[assignment]
    if creators.get(oid) == task.id:
        return
    if not any(t.pending is not None and t is not task for t in execution.tasks):
        return  # no other task is alive: nothing can race (later ones start after)
    site = (
        f"{frame.f_code.co_filename.split(f'{os.sep}hmmsim{os.sep}')[-1]}:"
        f"{frame.f_lineno} in {frame.f_code.co_name}"
    )
    what = f"{type(obj).__name__} {getattr(obj, 'name', '?')!r} (.{field})"
    if task.held:
        _lockset(
            execution,
            task.id,
            oid,
            {lock.oid for lock in task.held},
            what=what,
            site=site,
        )
        return
    raise ModelError(
        f"{site}: task {task.name} {'writes' if write else 'reads'} {what}, shared "
        "state, without an Op and without a lock: the explorer cannot see the "
        "race (await READ_ONCE / shared_access, or an Op-taking helper such as "
        "mutex_is_locked)"
    )


def created(oid: int) -> None:
    """Note that the running task created object ``oid`` (it is private to it)."""
    execution = _ex._current
    if execution is None or execution.current is None:
        return
    creators: dict[int, int] = execution.context.setdefault("audit-creators", {})  # type: ignore[assignment]
    creators[oid] = execution.current.id


def _lockset(
    execution: _ex.Execution,
    tid: int,
    oid: int,
    held: set[int],
    *,
    what: str,
    site: str,
) -> None:
    """Eraser's rule: the locks held at every unaudited access must intersect."""
    table: dict[int, tuple[set[int], set[int]]] = execution.context.setdefault(
        "audit-locksets", {}
    )  # type: ignore[assignment]
    entry = table.get(oid)
    if entry is None:
        table[oid] = (set(held), {tid})
        return
    common, tasks = entry
    common &= held
    tasks.add(tid)
    if not common and len(tasks) > 1:
        raise ModelError(
            f"{site}: {what} is touched without an Op by several tasks under "
            "different locks: no lock orders these accesses for the explorer"
        )
