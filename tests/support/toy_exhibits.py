"""Toy exhibits on the toy counter (racy before, locked after), for museum tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hmmsim import museum

#: The racy counter loses an update; the mutex fixes it.
TOY = museum.Exhibit(
    slug="toy-counter",
    commit="0123456789ab",
    subject="counter: take the lock around the increment",
    release="v5.4",
    date="2019-08-01",
    scenario="counter",
    before="buggy",
    after="fixed",
    kinds=("lost-update",),
    columns=("incr0", "incr1"),
    summary="Two increments read the same value.",
    rule="Hold the lock across read and write.",
    checked="Both tasks read 0 and write 1.",
    bounds="two increments",
)

#: An exhibit whose after side still fails: it never holds its pin.
BROKEN = dataclasses.replace(
    TOY, slug="toy-broken", commit="ba9876543210", after="buggy", before="fixed"
)


@contextmanager
def toy_museum(
    monkeypatch: pytest.MonkeyPatch, *items: museum.Exhibit
) -> Iterator[None]:
    """Make ``items`` (default: TOY) the only exhibits inside the block."""
    monkeypatch.setattr(museum, "_EXHIBITS", {e.slug: e for e in items or (TOY,)})
    monkeypatch.setattr(museum, "_LOADED", [True])
    yield
