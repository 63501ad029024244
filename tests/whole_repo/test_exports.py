"""Tests for the public surface of the `hmmsim` package (``__all__``)."""

from __future__ import annotations

from types import ModuleType

import hmmsim

# Dunder names that are part of the public surface.
PUBLIC_DUNDERS = frozenset({"__version__"})


def test_all_is_exactly_the_sorted_public_names() -> None:
    """``hmmsim.__all__`` lists every public attribute, sorted, and nothing else."""
    public = {
        name
        for name, value in vars(hmmsim).items()
        if (not name.startswith("_") or name in PUBLIC_DUNDERS)
        and not isinstance(value, ModuleType)  # subpackages appear once imported
        and name != "annotations"  # from __future__ import annotations
    }

    assert sorted(public) == hmmsim.__all__
