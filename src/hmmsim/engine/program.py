"""Program and Instance: what the engine explores.

A *program* is a factory that builds a fresh *instance* (the world plus its
tasks) for every execution; the engine calls it inside the execution so that
every object gets deterministic ids.  The engine knows nothing else about
what a program models.

An instance may declare a *set-up phase* (:class:`PhasedInstance`): a
set-up task that runs alone, and the actors it leaves behind, spawned when
the set-up task returns.  The engine then runs the set-up once per
exploration and restores the world after it for the other executions
(:mod:`hmmsim.engine.snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hmmsim.engine.trace import Finding

__all__ = ["Instance", "PhasedInstance", "Program", "SimpleInstance", "TaskBody"]

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


class PhasedInstance(Instance, Protocol):
    """An Instance whose first task is a set-up that runs alone.

    The engine spawns ``setup_task()`` as task 0 (instead of ``tasks()``);
    when that task returns, in the same step, it spawns ``actor_tasks()`` in
    order.  ``tasks()`` must describe the same thing as one task (set-up
    then spawns) for tools that do not know phases.  The set-up must not
    spawn tasks or make data choices if it is to be snapshotted; it may, but
    then it runs in every execution.
    """

    def setup_task(self) -> tuple[str, TaskBody]:
        """Return the set-up task as (name, coroutine)."""
        ...

    def actor_tasks(self) -> Sequence[tuple[str, TaskBody]]:
        """Return the tasks to spawn when the set-up returns, in spawn order."""
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
