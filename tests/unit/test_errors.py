"""Tests for `hmmsim.errors`."""

from __future__ import annotations

import pytest

from hmmsim import errors
from hmmsim.errors import (
    INTERNAL_BUG_TAG,
    ConfigError,
    HmmsimError,
    InternalError,
    ReplayDiverged,
    ReplayError,
    ScenarioError,
)


class TestHierarchy:
    @pytest.mark.parametrize(
        ("cls", "bases"),
        [
            (ConfigError, (HmmsimError, ValueError)),
            (ScenarioError, (HmmsimError, TypeError)),
            (ReplayError, (HmmsimError,)),
            (ReplayDiverged, (ReplayError, HmmsimError)),
            (InternalError, (HmmsimError,)),
        ],
    )
    def test_each_error_sits_where_the_tree_says(
        self, cls: type[Exception], bases: tuple[type[Exception], ...]
    ) -> None:
        """Every exception class derives from the bases drawn in the module docstring."""
        assert all(issubclass(cls, base) for base in bases)

    def test_the_docstring_draws_every_class(self) -> None:
        """Each public exception class appears in the module docstring's tree."""
        doc = errors.__doc__ or ""

        assert all(name in doc for name in errors.__all__ if name != "INTERNAL_BUG_TAG")

    def test_errors_are_not_internal_by_accident(self) -> None:
        """User and replay errors are not InternalError."""
        assert not issubclass(ConfigError, InternalError)
        assert not issubclass(ReplayDiverged, InternalError)


class TestInternalError:
    def test_the_message_carries_the_internal_bug_tag(self) -> None:
        """InternalError prefixes its message with [hmmsim internal bug]."""
        assert "[hmmsim internal bug] broken" == str(InternalError("broken"))
        assert "[hmmsim internal bug]" == INTERNAL_BUG_TAG
