"""Random small programs over every primitive, as data, and their hmmsim form.

A program is a tuple of task bodies; a body is a tuple of items (plain
tuples, so a failing program prints readably).  The same program is run two
independent ways: :func:`to_hmmsim` turns it into an hmmsim program (async
tasks calling :mod:`hmmsim.sync`) for DPOR and DFS, and
:mod:`tests.support.reference` enumerates its interleavings with semantics of
its own.  Both summarise an execution the same way: the values of the shared
cells, the flag and the kref count, and every task's registers, by task name.

Items (``r`` a register 0..1, ``c`` a cell 0..1, ``v`` a value):

* ``("write", c, v)`` / ``("read", c, r)``: WRITE_ONCE / READ_ONCE;
* ``("if", r, v, then, else)``: a value-dependent branch;
* ``("warn", r, v)`` / ``("bug", r, v)``: WARN_ON / BUG_ON(reg r == v);
* ``("mutex", body)`` / ``("spin", body)``: lock, body, unlock;
* ``("trymutex", body)`` / ``("tryspin", body)``: trylock; if taken, body and unlock;
* ``("rsem", body)`` / ``("wsem", body)``: down_read / down_write, body, up;
* ``("rtry", body)`` / ``("wtry", body)``: the rwsem trylocks;
* ``("wait",)``: wait_event(wq, flag); ``("twait", r)``: wait_event_timeout, result in r;
* ``("wake",)``: WRITE_ONCE(flag, 1); wake_up_all(wq);
* ``("kget",)``, ``("kget_nz", r)``, ``("kput",)``: kref_get, kref_get_unless_zero,
  kref_put whose release writes 9 to cell 1;
* ``("srcu", body)``: an SRCU read-side section; ``("sync_srcu",)``: synchronize_srcu;
* ``("spawn", body)``: start a task running body (named ``<parent>.<n>``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from hmmsim.engine import LOCAL, Instance, Op, OpKind, Program, SimpleInstance
from hmmsim.sync import (
    BUG_ON,
    READ_ONCE,
    WARN_ON,
    WRITE_ONCE,
    Cell,
    Kref,
    Mutex,
    RwSemaphore,
    SpinLock,
    SrcuStruct,
    WaitQueueHead,
    current_execution,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    kref_get,
    kref_get_unless_zero,
    kref_put,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    spin_lock,
    spin_trylock,
    spin_unlock,
    srcu_read_lock,
    srcu_read_unlock,
    synchronize_srcu,
    up_read,
    up_write,
    wait_event,
    wait_event_timeout,
    wake_up_all,
)

Item = tuple[object, ...]
Body = tuple[Item, ...]
Spec = tuple[Body, ...]

#: What a ``twait`` returns when woken with the flag set (the timeout passed).
TIMEOUT = 10
#: What the kref release writes to cell 1.
RELEASED = 9

_BLOCKS = (
    "mutex",
    "spin",
    "trymutex",
    "tryspin",
    "rsem",
    "wsem",
    "rtry",
    "wtry",
    "srcu",
    "spawn",
)


def generate(rng: random.Random) -> Spec:
    """Draw a program of 2 to 4 tasks with a few items each."""
    tasks = rng.choice((2, 2, 2, 3, 3, 4))
    budget = {2: 3, 3: 2, 4: 1}[tasks]
    return tuple(_body(rng, rng.randint(1, budget), depth=0) for _ in range(tasks))


def _body(rng: random.Random, size: int, *, depth: int) -> Body:
    return tuple(_item(rng, depth) for _ in range(size))


def _item(rng: random.Random, depth: int) -> Item:  # noqa: PLR0911 - one case per item kind
    roll = rng.random()
    if depth < 2 and roll < 0.3:
        kind = rng.choice(_BLOCKS)
        return (kind, _body(rng, rng.randint(1, 2 - depth), depth=depth + 1))
    if depth < 2 and roll < 0.38:
        r, v = rng.randint(0, 1), rng.randint(0, 2)
        return (
            "if",
            r,
            v,
            _body(rng, 1, depth=depth + 1),
            _body(rng, rng.randint(0, 1), depth=depth + 1),
        )
    kind = rng.choice(
        (
            "write",
            "write",
            "read",
            "read",
            "warn",
            "bug",
            "wait",
            "twait",
            "wake",
            "wake",
            "kget",
            "kget_nz",
            "kput",
            "kput",
            "sync_srcu",
        )
    )
    if kind == "write":
        return ("write", rng.randint(0, 1), rng.randint(1, 2))
    if kind == "read":
        return ("read", rng.randint(0, 1), rng.randint(0, 1))
    if kind in {"warn", "bug"}:
        return (kind, rng.randint(0, 1), rng.randint(1, 2))
    if kind in {"twait", "kget_nz"}:
        return (kind, rng.randint(0, 1))
    return (kind,)


def summary(
    cells: Sequence[int], flag: int, count: int, regs: dict[str, list[int]]
) -> tuple[object, ...]:
    """The final state both runners report: shared values and registers by task."""
    return (
        tuple(cells),
        flag,
        count,
        tuple(sorted((k, tuple(v)) for k, v in regs.items())),
    )


@dataclass(slots=True)
class _World:
    cells: list[Cell[int]]
    flag: Cell[int]
    wq: WaitQueueHead
    mutex: Mutex
    spin: SpinLock
    sem: RwSemaphore
    kref: Kref
    srcu: SrcuStruct
    regs: dict[str, list[int]] = field(default_factory=dict)


def to_hmmsim(spec: Spec) -> Program:
    """Return the hmmsim program that runs ``spec`` with :mod:`hmmsim.sync`."""

    def build() -> Instance:
        world = _World(
            cells=[Cell("c0", 0), Cell("c1", 0)],
            flag=Cell("flag", 0),
            wq=WaitQueueHead("wq"),
            mutex=Mutex("m"),
            spin=SpinLock("s"),
            sem=RwSemaphore("r"),
            kref=Kref("k"),
            srcu=SrcuStruct("srcu"),
        )
        for i in range(len(spec)):
            world.regs[f"t{i}"] = [0, 0]

        def state() -> object:
            return summary(
                [c.value for c in world.cells],
                world.flag.value,
                world.kref.refcount,
                world.regs,
            )

        return SimpleInstance(
            task_list=[
                (f"t{i}", _Runner(world, f"t{i}").run(body))
                for i, body in enumerate(spec)
            ],
            state=state,
        )

    return build


class _Runner:
    """Runs one task's body with the hmmsim primitives."""

    def __init__(self, world: _World, name: str) -> None:
        self.world = world
        self.name = name
        self.regs = world.regs[name]
        self.spawned = 0

    async def run(self, body: Body) -> None:
        for item in body:
            await self.item(item)

    async def item(self, item: Item) -> None:  # noqa: PLR0912, PLR0915 - one case per item kind
        w = self.world
        kind = item[0]
        if kind == "write":
            await WRITE_ONCE(w.cells[_i(item[1])], _i(item[2]))
        elif kind == "read":
            self.regs[_i(item[2])] = await READ_ONCE(w.cells[_i(item[1])])
        elif kind == "if":
            branch = item[3] if self.regs[_i(item[1])] == item[2] else item[4]
            await self.run(_b(branch))
        elif kind == "warn":
            WARN_ON(self.regs[_i(item[1])] == item[2], "reg")
        elif kind == "bug":
            BUG_ON(self.regs[_i(item[1])] == item[2], "reg")
        elif kind == "mutex":
            await mutex_lock(w.mutex)
            await self.run(_b(item[1]))
            await mutex_unlock(w.mutex)
        elif kind == "spin":
            await spin_lock(w.spin)
            await self.run(_b(item[1]))
            await spin_unlock(w.spin)
        elif kind == "trymutex":
            if await mutex_trylock(w.mutex):
                await self.run(_b(item[1]))
                await mutex_unlock(w.mutex)
        elif kind == "tryspin":
            if await spin_trylock(w.spin):
                await self.run(_b(item[1]))
                await spin_unlock(w.spin)
        elif kind == "rsem":
            await down_read(w.sem)
            await self.run(_b(item[1]))
            await up_read(w.sem)
        elif kind == "wsem":
            await down_write(w.sem)
            await self.run(_b(item[1]))
            await up_write(w.sem)
        elif kind == "rtry":
            if await down_read_trylock(w.sem):
                await self.run(_b(item[1]))
                await up_read(w.sem)
        elif kind == "wtry":
            if await down_write_trylock(w.sem):
                await self.run(_b(item[1]))
                await up_write(w.sem)
        elif kind == "wait":
            await wait_event(w.wq, self.flag_set)
        elif kind == "twait":
            self.regs[_i(item[1])] = await wait_event_timeout(
                w.wq, self.flag_set, TIMEOUT
            )
        elif kind == "wake":
            await WRITE_ONCE(w.flag, 1)
            await wake_up_all(w.wq)
        elif kind == "kget":
            await kref_get(w.kref)
        elif kind == "kget_nz":
            self.regs[_i(item[1])] = int(await kref_get_unless_zero(w.kref))
        elif kind == "kput":
            await kref_put(w.kref, self.release)
        elif kind == "srcu":
            index = await srcu_read_lock(w.srcu)
            await self.run(_b(item[1]))
            await srcu_read_unlock(w.srcu, index)
        elif kind == "sync_srcu":
            await synchronize_srcu(w.srcu)
        else:
            assert kind == "spawn", kind
            await Op(OpKind.SPAWN, LOCAL, False, "spawn")
            child = f"{self.name}.{self.spawned}"
            self.spawned += 1
            w.regs[child] = [0, 0]
            current_execution().spawn(child, _Runner(w, child).run(_b(item[1])))

    async def flag_set(self) -> bool:
        return await READ_ONCE(self.world.flag) == 1

    async def release(self, kref: Kref) -> None:
        del kref
        await WRITE_ONCE(self.world.cells[1], RELEASED)


def _i(value: object) -> int:
    assert isinstance(value, int)
    return value


def _b(value: object) -> Body:
    assert isinstance(value, tuple)
    return value
