"""The service layer: what every front end does, written once.

``hmmsim.cli``, its ``compare`` command, :mod:`hmmsim.parallel` and the
pytest plugin (:mod:`hmmsim.pytest_plugin`) all go through these functions,
so a rule (how a target is resolved, which config an exploration gets, how a
replay picks its scenario, how a report file is written) holds in every
front end or in none:

- targets: :func:`scenarios_of`, :func:`one_scenario`, :func:`plan`;
- configs: :func:`resolve_config` (profile, scenario, environment, options);
- running: :func:`run` and :func:`run_unit`, which return a
  :class:`~hmmsim.runs.ScenarioRun`;
- replay: :func:`replay_items` (a token or a JSON report) and
  :func:`replay_item`;
- output files: :func:`check_output_target` before exploring,
  :func:`json_text` and :func:`write_output` after.

The strategies come from the one registry,
:data:`hmmsim.engine.strategies.REGISTRY`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hmmsim import __version__
from hmmsim.config import ExploreConfig
from hmmsim.engine import (
    ExecutionResult,
    ExitReason,
    ExplorationResult,
    Schedule,
    Trace,
    explore,
    replay,
)
from hmmsim.errors import ConfigError, ModelError, ReplayError
from hmmsim.loader import is_file_target, load_file, select, split_target
from hmmsim.report import json as json_report
from hmmsim.report.json import ReplayItem
from hmmsim.runs import ScenarioRun
from hmmsim.scenarios import NAME_PATTERN, Scenario, all_scenarios, get

__all__ = [
    "SAMPLING_TIME_BUDGET_S",
    "ReplayItem",
    "ReplayOutcome",
    "ScenarioRun",
    "Unit",
    "check_output_target",
    "error_run",
    "json_text",
    "one_scenario",
    "plan",
    "replay_item",
    "replay_items",
    "resolve_config",
    "run",
    "run_unit",
    "scenarios_of",
    "write_output",
]

_FIELDS: Final = tuple(f.name for f in dataclasses.fields(ExploreConfig))

#: The time budget of a sampling strategy that nothing else bounds (seconds).
SAMPLING_TIME_BUDGET_S: Final = 60.0

#: The largest JSON report ``replay`` reads (a report is a few KB per run).
MAX_REPORT_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """One scenario variant to explore, with its resolved config."""

    scenario: Scenario
    variant: str
    config: ExploreConfig
    file: str | None


# -- targets -------------------------------------------------------------------


def scenarios_of(target: Scenario | str | Path) -> tuple[list[Scenario], str | None]:
    """Return the scenarios a target names, and the user file they come from.

    A target is a Scenario, a registered name, or ``PATH.py[:NAME]``.

    Raises:
        ConfigError: unknown scenario, missing file, no scenario of that name.
        ScenarioError: the file does not import or defines no scenario.
    """
    if isinstance(target, Scenario):
        return [target], None
    text = str(target)
    if not is_file_target(text):
        return [get(text)], None
    path, name = split_target(text)
    return select(load_file(path), name, path), path


def one_scenario(
    target: Scenario | str | Path, *, command: str = ""
) -> tuple[Scenario, str | None]:
    """Return the one scenario a target names (a file may define several).

    Raises:
        ConfigError: the target names several scenarios, or none (see
            :func:`scenarios_of`).
    """
    scenarios, file = scenarios_of(target)
    if len(scenarios) != 1:
        names = ", ".join(s.name for s in scenarios)
        prefix = f"{command}: " if command else ""
        raise ConfigError(
            f"{prefix}{target} defines several scenarios ({names}); "
            "name one as PATH.py:NAME"
        )
    return scenarios[0], file


def resolve_config(
    scenario: Scenario,
    *,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> ExploreConfig:
    """Return the config of one exploration of ``scenario``.

    Layers, each winning over the one before: the profile named by
    ``HMMSIM_PROFILE`` (default ``dev``), the scenario's own ``config``, the
    ``HMMSIM_<FIELD>`` environment variables, then ``overrides`` whose value
    is not None.

    A sampling strategy (``pct``, ``random``: ``sampling`` in the registry)
    suits another job than an exhaustive one, so unless a layer above the
    profile sets them: it stops at the first violation (``stop_on_first``;
    ``--keep-going`` sets it False), it is not bounded by a count of
    executions, and whenever nothing else bounds it, it gets a time budget of
    :data:`SAMPLING_TIME_BUDGET_S` seconds, so it never runs for ever.

    Raises:
        ConfigError: a value is invalid; the message names the field.
    """
    env = os.environ if env is None else env
    overrides = overrides or {}
    config = ExploreConfig.profile(env.get("HMMSIM_PROFILE", "dev"))
    config = config.replace(**scenario.config)
    from_env = ExploreConfig.from_env(env)
    env_changes = {
        name: getattr(from_env, name)
        for name in _FIELDS
        if f"HMMSIM_{name.upper()}" in env
    }
    config = config.replace(**env_changes)
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown config option {unknown[0]!r} (known: {', '.join(_FIELDS)})"
        )
    given = {k: v for k, v in overrides.items() if v is not None}
    config = config.replace(**given)
    explicit = {*scenario.config, *env_changes, *given}
    return _for_sampling(config, explicit)


def _for_sampling(config: ExploreConfig, explicit: set[str]) -> ExploreConfig:
    from hmmsim.engine.strategies import REGISTRY  # noqa: PLC0415

    if not REGISTRY[config.strategy].sampling:
        return config
    changes: dict[str, object] = {}
    if "stop_on_first" not in explicit:
        changes["stop_on_first"] = True
    max_executions = config.max_executions
    if "max_executions" not in explicit:
        max_executions = changes["max_executions"] = None
    if max_executions is None and config.time_budget_s is None:
        changes["time_budget_s"] = SAMPLING_TIME_BUDGET_S
    return config.replace(**changes)


def plan(
    target: str | None,
    *,
    variant: str | None = None,
    every: bool = False,
    configure: Callable[[Scenario], ExploreConfig] | None = None,
) -> list[Unit]:
    """Return the units a ``check`` explores, in report order.

    Args:
        target: a scenario name or ``PATH.py[:NAME]``; None with ``every``:
            every registered scenario.
        variant: the variant (None: each scenario's default); an empty name
            is an error, not the default.
        every: every variant of every scenario named.
        configure: the config of each scenario (default: :func:`resolve_config`).

    Raises:
        ConfigError: a bad combination, an unknown name, no scenario at all.
    """
    if every and variant is not None:
        raise ConfigError("check: --all and --variant cannot be combined")
    if target is None:
        if not every:
            raise ConfigError("check: name a SCENARIO or PATH.py, or give --all")
        scenarios, file = all_scenarios(), None
        if not scenarios:
            raise ConfigError("check --all: no scenario is registered")
    else:
        scenarios, file = scenarios_of(target)
    configure = configure or resolve_config
    units: list[Unit] = []
    for item in scenarios:
        if every:
            variants: Sequence[str] = item.variants
        else:
            variants = [item.check_variant(_variant_or_default(item, variant))]
        config = configure(item)
        units.extend(
            Unit(scenario=item, variant=v, config=config, file=file) for v in variants
        )
    return units


def _variant_or_default(scenario: Scenario, variant: str | None) -> str:
    return scenario.default_variant if variant is None else variant


# -- running ---------------------------------------------------------------------


def run(
    target: Scenario | str,
    variant: str | None = None,
    *,
    config: ExploreConfig | None = None,
    capture: bool = True,
    file: str | None = None,
    on_progress: Callable[[ExplorationResult], None] | None = None,
) -> ScenarioRun:
    """Explore one variant of a scenario and return it ready for the reports.

    Args:
        target: a Scenario, or the name of a registered one.
        variant: the variant (default: the scenario's ``default_variant``).
        config: the config to use (default: :func:`resolve_config`).
        capture: replay each counterexample to capture its trace (for timelines).
        file: the user file the scenario came from, for replay commands.
        on_progress: called after every execution.

    Raises:
        ConfigError: unknown scenario or variant, or a bad config value.
        ModelError: the model's own code failed (it names the file and line).
    """
    chosen = target if isinstance(target, Scenario) else get(target)
    name = chosen.check_variant(_variant_or_default(chosen, variant))
    config = config or resolve_config(chosen)
    program = chosen.program(name)
    result = explore(program, config, on_progress=on_progress)
    traces: tuple[Trace | None, ...] = ()
    if capture:
        try:
            traces = tuple(
                replay(
                    program,
                    cx.schedule,
                    capture=True,
                    capture_locations=config.capture_locations,
                    max_steps=max(config.max_steps, len(cx.schedule.tasks)),
                    task_timeout=config.task_timeout_s,
                ).trace
                for cx in result.counterexamples
            )
        except ModelError as exc:  # only capturing runs snap(): keep the result
            exc.partial = result
            raise
    return ScenarioRun(
        scenario=chosen,
        variant=name,
        config=config,
        result=result,
        traces=traces,
        file=file,
    )


def run_unit(
    unit: Unit, on_progress: Callable[[ExplorationResult], None] | None = None
) -> ScenarioRun:
    """Explore one unit (see :func:`run`); a model error becomes an ``error`` row.

    The row keeps what was explored before the error, so a report of many
    units loses none of them.
    """
    try:
        return run(
            unit.scenario,
            unit.variant,
            config=unit.config,
            file=unit.file,
            on_progress=on_progress,
        )
    except ModelError as exc:
        partial = exc.partial
        return error_run(
            unit,
            f"model error: {exc}",
            partial if isinstance(partial, ExplorationResult) else None,
        )


def error_run(
    unit: Unit, reason: str, partial: ExplorationResult | None = None
) -> ScenarioRun:
    """Return the ``error`` row of a unit that did not finish, with its partial counts."""
    result = partial or ExplorationResult(
        strategy=unit.config.strategy, exit_reason=ExitReason.ERROR
    )
    result.complete = False
    return ScenarioRun(
        scenario=unit.scenario,
        variant=unit.variant,
        config=unit.config,
        result=result,
        file=unit.file,
        error=reason,
    )


# -- replay ------------------------------------------------------------------------


def _parse_context(context: str) -> tuple[str, str, str]:
    where, _, kind = context.partition(":")
    scenario, sep, variant = where.partition("/")
    if not (sep and NAME_PATTERN.match(scenario) and NAME_PATTERN.match(variant)):
        raise ReplayError(
            f"replay token names {context!r}, not scenario/variant[:kind]"
        )
    return scenario, variant, kind


def _read_report(source: str) -> str:
    try:
        with open(source, "rb") as handle:
            raw = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: {exc.strerror or exc}") from None
    if len(raw) > MAX_REPORT_BYTES:
        raise ReplayError(
            f"{source}: larger than {MAX_REPORT_BYTES // 2**20} MB, not a report"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplayError(f"{source}: not a JSON report (not UTF-8 text)") from None


def replay_items(source: str, file: str | None = None) -> list[ReplayItem]:
    """Return what ``hmmsim replay SOURCE`` replays: a token, or a report's violations.

    A report's ``file`` field is never used to import code: a violation of a
    user scenario replays only with ``file`` (``--file PATH.py``), which the
    user named on the command line.

    Raises:
        ConfigError: an unreadable file.
        ReplayError: a bad token or report, or a report of a user scenario
            without ``file``.
    """
    if not (source.endswith(".json") or os.path.exists(source)):
        context, schedule = Schedule.from_token(source)
        scenario, variant, kind = _parse_context(context)
        return [
            ReplayItem(
                scenario=scenario,
                variant=variant,
                kind=kind,
                schedule=schedule,
                file=file,
            )
        ]
    parsed = json_report.parse(_read_report(source))
    if not parsed:
        raise ReplayError(f"{source}: the report holds no violation to replay")
    named = sorted({p.file for p in parsed if p.file is not None})
    if named and file is None:
        raise ReplayError(
            f"{source} replays scenarios of {', '.join(named)}; hmmsim runs a model "
            "file only when you name it: add --file PATH.py"
        )
    return [dataclasses.replace(p, file=file) for p in parsed]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOutcome:
    """What replaying one item showed."""

    item: ReplayItem
    result: ExecutionResult
    reproduced: bool

    @property
    def label(self) -> str:
        """``scenario/variant`` of the item."""
        return f"{self.item.scenario}/{self.item.variant}"

    @property
    def kinds(self) -> list[str]:
        """The kinds the replay found."""
        return [f.kind for f in self.result.findings]


def _replay_scenario(item: ReplayItem) -> Scenario:
    if item.file is None:
        try:
            return get(item.scenario)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}; if it comes from a user file, pass --file PATH.py"
            ) from None
    return select(load_file(item.file), item.scenario, item.file)[0]


def replay_item(item: ReplayItem, *, locations: bool = False) -> ReplayOutcome:
    """Replay one item with its trace captured; say whether its kind came back.

    Raises:
        ConfigError: its scenario or variant is unknown.
        ReplayDiverged: the model did not follow the schedule.
    """
    scenario = _replay_scenario(item)
    program = scenario.program(scenario.check_variant(item.variant))
    config = resolve_config(scenario)
    result = replay(
        program,
        item.schedule,
        capture=True,
        capture_locations=locations,
        max_steps=max(config.max_steps, len(item.schedule.tasks)),
    )
    kinds = [f.kind for f in result.findings]
    return ReplayOutcome(
        item=item, result=result, reproduced=not item.kind or item.kind in kinds
    )


# -- output files -------------------------------------------------------------------


def check_output_target(path: str, *, option: str, directory: bool = False) -> None:
    """Check before exploring that ``path`` can be written, so no result is lost.

    ``directory``: the target is a report directory (created if missing);
    otherwise a file, which must not be a directory.  Probes by writing a
    byte to a temporary file next to the target (a full disk fails there);
    a device such as ``/dev/stdout`` only needs to be writable.

    Raises:
        ConfigError: the target is empty, of the wrong type, or not writable.
    """
    if not path:
        raise ConfigError(f"{option} needs a {'directory' if directory else 'file'}")
    target = Path(path)
    if directory:
        if target.exists() and not target.is_dir():
            raise ConfigError(f"{option} {path}: not a directory")
        where = target if target.is_dir() else target.resolve().parent
    else:
        if target.is_dir():
            raise ConfigError(f"{option} {path}: is a directory")
        if target.exists() and not target.is_file():
            if not os.access(target, os.W_OK):
                raise ConfigError(f"{option} {path}: not writable")
            return
        where = target.resolve().parent
    if not where.is_dir():
        raise ConfigError(f"{option} {path}: directory {where} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=where, prefix=".hmmsim-probe-") as probe:
            probe.write(b"\n")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot write there: {exc.strerror}"
        ) from None
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{option} {path}: not writable")


def json_text(runs: Sequence[ScenarioRun], *, timings: bool = False) -> str:
    """Return the JSON report of ``runs`` (see :mod:`hmmsim.report.json`)."""
    return json_report.dumps(runs, version=__version__, timings=timings)


def write_output(path: str, text: str) -> None:
    """Write ``text`` to ``path``: to a temporary file, then renamed over it.

    A regular file is never left half written; a device (``/dev/stdout``)
    is written directly.

    Raises:
        OSError: the write failed (the caller reports it after the summary).
    """
    target = Path(path)
    if target.exists() and not target.is_file():
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    fd, temporary = tempfile.mkstemp(dir=target.resolve().parent, prefix=".hmmsim-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
