"""Tests for the import layering of `hmmsim` (docs/architecture.md, "Layers").

Every module under ``src/hmmsim`` is parsed with `ast`; no module is imported.
A layer is the first name after ``hmmsim``: ``hmmsim.engine.trace`` belongs to
``engine``, ``hmmsim.errors`` to ``errors``. Layers that do not exist yet are
simply absent from the tree and so are not checked.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from importlib.util import resolve_name
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = "hmmsim"
PACKAGE_DIR: Final = Path(__file__).resolve().parents[2] / "src" / PACKAGE

# Facade modules sit on top and may import any layer.
# service is the service layer every front end calls (targets, running,
# replay, report files); parallel runs the CLI's explorations; driverkit and
# pytest_plugin are parts of the public API for user models (re-exported by, or
# built on, hmmsim.api); store (the counterexample store), pin (regression
# tests) and crosscheck (compare's cross-variant replays) serve the CLI.
FACADES: Final = frozenset(
    {
        "__init__",
        "__main__",
        "cli",
        "api",
        "service",
        "parallel",
        "driverkit",
        "pytest_plugin",
        "store",
        "pin",
        "crosscheck",
    }
)

# Layer -> the layers its modules may import (itself included where allowed).
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "errors": frozenset({"errors"}),
    "config": frozenset({"errors", "config"}),
    "engine": frozenset({"errors", "config", "engine"}),
    "sync": frozenset({"engine", "errors", "sync"}),
    "kernel": frozenset({"sync", "kernel", "errors"}),
    "oracle": frozenset({"kernel", "engine", "oracle", "errors"}),
    "scenarios": frozenset(
        {"kernel", "oracle", "sync", "engine", "scenarios", "errors", "config"}
    ),
    # The run result of the service layer (ScenarioRun): data that report renders.
    "runs": frozenset({"engine", "errors", "config", "scenarios", "runs"}),
    "report": frozenset(
        {
            "engine",
            "oracle",
            "report",
            "errors",
            "config",
            "scenarios",
            "runs",
            "museum",
        }
    ),
    # The race museum: exhibits pin scenarios (and may define them) to fixes.
    "museum": frozenset(
        {
            "kernel",
            "oracle",
            "sync",
            "engine",
            "scenarios",
            "errors",
            "config",
            "runs",
            "museum",
        }
    ),
    # Imports user model files by path; the CLI and the api facade use it.
    "loader": frozenset({"scenarios", "errors", "loader"}),
    # Where DPOR work units run (this process, forked workers, Dask); parallel
    # calls it.  Dask is imported only inside it, and only with hmmsim[cluster].
    "backends": frozenset(
        {"engine", "scenarios", "loader", "config", "errors", "backends"}
    ),
}

# The model and the engine stay dependency-free (style.md): these layers may
# import only the standard library and hmmsim itself.
STDLIB_ONLY: Final = frozenset({"errors", "config", "engine", "sync", "kernel"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Import:
    """One imported module, as written in a source file."""

    module: str
    lineno: int


def module_name(path: Path) -> str:
    """Return the dotted module name of a file under `PACKAGE_DIR`."""
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def layer_of(module: str) -> str:
    """Return the layer of a dotted name inside the package.

    ``hmmsim`` itself is the package facade, named ``__init__``.
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def resolve_from(node: ast.ImportFrom, *, importer: str, is_package: bool) -> str:
    """Return the absolute module named by a ``from ... import`` statement."""
    package = importer if is_package else importer.rpartition(".")[0]
    return resolve_name("." * node.level + (node.module or ""), package)


def from_package(name: str) -> str:
    """Return what ``from hmmsim import <name>`` imports.

    A layer name imports that layer; any other name (``__version__``) comes
    from the package facade, ``hmmsim/__init__.py``.
    """
    is_layer = name in ALLOWED or name in FACADES
    return f"{PACKAGE}.{name}" if is_layer else PACKAGE


