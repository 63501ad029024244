"""Tests that the helpers of `hmmsim.sync` that read shared state are Ops.

The two programs below were VERIFIED by DPOR while DFS found the violation,
because ``kref_check_live`` and ``mutex_is_locked`` read shared state without
an Op.  Both strategies must now find it.
"""

from __future__ import annotations

import pytest
from tests.support.harness import kinds, sequential, tasks

from hmmsim.config import ExploreConfig
from hmmsim.engine import Instance, Status, explore
from hmmsim.sync import (
    BUG_ON,
    READ_ONCE,
    Cell,
    Kref,
    Mutex,
    RwSemaphore,
    down_read,
    down_write,
    kref_check_live,
    kref_put,
    kref_read,
    lockdep_is_held,
    lockdep_is_held_type,
    mutex_is_locked,
    mutex_lock,
    mutex_unlock,
    rwsem_is_locked,
    up_read,
    up_write,
)


async def _no_release(kref: Kref) -> None:
    del kref


def _check_live_against_put() -> Instance:
    flag = Cell("f", 0)
    kref = Kref("k")

    async def user() -> None:
        await READ_ONCE(flag)
        await kref_check_live(kref, "t0")

    async def putter() -> None:
        await kref_put(kref, _no_release)

    return tasks(user(), putter())


def _is_locked_against_lock() -> Instance:
    c = Cell("c", 0)
    m = Mutex("m")

    async def checker() -> None:
        await READ_ONCE(c)
        BUG_ON(await mutex_is_locked(m), "m is locked")

    async def locker() -> None:
        await mutex_lock(m)
        await mutex_unlock(m)

    return tasks(checker(), locker())


def _kref_read_against_put() -> Instance:
    c = Cell("c", 0)
    kref = Kref("k")

    async def reader() -> None:
        await READ_ONCE(c)
        BUG_ON(await kref_read(kref) == 0, "count dropped")

    async def putter() -> None:
        await kref_put(kref, _no_release)

    return tasks(reader(), putter())


def _rwsem_is_locked_against_reader() -> Instance:
    c = Cell("c", 0)
    sem = RwSemaphore("sem")

    async def checker() -> None:
        await READ_ONCE(c)
        BUG_ON(await rwsem_is_locked(sem), "sem is held")

    async def reader() -> None:
        await down_read(sem)
        await up_read(sem)

    return tasks(checker(), reader())


class TestSharedReadsAreOps:
    @pytest.mark.parametrize(
        ("program", "kind"),
        [
            (_check_live_against_put, "kref"),
            (_is_locked_against_lock, "bug"),
            (_kref_read_against_put, "bug"),
            (_rwsem_is_locked_against_reader, "bug"),
        ],
    )
    @pytest.mark.parametrize("strategy", ["dpor", "dfs"])
    def test_dpor_and_dfs_both_find_the_violation(
        self, program: object, kind: str, strategy: str
    ) -> None:
        """A decision on a shared read is seen by DPOR as well as DFS (no false VERIFIED)."""
        assert callable(program)
        config = ExploreConfig(strategy=strategy, shrink=False)

        result = explore(program, config)

        assert Status.VIOLATION == result.status
        assert [kind] == result.kinds


class TestLockdepIsHeld:
    def test_is_held_answers_for_the_running_task_only(self) -> None:
        """lockdep_is_held is true for the holder and false for everybody else."""
        seen: list[object] = []

        def program() -> Instance:
            lock = Mutex("l")
            sem = RwSemaphore("sem")

            async def holder() -> None:
                await mutex_lock(lock)
                await down_read(sem)
                seen.append(
                    (
                        lockdep_is_held(lock),
                        lockdep_is_held_type(lock, 0),
                        lockdep_is_held_type(sem, 1),
                        lockdep_is_held_type(sem, 0),
                        lockdep_is_held_type(sem, -1),
                    )
                )
                await up_read(sem)
                await down_write(sem)
                seen.append(
                    (lockdep_is_held_type(sem, 0), lockdep_is_held_type(sem, 1))
                )
                await up_write(sem)
                await mutex_unlock(lock)

            async def other() -> None:  # runs whole at spawn, before t0 steps
                seen.append((lockdep_is_held(lock), lockdep_is_held_type(sem, -1)))

            return tasks(holder(), other())

        assert [] == kinds(sequential(program))
        assert [(False, False), (True, True, True, False, True), (True, False)] == seen
