"""Tests for `hmmsim.sync.debug`."""

from __future__ import annotations

from tests.support.harness import kinds, sequential, tasks

from hmmsim.engine import Instance, Outcome
from hmmsim.sync import (
    BUG_ON,
    READ_ONCE,
    WARN_ON,
    WARN_ON_ONCE,
    Cell,
    Mutex,
    SpinLock,
    lockdep_assert_held,
    might_sleep,
    msleep,
    mutex_lock,
    mutex_unlock,
    non_block_end,
    non_block_start,
    spin_lock,
    spin_unlock,
)


class TestMightSleep:
    def test_might_sleep_in_plain_context_is_silent(self) -> None:
        """might_sleep with no spinlock held and no non-block section reports nothing."""

        def program() -> Instance:
            async def body() -> None:
                might_sleep("here")
                await msleep(1)

            return tasks(body())

        assert [] == kinds(sequential(program))

    def test_might_sleep_under_a_spinlock_is_reported_and_goes_on(self) -> None:
        """Sleeping under a spinlock is a non-fatal sleep-in-nonblockable finding."""
        after: list[bool] = []

        def program() -> Instance:
            lock = SpinLock("ptl")

            async def body() -> None:
                await spin_lock(lock)
                await msleep(1)
                after.append(True)
                await spin_unlock(lock)

            return tasks(body())

        result = sequential(program)

        assert ["sleep-in-nonblockable"] == kinds(result)
        assert (
            "sleeping function called from invalid context in msleep: "
            "holding spinlock ptl"
        ) == result.findings[0].message
        assert [True] == after
        assert Outcome.VIOLATION == result.outcome

    def test_might_sleep_in_a_non_block_section_is_reported(self) -> None:
        """Sleeping between non_block_start and non_block_end is reported."""

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                non_block_start()
                await mutex_lock(lock)
                await mutex_unlock(lock)
                non_block_end()
                await mutex_lock(lock)
                await mutex_unlock(lock)

            return tasks(body())

        result = sequential(program)

        assert ["sleep-in-nonblockable"] == kinds(result)
        assert "inside a non-blocking section" in result.findings[0].message

    def test_might_sleep_without_a_site_names_none(self) -> None:
        """might_sleep() without a site leaves the ' in <site>' part out."""

        def program() -> Instance:
            lock = SpinLock("s")

            async def body() -> None:
                await spin_lock(lock)
                might_sleep()
                await spin_unlock(lock)

            return tasks(body())

        message = sequential(program).findings[0].message

        assert message.startswith("sleeping function called from invalid context: ")

    def test_unbalanced_non_block_end_warns(self) -> None:
        """non_block_end without non_block_start is a WARN and leaves the depth at 0."""

        def program() -> Instance:
            async def body() -> None:
                non_block_end()
                might_sleep("after")
                await msleep(1)

            return tasks(body())

        result = sequential(program)

        assert ["warn"] == kinds(result)


class TestWarnOn:
    def test_warn_on_reports_and_returns_its_condition(self) -> None:
        """WARN_ON(True) reports a non-fatal warn and returns True; False is silent."""
        returned: list[bool] = []

        def program() -> Instance:
            cell = Cell("c", 0)

            async def body() -> None:
                returned.append(WARN_ON(False, "quiet"))
                returned.append(WARN_ON(True, "loud"))
                returned.append(WARN_ON(True))
                await READ_ONCE(cell)

            return tasks(body())

        result = sequential(program)

        assert [False, True, True] == returned
        assert ["WARN_ON(loud) triggered", "WARN_ON(condition) triggered"] == [
            f.message for f in result.findings
        ]
        assert not any(f.fatal for f in result.findings)
        assert 1 == result.steps

    def test_warn_on_once_reports_once_per_call_site(self) -> None:
        """WARN_ON_ONCE in a loop reports once per site; another site reports again."""

        def program() -> Instance:
            cell = Cell("c", 0)

            async def body() -> None:
                for _ in range(3):
                    WARN_ON_ONCE(True, "site-a")
                    await READ_ONCE(cell)
                WARN_ON_ONCE(True, "site-b")
                WARN_ON_ONCE(False, "site-c")

            return tasks(body(), body())

        result = sequential(program)

        assert [
            "WARN_ON_ONCE(site-a) triggered",
            "WARN_ON_ONCE(site-b) triggered",
        ] == [f.message for f in result.findings]

    def test_warn_on_once_reports_again_in_the_next_execution(self) -> None:
        """The once-per-site memory belongs to one execution."""

        def program() -> Instance:
            async def body() -> None:
                WARN_ON_ONCE(True)
                await msleep(1)

            return tasks(body())

        assert (["warn"], ["warn"]) == (
            kinds(sequential(program)),
            kinds(sequential(program)),
        )


class TestBugOn:
    def test_bug_on_stops_the_execution(self) -> None:
        """BUG_ON(True) is a fatal bug finding; the task's later code never runs."""
        reached: list[str] = []

        def program() -> Instance:
            cell = Cell("c", 0)

            async def body() -> None:
                await READ_ONCE(cell)
                BUG_ON(False, "fine")
                reached.append("before")
                BUG_ON(True, "broken")
                reached.append("after")

            async def other() -> None:
                await READ_ONCE(cell)
                reached.append("other")

            return tasks(body(), other())

        result = sequential(program)

        assert ["bug"] == kinds(result)
        assert "kernel BUG: BUG_ON(broken)" == result.findings[0].message
        assert result.findings[0].fatal
        assert ["before"] == reached
        assert Outcome.VIOLATION == result.outcome

    def test_bug_on_without_a_message_names_its_call_site(self) -> None:
        """BUG_ON(True) without a message names the function, file and line that called it."""

        def program() -> Instance:
            async def body() -> None:
                BUG_ON(True)
                await msleep(1)

            return tasks(body())

        line = program.__code__.co_firstlineno + 2
        message = sequential(program).findings[0].message

        assert f"kernel BUG: BUG_ON(body() at test_debug.py:{line})" == message


class TestLockdepAssertHeld:
    def test_assert_held_passes_for_the_holder(self) -> None:
        """lockdep_assert_held is silent when the running task holds the lock."""

        def program() -> Instance:
            lock = Mutex("m")

            async def body() -> None:
                await mutex_lock(lock)
                lockdep_assert_held(lock)
                await mutex_unlock(lock)

            return tasks(body())

        assert [] == kinds(sequential(program))

    def test_assert_held_reports_when_another_task_holds_it(self) -> None:
        """lockdep_assert_held by a task that does not hold the lock is a lockdep finding."""

        def program() -> Instance:
            lock = Mutex("m")

            async def holder() -> None:
                await mutex_lock(lock)
                await mutex_unlock(lock)

            async def checker() -> None:
                await msleep(1)
                lockdep_assert_held(lock)

            return tasks(holder(), checker())

        result = sequential(program, "t0", "t1")

        assert ["lockdep"] == kinds(result)
        assert "lockdep_assert_held(m) failed in task t1" == result.findings[0].message
        assert not result.findings[0].fatal
