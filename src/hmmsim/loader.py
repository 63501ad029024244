"""Load scenarios from a user's Python file, by path.

``hmmsim check my_model.py`` and :func:`hmmsim.api.load_file` import the file
under a unique module name derived from its resolved path, and collect the
scenarios it defines, in this order of preference:

1. a module-level ``SCENARIOS`` list (or tuple) of :class:`Scenario` objects:
   exactly those, in that order;
2. otherwise every scenario registered while the file was imported (with
   ``register`` or the ``@scenario`` decorator), then every other
   :class:`Scenario` bound to a module-level name.

Scenarios registered by a user file are *collected*, not added to the global
registry, so loading a file twice is fine and a user scenario may reuse the
name of a built-in one.  Every failure is a one-line
:class:`~hmmsim.errors.ConfigError` (the file is missing) or
:class:`~hmmsim.errors.ScenarioError` (it does not import, or defines no
scenario), never a traceback.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from hmmsim.errors import ConfigError, ScenarioError
from hmmsim.scenarios import Scenario, collecting

__all__ = ["is_file_target", "load_file", "select", "split_target"]


def is_file_target(target: str) -> bool:
    """Return whether a command-line target names a file rather than a scenario.

    Scenario names cannot contain a dot, a slash or a backslash, so anything
    that does (``model.py``, ``model.py:NAME``, ``dir/model``) is a path.
    """
    return any(char in target for char in "./\\")


def split_target(target: str) -> tuple[str, str | None]:
    """Split ``PATH.py:NAME`` into the path and the scenario name (or None)."""
    path, sep, name = target.rpartition(".py:")
    if sep and name and "/" not in name:
        return path + ".py", name
    return target, None


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return f"hmmsim_user_{digest}"


def _where(exc: BaseException, path: Path) -> str:
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path
    ]
    return f":{frames[-1].lineno}" if frames else ""


def _import(path: Path, shown: str) -> tuple[ModuleType, list[Scenario]]:
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"{shown}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with collecting() as registered:
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ScenarioError(f"{shown}:{exc.lineno}: syntax error: {exc.msg}") from None
    except (ConfigError, ScenarioError) as exc:
        del sys.modules[name]
        raise ScenarioError(f"{shown}{_where(exc, path)}: {exc}") from None
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise ScenarioError(
            f"{shown}{_where(exc, path)}: importing it raised "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return module, registered


def _collect(
    module: ModuleType, registered: list[Scenario], shown: str
) -> list[Scenario]:
    declared = getattr(module, "SCENARIOS", None)
    if declared is not None:
        if not isinstance(declared, list | tuple) or not all(
            isinstance(s, Scenario) for s in declared
        ):
            raise ScenarioError(
                f"{shown}: SCENARIOS must be a list of Scenario objects"
            )
        found = list(declared)
    else:
        found = list(registered)
        found += [
            v
            for v in vars(module).values()
            if isinstance(v, Scenario) and v not in found
        ]
    unique: list[Scenario] = []
    for item in found:
        if item in unique:
            continue
        if any(s.name == item.name for s in unique):
            raise ScenarioError(f"{shown}: two scenarios are named {item.name!r}")
        unique.append(item)
    if not unique:
        raise ScenarioError(
            f"{shown} defines no scenario (define SCENARIOS = [...], a module-level "
            "Scenario, or use the hmmsim.api.scenario decorator)"
        )
    return unique


def load_file(path: str | Path) -> list[Scenario]:
    """Import the Python file at ``path`` and return the scenarios it defines.

    Raises:
        ConfigError: the file does not exist or is not a regular file.
        ScenarioError: the file does not import (syntax error, exception,
            bad scenario definition) or defines no scenario.
    """
    shown = str(path)
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise ConfigError(f"{shown}: no such file")
    if not resolved.is_file():
        raise ConfigError(f"{shown}: not a regular file")
    module, registered = _import(resolved, shown)
    return _collect(module, registered, shown)


def select(scenarios: list[Scenario], name: str | None, shown: str) -> list[Scenario]:
    """Return the scenario called ``name`` from a loaded file, or all when None.

    Raises:
        ConfigError: the file has no scenario of that name.
    """
    if name is None:
        return scenarios
    for item in scenarios:
        if item.name == name:
            return [item]
    known = ", ".join(s.name for s in scenarios)
    raise ConfigError(f"{shown} has no scenario {name!r} (it defines: {known})")
