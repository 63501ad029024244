"""Tests for `hmmsim.sync.spinlock` and the shared lock code in `hmmsim.sync._lock`."""

from __future__ import annotations

from tests.support.harness import enabled_sets, kinds, sequential, tasks

from hmmsim.engine import Instance
from hmmsim.sync import (
    SpinLock,
    current_task,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_irqrestore,
)


class TestSpinLock:
    def test_holding_a_spinlock_puts_the_task_in_atomic_context(self) -> None:
        """spin_lock raises the task's atomic depth and spin_unlock lowers it."""
        depth: list[int] = []

        def program() -> Instance:
            lock = SpinLock("s")

            async def body() -> None:
                await spin_lock(lock)
                depth.append(current_task().atomic)
                await spin_unlock(lock)
                depth.append(current_task().atomic)

            return tasks(body())

        assert [] == kinds(sequential(program))
        assert [1, 0] == depth

    def test_a_spinning_task_is_blocked_until_the_lock_is_free(self) -> None:
        """While t0 holds the spinlock, t1's spin_lock is not enabled."""

        def program() -> Instance:
            lock = SpinLock("s")

            async def body() -> None:
                await spin_lock(lock)
                await spin_unlock(lock)

            return tasks(body(), body())

        assert [[0, 1], [0], [1], [1]] == enabled_sets(program, "t0", "t0")

    def test_irqsave_variants_lock_and_unlock(self) -> None:
        """spin_lock_irqsave takes the lock and returns flags 0; irqrestore frees it."""
        seen: list[object] = []

        def program() -> Instance:
            lock = SpinLock("s")

            async def body() -> None:
                flags = await spin_lock_irqsave(lock)
                seen.append((flags, lock.owner))
                await spin_unlock_irqrestore(lock, flags)
                seen.append(lock.owner)

            return tasks(body())

        assert [] == kinds(sequential(program))
        assert [(0, 0), None] == seen

    def test_ending_a_task_with_a_spinlock_held_is_a_lock_leak(self) -> None:
        """A task that returns while holding a spinlock is a lock-leak finding."""

        def program() -> Instance:
            lock = SpinLock("s")

            async def body() -> None:
                await spin_lock(lock)

            return tasks(body())

        result = sequential(program)

        assert ["lock-leak"] == kinds(result)
        assert "task t0 ended while holding s" == result.findings[0].message

    def test_spin_lock_init_frees_the_lock(self) -> None:
        """spin_lock_init resets a spinlock to unlocked."""
        lock = SpinLock("s")
        lock.owner = 1

        spin_lock_init(lock)

        assert lock.is_free()
        assert not lock.is_locked()


class TestSpinTrylock:
    def test_trylock_returns_whether_it_took_the_lock(self) -> None:
        """spin_trylock succeeds on a free lock and fails on a held one."""
        got: list[bool] = []

        def program() -> Instance:
            lock = SpinLock("s")

            async def holder() -> None:
                got.append(await spin_trylock(lock))
                await spin_unlock(lock)

            async def trier() -> None:
                got.append(await spin_trylock(lock))

            return tasks(holder(), trier())

        assert [] == kinds(sequential(program, "t0", "t1"))
        assert [True, False] == got

    def test_lock_order_class_defaults_to_the_name(self) -> None:
        """A lock's lockdep class is its name unless given."""
        assert "s" == SpinLock("s").lockdep_class
        assert "cls" == SpinLock("s", lockdep_class="cls").lockdep_class
