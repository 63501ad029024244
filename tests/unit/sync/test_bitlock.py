"""Tests for `hmmsim.sync.bitlock` (the lock bit behind the page lock)."""

from __future__ import annotations

from tests.support.harness import along, enabled_sets, exhaust, kinds, tasks

from hmmsim.engine import Instance, Status
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    BitLock,
    Cell,
    SpinLock,
    bitlock,
    clear_bit_unlock,
    spin_lock,
    spin_unlock,
    wait_on_bit,
    wait_on_bit_lock,
)


class TestBitLock:
    def test_bit_lock_gives_mutual_exclusion(self) -> None:
        """Exhaustively, two increments under the bit lock never interleave (no lost update)."""
        seen: set[int] = set()

        def program() -> Instance:
            lock = BitLock("bit")
            value = Cell("value", 0)

            async def body() -> None:
                await wait_on_bit_lock(lock)
                v = await READ_ONCE(value)
                await WRITE_ONCE(value, v + 1)
                await clear_bit_unlock(lock)
                seen.add(v + 1)

            return tasks(body(), body())

        result = exhaust(program)

        assert Status.VERIFIED == result.status
        assert {1, 2} == seen
        assert result.executions == 2

    def test_a_waiter_is_not_enabled_while_the_bit_is_set(self) -> None:
        """After t0 sets the bit, t1's wait_on_bit_lock is disabled until t0 clears it."""

        def program() -> Instance:
            lock = BitLock("bit")

            async def body() -> None:
                await wait_on_bit_lock(lock)
                await clear_bit_unlock(lock)

            return tasks(body(), body())

        assert [[0, 1], [0], [1], [1]] == enabled_sets(program, "t0", "t0")

    def test_trylock_fails_while_set_and_another_task_may_clear(self) -> None:
        """The bit has no owner in the kernel: t1 clears what t0 set, and t0 no longer holds it."""
        seen: list[object] = []

        def program() -> Instance:
            lock = BitLock("bit")

            async def setter() -> None:
                seen.append(await bitlock.test_and_set_bit_lock(lock, "trylock"))
                # Ending while holding it would be a lock leak: wait for t1.
                await wait_on_bit(lock)

            async def clearer() -> None:
                seen.append(await bitlock.test_and_set_bit_lock(lock, "trylock"))
                await clear_bit_unlock(lock)
                seen.append((lock.owner, lock.releases))

            return tasks(setter(), clearer())

        result = along(program, "t0", "t1", "t1", "t0")

        assert [True, False, (None, 1)] == seen
        assert [] == kinds(result)

    def test_clearing_a_clear_bit_is_bad_unlock(self) -> None:
        """clear_bit_unlock of a clear bit reports bad-unlock."""

        def program() -> Instance:
            lock = BitLock("bit")

            async def body() -> None:
                await clear_bit_unlock(lock)

            return tasks(body())

        assert ["bad-unlock"] == kinds(along(program, "t0"))

    def test_queued_waiter_sees_a_release_even_if_the_bit_is_set_again(self) -> None:
        """wait_on_bit(queued_at=) ends after a clear, though another task set the bit again."""
        seen: list[str] = []

        def program() -> Instance:
            lock = BitLock("bit")
            guard = SpinLock("ptl")

            async def holder() -> None:
                await wait_on_bit_lock(lock)
                await spin_lock(guard)
                await spin_unlock(guard)
                await clear_bit_unlock(lock)
                await wait_on_bit_lock(lock)  # set again at once
                seen.append("holder relocked")
                await clear_bit_unlock(lock)

            async def waiter() -> None:
                await spin_lock(guard)
                queued = lock.releases
                await spin_unlock(guard)
                await wait_on_bit(lock, queued_at=queued)
                seen.append(f"waiter woke, owner {lock.owner}")

            return tasks(holder(), waiter())

        # t0 sets the bit; t1 queues under the guard; t0 clears and sets it
        # again; t1's wait is enabled although the bit is set.
        result = along(program, "t0", "t1", "t1", "t0", "t0", "t0", "t0", "t1", "t0")

        assert seen == ["holder relocked", "waiter woke, owner 0"]
        assert [] == kinds(result)
