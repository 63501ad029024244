"""The pre-patch module differs from the v5.3 one exactly where the seed patch does."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

KERNEL: Final = Path(__file__).resolve().parents[3] / "src" / "hmmsim" / "kernel"

# The seed patch touches struct hmm (the lock field), hmm_get_or_create (its
# initialisation), adds notifiers_decrement, and rewrites the start, end,
# range register and range unregister functions.
PATCHED: Final = frozenset(
    {
        "Hmm",
        "hmm_get_or_create",
        "notifiers_decrement",
        "hmm_invalidate_range_start",
        "hmm_invalidate_range_end",
        "hmm_range_register",
        "hmm_range_unregister",
    }
)


def top_level_sources(path: Path) -> dict[str, str]:
    """Map each top-level function, class and assignment to its source text."""
    source = path.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[node.name] = ast.get_source_segment(source, node) or ""
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id != "__all__":
                    found[target.id] = ast.get_source_segment(source, node) or ""
    return found


def test_differing_definitions_are_exactly_the_patched_ones() -> None:
    """Only the definitions the seed patch changes differ between the modules."""
    before = top_level_sources(KERNEL / "hmm_prepatch.py")
    after = top_level_sources(KERNEL / "hmm.py")

    differing = {
        name
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name)
    }

    assert PATCHED == differing


def test_definitions_appear_in_the_same_order() -> None:
    """Both modules define the shared names in the same order (a readable diff)."""
    before = list(top_level_sources(KERNEL / "hmm_prepatch.py"))
    after = list(top_level_sources(KERNEL / "hmm.py"))

    assert [n for n in after if n in before] == before
