"""Tests for `hmmsim.sync.sched`."""

from __future__ import annotations

from tests.support.harness import kinds, sequential, tasks

from hmmsim.engine import LOCAL, Instance, current_execution
from hmmsim.sync import (
    SpinLock,
    cond_resched,
    msleep,
    schedule,
    schedule_timeout_idle,
    spin_lock,
    spin_unlock,
)


class TestSleepingHelpers:
    def test_each_helper_is_one_local_scheduling_point(self) -> None:
        """msleep, schedule_timeout_idle, schedule and cond_resched are one LOCAL step each."""
        seen: list[object] = []

        def program() -> Instance:
            async def body() -> None:
                await msleep(10)
                seen.append(await schedule_timeout_idle(5))
                await schedule()
                await cond_resched()
                seen.extend(
                    (op.func, op.oid == LOCAL, op.write)
                    for op in current_execution().ops
                )

            return tasks(body())

        result = sequential(program)

        assert 4 == result.steps
        assert [
            0,
            ("msleep", True, False),
            ("schedule_timeout_idle", True, False),
            ("schedule", True, False),
            ("cond_resched", True, False),
        ] == seen

    def test_helpers_may_sleep(self) -> None:
        """Each helper under a spinlock is a sleep-in-nonblockable finding."""

        def program() -> Instance:
            lock = SpinLock("s")

            async def body() -> None:
                await spin_lock(lock)
                await msleep(1)
                await schedule_timeout_idle(1)
                await schedule()
                await cond_resched()
                await spin_unlock(lock)

            return tasks(body())

        assert ["sleep-in-nonblockable"] * 4 == kinds(sequential(program))
