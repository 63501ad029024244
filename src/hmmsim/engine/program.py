"""Program and Instance: what the engine explores.

A *program* is a factory that builds a fresh *instance* (the world plus its
tasks) for every execution; the engine calls it inside the execution so that
every object gets deterministic ids.  The engine knows nothing else about
what a program models.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hmmsim.engine.trace import Finding

__all__ = ["Instance", "Program", "SimpleInstance", "TaskBody"]

TaskBody = Coroutine[Any, Any, Any]


class Instance(Protocol):
    """One world of a program, built afresh for every execution."""

    def tasks(self) -> Sequence[tuple[str, TaskBody]]:
        """Return the initial tasks as (name, coroutine), in spawn order."""
        ...

    def check_end(self) -> Iterable[Finding]:
        """Return findings of the end-of-execution properties."""
        ...

    def final_state(self) -> object:
        """Return a hashable summary of the final state (for differential tests)."""
        ...

    def snapshot(self) -> Mapping[str, object]:
        """Return the state excerpt shown after each step in reports."""
        ...


Program = Callable[[], Instance]


def _no_findings() -> Iterable[Finding]:
    return ()


def _no_state() -> object:
    return None


def _no_snapshot() -> Mapping[str, object]:
    return {}


@dataclass(slots=True, kw_only=True)
class SimpleInstance:
    """An Instance built from plain callables (handy for toy programs and tests)."""

    task_list: Sequence[tuple[str, TaskBody]]
    end: Callable[[], Iterable[Finding]] = _no_findings
    state: Callable[[], object] = _no_state
    snap: Callable[[], Mapping[str, object]] = field(default=_no_snapshot)

    def tasks(self) -> Sequence[tuple[str, TaskBody]]:
        """Return the task list."""
        return self.task_list

    def check_end(self) -> Iterable[Finding]:
        """Run the end check."""
        return self.end()

    def final_state(self) -> object:
        """Return the state summary."""
        return self.state()

    def snapshot(self) -> Mapping[str, object]:
        """Return the state excerpt."""
        return self.snap()
