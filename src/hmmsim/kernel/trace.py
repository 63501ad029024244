"""Tracepoints of the model, with probes the oracle can attach.

Kernel: include/linux/tracepoint.h (the idea; the events are the model's own).

``trace(name, **fields)`` records the event in the running step (see
``hmmsim.sync.tracepoint``) and calls every probe registered for ``name`` in
``current_execution().context["probes"]``, plus the probes registered under
``"*"`` (which see every event).  A probe is ``probe(name, fields)``.

Deviations:
    * MODEL: tracepoints are synchronous calls inside the step that emits them;
      a probe must not await (it is oracle code, not model code).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from hmmsim.sync import current_execution, tracepoint

__all__ = ["Probe", "register_probe", "trace"]

Probe = Callable[[str, Mapping[str, object]], None]


def _probes() -> dict[str, list[Probe]]:
    return cast(
        dict[str, list[Probe]], current_execution().context.setdefault("probes", {})
    )


def register_probe(name: str, probe: Probe) -> None:
    """Call ``probe(name, fields)`` for every ``name`` event (``"*"``: all events)."""
    _probes().setdefault(name, []).append(probe)


def trace(name: str, **fields: object) -> None:
    """Emit tracepoint ``name`` with ``fields``.

    Costs one lookup when nobody listens: the event is recorded only while
    the execution captures a trace, and probes run only when registered.
    """
    execution = current_execution()
    if execution.capture:
        tracepoint(name, fields)
    probes: dict[str, list[Probe]] | None = execution.context.get("probes")  # type: ignore[assignment]  # the oracle's registry
    if not probes:
        return
    for probe in probes.get(name, ()):
        probe(name, fields)
    for probe in probes.get("*", ()):
        probe(name, fields)
