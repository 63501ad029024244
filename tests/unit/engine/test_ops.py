"""Tests for `hmmsim.engine.ops`."""

from __future__ import annotations

import pytest

from hmmsim.engine import LOCAL, Op, OpKind, dependent
from hmmsim.sync import Cell


def op(oid: int, *, write: bool, more: tuple[int, ...] = ()) -> Op:
    return Op(OpKind.WRITE if write else OpKind.READ, oid, write, "f", more_oids=more)


class TestDependent:
    @pytest.mark.parametrize(
        ("a", "b", "expected"),
        [
            (op(1, write=False), op(1, write=False), False),  # two reads commute
            (op(1, write=True), op(1, write=False), True),  # write/read same object
            (op(1, write=False), op(1, write=True), True),
            (op(1, write=True), op(2, write=True), False),  # different objects
            (op(LOCAL, write=True), op(LOCAL, write=True), False),  # nothing shared
            (op(1, write=True, more=(2,)), op(2, write=False), True),  # via more_oids
            (op(2, write=False), op(3, write=True, more=(2,)), True),
            (op(1, write=True, more=(2,)), op(3, write=True, more=(4,)), False),
            (op(LOCAL, write=True, more=(5,)), op(5, write=False), True),
            (op(LOCAL, write=True, more=(5,)), op(LOCAL, write=True), False),
            (op(1, write=False, more=(2,)), op(2, write=False), False),
        ],
    )
    def test_dependence_needs_a_common_object_and_a_write(
        self, a: Op, b: Op, expected: bool
    ) -> None:
        """Ops are dependent iff they share a non-LOCAL object and one writes."""
        assert expected == dependent(a, b)
        assert expected == dependent(b, a)


class TestOp:
    def test_describe_names_the_function_and_object(self) -> None:
        """describe() is func(object name), or func() without an object."""
        cell = Cell("hmm->seq", 0)

        assert (
            "READ_ONCE(hmm->seq)"
            == Op(OpKind.READ, cell.oid, False, "READ_ONCE", cell).describe()
        )
        assert "msleep()" == Op(OpKind.SLEEP, LOCAL, False, "msleep").describe()

    def test_repr_shows_kind_description_oid_and_mode(self) -> None:
        """repr(Op) is stable and free of addresses."""
        assert "Op(SLEEP, msleep(), oid=-1, write=False)" == repr(
            Op(OpKind.SLEEP, LOCAL, False, "msleep")
        )

    def test_defaults(self) -> None:
        """An Op without guard, extra objects or timing has those defaults."""
        plain = Op(OpKind.YIELD, LOCAL, False, "schedule")

        assert (None, None, (), False) == (
            plain.obj,
            plain.guard,
            plain.more_oids,
            plain.timed,
        )
