"""Toy scenarios for the CLI and report tests: engine-only, no kernel model.

``counter`` has a racy and a locked variant and captures state and
tracepoints; ``locks`` is the AB-BA deadlock; ``mp`` is correct message
passing; ``crash`` has a task that raises; ``interrupt`` raises
KeyboardInterrupt on its third execution, as Ctrl-C would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from tests.support.toy_programs import ab_ba, message_passing

from hmmsim.engine import Finding, Instance, SimpleInstance
from hmmsim.scenarios import Registry, Scenario, use_registry
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    mutex_lock,
    mutex_unlock,
    tracepoint,
)


def counter(variant: str) -> Instance:
    """Two tasks increment a counter, under a mutex only in the ``fixed`` variant."""
    cell = Cell("counter", 0)
    lock = Mutex("counter_lock")
    locked = variant == "fixed"

    async def incr() -> None:
        if locked:
            await mutex_lock(lock)
        value = await READ_ONCE(cell)
        tracepoint("counter_read", {"value": value})
        await WRITE_ONCE(cell, value + 1)
        if locked:
            await mutex_unlock(lock)

    def end() -> Iterable[Finding]:
        if cell.value != 2:
            yield Finding(
                kind="lost-update", message=f"counter is {cell.value}", step=-1
            )

    return SimpleInstance(
        task_list=[("incr0", incr()), ("incr1", incr())],
        end=end,
        state=lambda: cell.value,
        snap=lambda: {"counter": cell.value, "locked": lock.owner is not None},
    )


def crash(variant: str) -> Instance:
    """One task raises a ZeroDivisionError after its first step."""
    del variant
    cell = Cell("x", 0)

    async def boom() -> None:
        value = await READ_ONCE(cell)
        print_nothing = 1 // value
        del print_nothing

    return SimpleInstance(task_list=[("boom", boom())])


class _Interrupting:
    """A build function that raises KeyboardInterrupt on its third call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, variant: str) -> Instance:
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return counter("buggy")


COUNTER = Scenario(
    name="counter",
    title="Two increments of a shared counter race",
    description="Tasks: incr0, incr1.\nBounds: one counter.",
    variants=("buggy", "fixed"),
    build=counter,
    kernel_version="v5.3",
    expect={"buggy": ("lost-update",), "fixed": ()},
)
LOCKS = Scenario(
    name="locks",
    title="Two tasks take two mutexes in opposite orders",
    description="Tasks: ab, ba.",
    variants=("abba",),
    build=lambda variant: ab_ba(),
    config={"max_steps": 100},
)
MP = Scenario(
    name="mp",
    title="A producer wakes a consumer",
    description="",
    variants=("ok",),
    build=lambda variant: message_passing(),
    expect={"ok": ("deadlock",)},  # deliberately wrong, to test "unexpected"
)
CRASH = Scenario(
    name="crash",
    title="A task divides by zero",
    description="Tasks: boom.",
    variants=("raise",),
    build=crash,
)


def interrupt_scenario() -> Scenario:
    """Return a fresh scenario whose third execution is interrupted."""
    return Scenario(
        name="interrupt",
        title="Ctrl-C during the exploration",
        description="",
        variants=("buggy",),
        build=_Interrupting(),
    )


def toy_registry(*extra: Scenario) -> Registry:
    """Return a registry holding the toy scenarios (and ``extra``)."""
    registry = Registry(builtin_modules=())
    for item in (COUNTER, LOCKS, MP, CRASH, *extra):
        registry.register(item)
    return registry


@contextmanager
def toy_scenarios(*extra: Scenario) -> Iterator[Registry]:
    """Make the toy registry the active one inside the block."""
    with use_registry(toy_registry(*extra)) as registry:
        yield registry
