"""Engine-only toy programs: they import nothing from the kernel model."""

from __future__ import annotations

from collections.abc import Iterable

from hmmsim.engine import Finding, Instance, SimpleInstance
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    WaitQueueHead,
    mutex_lock,
    mutex_unlock,
    wait_event,
    wait_event_timeout,
    wake_up_all,
)


def counter_race(*, locked: bool = False, tasks: int = 2) -> Instance:
    """Each task increments a shared counter with a read then a write."""
    counter = Cell("counter", 0)
    lock = Mutex("counter_lock")

    async def incr() -> None:
        if locked:
            await mutex_lock(lock)
        value = await READ_ONCE(counter)
        await WRITE_ONCE(counter, value + 1)
        if locked:
            await mutex_unlock(lock)

    def end() -> Iterable[Finding]:
        if counter.value != tasks:
            yield Finding(
                kind="lost-update", message=f"counter is {counter.value}", step=-1
            )

    return SimpleInstance(
        task_list=[(f"incr{i}", incr()) for i in range(tasks)],
        end=end,
        state=lambda: counter.value,
    )


def ab_ba() -> Instance:
    """Two tasks take two mutexes in opposite orders."""
    a = Mutex("A")
    b = Mutex("B")

    async def ab() -> None:
        await mutex_lock(a)
        await mutex_lock(b)
        await mutex_unlock(b)
        await mutex_unlock(a)

    async def ba() -> None:
        await mutex_lock(b)
        await mutex_lock(a)
        await mutex_unlock(a)
        await mutex_unlock(b)

    return SimpleInstance(task_list=[("ab", ab()), ("ba", ba())])


def message_passing() -> Instance:
    """A producer publishes a message and wakes a consumer waiting for it."""
    ready = Cell("ready", False)
    data = Cell("data", 0)
    wq = WaitQueueHead("wq")
    seen: list[int] = []

    async def producer() -> None:
        await WRITE_ONCE(data, 42)
        await WRITE_ONCE(ready, True)
        await wake_up_all(wq)

    async def consumer() -> None:
        async def is_ready() -> bool:
            return await READ_ONCE(ready)

        await wait_event(wq, is_ready)
        seen.append(await READ_ONCE(data))

    def end() -> Iterable[Finding]:
        if seen != [42]:
            yield Finding(kind="bad-message", message=f"consumer saw {seen}", step=-1)

    return SimpleInstance(
        task_list=[("producer", producer()), ("consumer", consumer())],
        end=end,
        state=lambda: tuple(seen),
    )


def independent(m: int, n: int) -> Instance:
    """Two tasks of m and n steps touching disjoint cells."""
    x = Cell("x", 0)
    y = Cell("y", 0)

    async def run(cell: Cell[int], steps: int) -> None:
        for i in range(steps):
            await WRITE_ONCE(cell, i)

    return SimpleInstance(
        task_list=[("left", run(x, m)), ("right", run(y, n))],
        state=lambda: (x.value, y.value),
    )


def half_published(*, padding: int = 4) -> Instance:
    """A reader must run exactly between two writes of a writer: a depth-2 bug.

    The writer stores ``half`` then ``full``; the reader sees the torn state
    only if its read is ordered after the first store and before the second.
    Both tasks first do ``padding`` steps on cells of their own.
    """
    state = Cell("state", "empty")
    scratch = Cell("scratch", 0)
    other = Cell("other", 0)
    seen: list[str] = []

    async def writer() -> None:
        for i in range(padding):
            await WRITE_ONCE(scratch, i)
        await WRITE_ONCE(state, "half")
        await WRITE_ONCE(state, "full")

    async def reader() -> None:
        for i in range(padding):
            await WRITE_ONCE(other, i)
        seen.append(await READ_ONCE(state))

    def end() -> Iterable[Finding]:
        if seen == ["half"]:
            yield Finding(kind="torn-read", message="reader saw 'half'", step=-1)

    return SimpleInstance(
        task_list=[("writer", writer()), ("reader", reader())],
        end=end,
        state=lambda: tuple(seen),
    )


def timeout_race() -> Instance:
    """A consumer that uses the data even when its wait timed out (data choices)."""
    ready = Cell("ready", False)
    data = Cell("data", 0)
    wq = WaitQueueHead("wq")
    seen: list[int] = []

    async def producer() -> None:
        await WRITE_ONCE(data, 42)
        await WRITE_ONCE(ready, True)
        await wake_up_all(wq)

    async def consumer() -> None:
        async def is_ready() -> bool:
            return await READ_ONCE(ready)

        await wait_event_timeout(wq, is_ready, 10)
        seen.append(await READ_ONCE(data))

    def end() -> Iterable[Finding]:
        if seen != [42]:
            yield Finding(kind="stale-data", message=f"consumer saw {seen}", step=-1)

    return SimpleInstance(
        task_list=[("producer", producer()), ("consumer", consumer())],
        end=end,
        state=lambda: tuple(seen),
    )
