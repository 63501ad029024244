"""Exploration configuration: one frozen object, validated, with profiles.

``ExploreConfig`` holds every knob of an exploration.  Values come from
keyword arguments, from a named profile (``dev``, ``ci``, ``exhaustive``)
and from ``HMMSIM_*`` environment variables (see :meth:`ExploreConfig.from_env`).
Validation raises :class:`~hmmsim.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from hmmsim.errors import ConfigError

__all__ = ["PROFILES", "STRATEGY_NAMES", "ExploreConfig"]

STRATEGY_NAMES: Final = ("dpor", "dfs", "pct", "random", "replay", "round_robin")

#: Upper limits that keep a typo from turning into a day-long run.
_MAX_EXECUTIONS_LIMIT: Final = 100_000_000
_MAX_STEPS_LIMIT: Final = 10_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ExploreConfig:
    """Every knob of one exploration.

    Attributes:
        strategy: name of the strategy (``dpor``, ``dfs``, ``pct``, ``random``,
            ``replay``, ``round_robin``).
        seed: seed of the sampling strategies; also recorded in schedules.
        max_executions: stop after this many executions (``None``: no limit).
        max_steps: an execution longer than this ends with ``STEP_LIMIT``.
        preemption_bound: if set, schedules with more preemptions are not
            explored (the exploration is then incomplete, never verified).
        pct_depth: bug depth ``d`` of PCT (number of priority change points + 1).
        time_budget_s: stop after this many seconds of wall-clock time, also
            in the middle of an execution.
        task_timeout_s: a task that runs this many seconds (of CPU time)
            without reaching an Op is a ``hung-task`` finding (``None``: no
            watchdog).
        memory_limit_mb: stop the exploration with a model error when the
            process's resident memory passes this many MiB (``None``: the
            machine's RAM divided by its CPUs plus one).
        stop_on_first: stop at the first violation instead of collecting one
            counterexample per violation kind.
        shrink: shrink counterexamples before reporting them.
        check_determinism: replay every counterexample once more and report
            a divergence as a replay error.
        capture_locations: record the source location of every Op (slow).
    """

    strategy: str = "dpor"
    seed: int = 0
    max_executions: int | None = 100_000
    max_steps: int = 2_000
    preemption_bound: int | None = None
    pct_depth: int = 3
    time_budget_s: float | None = None
    task_timeout_s: float | None = 5.0
    memory_limit_mb: int | None = None
    stop_on_first: bool = False
    shrink: bool = True
    check_determinism: bool = False
    capture_locations: bool = False

    def __post_init__(self) -> None:
        """Validate every field; raise ConfigError naming the first bad one."""
        if self.strategy not in STRATEGY_NAMES:
            known = ", ".join(STRATEGY_NAMES)
            raise ConfigError(f"unknown strategy {self.strategy!r} (known: {known})")
        seed: object = self.seed  # typed fields still hold whatever was passed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        _check_range("max_executions", self.max_executions, 1, _MAX_EXECUTIONS_LIMIT)
        _check_range("max_steps", self.max_steps, 1, _MAX_STEPS_LIMIT)
        _check_range("preemption_bound", self.preemption_bound, 0, 10_000)
        _check_range("pct_depth", self.pct_depth, 1, 1_000)
        _check_range("memory_limit_mb", self.memory_limit_mb, 1, 2**30)
        for flag in (
            "stop_on_first",
            "shrink",
            "check_determinism",
            "capture_locations",
        ):
            value: object = getattr(self, flag)
            if not isinstance(value, bool):
                raise ConfigError(f"{flag} must be True or False, got {value!r}")
        for name in ("time_budget_s", "task_timeout_s"):
            budget: object = getattr(self, name)
            if budget is not None and not (
                isinstance(budget, int | float)
                and not isinstance(budget, bool)
                and 0 < budget <= 7 * 24 * 3600
            ):
                raise ConfigError(
                    f"{name} must be a number of seconds in (0, 604800], got {budget!r}"
                )

    def replace(self, **changes: object) -> ExploreConfig:
        """Return a copy with some fields changed (validated again)."""
        known = {field.name for field in dataclasses.fields(self)}
        for name in changes:
            if name not in known:
                raise ConfigError(f"unknown config field {name!r}")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def profile(cls, name: str, **overrides: object) -> ExploreConfig:
        """Return the named profile, with overrides applied."""
        try:
            base = PROFILES[name]
        except KeyError:
            known = ", ".join(sorted(PROFILES))
            raise ConfigError(f"unknown profile {name!r} (known: {known})") from None
        return base.replace(**overrides)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: object
    ) -> ExploreConfig:
        """Build a config from ``HMMSIM_PROFILE`` and ``HMMSIM_<FIELD>`` variables.

        Explicit ``overrides`` win over the environment, which wins over the
        profile.
        """
        env = os.environ if env is None else env
        config = cls.profile(env.get("HMMSIM_PROFILE", "dev"))
        changes: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"HMMSIM_{field.name.upper()}")
            if raw is not None:
                changes[field.name] = _parse_env(field.name, raw, field.type)
        changes.update(overrides)
        return config.replace(**changes)


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise ConfigError(
            f"{name} must be an integer in [{low}, {high}], got {value!r}"
        )


def _parse_env(name: str, raw: str, annotation: object) -> object:
    text = str(annotation)
    value = raw.strip()
    if "None" in text and value.lower() in ("", "none"):
        return None
    try:
        if text.startswith("bool"):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if text.startswith("int"):
            return int(value)
        if text.startswith("float"):
            return float(value)
    except ValueError:
        raise ConfigError(
            f"HMMSIM_{name.upper()}={raw!r} is not a valid {text}"
        ) from None
    return value


PROFILES: Final[Mapping[str, ExploreConfig]] = {
    "dev": ExploreConfig(),
    "ci": ExploreConfig(max_executions=20_000, time_budget_s=None),
    "exhaustive": ExploreConfig(max_executions=None, max_steps=100_000),
}
