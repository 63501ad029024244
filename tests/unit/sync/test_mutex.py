"""Tests for `hmmsim.sync.mutex`."""

from __future__ import annotations

from tests.support.harness import enabled_sets, exhaust, kinds, sequential, tasks
from tests.support.toy_programs import counter_race

from hmmsim.engine import Instance, Status
from hmmsim.sync import (
    Mutex,
    SpinLock,
    current_task,
    mutex_init,
    mutex_is_locked,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
)


class TestMutexLock:
    def test_mutex_enforces_mutual_exclusion(self) -> None:
        """Under DFS, two locked increments never lose an update."""
        result = exhaust(lambda: counter_race(locked=True))

        assert Status.VERIFIED == result.status
        assert {"passed": result.executions} == result.outcomes

    def test_waiter_is_blocked_while_the_mutex_is_held(self) -> None:
        """After t0 takes the mutex, t1's mutex_lock is not enabled until t0 unlocks."""

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                await mutex_lock(lock)
                await mutex_unlock(lock)

            return tasks(body(), body())

        # t0 locks; only t0 may run (unlock); then t1 locks and unlocks.
        assert [[0, 1], [0], [1], [1]] == enabled_sets(program, "t0", "t0")

    def test_lock_records_the_owner_and_unlock_clears_it(self) -> None:
        """mutex_lock makes the task the owner; mutex_unlock frees the mutex."""
        seen: list[object] = []

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                await mutex_lock(lock)
                seen.append((lock.owner, await mutex_is_locked(lock), lock.holders()))
                await mutex_unlock(lock)
                seen.append((lock.owner, await mutex_is_locked(lock), lock.holders()))

            return tasks(body())

        result = sequential(program)

        assert [] == kinds(result)
        assert [(0, True, (0,)), (None, False, ())] == seen

    def test_mutex_lock_under_a_spinlock_reports_sleep_in_nonblockable(self) -> None:
        """mutex_lock may sleep, so taking it while holding a spinlock is reported."""

        def program() -> Instance:
            spin = SpinLock("s")
            lock = Mutex("m")

            async def body() -> None:
                await spin_lock(spin)
                await mutex_lock(lock)
                await mutex_unlock(lock)
                await spin_unlock(spin)

            return tasks(body())

        result = sequential(program)

        assert ["sleep-in-nonblockable"] == kinds(result)
        assert not result.findings[0].fatal
        assert "holding spinlock s" in result.findings[0].message

    def test_relocking_a_held_mutex_deadlocks(self) -> None:
        """A task that locks a mutex it holds blocks forever: a deadlock."""

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                await mutex_lock(lock)
                await mutex_lock(lock)

            return tasks(body())

        result = sequential(program)

        assert ["deadlock"] == kinds(result)
        assert ("t0 waits in mutex_lock(m), held by t0",) == result.findings[0].detail


class TestMutexTrylock:
    def test_trylock_takes_a_free_mutex(self) -> None:
        """mutex_trylock on a free mutex returns True and takes it."""
        got: list[object] = []

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                got.append(await mutex_trylock(lock))
                got.append(lock.owner)
                await mutex_unlock(lock)

            return tasks(body())

        assert [] == kinds(sequential(program))
        assert [True, 0] == got

    def test_trylock_on_a_held_mutex_fails_without_blocking(self) -> None:
        """mutex_trylock on a held mutex is enabled and returns False."""
        got: list[bool] = []

        def program() -> Instance:
            lock = Mutex("m")

            async def holder() -> None:
                await mutex_lock(lock)
                await mutex_unlock(lock)

            async def trier() -> None:
                got.append(await mutex_trylock(lock))

            return tasks(holder(), trier())

        # t0 locks; t1's trylock is still enabled and fails.
        assert [[0, 1], [0, 1], [0]] == enabled_sets(program, "t0", "t1")
        assert [False] == got


class TestMutexUnlock:
    def test_unlocking_a_free_mutex_is_a_bad_unlock(self) -> None:
        """mutex_unlock of a mutex nobody holds is a fatal bad-unlock finding."""

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                await mutex_unlock(lock)

            return tasks(body())

        result = sequential(program)

        assert ["bad-unlock"] == kinds(result)
        assert (
            "mutex_unlock(m) by t0, but it is not locked" == result.findings[0].message
        )

    def test_unlocking_another_tasks_mutex_is_a_bad_unlock(self) -> None:
        """mutex_unlock by a task that does not own the mutex is a bad-unlock."""

        def program() -> Instance:
            lock = Mutex("m")

            async def owner() -> None:
                await mutex_lock(lock)
                await mutex_unlock(lock)

            async def thief() -> None:
                await mutex_unlock(lock)

            return tasks(owner(), thief())

        result = sequential(program, "t0", "t1")

        assert ["bad-unlock"] == kinds(result)
        assert "held by another task" in result.findings[0].message
        assert "t1" == result.findings[0].task


class TestMutexInit:
    def test_mutex_init_unlocks(self) -> None:
        """mutex_init resets the owner of a mutex made outside an execution."""
        lock = Mutex("m")
        lock.owner = 3

        mutex_init(lock)

        assert not lock.is_locked()
        assert "Mutex('m', owner=None)" == repr(lock)

    def test_current_task_names_the_running_task(self) -> None:
        """current_task() inside a task body is that task."""
        names: list[str] = []

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                await mutex_lock(lock)
                names.append(current_task().name)
                await mutex_unlock(lock)

            return tasks(body(), body())

        sequential(program)

        assert ["t0", "t1"] == names
