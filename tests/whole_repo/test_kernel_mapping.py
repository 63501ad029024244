"""docs/kernel-mapping.md lists every public kernel symbol, and only existing ones.

Every Python symbol in the table (``module.qualname`` under ``hmmsim.kernel``)
must resolve; every public module-level function or class defined in
``src/hmmsim/kernel/`` (``drivers/`` included when it exists) must have a row.
Kernel names with a ``__`` prefix count as public.  Modules are parsed with
`ast` for the second check, so a symbol counts where it is defined, not where
it is re-exported.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
KERNEL: Final = ROOT / "src" / "hmmsim" / "kernel"
MAPPING: Final = ROOT / "docs" / "kernel-mapping.md"
ROW: Final = re.compile(r"^\|[^|]*\|\s*`([A-Za-z0-9_.]+)`\s*\|")


def table_symbols() -> list[str]:
    """Return the Python symbols of the table rows, in order."""
    text = MAPPING.read_text(encoding="utf-8")
    return [m.group(1) for line in text.splitlines() if (m := ROW.match(line))]


def is_public(name: str) -> bool:
    """Kernel names: ``__x`` is public (C spelling), ``_x`` is private."""
    return not name.startswith("_") or name.startswith("__")


def defined_symbols() -> list[str]:
    """Return ``module.name`` for every public top-level function or class."""
    found: list[str] = []
    for path in sorted(KERNEL.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        module = ".".join(path.relative_to(KERNEL).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found.extend(
            f"{module}.{node.name}"
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and is_public(node.name)
        )
    return found


def resolves(symbol: str) -> bool:
    """Return whether ``hmmsim.kernel.<symbol>`` names an attribute of a module."""
    parts = symbol.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(
                "hmmsim.kernel." + ".".join(parts[:cut])
            )
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_table_is_not_empty() -> None:
    """The table has rows (the regex did not silently match nothing)."""
    assert len(table_symbols()) > 50


@pytest.mark.parametrize("symbol", table_symbols())
def test_symbol_in_table_exists(symbol: str) -> None:
    """Each Python symbol named in the table exists."""
    if symbol.startswith("drivers.") and not (KERNEL / "drivers").is_dir():
        pytest.skip("kernel/drivers/ is not in this tree")
    assert resolves(symbol), (
        f"{symbol} is in docs/kernel-mapping.md but not in the code"
    )


def test_every_public_symbol_has_a_row() -> None:
    """Each public module-level function or class of kernel/ is in the table."""
    missing = sorted(set(defined_symbols()) - set(table_symbols()))

    assert [] == missing


def test_no_symbol_is_listed_twice() -> None:
    """A symbol has one row."""
    symbols = table_symbols()

    assert sorted({s for s in symbols if symbols.count(s) > 1}) == []
