"""The watchdog: a task that never yields, and a time budget inside one execution.

A model task runs between two Ops without the engine's control: a loop with
no ``await`` never gives the engine the step back, so no step bound can stop
it.  While an exploration or a replay runs, :func:`watchdog` arms an
interval timer of the process's CPU time (``ITIMER_VIRTUAL``, signal
``SIGVTALRM``: it does not disturb ``SIGALRM`` users, and a busy loop is
exactly what consumes CPU).  At each tick the handler looks at the running
execution:

- if its step counter has not moved for ``task_timeout`` seconds, it raises
  :class:`HungTask` in whatever code runs; the execution turns that into a
  ``hung-task`` finding of the running task, with the schedule so far (or a
  :class:`~hmmsim.errors.ModelError` when the model hangs outside a task);
- if the wall-clock ``deadline`` has passed, it raises :class:`BudgetExpired`,
  which ends the exploration with exit reason ``time-budget`` even in the
  middle of a long execution;
- if the process's resident memory is over ``memory_limit`` bytes, it raises
  :class:`MemoryExceeded`, which the runner turns into a
  :class:`~hmmsim.errors.ModelError` saying so (one execution keeps about a
  kilobyte per step for DPOR, so a huge ``max_steps`` would otherwise end in
  the kernel's OOM killer).

The handler raises only when the interrupted code is model code or one of
hmmsim's primitives: never the engine's own bookkeeping, which must stay
whole, nor a library (whose code may be a garbage-collector callback that
would swallow the exception); a tick that lands there waits for the next.

Assumptions: the main thread runs the exploration (signals are delivered
there; elsewhere the watchdog is off), and a model that blocks in a system
call (``time.sleep``) uses no CPU, so only the next tick after it wakes sees
it.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Final

from hmmsim.engine import execution as _execution
from hmmsim.engine.execution import BudgetExpired, HungTask, MemoryExceeded

__all__ = [
    "BudgetExpired",
    "HungTask",
    "MemoryExceeded",
    "default_memory_limit",
    "resident_bytes",
    "watchdog",
]

#: Seconds of CPU time between two looks of the watchdog.
TICK: Final = 0.05

#: Code in this directory is never interrupted (its state must stay whole).
_ENGINE_DIR: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep
_HMMSIM_DIR: Final = os.path.dirname(os.path.dirname(_ENGINE_DIR)) + os.sep


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """The standard library and installed packages (looked up on first use).

    Their code may run as a garbage-collector or finalizer callback, where an
    exception is lost.
    """
    import sysconfig  # noqa: PLC0415 - only when a tick needs it

    paths = sysconfig.get_paths()
    return tuple(
        sorted(
            {
                os.path.abspath(path) + os.sep
                for name in ("stdlib", "platstdlib", "purelib", "platlib")
                if (path := paths.get(name))
            }
        )
    )


def _interruptible(filename: str) -> bool:
    """Return whether code of ``filename`` may be unwound by the watchdog.

    Model code and hmmsim's primitives may; the engine may not (its state
    must stay whole) and neither may libraries (a garbage-collector callback
    of a library would swallow the exception).
    """
    if filename.startswith(_ENGINE_DIR):
        return False
    if filename.startswith(_HMMSIM_DIR):
        return True
    return not filename.startswith(_library_dirs()) and not filename.startswith("<")


@dataclass(slots=True)
class _State:
    key: tuple[int, int] | None = None
    since: float = 0.0
    active: bool = False


_state = _State()


def _can_arm() -> bool:
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and not _state.active
    )


def resident_bytes() -> int:
    """Return the resident memory of this process, in bytes (0 if unknown)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def default_memory_limit() -> int | None:
    """Return the memory one exploring process may use: RAM / (CPUs + 1)."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None
    return ram // ((os.cpu_count() or 1) + 1)


@contextmanager
def watchdog(
    *,
    task_timeout: float | None,
    deadline: float | None = None,
    memory_limit: int | None = None,
) -> Iterator[None]:
    """Watch the executions run inside the block (see the module docstring).

    Nested uses keep the outer watchdog.  With neither limit set, or off the
    main thread, it does nothing.
    """
    limits = (task_timeout, deadline, memory_limit)
    if all(limit is None for limit in limits) or not _can_arm():
        yield
        return

    def tick(signum: int, frame: FrameType | None) -> None:
        del signum
        running = _execution._current
        now = time.monotonic()
        if running is None:
            _state.key = None
            return
        if frame is None or not _interruptible(frame.f_code.co_filename):
            return  # never unwind the engine or a library: next tick
        if deadline is not None and now >= deadline:
            raise BudgetExpired
        if memory_limit is not None:
            used = resident_bytes()
            if used > memory_limit:
                raise MemoryExceeded(used, memory_limit)
        key = (id(running), running.step)
        if key != _state.key:
            _state.key, _state.since = key, now
        elif task_timeout is not None and now - _state.since >= task_timeout:
            raise HungTask(task_timeout)  # again at the next tick if swallowed

    _state.key, _state.active = None, True
    previous = signal.signal(signal.SIGVTALRM, tick)
    signal.setitimer(signal.ITIMER_VIRTUAL, TICK, TICK)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0, 0)
        signal.signal(signal.SIGVTALRM, previous)
        _state.key, _state.active = None, False
