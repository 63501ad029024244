"""Step, Event, Finding and Trace: what happened in one execution (data only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Cause", "Event", "Finding", "Step", "Trace"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cause:
    """A step that created the bad state a finding later detected.

    Attributes:
        step: index of that step.
        task: name of the task that ran it.
        note: what it did wrong, in one short clause.
    """

    step: int
    task: str
    note: str

    def to_json(self) -> dict[str, object]:
        """Return the JSON form (stable key order)."""
        return {"step": self.step, "task": self.task, "note": self.note}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """A property violation found in an execution.

    Attributes:
        kind: stable kind name, e.g. ``deadlock`` or ``device-use-after-free``.
        message: one sentence explaining what went wrong.
        step: index of the step during or after which it was found.
        task: name of the task that was running, or ``""`` for global checks.
        fatal: whether the execution stopped because of it.
        detail: extra lines (e.g. who waits on what in a deadlock).
        causes: the earlier steps that created the bad state, most telling
            first (empty when the checker cannot tell).
    """

    kind: str
    message: str
    step: int
    task: str = ""
    fatal: bool = True
    detail: tuple[str, ...] = ()
    causes: tuple[Cause, ...] = ()

    def to_json(self) -> dict[str, object]:
        """Return the JSON form (stable key order)."""
        return {
            "kind": self.kind,
            "message": self.message,
            "step": self.step,
            "task": self.task,
            "fatal": self.fatal,
            "detail": list(self.detail),
            "causes": [cause.to_json() for cause in self.causes],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A tracepoint emitted by model code during a step.

    ``task`` is the id of the task that emitted it (``-1``: none, e.g. the
    world factory).  It is usually the task of the step, but a task spawned
    during a step runs up to its first Op inside that step.
    """

    name: str
    fields: Mapping[str, object] = field(default_factory=dict)
    task: int = -1

    def describe(self) -> str:
        """Return ``name a=1 b=2``."""
        args = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.name} {args}".rstrip()


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One scheduled Op and what the task did until its next Op.

    Attributes:
        index: position in the execution (0-based).
        task: id of the task that ran.
        task_name: its name.
        op: ``func(object)`` of the Op that was performed.
        kind: name of the Op kind.
        data: data choices made during the step, as (label, value) pairs.
        events: tracepoints emitted during the step.
        state: state excerpt after the step (only when capturing state).
        location: where the model awaited the Op (``file:line in function``),
            when source locations are captured; empty otherwise.
        held: the locks each task holds after the step, by task name (tasks
            holding none are left out; only when capturing state).
    """

    index: int
    task: int
    task_name: str
    op: str
    kind: str
    data: tuple[tuple[str, int], ...] = ()
    events: tuple[Event, ...] = ()
    state: Mapping[str, object] = field(default_factory=dict)
    location: str = ""
    held: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """The steps of one execution, with the task names by id."""

    tasks: tuple[str, ...]
    steps: tuple[Step, ...]
