"""Tests for `hmmsim.sync.rwsem`."""

from __future__ import annotations

from tests.support.harness import enabled_sets, kinds, sequential, tasks

from hmmsim.engine import Instance
from hmmsim.sync import (
    RwSemaphore,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    downgrade_write,
    init_rwsem,
    rwsem_is_locked,
    up_read,
    up_write,
)


def readers_and_writer() -> Instance:
    """t0 and t1 read-lock, t2 write-locks the same semaphore."""
    sem = RwSemaphore("sem")

    async def reader() -> None:
        await down_read(sem)
        await up_read(sem)

    async def writer() -> None:
        await down_write(sem)
        await up_write(sem)

    return tasks(reader(), reader(), writer())


class TestDownRead:
    def test_readers_share_the_semaphore(self) -> None:
        """With t0 inside for read, t1 may enter for read but t2 may not write."""
        # After t0's down_read: t0 (up_read) and t1 (down_read) are enabled,
        # t2 (down_write) is not.
        assert [[0, 1, 2], [0, 1]] == enabled_sets(readers_and_writer, "t0", "t1")[:2]

    def test_writer_excludes_readers(self) -> None:
        """With t2 inside for write, neither reader may enter."""
        assert [[0, 1, 2], [2]] == enabled_sets(readers_and_writer, "t2", "t2")[:2]

    def test_holders_are_the_writer_or_the_sorted_readers(self) -> None:
        """holders() lists the readers (once each, sorted) or the writer."""
        seen: list[tuple[int, ...]] = []

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def reader() -> None:
                await down_read(sem)
                await down_read(sem)
                seen.append(sem.holders())
                await up_read(sem)
                await up_read(sem)

            async def writer() -> None:
                await down_write(sem)
                seen.append(sem.holders())
                await up_write(sem)

            return tasks(reader(), reader(), writer())

        # t1 reads twice (listed once), then t0 reads twice; then the writer.
        result = sequential(program, "t1", "t1", "t0", "t0")

        assert [] == kinds(result)
        assert [(1,), (0, 1), (2,)] == seen


class TestTrylocks:
    def test_read_trylock_fails_only_against_a_writer(self) -> None:
        """down_read_trylock succeeds beside a reader and fails beside a writer."""
        got: list[bool] = []

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def trier() -> None:
                got.append(await down_read_trylock(sem))
                if got[-1]:
                    await up_read(sem)

            async def writer() -> None:
                await down_write(sem)
                await up_write(sem)

            async def reader() -> None:
                await down_read(sem)
                await up_read(sem)

            return tasks(trier(), writer(), trier(), reader())

        # t3 reads, t0 tries (ok, leaves), t3 unlocks; t1 writes, t2 tries (fails).
        result = sequential(program, "t3", "t0", "t0", "t3", "t1", "t2")

        assert [] == kinds(result)
        assert [True, False] == got

    def test_write_trylock_needs_the_semaphore_free(self) -> None:
        """down_write_trylock fails beside a reader and succeeds when free."""
        got: list[bool] = []

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def trier() -> None:
                got.append(await down_write_trylock(sem))
                if got[-1]:
                    await up_write(sem)

            async def reader() -> None:
                await down_read(sem)
                await up_read(sem)

            return tasks(reader(), trier(), trier())

        result = sequential(program, "t0", "t1", "t0", "t2")

        assert [] == kinds(result)
        assert [False, True] == got


class TestUnlock:
    def test_up_read_without_a_read_hold_is_a_bad_unlock(self) -> None:
        """up_read by a task that holds no read lock is a bad-unlock."""

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def body() -> None:
                await up_read(sem)

            return tasks(body())

        result = sequential(program)

        assert ["bad-unlock"] == kinds(result)
        assert "does not hold it for read" in result.findings[0].message

    def test_up_write_without_the_write_hold_is_a_bad_unlock(self) -> None:
        """up_write by a task that does not hold the semaphore for write is a bad-unlock."""

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def body() -> None:
                await down_read(sem)
                await up_write(sem)

            return tasks(body())

        result = sequential(program)

        assert ["bad-unlock"] == kinds(result)
        assert "does not hold it for write" in result.findings[0].message

    def test_init_rwsem_empties_a_semaphore(self) -> None:
        """init_rwsem drops the writer and every reader."""
        sem = RwSemaphore("sem")
        sem.readers = [1]
        sem.writer = 2

        init_rwsem(sem)

        assert "RwSemaphore('sem', writer=None, readers=[])" == repr(sem)

    def test_rwsem_is_locked_sees_readers_and_writers(self) -> None:
        """rwsem_is_locked is true under a read hold and a write hold, false when free."""
        seen: list[bool] = []

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def body() -> None:
                await down_read(sem)
                seen.append(await rwsem_is_locked(sem))
                await up_read(sem)
                await down_write(sem)
                seen.append(await rwsem_is_locked(sem))
                await up_write(sem)
                seen.append(await rwsem_is_locked(sem))

            return tasks(body())

        assert [] == kinds(sequential(program))
        assert [True, True, False] == seen


class TestDowngradeWrite:
    def test_downgrade_lets_readers_in_but_not_writers(self) -> None:
        """After t0 downgrades its write hold, t1 may read-lock but t2 may not write-lock."""

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def downgrader() -> None:
                await down_write(sem)
                await downgrade_write(sem)
                await up_read(sem)

            async def reader() -> None:
                await down_read(sem)
                await up_read(sem)

            async def writer() -> None:
                await down_write(sem)
                await up_write(sem)

            return tasks(downgrader(), reader(), writer())

        # After down_write only t0 runs; after downgrade_write t0 and the
        # reader t1 are enabled, the writer t2 is not.
        assert [[0, 1, 2], [0], [0, 1]] == enabled_sets(program, "t0", "t0")[:3]

    def test_downgrade_keeps_one_read_hold_until_up_read(self) -> None:
        """The downgraded task holds the semaphore for read (once) until up_read."""
        seen: list[tuple[tuple[int, ...], int | None, int]] = []

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def body() -> None:
                await down_write(sem)
                await downgrade_write(sem)
                seen.append((sem.holders(), sem.writer, len(sem.readers)))
                await up_read(sem)
                seen.append((sem.holders(), sem.writer, len(sem.readers)))

            return tasks(body())

        result = sequential(program)

        assert [] == kinds(result)
        assert [((0,), None, 1), ((), None, 0)] == seen

    def test_downgrade_without_the_write_hold_is_a_bad_unlock(self) -> None:
        """downgrade_write by a task holding the semaphore only for read is a bad-unlock."""

        def program() -> Instance:
            sem = RwSemaphore("sem")

            async def body() -> None:
                await down_read(sem)
                await downgrade_write(sem)

            return tasks(body())

        result = sequential(program)

        assert ["bad-unlock"] == kinds(result)
        assert "does not hold it for write" in result.findings[0].message
