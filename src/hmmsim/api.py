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
- writing a driver: :func:`mirror_scenarios` (the race battery),
  :func:`mirror_world`, :class:`WorldInstance` (with an end-of-run
  ``check`` reading :class:`WorldState`), the interval-notifier API under
  its C names (:func:`mmu_interval_notifier_insert`,
  :func:`mmu_interval_read_begin`, :func:`mmu_interval_read_retry`,
  :func:`mmu_interval_set_seq`, :func:`hmm_range_fault` ...) and
  :func:`kernel_api`;
- driver-owned memory: :func:`kmalloc` / :func:`kzalloc`, ``await``
  :func:`kfree`, and the accessors :func:`kasan_check_read` /
  :func:`kasan_check_write` (a use after free or a second free is a finding;
  memory left unfreed and unreachable at the end is ``kmemleak``);
- running: :func:`check`, :func:`assert_no_violation`, :func:`run`,
  :func:`load_file`, :func:`resolve_config`, and the engine's
  :func:`explore` / :func:`replay` with :class:`ExploreConfig`.
"""

from __future__ import annotations

from hmmsim import sync
from hmmsim.config import ExploreConfig
from hmmsim.driverkit import (
    BASE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    INTERVAL_VARIANTS,
    MIRROR_VARIANTS,
    PAGE_SHIFT,
    PAGE_SIZE,
    VARIANTS,
    Device,
    DeviceEntryView,
    DriverFactory,
    DriverLock,
    IntervalApi,
    MirrorDriver,
    MmStruct,
    MmuIntervalNotifierOps,
    MmuNotifierRange,
    NotifierView,
    PageView,
    RangeView,
    StaticMmuIntervalNotifierOps,
    World,
    WorldCheck,
    WorldInstance,
    WorldState,
    device_access,
    device_pte_clear,
    device_pte_set,
    hmm_api,
    hmm_range_fault,
    interval_api,
    kernel_api,
    mirror_scenarios,
    mirror_world,
    mmget_not_zero,
    mmput,
    mmu_interval_check_retry,
    mmu_interval_notifier_insert,
    mmu_interval_notifier_remove,
    mmu_interval_read_begin,
    mmu_interval_read_retry,
    mmu_interval_set_seq,
    mmu_notifier_range_blockable,
    oom_reap_task,
    race_names,
    shrink_inactive_list,
    trace,
    try_to_unmap_one,
    world_state,
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
from hmmsim.kernel.slab import (
    GFP_KERNEL,
    kasan_check_read,
    kasan_check_write,
    kmalloc,
    kzalloc,
)
from hmmsim.kernel.slab import kfree_checked as kfree
from hmmsim.loader import load_file
from hmmsim.oracle import explain, register_kind
from hmmsim.report.text import render_run
from hmmsim.runs import ScenarioRun
from hmmsim.scenarios import Scenario, get, register, scenario
from hmmsim.service import resolve_config, run
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
    "GFP_KERNEL",
    "HMM_PFN_VALID",
    "HMM_PFN_WRITE",
    "INTERVAL_VARIANTS",
    "MIRROR_VARIANTS",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "READ_ONCE",
    "VARIANTS",
    "WARN_ON",
    "WRITE_ONCE",
    "Cell",
    "ConfigError",
    "Device",
    "DeviceEntryView",
    "DriverFactory",
    "DriverLock",
    "ExecutionResult",
    "ExitReason",
    "ExplorationResult",
    "ExploreConfig",
    "Finding",
    "HmmsimError",
    "Instance",
    "IntervalApi",
    "MirrorDriver",
    "MmStruct",
    "MmuIntervalNotifierOps",
    "MmuNotifierRange",
    "Mutex",
    "NotifierView",
    "Outcome",
    "PageView",
    "Program",
    "RangeView",
    "ReplayDiverged",
    "ReplayError",
    "RwSemaphore",
    "Scenario",
    "ScenarioError",
    "ScenarioRun",
    "Schedule",
    "SimpleInstance",
    "SpinLock",
    "StaticMmuIntervalNotifierOps",
    "Status",
    "Trace",
    "WaitQueueHead",
    "World",
    "WorldCheck",
    "WorldInstance",
    "WorldState",
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
    "hmm_range_fault",
    "interval_api",
    "kasan_check_read",
    "kasan_check_write",
    "kernel_api",
    "kfree",
    "kmalloc",
    "kzalloc",
    "load_file",
    "mirror_scenarios",
    "mirror_world",
    "mmget_not_zero",
    "mmput",
    "mmu_interval_check_retry",
    "mmu_interval_notifier_insert",
    "mmu_interval_notifier_remove",
    "mmu_interval_read_begin",
    "mmu_interval_read_retry",
    "mmu_interval_set_seq",
    "mmu_notifier_range_blockable",
    "msleep",
    "mutex_lock",
    "mutex_trylock",
    "mutex_unlock",
    "oom_reap_task",
    "race_names",
    "register",
    "register_kind",
    "replay",
    "report",
    "resolve_config",
    "run",
    "scenario",
    "shrink_inactive_list",
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
    "world_state",
]


def _scenario(target: Scenario | str) -> Scenario:
    return target if isinstance(target, Scenario) else get(target)


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
