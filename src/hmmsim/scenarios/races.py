"""Races: the one definition of every scenario, for any driver.

A :class:`Race` says what happens (set-up, actors) in terms of a world whose
drivers it does not know: its ``build(make_world, variant)`` gets a
:class:`~hmmsim.scenarios._world.WorldFactory` and builds everything through
it.  The same race becomes

* a *built-in scenario* with the reference drivers
  (:func:`race_scenario` with :func:`~hmmsim.scenarios._world.reference_world`,
  registered by the race's module with its documented verdicts), and
* a *standard scenario* of a user's driver (``hmmsim.driverkit``), with a
  world factory that builds the user's driver instead,

so the two paths run the same code and, for the same driver, explore the
same schedules.  The races a user driver gets (``battery=True``) are
:func:`battery`; a race that needs the reference driver's internals, or a
subscriber other than the driver, is built-in only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Final

from hmmsim.engine import Instance
from hmmsim.errors import ScenarioError
from hmmsim.scenarios._world import (
    DRIVERS,
    KERNEL_VERSIONS,
    WorldFactory,
    reference_world,
)
from hmmsim.scenarios.base import MAIN_GROUP, MUSEUM_GROUP, MUSEUM_PACKAGE, Scenario

__all__ = ["Race", "all_races", "battery", "race", "race_scenario"]

#: The default bounds of every race (never reached by the races here).
DEFAULT_CONFIG: Final[Mapping[str, object]] = MappingProxyType({"max_steps": 4000})

RaceBuild = Callable[[WorldFactory, str], Instance]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Race:
    """One race: a set-up and actors over a world of any driver.

    Attributes:
        name: the scenario name it runs under (built-in and standard alike).
        title: one line: what races with what.
        description: set-up, actors (with their bounds) and what it checks.
        build: ``(make_world, variant) -> Instance``; builds the world with
            ``make_world(variant, mirrors=..)`` and returns its instance.
        config: exploration defaults (``ExploreConfig`` fields).
        battery: whether user drivers get it (``hmmsim.driverkit``).
        group: the scenario group it belongs to (``MUSEUM_GROUP``: a museum
            race, left out of :func:`all_races` unless asked for).
    """

    name: str
    title: str
    description: str
    build: RaceBuild
    config: Mapping[str, object] = field(default_factory=lambda: DEFAULT_CONFIG)
    battery: bool = True
    group: str = MAIN_GROUP

    def program(self, make_world: WorldFactory) -> Callable[[str], Instance]:
        """Return the ``variant -> Instance`` builder of this race over ``make_world``."""
        return partial(self.build, make_world)


_RACES: dict[str, Race] = {}


def race(
    *,
    name: str,
    title: str,
    description: str,
    config: Mapping[str, object] | None = None,
    battery: bool = True,
    group: str | None = None,
) -> Callable[[RaceBuild], Race]:
    """Decorate a ``build(make_world, variant)`` function: make it a known :class:`Race`.

    ``group`` defaults to ``MUSEUM_GROUP`` for a build function defined in a
    module of ``MUSEUM_PACKAGE`` and to ``MAIN_GROUP`` elsewhere; a museum
    race is never in the battery.

    Raises:
        ScenarioError: a race of that name exists already.
    """

    def decorate(build: RaceBuild) -> Race:
        chosen = group
        if chosen is None:
            module = getattr(build, "__module__", "") or ""
            museum = module.startswith(MUSEUM_PACKAGE + ".")
            chosen = MUSEUM_GROUP if museum else MAIN_GROUP
        if name in _RACES:
            raise ScenarioError(f"race {name!r} is defined twice")
        made = Race(
            name=name,
            title=title,
            description=description,
            build=build,
            config=MappingProxyType({**DEFAULT_CONFIG, **(config or {})}),
            battery=battery and chosen == MAIN_GROUP,
            group=chosen,
        )
        _RACES[name] = made
        return made

    return decorate


def race_scenario(
    chosen: Race,
    *,
    make_world: WorldFactory = reference_world,
    variants: Sequence[str] = tuple(DRIVERS),
    expect: Mapping[str, tuple[str, ...]] | None = None,
    config: Mapping[str, object] | None = None,
    kernel_version: str = KERNEL_VERSIONS,
    default_variant: str = "v5.3",
    group: str | None = None,
) -> Scenario:
    """Return the scenario that runs ``chosen`` over ``make_world``.

    Args:
        chosen: the race.
        make_world: builds each execution's world (default: the reference
            drivers, which makes the built-in scenario).
        variants: the kernel variants to run on.
        expect: per variant, the violation kinds expected.
        config: exploration defaults, over the race's own.
        kernel_version: for report headers.
        default_variant: the variant run when none is named.
        group: the scenario's group (default: the race's; ``MUSEUM_GROUP``
            keeps it out of the matrix of ``check --all``).
    """
    return Scenario(
        name=chosen.name,
        title=chosen.title,
        description=chosen.description,
        variants=tuple(variants),
        build=chosen.program(make_world),
        config={**chosen.config, **(config or {})},
        kernel_version=kernel_version,
        default_variant=default_variant,
        expect=dict(expect or {}),
        group=chosen.group if group is None else group,
    )


def all_races(group: str | None = MAIN_GROUP) -> list[Race]:
    """Return the races of ``group`` (None: all imported), in registration order.

    The built-in modules are imported first; museum races appear only once
    their modules were imported (a lookup of a museum scenario by name).
    """
    # Imported here: the package's registry imports the modules that use this one.
    from hmmsim.scenarios import (  # noqa: PLC0415
        BUILTIN_MODULES,
        registry,
        use_registry,
    )

    # The built-in modules register their scenarios when first imported: into
    # the registry, even while a user file that asked for the battery loads.
    active = registry()
    with use_registry(active):
        active.load_builtins()
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return [r for r in _RACES.values() if group in (None, r.group)]


def battery() -> list[Race]:
    """Return the races a user's driver is put through, in order."""
    return [r for r in all_races() if r.battery]
