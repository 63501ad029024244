"""The scenario registry: name -> :class:`Scenario`, used by the CLI and reports.

Built-in scenarios live in ``hmmsim/scenarios/<name>.py`` modules listed in
:data:`BUILTIN_MODULES`; each registers its scenarios at import time with
:func:`register` (or the :func:`scenario` decorator).  The modules are
imported on the first lookup, in the order listed, and scenarios keep their
registration order.  A built-in module that fails to import is an
:class:`~hmmsim.errors.InternalError`, never silently skipped.

Adding a built-in scenario:

1. write ``src/hmmsim/scenarios/<name>.py`` that calls ``register(Scenario(...))``
   at module level (or decorates its build function with ``@scenario(...)``);
2. add ``"hmmsim.scenarios.<name>"`` to :data:`BUILTIN_MODULES`.

Groups.  ``check --all`` and ``list`` show the scenarios of the main group
(:data:`~hmmsim.scenarios.base.MAIN_GROUP`, the matrix).  The race museum's
scenarios (``Scenario(group=MUSEUM_GROUP)``) live in the modules of the
package :data:`MUSEUM_PACKAGE` (``src/hmmsim/scenarios/museum/<name>.py``,
found without a list, imported in name order).  They are imported only when
a lookup by name misses among the built-ins (``check NAME``, ``replay``,
pinned tokens, a cluster worker) or when :func:`all_scenarios` is asked for
another group or every group, so the matrix neither runs nor imports them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Final

from hmmsim.engine import Instance
from hmmsim.errors import ConfigError, InternalError, ScenarioError
from hmmsim.scenarios.base import (
    MAIN_GROUP,
    MUSEUM_GROUP,
    MUSEUM_PACKAGE,
    NAME_PATTERN,
    Scenario,
)

__all__ = [
    "BUILTIN_MODULES",
    "MAIN_GROUP",
    "MUSEUM_GROUP",
    "MUSEUM_PACKAGE",
    "NAME_PATTERN",
    "Registry",
    "Scenario",
    "all_scenarios",
    "collecting",
    "get",
    "register",
    "registry",
    "scenario",
    "use_registry",
]

#: Modules that define the built-in scenarios, imported in this order.
BUILTIN_MODULES: Final[tuple[str, ...]] = (
    "hmmsim.scenarios.oom_vs_driver_lock",
    "hmmsim.scenarios.oom_vs_mirror_unregister",
    "hmmsim.scenarios.oom_two_mirrors",
    "hmmsim.scenarios.fault_vs_munmap",
    "hmmsim.scenarios.concurrent_invalidations",
    "hmmsim.scenarios.exit_vs_fault",
    "hmmsim.scenarios.fault_vs_oom_reap",
    "hmmsim.scenarios.oom_hmm_and_kvm",
    "hmmsim.scenarios.fault_on_readonly_vma",
    "hmmsim.scenarios.oom_vs_nouveau_fault",
    "hmmsim.scenarios.fault_vs_reclaim",
    "hmmsim.scenarios.fault_vs_mprotect",
    "hmmsim.scenarios.fault_vs_fork",
    "hmmsim.scenarios.exit_vs_device_access",
    "hmmsim.scenarios.unbind_vs_fault",
    "hmmsim.scenarios.two_pages",
)


class Registry:
    """Scenarios by name, in registration order, with lazily imported modules.

    The ``builtin_modules`` are imported on the first lookup; the modules of
    the ``lazy_packages`` (scenarios outside the main group) only when a
    name is not found among the rest, or when a group other than the main
    one is listed.
    """

    def __init__(
        self,
        builtin_modules: tuple[str, ...] = BUILTIN_MODULES,
        lazy_packages: tuple[str, ...] = (),
    ) -> None:
        """Make an empty registry that imports its modules on first use."""
        self.builtin_modules = builtin_modules
        self.lazy_packages = lazy_packages
        self._scenarios: dict[str, Scenario] = {}
        self._loaded = not builtin_modules
        self._lazy_loaded = not lazy_packages

    def register(self, scenario: Scenario) -> Scenario:
        """Add ``scenario`` and return it.

        Raises:
            ScenarioError: another scenario already has that name.
        """
        if not isinstance(scenario, Scenario):
            raise ScenarioError(f"register() needs a Scenario, got {scenario!r}")
        known = self._scenarios.get(scenario.name)
        if known is not None and known is not scenario:
            raise ScenarioError(f"scenario {scenario.name!r} is registered twice")
        self._scenarios[scenario.name] = scenario
        return scenario

    def load_builtins(self) -> None:
        """Import the built-in scenario modules once.

        Raises:
            InternalError: a built-in module failed to import; chained to the cause.
        """
        if self._loaded:
            return
        for module in self.builtin_modules:
            _import(module, "built-in scenario module")
        self._loaded = True

    def load_lazy(self) -> None:
        """Import every module of the lazy packages once (after the built-ins).

        The modules register into this registry, whichever is active.

        Raises:
            InternalError: a module failed to import; chained to the cause.
        """
        self.load_builtins()
        if self._lazy_loaded:
            return
        with use_registry(self):
            for package_name in self.lazy_packages:
                package = _import(package_name, "scenario package")
                found = pkgutil.iter_modules(package.__path__)
                for info in sorted(found, key=lambda m: m.name):
                    _import(f"{package_name}.{info.name}", "scenario module")
        self._lazy_loaded = True

    def get(self, name: str) -> Scenario:
        """Return the scenario called ``name``, of any group.

        Raises:
            ConfigError: no such scenario; the message lists the known names.
        """
        self.load_builtins()
        if name not in self._scenarios:
            self.load_lazy()
        try:
            return self._scenarios[name]
        except KeyError:
            known = ", ".join(self._scenarios) or "none registered"
            raise ConfigError(f"unknown scenario {name!r} (known: {known})") from None

    def all(self, group: str | None = MAIN_GROUP) -> list[Scenario]:
        """Return the scenarios of ``group`` (None: every group), in registration order."""
        if group == MAIN_GROUP:
            self.load_builtins()
        else:
            self.load_lazy()
        return [s for s in self._scenarios.values() if group in (None, s.group)]


def _import(module: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise InternalError(
            f"{what} {module} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


_active: list[Registry | list[Scenario]] = [Registry(lazy_packages=(MUSEUM_PACKAGE,))]


def registry() -> Registry:
    """Return the registry that :func:`register` and :func:`get` use."""
    for item in reversed(_active):
        if isinstance(item, Registry):
            return item
    raise InternalError("no scenario registry is active")  # pragma: no cover - [0]


@contextmanager
def use_registry(replacement: Registry) -> Iterator[Registry]:
    """Use ``replacement`` as the registry inside the ``with`` block (for tests)."""
    _active.append(replacement)
    try:
        yield replacement
    finally:
        _active.remove(replacement)


@contextmanager
def collecting() -> Iterator[list[Scenario]]:
    """Collect the scenarios registered inside the block instead of registering them.

    The loader imports user files under this, so their scenarios do not enter
    the global registry and the same file can be loaded twice.
    """
    bucket: list[Scenario] = []
    _active.append(bucket)
    try:
        yield bucket
    finally:
        _active.remove(bucket)


def register(scenario: Scenario) -> Scenario:
    """Register ``scenario`` (or collect it, while a user file loads) and return it.

    Raises:
        ScenarioError: the name is taken, or the argument is not a Scenario.
    """
    target = _active[-1]
    if isinstance(target, Registry):
        return target.register(scenario)
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"register() needs a Scenario, got {scenario!r}")
    if any(s.name == scenario.name and s is not scenario for s in target):
        raise ScenarioError(f"scenario {scenario.name!r} is registered twice")
    if scenario not in target:
        target.append(scenario)
    return scenario


def scenario(
    *,
    name: str,
    title: str,
    variants: tuple[str, ...],
    description: str | None = None,
    config: Mapping[str, object] | None = None,
    default_variant: str = "",
    kernel_version: str = "",
    expect: Mapping[str, tuple[str, ...]] | None = None,
    group: str = MAIN_GROUP,
) -> Callable[[Callable[[str], Instance]], Scenario]:
    """Decorate a build function: make it a registered :class:`Scenario`.

    The description defaults to the function's docstring.  The decorated name
    is bound to the Scenario, not to the function (``Scenario.build`` is it).

    Example::

        @scenario(name="counter", title="Two increments race", variants=("racy",))
        def counter(variant: str) -> Instance: ...
    """

    def decorate(build: Callable[[str], Instance]) -> Scenario:
        text = description if description is not None else (build.__doc__ or "")
        return register(
            Scenario(
                name=name,
                title=title,
                description=text.strip(),
                variants=variants,
                build=build,
                config=dict(config or {}),
                default_variant=default_variant,
                kernel_version=kernel_version,
                expect=dict(expect or {}),
                group=group,
            )
        )

    return decorate


def get(name: str) -> Scenario:
    """Return the registered scenario called ``name`` (ConfigError if unknown)."""
    return registry().get(name)


def all_scenarios(group: str | None = MAIN_GROUP) -> list[Scenario]:
    """Return the registered scenarios of ``group`` (None: all), in registration order.

    The default is the main group: the matrix of ``check --all`` and ``list``.
    """
    return registry().all(group)
