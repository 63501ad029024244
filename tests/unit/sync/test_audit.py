"""Tests for `hmmsim.sync.audit` (model code touching shared state without an Op).

The audit is on in every test (tests/conftest.py); these tests plant model
code that reads or writes a shared object behind the explorer's back, and
check that it is reported as a model error naming the object and the line.
"""

from __future__ import annotations

import pytest
from tests.support.harness import kinds, sequential, tasks

from hmmsim.config import ExploreConfig
from hmmsim.engine import Instance, explore
from hmmsim.errors import ModelError
from hmmsim.sync import (
    BUG_ON,
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    audit,
    mutex_lock,
    mutex_unlock,
    new_oid,
    shared_access,
)


def _peek_at_a_lock() -> Instance:
    c = Cell("c", 0)
    m = Mutex("m")

    async def checker() -> None:
        await READ_ONCE(c)
        BUG_ON(m.owner is not None, "m is locked")  # planted: no Op

    async def locker() -> None:
        await mutex_lock(m)
        await mutex_unlock(m)

    return tasks(checker(), locker())


def _counter(*, same_lock: bool) -> Instance:
    c = Cell("count", 0)
    locks = [Mutex("a"), Mutex("b")]

    async def bump(me: int) -> None:
        lock = locks[0 if same_lock else me]
        await mutex_lock(lock)
        c.value += 1  # under the lock
        await mutex_unlock(lock)

    return tasks(bump(0), bump(1))


class _Page:
    """A model struct whose ``data`` other tasks touch through shared_access."""

    __slots__ = ("data", "name", "oid")

    def __init__(self) -> None:
        self.name = "page"
        self.oid = new_oid()
        self.data = 0

    def holders(self) -> tuple[int, ...]:
        return ()


class TestAudit:
    @pytest.mark.parametrize("strategy", ["dpor", "dfs"])
    def test_a_planted_read_of_a_lock_owner_is_a_model_error(
        self, strategy: str
    ) -> None:
        """Reading another task's lock state without an Op names the object and the line."""
        assert audit.enabled()

        with pytest.raises(ModelError) as caught:
            explore(_peek_at_a_lock, ExploreConfig(strategy=strategy, shrink=False))

        message = str(caught.value)
        assert "test_audit.py:" in message
        assert "in checker: task t0 reads Mutex 'm' (.owner)" in message
        assert "without an Op and without a lock" in message

    def test_a_helper_method_answers_for_its_model_caller(self) -> None:
        """lock.is_locked() from model code is audited like reading .owner."""

        def program() -> Instance:
            c = Cell("c", 0)
            m = Mutex("m")

            async def checker() -> None:
                await READ_ONCE(c)
                BUG_ON(m.is_locked(), "m is locked")

            async def locker() -> None:
                await mutex_lock(m)
                await mutex_unlock(m)

            return tasks(checker(), locker())

        with pytest.raises(
            ModelError, match=r"in checker: task t0 reads Mutex 'm' \(\.owner\)"
        ):
            explore(program, ExploreConfig(strategy="dfs", shrink=False))

    def test_access_after_an_op_on_the_object_is_fine(self) -> None:
        """Model code may use a field in the step whose Op touched the object."""
        seen: list[int] = []

        def program() -> Instance:
            c = Cell("c", 0)

            async def reader() -> None:
                await WRITE_ONCE(c, 1)
                await shared_access(c, write=False, func="peek")
                seen.append(c.value)

            async def writer() -> None:
                await WRITE_ONCE(c, 2)

            return tasks(reader(), writer())

        result = explore(program, ExploreConfig(strategy="dpor", shrink=False))

        assert [] == result.kinds
        assert {1, 2} == set(seen)

    def test_a_field_every_task_touches_under_one_lock_is_fine(self) -> None:
        """Eraser's rule: direct accesses under a common lock are ordered by its Ops."""
        result = explore(
            lambda: _counter(same_lock=True),
            ExploreConfig(strategy="dpor", shrink=False),
        )

        assert [] == result.kinds

    def test_a_field_touched_under_different_locks_is_a_model_error(self) -> None:
        """Two tasks under two different locks: no lock orders their accesses."""
        with pytest.raises(ModelError, match="under different locks"):
            explore(
                lambda: _counter(same_lock=False),
                ExploreConfig(strategy="dfs", shrink=False),
            )

    def test_an_object_the_task_created_is_private(self) -> None:
        """A cell made by the running task may be used directly until published."""

        def program() -> Instance:
            c = Cell("c", 0)

            async def maker() -> None:
                await WRITE_ONCE(c, 1)
                mine = Cell("mine", 5)
                mine.value += 1
                await WRITE_ONCE(c, mine.value)

            async def other() -> None:
                await READ_ONCE(c)

            return tasks(maker(), other())

        assert [] == explore(program, ExploreConfig(strategy="dfs", shrink=False)).kinds

    def test_the_owner_may_ask_about_its_own_lock(self) -> None:
        """A task holding the mutex reads its owner field: owner-local, fine."""

        def program() -> Instance:
            m = Mutex("m")

            async def holder() -> None:
                await mutex_lock(m)
                BUG_ON(m.owner is None, "not mine")
                await mutex_unlock(m)

            async def other() -> None:
                await mutex_lock(m)
                await mutex_unlock(m)

            return tasks(holder(), other())

        assert [] == explore(program, ExploreConfig(strategy="dfs", shrink=False)).kinds

    def test_watch_audits_a_model_struct(self) -> None:
        """A watched slotted field of a model struct is audited like a Cell."""
        audit.watch(_Page, "data")

        def program() -> Instance:
            page = _Page()

            async def reader() -> None:
                await shared_access(page, write=False, func="other")
                await WRITE_ONCE(Cell("c", 0), 1)
                BUG_ON(page.data == 2, "peeked")

            async def writer() -> None:
                await shared_access(page, write=True, func="write_page")
                page.data = 2

            return tasks(reader(), writer())

        with pytest.raises(ModelError, match=r"_Page 'page' \(\.data\)"):
            explore(program, ExploreConfig(strategy="dfs", shrink=False))
        with pytest.raises(ModelError, match="not a slotted field"):
            audit.watch(_Page, "missing")

    def test_disable_restores_the_plain_fields(self) -> None:
        """With the audit off the planted program runs (and DPOR misses its BUG_ON)."""
        audit.disable()
        try:
            result = sequential(_peek_at_a_lock, "t1", "t0")
            off = audit.enabled()
        finally:
            audit.enable()

        assert (False, ["bug"]) == (off, kinds(result))
        assert audit.enabled()
