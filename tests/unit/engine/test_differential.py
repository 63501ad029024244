"""Differential tests of `hmmsim.engine.strategies.dpor` against DFS.

Hypothesis draws small random programs (two or three tasks of once-accesses
on shared cells, well-nested mutex sections, data choices and wait/wake
pairs, plain or with a timeout); DPOR and DFS must reach exactly the same
set of (outcome, final state, finding kinds), and DPOR must not need more
executions than DFS.  Each execution gets a lock graph of its own, so that
lock-order findings belong to the execution that shows both orders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import example, given, reject
from hypothesis import strategies as st
from tests.support.differential import behaviours, run_all

from hmmsim.engine import Instance, SimpleInstance
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import DporStrategy
from hmmsim.sync import (
    BUG_ON,
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    WaitQueueHead,
    current_execution,
    mutex_lock,
    mutex_unlock,
    wait_event,
    wait_event_timeout,
    wake_up_all,
)

#: Programs whose DFS tree is larger than this are rejected (kept small so
#: that the whole test stays within a few seconds under the ci profile).
DFS_LIMIT = 500

# Items of a task body, as plain tuples (Hypothesis shows them readably):
# ("read", c), ("write", c), ("bug", c): BUG_ON(c was written), ("choose",),
# ("wait", timed), ("wake",), ("lock", m, [items]).
Item = tuple[object, ...]

leaf: st.SearchStrategy[Item] = st.one_of(
    st.tuples(st.just("read"), st.integers(0, 1)),
    st.tuples(st.just("write"), st.integers(0, 1)),
    st.tuples(st.just("bug"), st.integers(0, 1)),
    st.just(("choose",)),
    st.tuples(st.just("wait"), st.booleans()),
    st.just(("wake",)),
)
item: st.SearchStrategy[Item] = st.recursive(
    leaf,
    lambda inner: st.tuples(
        st.just("lock"), st.integers(0, 1), st.lists(inner, min_size=1, max_size=2)
    ),
    max_leaves=3,
)
bodies = st.integers(2, 3).flatmap(
    lambda n: st.lists(
        st.lists(item, min_size=1, max_size=3 if n == 2 else 2), min_size=n, max_size=n
    )
)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


@dataclass(slots=True)
class _World:
    """The shared objects of one instance, and what each task observed."""

    cells: list[Cell[int]]
    flag: Cell[bool]
    wq: WaitQueueHead
    locks: list[Mutex]
    logs: list[list[object]]


def program_of(spec: Sequence[Sequence[Item]]) -> Callable[[], Instance]:
    """Return the program that runs one task per body of ``spec``."""

    def build() -> Instance:
        world = _World(
            cells=[Cell("c0", 0), Cell("c1", 0)],
            flag=Cell("flag", False),
            wq=WaitQueueHead("wq"),
            locks=[Mutex("m0"), Mutex("m1")],
            logs=[[] for _ in spec],
        )

        async def is_set() -> bool:
            return await READ_ONCE(world.flag)

        async def run(items: Sequence[Item], me: int, log: list[object]) -> None:
            for entry in items:
                kind = entry[0]
                if kind == "read":
                    seen: int = await READ_ONCE(world.cells[_int(entry[1])])
                    log.append(seen)
                elif kind == "write":
                    log.append("w")
                    await WRITE_ONCE(world.cells[_int(entry[1])], 10 * me + len(log))
                elif kind == "bug":
                    value = await READ_ONCE(world.cells[_int(entry[1])])
                    BUG_ON(value != 0, "cell was written")
                elif kind == "choose":
                    log.append(current_execution().choose(2, "coin"))
                elif kind == "wait" and entry[1]:
                    log.append(await wait_event_timeout(world.wq, is_set, 5))
                elif kind == "wait":
                    await wait_event(world.wq, is_set)
                elif kind == "wake":
                    await WRITE_ONCE(world.flag, True)
                    await wake_up_all(world.wq)
                else:
                    lock = world.locks[_int(entry[1])]
                    inner = entry[2]
                    assert isinstance(inner, list)
                    await mutex_lock(lock)
                    await run(inner, me, log)
                    await mutex_unlock(lock)

        def state() -> object:
            return (
                tuple(tuple(log) for log in world.logs),
                tuple(c.value for c in world.cells),
                world.flag.value,
            )

        return SimpleInstance(
            task_list=[
                (f"t{i}", run(body, i, world.logs[i])) for i, body in enumerate(spec)
            ],
            state=state,
        )

    return build


class TestDporAgreesWithDfs:
    @given(bodies)
    # Programs that once broke the agreement, each for its own reason:
    # a fatal step must race with the steps it would have prevented;
    @example([[("read", 0)], [("write", 1), ("bug", 1)]])
    # a sleeping task that is not an initial of the reversal covers nothing
    # (FG05's "add the racing task" is not enough with sleep sets);
    @example([[("read", 1), ("read", 0)], [("read", 1), ("write", 0)], [("write", 1)]])
    # a race's initials come from the execution in which the Op runs;
    @example([[("lock", 0, [("write", 1)])], [("read", 0), ("read", 1)], [("read", 1)]])
    # a blocked acquirer races with the acquisition that blocks it.
    @example([[("lock", 0, [("read", 1)])], [("read", 0), ("lock", 0, [("write", 1)])]])
    def test_dpor_reaches_exactly_the_behaviours_dfs_reaches(
        self, spec: list[list[Item]]
    ) -> None:
        """On random small programs DPOR and DFS reach the same behaviours, DPOR in no more runs."""
        program = program_of(spec)
        dfs = run_all(program, DfsStrategy(), limit=DFS_LIMIT)
        if dfs is None:
            reject()
        dpor = run_all(program, DporStrategy(), limit=len(dfs))

        assert dpor is not None
        assert behaviours(dfs) == behaviours(dpor)

    @pytest.mark.parametrize(
        ("spec", "outcomes", "kinds"),
        [
            (
                [
                    [("lock", 0, [("lock", 1, [("read", 0)])])],
                    [("lock", 1, [("lock", 0, [("write", 0)])])],
                ],
                {"violation"},
                {"deadlock", "lock-order"},
            ),
            (
                [[("wait", True), ("bug", 0)], [("choose",), ("write", 0)]],
                {"passed", "pruned", "violation"},
                {"bug"},
            ),
        ],
    )
    def test_fixed_programs_of_the_generator_agree(
        self, spec: list[list[Item]], outcomes: set[str], kinds: set[str]
    ) -> None:
        """Two fixed programs reach deadlock, lock-order, BUG_ON, pruned and passed alike."""
        program = program_of(spec)
        dfs = run_all(program, DfsStrategy(), limit=DFS_LIMIT)
        dpor = run_all(program, DporStrategy(), limit=DFS_LIMIT)

        assert dfs is not None
        assert dpor is not None
        assert behaviours(dfs) == behaviours(dpor)
        assert outcomes == {b[0] for b in behaviours(dpor)}
        assert kinds == set().union(*(b[2] for b in behaviours(dpor)))
