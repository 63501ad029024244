"""Shared plumbing of the primitives: object ids and the tiny engine API."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

from hmmsim.engine import execution as _ex
from hmmsim.engine.execution import current_execution, current_task

__all__ = ["current_execution", "current_task", "new_oid", "report", "tracepoint"]

# Objects made outside an execution (sequential unit tests that build a
# world by hand) get ids from a separate range, so they never collide.
_outside_ids = itertools.count(1 << 40)


def new_oid() -> int:
    """Return a fresh object id from the running execution."""
    running = _ex._current  # the module's attribute: the running execution
    if running is None:
        return next(_outside_ids)
    oid = running.new_oid()
    if _audit_created is not None:
        _audit_created(oid)
    return oid


#: Set by :mod:`hmmsim.sync.audit` while it is on: records who created what.
_audit_created: Callable[[int], None] | None = None


def report(
    kind: str, message: str, *, fatal: bool = True, detail: tuple[str, ...] = ()
) -> None:
    """Report a finding to the running execution."""
    current_execution().report(kind, message, fatal=fatal, detail=detail)


def tracepoint(name: str, fields: Mapping[str, object]) -> None:
    """Record a tracepoint in the running step (cheap when not capturing)."""
    current_execution().tracepoint(name, fields)
