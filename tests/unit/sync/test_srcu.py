"""Tests for `hmmsim.sync.srcu`."""

from __future__ import annotations

from tests.support.harness import enabled_sets, exhaust, kinds, sequential, tasks

from hmmsim.engine import Instance, Status
from hmmsim.sync import (
    SrcuStruct,
    call_srcu,
    srcu_read_lock,
    srcu_read_unlock,
    synchronize_srcu,
)


def reader_and_syncer(log: list[str]) -> Instance:
    """t0 reads inside an SRCU section; t1 calls synchronize_srcu."""
    srcu = SrcuStruct("srcu")

    async def reader() -> None:
        index = await srcu_read_lock(srcu)
        log.append("read-lock")
        await srcu_read_unlock(srcu, index)
        log.append("read-unlock")

    async def syncer() -> None:
        await synchronize_srcu(srcu)
        log.append("synced")

    return tasks(reader(), syncer())


class TestSynchronizeSrcu:
    def test_synchronize_waits_for_a_reader_that_started_before_it(self) -> None:
        """A reader inside its section when synchronize_srcu starts holds it back."""
        log: list[str] = []

        # t0 locks, t1 starts synchronize_srcu: now only t0 may run.
        sets = enabled_sets(lambda: reader_and_syncer(log), "t0", "t1")

        assert [[0, 1], [0, 1], [0], [1]] == sets
        assert ["read-lock", "read-unlock", "synced"] == log

    def test_synchronize_does_not_wait_for_a_reader_that_started_after_it(
        self,
    ) -> None:
        """A reader that enters after synchronize_srcu started does not hold it back."""
        log: list[str] = []

        def program() -> Instance:
            srcu = SrcuStruct("srcu")

            async def reader() -> None:
                index = await srcu_read_lock(srcu)
                log.append("read-lock")
                await srcu_read_unlock(srcu, index)

            async def syncer() -> None:
                await synchronize_srcu(srcu)
                log.append("synced")

            return tasks(reader(), syncer())

        # t1 snapshots (no readers), t0 enters, t1's wait is still enabled.
        sets = enabled_sets(program, "t1", "t0", "t1")

        assert [[0, 1], [0, 1], [0, 1]] == sets[:3]
        assert ["read-lock", "synced"] == log[:2]

    def test_every_interleaving_of_reader_and_syncer_completes(self) -> None:
        """The reader and the syncer finish in every interleaving (no deadlock)."""
        logs: list[list[str]] = []

        def program() -> Instance:
            logs.append([])
            return reader_and_syncer(logs[-1])

        result = exhaust(program)

        assert Status.VERIFIED == result.status
        assert all(
            sorted(log) == ["read-lock", "read-unlock", "synced"] for log in logs
        )
        assert 1 < len({tuple(log) for log in logs})


class TestCallSrcu:
    def test_callback_runs_after_the_grace_period_in_its_own_task(self) -> None:
        """call_srcu's callback runs in an srcu-callback task after earlier readers."""
        log: list[str] = []

        def program() -> Instance:
            srcu = SrcuStruct("srcu")

            async def callback() -> None:
                log.append("callback")

            async def reader() -> None:
                index = await srcu_read_lock(srcu)
                await call_srcu(srcu, callback)
                log.append("queued")
                await srcu_read_unlock(srcu, index)
                log.append("read-unlock")

            return tasks(reader())

        result = sequential(program)

        assert [] == kinds(result)
        assert ["queued", "read-unlock", "callback"] == log

    def test_callback_task_is_named_srcu_callback(self) -> None:
        """The spawned task is named srcu-callback, with its id after the others."""
        seen: list[list[str]] = []

        def program() -> Instance:
            srcu = SrcuStruct("srcu")

            async def callback() -> None:
                from hmmsim.sync import current_execution  # noqa: PLC0415

                seen.append([t.name for t in current_execution().tasks])

            async def body() -> None:
                await call_srcu(srcu, callback)

            return tasks(body())

        sequential(program)

        assert [["t0", "srcu-callback"]] == seen


class TestSrcuReadUnlock:
    def test_unlocking_a_section_that_is_not_open_is_a_bad_unlock(self) -> None:
        """srcu_read_unlock with an index that is not open is a bad-unlock."""

        def program() -> Instance:
            srcu = SrcuStruct("srcu")

            async def body() -> None:
                await srcu_read_unlock(srcu, 7)

            return tasks(body())

        result = sequential(program)

        assert ["bad-unlock"] == kinds(result)
        assert "srcu_read_unlock(srcu, 7)" in result.findings[0].message

    def test_holders_are_the_tasks_inside_sections(self) -> None:
        """holders() lists the tasks with open sections, once each."""
        srcu = SrcuStruct("srcu")
        srcu.active = {0: 2, 1: 0, 2: 2}

        assert (0, 2) == srcu.holders()
