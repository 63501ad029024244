"""The public API for writing and checking your own models.

Everything a model file or a test needs is importable from here::

    from hmmsim.api import (
        Cell,
        READ_ONCE,
        WRITE_ONCE,
        Finding,
        SimpleInstance,
        scenario,
    )


    @scenario(name="counter", title="Two increments race", variants=("racy",))
    def counter(variant: str) -> SimpleInstance:
        \"\"\"Two tasks read then write a shared counter.\"\"\"
        cell = Cell("counter", 0)

        async def incr() -> None:
            value = await READ_ONCE(cell)
            await WRITE_ONCE(cell, value + 1)

        def end() -> list[Finding]:
            if cell.value == 2:
                return []
            return [Finding(kind="lost-update", message="an increment was lost", step=-1)]

        return SimpleInstance(task_list=[("a", incr()), ("b", incr())], end=end)

Run it with ``hmmsim check counter_model.py --strategy dfs``, or from a test::

    def test_counter_is_safe() -> None:
        assert_no_violation(counter, strategy="dfs")

What is here:

- defining scenarios: :class:`Scenario`, :func:`scenario`, :func:`register`,
  the engine's :class:`Instance` protocol and :class:`SimpleInstance`,
  :class:`Finding` for end-of-execution checks, and
  :func:`register_kind` to explain a violation kind of your own;
- the sync primitives most models use (the rest are in :mod:`hmmsim.sync`);
- running: :func:`check`, :func:`assert_no_violation`, :func:`run`,
  :func:`load_file`, :func:`resolve_config`, and the engine's
  :func:`explore` / :func:`replay` with :class:`ExploreConfig`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Final

from hmmsim import sync
from hmmsim.config import ExploreConfig
from hmmsim.driverkit import (
    BASE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    MIRROR_VARIANTS,
    PAGE_SHIFT,
    PAGE_SIZE,
    Device,
    DriverFactory,
    MirrorDriver,
    MmStruct,
    World,
    WorldInstance,
    device_access,
    device_pte_clear,
    device_pte_set,
    hmm_api,
    mirror_scenarios,
    mirror_world,
    mmget_not_zero,
    mmput,
    oom_reap_task,
    trace,
    try_to_unmap_one,
)
from hmmsim.engine import (
    ExecutionResult,
    ExitReason,
    ExplorationResult,
    Finding,
    Instance,
    Outcome,
    Program,
    Schedule,
    SimpleInstance,
    Status,
    Trace,
    explore,
    replay,
)
from hmmsim.errors import (
    ConfigError,
    HmmsimError,
    ReplayDiverged,
    ReplayError,
    ScenarioError,
)
from hmmsim.loader import load_file
from hmmsim.oracle import explain, register_kind
from hmmsim.report import ScenarioRun
from hmmsim.report.text import render_run
from hmmsim.scenarios import Scenario, get, register, scenario
from hmmsim.sync import (
    BUG_ON,
    READ_ONCE,
    WARN_ON,
    WRITE_ONCE,
    Cell,
    Mutex,
    RwSemaphore,
    SpinLock,
    WaitQueueHead,
    down_read,
    down_write,
    msleep,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    report,
    spin_lock,
    spin_trylock,
    spin_unlock,
    tracepoint,
    up_read,
    up_write,
    wait_event,
    wake_up,
    wake_up_all,
)

__all__ = [
    "BASE",
    "BUG_ON",
    "HMM_PFN_VALID",
    "HMM_PFN_WRITE",
    "MIRROR_VARIANTS",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "READ_ONCE",
    "WARN_ON",
    "WRITE_ONCE",
    "Cell",
    "ConfigError",
    "Device",
    "DriverFactory",
    "ExecutionResult",
    "ExitReason",
    "ExplorationResult",
    "ExploreConfig",
    "Finding",
    "HmmsimError",
    "Instance",
    "MirrorDriver",
    "MmStruct",
    "Mutex",
    "Outcome",
    "Program",
    "ReplayDiverged",
    "ReplayError",
    "RwSemaphore",
    "Scenario",
    "ScenarioError",
    "ScenarioRun",
    "Schedule",
    "SimpleInstance",
    "SpinLock",
    "Status",
    "Trace",
    "WaitQueueHead",
    "World",
    "WorldInstance",
    "assert_no_violation",
    "check",
    "device_access",
    "device_pte_clear",
    "device_pte_set",
    "down_read",
    "down_write",
    "explain",
    "explore",
    "hmm_api",
    "load_file",
    "mirror_scenarios",
    "mirror_world",
    "mmget_not_zero",
    "mmput",
    "msleep",
    "mutex_lock",
    "mutex_trylock",
    "mutex_unlock",
    "oom_reap_task",
    "register",
    "register_kind",
    "replay",
    "report",
    "resolve_config",
    "run",
    "scenario",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "sync",
    "trace",
    "tracepoint",
    "try_to_unmap_one",
    "up_read",
    "up_write",
    "wait_event",
    "wake_up",
    "wake_up_all",
]

_FIELDS: Final = tuple(f.name for f in dataclasses.fields(ExploreConfig))


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
    return config.replace(**{k: v for k, v in overrides.items() if v is not None})


def _scenario(target: Scenario | str) -> Scenario:
    return target if isinstance(target, Scenario) else get(target)


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
        ReplayDiverged: a counterexample did not replay (the model is not
            deterministic).
    """
    chosen = _scenario(target)
    name = chosen.check_variant(variant or chosen.default_variant)
    config = config or resolve_config(chosen)
    program = chosen.program(name)
    result = explore(program, config, on_progress=on_progress)
    traces: tuple[Trace | None, ...] = ()
    if capture:
        traces = tuple(
            replay(
                program,
                cx.schedule,
                capture=True,
                capture_locations=config.capture_locations,
                max_steps=max(config.max_steps, len(cx.schedule.tasks)),
            ).trace
            for cx in result.counterexamples
        )
    return ScenarioRun(
        scenario=chosen,
        variant=name,
        config=config,
        result=result,
        traces=traces,
        file=file,
    )


def check(
    target: Scenario | str, variant: str | None = None, **config: object
) -> ExplorationResult:
    """Explore a scenario variant and return the result (for tests and scripts).

    ``config`` holds :class:`ExploreConfig` fields, e.g. ``strategy="dfs"``,
    ``max_executions=1000``; they win over the scenario's defaults and the
    environment (see :func:`resolve_config`).
    """
    chosen = _scenario(target)
    resolved = resolve_config(chosen, overrides=config)
    return run(chosen, variant, config=resolved, capture=False).result


def assert_no_violation(
    target: Scenario | str, variant: str | None = None, **config: object
) -> ExplorationResult:
    """Like :func:`check`, but fail with the rendered counterexample if one is found.

    Raises:
        AssertionError: a violation was found; the message is the text report,
            ending with the replay command.
    """
    __tracebackhide__ = True  # pytest: show the report, not this frame
    chosen = _scenario(target)
    resolved = resolve_config(chosen, overrides=config)
    outcome = run(chosen, variant, config=resolved)
    if outcome.result.counterexamples:
        from hmmsim import __version__  # noqa: PLC0415 - the facade imports api lazily

        raise AssertionError(
            "\n" + render_run(outcome, version=__version__, timings=False)
        )
    return outcome.result
