"""Scenario: a named, documented harness that the CLI and reports can run.

A scenario says which world and which tasks to build for each *variant*
(``"dmirror"`` for the correct driver, ``"mutant-stale-seq"`` for a broken
one ...).  Its ``build`` function receives the variant and returns a fresh
:class:`~hmmsim.engine.Instance`; the engine calls it inside every
execution, so every object is new and gets deterministic ids.

Example::

    from hmmsim.engine import SimpleInstance
    from hmmsim.scenarios import Scenario, register


    def build(
        variant: str,
    ) -> (
        SimpleInstance
    ): ...  # make the world, pick the driver by variant, return the tasks


    register(
        Scenario(
            name="fault-vs-munmap",
            title="A device fault races with munmap of the same range",
            description="Tasks: fault, unmap.  Bounds: one page.  ...",
            variants=("dmirror", "mutant-no-retry"),
            build=build,
            expect={"dmirror": (), "mutant-no-retry": ("device-stale-mapping",)},
        )
    )
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from hmmsim.config import ExploreConfig
from hmmsim.engine import Instance, Program
from hmmsim.errors import ConfigError, ScenarioError

__all__ = ["MAIN_GROUP", "MUSEUM_GROUP", "MUSEUM_PACKAGE", "NAME_PATTERN", "Scenario"]

#: Scenario and variant names: lower case, digits, ``-``, ``_`` and ``.``
#: (for kernel versions such as ``v5.3``).  They end
#: up in replay tokens and file names, so nothing else is allowed.
NAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

#: The group of the scenarios ``check --all`` and ``list`` show (the matrix).
MAIN_GROUP: Final = "main"

#: The group of the race museum's scenarios (``hmmsim museum``): found by
#: name (``check NAME``, ``replay``, pinned tokens), but not in the matrix.
MUSEUM_GROUP: Final = "museum"

#: The package whose modules define the race museum's scenarios (imported on
#: demand, every module of it, in name order).
MUSEUM_PACKAGE: Final = "hmmsim.scenarios.museum"

_CONFIG_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(ExploreConfig))


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Scenario:
    """A named harness: how to build a fresh world for each of its variants.

    Scenarios compare and hash by identity.

    Attributes:
        name: unique name (``NAME_PATTERN``), e.g. ``fault-vs-munmap``.
        title: one line saying what races with what.
        description: the actors (tasks), the bounds (pages, iterations) and
            what the scenario exercises; shown by ``hmmsim list`` and reports.
        variants: the variant names, e.g. the correct driver then each mutant.
        build: ``variant -> Instance``; called inside every execution, so it
            must build everything afresh and share nothing between calls.
        config: default :class:`~hmmsim.config.ExploreConfig` overrides for
            this scenario, e.g. ``{"max_steps": 500}``.  Environment
            variables and command-line options win over them.
        default_variant: the variant run when none is named (default: the
            first one).
        kernel_version: the kernel version modelled, for report headers
            (e.g. ``"v5.3"``); empty when it does not apply.
        expect: for some variants, the violation kinds expected; an empty
            tuple means "no violation expected".  Reports mark a result that
            differs; variants left out have no expectation.
        group: :data:`MAIN_GROUP` (default) for the matrix of ``check --all``
            and ``list``; another group (:data:`MUSEUM_GROUP`) keeps the
            scenario out of them, while lookups by name still find it.
    """

    name: str
    title: str
    description: str
    variants: tuple[str, ...]
    build: Callable[[str], Instance]
    config: Mapping[str, object] = field(default_factory=dict)
    default_variant: str = ""
    kernel_version: str = ""
    expect: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group: str = MAIN_GROUP

    def __post_init__(self) -> None:
        """Validate the definition; raise ScenarioError naming the problem."""
        name: object = self.name
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ScenarioError(
                f"scenario name {name!r} must match {NAME_PATTERN.pattern} "
                "(lower case, digits, '-', '_' and '.')"
            )
        self._check_text()
        group: object = self.group
        if not isinstance(group, str) or not NAME_PATTERN.match(group):
            raise ScenarioError(
                f"scenario {name!r}: group {group!r} must match {NAME_PATTERN.pattern}"
            )
        self._check_variants()
        if not callable(self.build):
            raise ScenarioError(f"scenario {name!r}: build must be callable")
        self._check_config()
        self._check_expect()
        object.__setattr__(self, "config", _frozen(self.config))
        object.__setattr__(self, "expect", MappingProxyType(dict(self.expect)))
        if not self.default_variant:
            object.__setattr__(self, "default_variant", self.variants[0])

    def _check_text(self) -> None:
        title: object = self.title
        if not isinstance(title, str) or not title.strip() or "\n" in title:
            raise ScenarioError(f"scenario {self.name!r}: title must be one line")
        if not isinstance(self.description, str):
            raise ScenarioError(f"scenario {self.name!r}: description must be a str")

    def _check_variants(self) -> None:
        variants: object = self.variants
        if not isinstance(variants, tuple) or not variants:
            raise ScenarioError(
                f"scenario {self.name!r}: variants must be a non-empty tuple of names"
            )
        for variant in variants:
            if not isinstance(variant, str) or not NAME_PATTERN.match(variant):
                raise ScenarioError(
                    f"scenario {self.name!r}: variant name {variant!r} must match "
                    f"{NAME_PATTERN.pattern}"
                )
        if len(set(variants)) != len(variants):
            raise ScenarioError(f"scenario {self.name!r}: variant names repeat")
        if self.default_variant and self.default_variant not in variants:
            raise ScenarioError(
                f"scenario {self.name!r}: default_variant "
                f"{self.default_variant!r} is not one of its variants"
            )

    def _check_config(self) -> None:
        unknown = sorted(set(self.config) - _CONFIG_FIELDS)
        if unknown:
            raise ScenarioError(
                f"scenario {self.name!r}: config has unknown keys {unknown} "
                f"(ExploreConfig fields: {', '.join(sorted(_CONFIG_FIELDS))})"
            )
        try:
            ExploreConfig(**self.config)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ScenarioError(f"scenario {self.name!r}: config: {exc}") from None

    def _check_expect(self) -> None:
        for variant, declared in self.expect.items():
            kinds: object = declared  # typed fields still hold whatever was passed
            if variant not in self.variants:
                raise ScenarioError(
                    f"scenario {self.name!r}: expect names unknown variant {variant!r}"
                )
            if not isinstance(kinds, tuple) or not all(
                isinstance(k, str) for k in kinds
            ):
                raise ScenarioError(
                    f"scenario {self.name!r}: expect[{variant!r}] must be a tuple "
                    "of violation kinds"
                )

    def check_variant(self, variant: str) -> str:
        """Return ``variant`` if this scenario has it.

        Raises:
            ConfigError: the variant is unknown; the message lists the known ones.
        """
        if variant not in self.variants:
            raise ConfigError(
                f"scenario {self.name!r} has no variant {variant!r} "
                f"(variants: {', '.join(self.variants)})"
            )
        return variant

    def program(self, variant: str | None = None) -> Program:
        """Return the engine Program of ``variant`` (default: ``default_variant``).

        Raises:
            ConfigError: the variant is unknown.
        """
        chosen = self.check_variant(variant or self.default_variant)
        return functools.partial(self.build, chosen)

    def explore_config(self, base: ExploreConfig | None = None) -> ExploreConfig:
        """Return ``base`` (default: ``ExploreConfig()``) with this scenario's overrides."""
        return (base or ExploreConfig()).replace(**self.config)

    def expected(self, variant: str) -> tuple[str, ...] | None:
        """Return the kinds expected of ``variant``, or None if it has no expectation."""
        return self.expect.get(variant)
