"""Tests for `hmmsim.sync.once`."""

from __future__ import annotations

from tests.support.harness import exhaust, kinds, sequential, tasks
from tests.support.toy_programs import counter_race

from hmmsim.engine import Instance, OpKind, current_execution
from hmmsim.sync import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    shared_access,
    smp_load_acquire,
    smp_store_release,
)


class TestOnceAccesses:
    def test_read_once_and_write_once_move_values(self) -> None:
        """WRITE_ONCE stores a value that a later READ_ONCE returns."""
        seen: list[int] = []

        def program() -> Instance:
            cell = Cell("c", 1)

            async def body() -> None:
                seen.append(await READ_ONCE(cell))
                await WRITE_ONCE(cell, 2)
                seen.append(await READ_ONCE(cell))

            return tasks(body())

        result = sequential(program)

        assert [1, 2] == seen
        assert 3 == result.steps

    def test_acquire_and_release_variants_behave_like_once_accesses(self) -> None:
        """smp_store_release stores and smp_load_acquire loads (SC model)."""
        seen: list[str] = []

        def program() -> Instance:
            cell = Cell("c", "old")

            async def body() -> None:
                await smp_store_release(cell, "new")
                seen.append(await smp_load_acquire(cell))

            return tasks(body())

        assert [] == kinds(sequential(program))
        assert ["new"] == seen

    def test_each_access_is_a_scheduling_point(self) -> None:
        """Unlocked read-then-write increments race: DFS finds the lost update."""
        result = exhaust(counter_race)

        assert ["lost-update"] == result.kinds
        assert 6 == result.executions

    def test_reads_do_not_write_and_writes_do(self) -> None:
        """READ_ONCE's Op reads the cell and WRITE_ONCE's Op writes it."""
        ops: list[tuple[str, bool, bool]] = []

        def program() -> Instance:
            cell = Cell("c", 0)

            async def body() -> None:
                await READ_ONCE(cell)
                await WRITE_ONCE(cell, 1)
                ops.extend(
                    (op.kind.name, op.write, op.oid == cell.oid)
                    for op in current_execution().ops
                )

            return tasks(body())

        sequential(program)

        assert [("READ", False, True), ("WRITE", True, True)] == ops

    def test_cell_repr_and_holders(self) -> None:
        """A cell shows its name and value and has no holders."""
        cell = Cell("c", 5)

        assert ("Cell('c', 5)", ()) == (repr(cell), cell.holders())


class TestSharedAccess:
    def test_shared_access_announces_its_footprint(self) -> None:
        """shared_access is an Op on obj and the further objects, read or write."""
        ops: list[tuple[OpKind, bool, str, int]] = []

        def program() -> Instance:
            a = Cell("a", 0)
            b = Cell("b", 0)

            async def body() -> None:
                await shared_access(a, b, write=True, func="set_pte")
                await shared_access(a, write=False, func="get_pte")
                ops.extend(
                    (op.kind, op.write, op.describe(), len(op.more_oids))
                    for op in current_execution().ops
                )

            return tasks(body())

        sequential(program)

        assert [
            (OpKind.WRITE, True, "set_pte(a)", 1),
            (OpKind.READ, False, "get_pte(a)", 0),
        ] == ops
