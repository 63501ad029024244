"""Tests for `hmmsim.oracle.kinds`."""

from __future__ import annotations

import re

import pytest

from hmmsim.errors import ScenarioError
from hmmsim.oracle import KINDS, explain, is_known, register_kind

CATALOGUE = (
    "device-use-after-free",
    "device-stale-mapping",
    "notifier-contract",
    "notifier-leak",
    "range-stuck-invalid",
    "sleep-in-nonblockable",
    "deadlock",
    "hang",
    "fault-livelock",
    "stale-tlb",
    "lock-order",
    "warn",
    "bug",
    "null-deref",
    "lock-leak",
    "bad-unlock",
    "lockdep",
    "kref",
    "use-after-free",
    "double-free",
    "range-leak",
    "mm-users-leak",
    "mm-count-leak",
    "invalidation-open",
    "kmemleak",
    "notifier-after-unbind",
    "device-pte-after-unbind",
    "subscriptions-leak",
    "exception",
    "hung-task",
)


class TestCatalogue:
    def test_catalogue_has_exactly_the_stable_kinds(self) -> None:
        """The built-in catalogue lists the published kinds, in order."""
        assert CATALOGUE == tuple(KINDS)

    @pytest.mark.parametrize("kind", CATALOGUE)
    def test_each_explanation_is_one_sentence(self, kind: str) -> None:
        """Every explanation is one line ending with a full stop."""
        text = explain(kind)

        assert re.fullmatch(r"[A-Z][^\n]*\.", text)
        assert is_known(kind)

    def test_unknown_kind_gets_a_generic_sentence(self) -> None:
        """A kind nobody registered is explained generically, not an error."""
        assert "A property of the model named 'torn' was violated." == explain("torn")
        assert not is_known("torn")


class TestRegisterKind:
    def test_registered_kind_is_explained(self) -> None:
        """A user kind gets its explanation; registering it again is fine."""
        register_kind("test-only-kind", "Something test-only went wrong.")
        register_kind("test-only-kind", "Something test-only went wrong.")

        assert "Something test-only went wrong." == explain("test-only-kind")

    @pytest.mark.parametrize(
        ("kind", "text", "message"),
        [
            ("Bad Kind", "x.", "lower-case words"),
            ("ok-kind", "", "one-line explanation"),
            ("ok-kind", "two\nlines", "one-line explanation"),
            ("deadlock", "Something else.", "already defined"),
        ],
    )
    def test_bad_registration_raises(self, kind: str, text: str, message: str) -> None:
        """Bad names, empty texts and redefinitions raise ScenarioError."""
        with pytest.raises(ScenarioError, match=message):
            register_kind(kind, text)