def imports_of(source: str, *, importer: str, is_package: bool) -> list[Import]:
    """List the absolute name of every module a source imports, at any depth."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(module=a.name, lineno=node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(node, importer=importer, is_package=is_package)
            if base == PACKAGE:
                found.extend(
                    Import(module=from_package(a.name), lineno=node.lineno)
                    for a in node.names
                )
            else:
                found.append(Import(module=base, lineno=node.lineno))
    return found


def layering_violations(
    source: str, *, importer: str, is_package: bool = False
) -> list[str]:
    """Return one message per import that breaks the layering table."""
    layer = layer_of(importer)
    if layer in FACADES:
        return []
    allowed = ALLOWED.get(layer)
    if allowed is None:
        return [f"{importer}: layer {layer!r} has no entry in ALLOWED"]
    messages = []
    for imp in imports_of(source, importer=importer, is_package=is_package):
        top = imp.module.split(".")[0]
        if top == PACKAGE and imp.module != PACKAGE:
            target = layer_of(imp.module)
            if target not in allowed:
                messages.append(
                    f"{importer}:{imp.lineno}: {layer} may not import {imp.module}"
                    f" (layer {target!r}; allowed: {', '.join(sorted(allowed))})"
                )
        elif top == PACKAGE:
            messages.append(
                f"{importer}:{imp.lineno}: {layer} may not import the package facade"
            )
        elif layer in STDLIB_ONLY and top not in sys.stdlib_module_names:
            messages.append(
                f"{importer}:{imp.lineno}: {layer} must stay dependency-free"
                f" but imports {imp.module}"
            )
    return messages


SOURCES: Final = sorted(PACKAGE_DIR.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_module_imports_follow_the_layering(path: Path) -> None:
    """A module imports only the layers its own layer may depend on."""
    violations = layering_violations(
        path.read_text(encoding="utf-8"),
        importer=module_name(path),
        is_package=path.name == "__init__.py",
    )

    assert [] == violations


class TestLayeringViolations:
    """Tests for `layering_violations`, so the rule cannot pass vacuously."""

    def test_engine_importing_kernel_is_reported(self) -> None:
        """An engine module importing the kernel model is a violation."""
        source = "from hmmsim.kernel.hmm import hmm_range_fault\n"

        violations = layering_violations(source, importer="hmmsim.engine.execution")

        assert 1 == len(violations)
        assert "engine may not import hmmsim.kernel.hmm" in violations[0]

    def test_allowed_imports_are_accepted(self) -> None:
        """Imports along the allowed directions, and the stdlib, pass."""
        source = (
            "from __future__ import annotations\n"
            "import enum\n"
            "from hmmsim.sync import spinlock\n"
            "from hmmsim import errors\n"
            "import hmmsim.kernel.debug\n"
        )

        assert [] == layering_violations(source, importer="hmmsim.kernel.hmm")

    def test_name_imported_from_the_package_is_resolved(self) -> None:
        """``from hmmsim import report`` counts as importing the report layer."""
        source = "from hmmsim import report\n"

        violations = layering_violations(source, importer="hmmsim.sync.mutex")

        assert 1 == len(violations)
        assert "layer 'report'" in violations[0]

    def test_import_inside_a_function_is_found(self) -> None:
        """A deferred import inside a function body is checked too."""
        source = "def f() -> None:\n    import hmmsim.scenarios\n"

        violations = layering_violations(source, importer="hmmsim.oracle.checker")

        assert ["hmmsim.oracle.checker:2"] == [v.split(": ")[0] for v in violations]

    def test_relative_import_is_resolved_before_checking(self) -> None:
        """A relative import that reaches another layer is reported."""
        source = "from ...kernel import hmm\n"

        violations = layering_violations(
            source, importer="hmmsim.engine.strategies.dfs"
        )

        assert 1 == len(violations)
        assert "may not import hmmsim.kernel " in violations[0]

    def test_third_party_import_in_engine_is_reported(self) -> None:
        """The engine may not depend on packages outside the standard library."""
        violations = layering_violations(
            "import rich\n", importer="hmmsim.engine.runner"
        )

        assert 1 == len(violations)
        assert "dependency-free" in violations[0]

    def test_third_party_import_in_report_is_accepted(self) -> None:
        """The report layer may use third-party libraries such as rich."""
        source = "import rich.table\nimport jinja2\n"

        assert [] == layering_violations(source, importer="hmmsim.report.text")

    def test_facade_import_below_the_top_is_reported(self) -> None:
        """An inner layer importing the ``hmmsim`` facade itself is reported."""
        violations = layering_violations(
            "from hmmsim import __version__\n", importer="hmmsim.report.json"
        )

        assert 1 == len(violations)

    def test_package_facade_import_is_reported_once_per_name(self) -> None:
        """``from hmmsim import a, b`` checks each name on its own."""
        source = "from hmmsim import errors, __version__\n"

        violations = layering_violations(source, importer="hmmsim.sync.spinlock")

        assert ["hmmsim.sync.spinlock:1: sync may not import the package facade"] == (
            violations
        )

    def test_facades_may_import_anything(self) -> None:
        """The CLI imports every layer without a violation."""
        source = "import rich\nfrom hmmsim import kernel, report, scenarios\n"

        assert [] == layering_violations(source, importer="hmmsim.cli")

    def test_unknown_layer_is_reported(self) -> None:
        """A module of a layer missing from the table is reported, not skipped."""
        violations = layering_violations("", importer="hmmsim.gui.window")

        assert ["hmmsim.gui.window: layer 'gui' has no entry in ALLOWED"] == violations


class TestImportsOf:
    """Tests for `imports_of`: which absolute modules a source names."""

    @pytest.mark.parametrize(
        ("source", "importer", "is_package", "expected"),
        [
            (
                "from . import dfs",
                "hmmsim.engine.strategies",
                True,
                "hmmsim.engine.strategies",
            ),
            (
                "from .dfs import X",
                "hmmsim.engine.strategies.pct",
                False,
                "hmmsim.engine.strategies.dfs",
            ),
            (
                "from ..trace import Step",
                "hmmsim.engine.strategies.pct",
                False,
                "hmmsim.engine.trace",
            ),
            (
                "from ..kernel import hmm",
                "hmmsim.engine.strategies",
                True,
                "hmmsim.engine.kernel",
            ),
            ("from .. import kernel", "hmmsim.sync.mutex", False, "hmmsim.kernel"),
            ("from hmmsim import __version__", "hmmsim.report", True, "hmmsim"),
            (
                "import hmmsim.engine.trace",
                "hmmsim.report.text",
                False,
                "hmmsim.engine.trace",
            ),
        ],
    )
    def test_module_names_are_absolute(
        self, source: str, importer: str, is_package: bool, expected: str
    ) -> None:
        """Relative imports resolve against the importer's package, as Python does."""
        imports = imports_of(source, importer=importer, is_package=is_package)

        assert [expected] == [imp.module for imp in imports]
