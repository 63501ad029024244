"""Tests for `hmmsim.engine.clock`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmmsim.engine.clock import VectorClock

entries = st.lists(st.integers(min_value=0, max_value=5), max_size=4)


class TestVectorClock:
    def test_missing_entries_are_zero(self) -> None:
        """A task the clock has no entry for reads as 0."""
        clock = VectorClock([3])

        assert (3, 0, 0) == (clock.get(0), clock.get(1), clock.get(7))

    def test_negative_entries_are_rejected(self) -> None:
        """Entries are step positions, never negative."""
        with pytest.raises(ValueError, match="must be >= 0"):
            VectorClock([1, -1])

    def test_set_grows_the_clock(self) -> None:
        """Setting the entry of a task beyond the end pads with zeros."""
        clock = VectorClock()
        clock.set(2, 5)

        assert (0, 0, 5) == clock.entries()

    def test_entries_never_decrease(self) -> None:
        """Setting an entry below its current value is refused."""
        clock = VectorClock([4])

        with pytest.raises(ValueError, match="cannot go back from 4 to 2"):
            clock.set(0, 2)

    def test_covers_is_the_happens_before_test_for_one_step(self) -> None:
        """Entry t = 1 + index of t's last step that happens before: step 2 is in, 3 is not."""
        clock = VectorClock([0, 3])

        assert (True, False, False) == (
            clock.covers(1, 2),
            clock.covers(1, 3),
            clock.covers(5, 0),
        )

    def test_join_is_the_pointwise_maximum(self) -> None:
        """Joining takes the larger entry of each task, padding the shorter clock."""
        clock = VectorClock([1, 4])
        clock.join(VectorClock([3, 2, 7]))

        assert (3, 4, 7) == clock.entries()

    def test_joined_leaves_both_operands_alone(self) -> None:
        """``joined`` returns a new clock and changes neither operand."""
        left = VectorClock([1])
        right = VectorClock([0, 2])

        assert ((1, 2), (1,), (0, 2)) == (
            left.joined(right).entries(),
            left.entries(),
            right.entries(),
        )

    def test_copy_is_independent(self) -> None:
        """Changing a copy does not change the original."""
        original = VectorClock([1])
        copy = original.copy()
        copy.set(0, 9)

        assert (1,) == original.entries()

    def test_trailing_zeros_do_not_matter(self) -> None:
        """Clocks compare by value: [1, 0] equals [1]."""
        assert VectorClock([1, 0]) == VectorClock([1])
        assert "VectorClock([1])" == repr(VectorClock([1, 0, 0]))

    def test_order_and_concurrency(self) -> None:
        """[1, 0] happens before [1, 2]; [1, 0] and [0, 1] are concurrent."""
        early = VectorClock([1, 0])
        late = VectorClock([1, 2])
        other = VectorClock([0, 1])

        assert (True, True, False, True, False) == (
            early <= late,
            early < late,
            late <= early,
            early.concurrent(other),
            early.concurrent(late),
        )

    def test_not_comparable_with_other_types(self) -> None:
        """Comparing with a non-clock is not supported."""
        clock = VectorClock([1])

        assert clock != (1,)
        with pytest.raises(TypeError):
            _ = clock <= (1,)
        with pytest.raises(TypeError):
            _ = clock < (1,)

    def test_clocks_are_unhashable(self) -> None:
        """A mutable clock cannot be a dict key."""
        with pytest.raises(TypeError):
            hash(VectorClock())

    @given(entries, entries)
    def test_join_is_the_least_upper_bound(self, a: list[int], b: list[int]) -> None:
        """The join is above both operands and equals one of them when they are ordered."""
        left = VectorClock(a)
        right = VectorClock(b)
        joined = left.joined(right)

        assert left <= joined
        assert right <= joined
        if left <= right:
            assert right == joined

    @given(entries, entries)
    def test_exactly_one_relation_holds(self, a: list[int], b: list[int]) -> None:
        """Two clocks are equal, strictly ordered one way, or concurrent."""
        left = VectorClock(a)
        right = VectorClock(b)
        relations = [left == right, left < right, right < left, left.concurrent(right)]

        assert 1 == relations.count(True)
