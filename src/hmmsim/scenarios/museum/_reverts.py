"""Worlds of museum variants: a modelled kernel with upstream fixes reverted.

A museum scenario's variants name a modelled kernel (``v5.3``) and, for the
kernel just before a fix, that kernel with the fix reverted
(``v5.3-revert-6d7c3cde93c1``).  :func:`reverting_world` turns such a table
into the :class:`~hmmsim.scenarios._world.WorldFactory` a race builds its
world with.
"""

from __future__ import annotations

from collections.abc import Mapping

from hmmsim.errors import ConfigError
from hmmsim.scenarios._world import World, WorldFactory
from hmmsim.scenarios.base import MUSEUM_GROUP, Scenario
from hmmsim.scenarios.races import Race, race_scenario

__all__ = ["before_and_after", "revert_variant", "reverting_world"]


def revert_variant(base: str, *commits: str) -> str:
    """Return the variant name of ``base`` with ``commits`` reverted."""
    return "-".join((base, "revert", *commits))


def reverting_world(
    variants: Mapping[str, tuple[str, tuple[str, ...]]],
) -> WorldFactory:
    """Return a world factory for ``variants``: name -> (kernel variant, reverted fixes).

    Raises (from the factory):
        ConfigError: a variant the table does not name.
    """
    table = dict(variants)

    def make(variant: str, *, mirrors: int = 1, kvms: int = 0) -> World:
        try:
            base, reverted = table[variant]
        except KeyError:
            raise ConfigError(f"no museum world for variant {variant!r}") from None
        return World.create(base, mirrors=mirrors, kvms=kvms, reverted_fixes=reverted)

    return make


def before_and_after(
    chosen: Race,
    base: str,
    fix: str,
    kinds: tuple[str, ...],
    *,
    kernel_version: str,
) -> Scenario:
    """Return the museum scenario of one fix on one modelled kernel.

    ``chosen`` runs on ``base`` with ``fix`` reverted (the kernel just
    before the fix, the default variant, expected to show ``kinds``) and on
    ``base`` as modelled (just after it, expected to be verified).
    """
    before = revert_variant(base, fix)
    return race_scenario(
        chosen,
        make_world=reverting_world({before: (base, (fix,)), base: (base, ())}),
        variants=(before, base),
        expect={before: kinds, base: ()},
        kernel_version=kernel_version,
        default_variant=before,
        group=MUSEUM_GROUP,
    )
