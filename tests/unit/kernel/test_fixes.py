"""Tests for the patch switches of museum exhibits (hmmsim.kernel.fixes)."""

from __future__ import annotations

import pytest

from hmmsim.errors import ModelError
from hmmsim.kernel.fixes import FIXES, check_fixes, fix_applied
from hmmsim.scenarios._world import World

SELF_TEST = "000000000000"


def test_every_fix_is_applied_by_default() -> None:
    """A world built without reverted fixes carries every listed fix."""
    world = World.create("current")
    assert world.mm.reverted_fixes == frozenset()
    assert all(fix_applied(world.mm, commit) for commit in FIXES)


def test_a_reverted_fix_is_not_applied() -> None:
    """World.create(reverted_fixes=...) leaves exactly that fix out."""
    world = World.create("v5.3", reverted_fixes=[SELF_TEST])
    assert world.mm.reverted_fixes == {SELF_TEST}
    assert not fix_applied(world.mm, SELF_TEST)


def test_unknown_fix_ids_are_model_errors() -> None:
    """A typo in a commit id fails loudly, when building and when asking."""
    with pytest.raises(ModelError, match="unknown fix 'deadbeef0000'"):
        check_fixes(["deadbeef0000"])
    with pytest.raises(ModelError, match="unknown fix 'deadbeef0000'"):
        World.create("current", reverted_fixes=["deadbeef0000"])
    world = World.create("current")
    with pytest.raises(ModelError, match="unknown fix"):
        fix_applied(world.mm, "deadbeef0000")


def test_fixes_lists_twelve_digit_ids_with_subjects() -> None:
    """Every switch is a 12-digit lower-case id with a non-empty subject."""
    for commit, subject in FIXES.items():
        assert len(commit) == 12
        assert int(commit, 16) >= 0
        assert commit == commit.lower()
        assert subject.strip()
