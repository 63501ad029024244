"""Tests for the museum's exhibit definition and registry (hmmsim.museum)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hmmsim import museum
from hmmsim.errors import ConfigError, ScenarioError

FIELDS: dict[str, Any] = {
    "slug": "test-exhibit",
    "commit": "0123456789ab",
    "subject": "mm/test: fix a race",
    "release": "v5.4",
    "date": "2019-08-01",
    "scenario": "fault-vs-munmap",
    "before": "v5.3",
    "after": "v5.5",
    "kinds": ("device-use-after-free",),
    "columns": ("cpu0", "cpu1"),
    "summary": "A race.",
    "rule": "Hold the lock.",
    "checked": "Checked by hand.",
    "bounds": "one page",
}


def test_a_valid_exhibit_builds() -> None:
    """A complete definition makes an Exhibit with the given fields."""
    item = museum.Exhibit(**FIELDS)
    assert item.commit == "0123456789ab"
    assert item.columns == ("cpu0", "cpu1")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slug", "Bad Slug", "slug"),
        ("commit", "0123", "12 hex"),
        ("date", "2019/08/01", "YYYY-MM-DD"),
        ("release", "5.4", "v5.3"),
        ("kinds", (), "kinds"),
        ("after", "v5.3", "one variant"),
        ("rule", "  ", "rule is empty"),
    ],
)
def test_bad_definitions_are_refused(field: str, value: object, message: str) -> None:
    """Each malformed field is refused with a message naming it."""
    with pytest.raises(ScenarioError, match=message):
        museum.Exhibit(**{**FIELDS, field: value})


def test_registry_orders_by_date_and_refuses_duplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exhibits come oldest first; a second slug or commit is refused."""
    monkeypatch.setattr(museum, "_EXHIBITS", {})
    monkeypatch.setattr(museum, "_LOADED", [True])
    late = museum.register_exhibit(museum.Exhibit(**FIELDS))
    early = museum.register_exhibit(
        dataclasses.replace(
            late, slug="early", commit="ba9876543210", date="2018-01-01"
        )
    )
    assert museum.exhibits() == [early, late]
    assert museum.exhibit("early") is early
    with pytest.raises(ScenarioError, match="registered twice"):
        museum.register_exhibit(dataclasses.replace(late, slug="other"))
    with pytest.raises(
        ConfigError, match="unknown exhibit 'nope' \\(known: early, test-exhibit\\)"
    ):
        museum.exhibit("nope")
