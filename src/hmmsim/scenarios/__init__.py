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
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from hmmsim.engine import Instance
from hmmsim.errors import ConfigError, InternalError, ScenarioError
from hmmsim.scenarios.base import NAME_PATTERN, Scenario

__all__ = [
    "BUILTIN_MODULES",
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
    """Scenarios by name, in registration order, with lazily imported built-ins."""

    def __init__(self, builtin_modules: tuple[str, ...] = BUILTIN_MODULES) -> None:
        """Make an empty registry that imports ``builtin_modules`` on first use."""
        self.builtin_modules = builtin_modules
        self._scenarios: dict[str, Scenario] = {}
        self._loaded = not builtin_modules

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
            try:
                importlib.import_module(module)
            except Exception as exc:
                raise InternalError(
                    f"built-in scenario module {module} failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        self._loaded = True

    def get(self, name: str) -> Scenario:
        """Return the scenario called ``name``.

        Raises:
            ConfigError: no such scenario; the message lists the known names.
        """
        self.load_builtins()
        try:
            return self._scenarios[name]
        except KeyError:
            known = ", ".join(self._scenarios) or "none registered"
            raise ConfigError(f"unknown scenario {name!r} (known: {known})") from None

    def all(self) -> list[Scenario]:
        """Return every scenario in registration order."""
        self.load_builtins()
        return list(self._scenarios.values())


_active: list[Registry | list[Scenario]] = [Registry()]


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
            )
        )

    return decorate


def get(name: str) -> Scenario:
    """Return the registered scenario called ``name`` (ConfigError if unknown)."""
    return registry().get(name)


def all_scenarios() -> list[Scenario]:
    """Return every registered scenario, in registration order."""
    return registry().all()
