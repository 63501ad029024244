"""Exploration: many executions under one Strategy, until an ExitReason.

The runner asks the strategy for executions until it is exhausted or a bound
is hit, keeps one counterexample per violation kind (the first found,
optionally shrunk), counts outcomes, and says why it stopped.  An exploration
is *verified* only when an exhaustive strategy was exhausted with no
violation, no execution hit the step limit and no choice was cut by a bound.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from hmmsim.config import ExploreConfig
from hmmsim.engine.execution import (
    BudgetExpired,
    Execution,
    ExecutionResult,
    LockGraph,
    MemoryExceeded,
    Outcome,
    strict_coroutines,
)
from hmmsim.engine.program import Program
from hmmsim.engine.schedule import Schedule
from hmmsim.engine.snapshot import SnapshotCache
from hmmsim.engine.strategies import make_strategy
from hmmsim.engine.strategies.base import Strategy
from hmmsim.engine.strategies.replay import ReplayStrategy
from hmmsim.engine.trace import Finding, Trace
from hmmsim.engine.watchdog import default_memory_limit, watchdog
from hmmsim.errors import ModelError, ReplayDiverged

if TYPE_CHECKING:
    from hmmsim.engine.shrink import ReplayMemo

__all__ = [
    "Counterexample",
    "ExitReason",
    "ExplorationResult",
    "Status",
    "check_determinism",
    "explore",
    "replay",
]


class ExitReason(enum.Enum):
    """Why an exploration stopped."""

    EXHAUSTED = "exhausted"
    MAX_EXECUTIONS = "max-executions"
    TIME_BUDGET = "time-budget"
    FOUND = "found"
    INTERRUPTED = "interrupted"
    #: Set on the partial result of an exploration that a model error stopped.
    ERROR = "error"

    def describe(self) -> str:
        """Return one sentence for reports."""
        return _EXIT_TEXT[self]


_EXIT_TEXT = {
    ExitReason.EXHAUSTED: "every schedule class was explored",
    ExitReason.MAX_EXECUTIONS: "the execution bound was reached before exhaustion",
    ExitReason.TIME_BUDGET: "the time budget ran out before exhaustion",
    ExitReason.FOUND: "stopped at the first violation",
    ExitReason.INTERRUPTED: "interrupted by the user before exhaustion",
    ExitReason.ERROR: "stopped by an error before exhaustion",
}


_EXHAUSTIVE = frozenset({"dpor", "dfs"})
_BUDGETS = frozenset({ExitReason.MAX_EXECUTIONS, ExitReason.TIME_BUDGET})


class Status(enum.Enum):
    """Verdict of an exploration."""

    VIOLATION = "violation"
    VERIFIED = "verified"
    INCOMPLETE = "incomplete"
    #: Set by the front ends, never by an exploration: the unit did not finish
    #: (its worker process died, or the model's own code failed).
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Counterexample:
    """A schedule that leads to a violation, with what it shows.

    Attributes:
        kind: the violation kind.
        finding: the finding of that kind in the replayed execution.
        findings: every finding of that execution.
        schedule: the (possibly shrunk) schedule.
        steps: number of steps of the execution.
        preemptions: preemptions in it.
        original_steps: steps before shrinking.
        execution: 1-based number of the execution that found it.
        trace: the captured trace, when requested.
    """

    kind: str
    finding: Finding
    findings: tuple[Finding, ...]
    schedule: Schedule
    steps: int
    preemptions: int
    original_steps: int
    execution: int
    trace: Trace | None = None


@dataclass(slots=True, kw_only=True)
class ExplorationResult:
    """What an exploration found and how far it got."""

    strategy: str
    exit_reason: ExitReason
    executions: int = 0
    steps: int = 0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    counterexamples: list[Counterexample] = field(default_factory=list)
    complete: bool = True
    #: Progress only (never in reports): the strategy's open backtrack points
    #: (DPOR), refreshed at most ten times a second while a callback listens.
    open_points: int | None = None
    #: Only part of the program was explored: one work unit (the schedules
    #: below a prefix).  Exhausting it verifies nothing about the program.
    partial: bool = False

    @property
    def status(self) -> Status:
        """Violation if any was found; verified only if truly exhausted."""
        if self.counterexamples:
            return Status.VIOLATION
        if (
            self.exit_reason is ExitReason.EXHAUSTED
            and self.complete
            and not self.partial
            and not self.outcomes.get(Outcome.STEP_LIMIT.value, 0)
        ):
            return Status.VERIFIED
        return Status.INCOMPLETE

    def describe_exit(self) -> str:
        """Say why the exploration stopped, and whether a bound cut it short."""
        if self.exit_reason is ExitReason.EXHAUSTED and self.partial:
            return (
                "every schedule class below the work unit's prefix was explored; "
                "the rest of the program was not"
            )
        if self.exit_reason is ExitReason.EXHAUSTED and not self.complete:
            return (
                "every schedule class within the bounds was explored, but the "
                "preemption bound (or a sampling strategy) skipped others"
            )
        if self.exit_reason is ExitReason.EXHAUSTED and self.outcomes.get(
            Outcome.STEP_LIMIT.value, 0
        ):
            return (
                "every schedule class was explored, but some executions hit the "
                "step limit and were cut short"
            )
        if self.strategy in _EXHAUSTIVE and self.exit_reason in _BUDGETS:
            return (
                f"{self.exit_reason.describe()}: this world is too large to explore "
                "exhaustively within the budget; --strategy pct samples schedules "
                "and finds shallow bugs in few executions at any world size"
            )
        return self.exit_reason.describe()

    @property
    def kinds(self) -> list[str]:
        """Violation kinds found, in the order first found."""
        return [c.kind for c in self.counterexamples]


#: Seconds between two reads of the strategy's progress stats.
_STAT_EVERY = 0.1

Shrinker = Callable[[Program, Schedule, str, int], Schedule]


def explore(
    program: Program,
    config: ExploreConfig | None = None,
    *,
    strategy: Strategy | None = None,
    shrinker: Shrinker | None = None,
    on_progress: Callable[[ExplorationResult], None] | None = None,
    lockdep: LockGraph | None = None,
    snapshots: bool | SnapshotCache = True,
) -> ExplorationResult:
    """Explore ``program`` under ``config`` and return what was found.

    Args:
        program: factory of a fresh instance per execution.
        config: bounds and strategy choice (default: ``ExploreConfig()``).
        strategy: use this strategy object instead of ``config.strategy``.
        shrinker: shrink counterexample schedules (``None``: the default
            shrinker when ``config.shrink`` is set).
        on_progress: called after every execution (for progress bars).
        lockdep: the lock-order graph to start from (default: an empty one);
            it is updated in place.
        snapshots: restore the world after a program's set-up phase instead
            of re-running it (:mod:`hmmsim.engine.snapshot`); the results are
            the same either way.  A :class:`SnapshotCache` given here is used
            (and can be inspected afterwards).
    """
    config = config or ExploreConfig()
    strategy = strategy or make_strategy(config)
    result = ExplorationResult(strategy=strategy.name, exit_reason=ExitReason.EXHAUSTED)
    start = time.monotonic()
    deadline = None if config.time_budget_s is None else start + config.time_budget_s
    search = _Search(
        program=program,
        config=config,
        strategy=strategy,
        result=result,
        deadline=deadline,
        on_progress=on_progress,
        lockdep=LockGraph() if lockdep is None else lockdep,
        snapshots=_cache(snapshots),
    )
    try:
        with (
            strict_coroutines(),
            watchdog(
                task_timeout=config.task_timeout_s,
                deadline=deadline,
                memory_limit=_memory_limit(config),
            ),
        ):
            result.exit_reason = search.loop()
    except KeyboardInterrupt:
        result.exit_reason = ExitReason.INTERRUPTED
    except ModelError as exc:
        result.exit_reason = ExitReason.ERROR
        result.seconds = time.monotonic() - start
        result.complete = False
        exc.partial = result
        raise
    result.complete = strategy.complete if strategy.exhaustive else False
    # Strategies that explore a part of the program (a DFS below a work unit's
    # prefix) say so; the Strategy protocol does not require the attribute.
    result.partial = bool(getattr(strategy, "partial", False))
    result.seconds = time.monotonic() - start
    memo = None
    if config.shrink and shrinker is None:
        from hmmsim.engine.shrink import (  # noqa: PLC0415 - avoids an import cycle
            ReplayMemo,
            shrink,
        )

        # One memo for every kind: each distinct schedule is replayed once.
        memo = ReplayMemo()
        shrinker = functools.partial(shrink, memo=memo)
    try:
        for kind, (execution_result, number) in search.found.items():
            result.counterexamples.append(
                _counterexample(
                    program,
                    config,
                    kind,
                    execution_result,
                    number=number,
                    shrinker=shrinker,
                    memo=memo,
                )
            )
    except ModelError as exc:
        exc.partial = result
        raise
    # A verdict (verified above all) rests on every execution being a function
    # of its schedule: re-run a sample of them and compare every Op.
    if result.exit_reason is not ExitReason.INTERRUPTED:
        for schedule in search.sampled:
            check_determinism(program, schedule, max_steps=config.max_steps)
    return result


#: How many schedules ``check_determinism`` re-runs after an exploration.
DETERMINISM_SAMPLES: Final = 12


def _cache(snapshots: bool | SnapshotCache) -> SnapshotCache | None:
    if isinstance(snapshots, SnapshotCache):
        return snapshots
    return SnapshotCache() if snapshots else None


@dataclass(slots=True, kw_only=True)
class _Search:
    """The state of one exploration's loop over executions."""

    program: Program
    config: ExploreConfig
    strategy: Strategy
    result: ExplorationResult
    deadline: float | None
    on_progress: Callable[[ExplorationResult], None] | None
    snapshots: SnapshotCache | None = None
    lockdep: LockGraph = field(default_factory=LockGraph)
    #: When the progress stats were last read from the strategy (monotonic).
    stat_time: float = 0.0
    #: First execution (result, 1-based number) of each finding kind.
    found: dict[str, tuple[ExecutionResult, int]] = field(default_factory=dict)
    #: With ``check_determinism``: the schedules of the 1st, 2nd, 4th, 8th ...
    #: complete execution (at most ``DETERMINISM_SAMPLES``), re-run at the end.
    sampled: list[Schedule] = field(default_factory=list)
    _complete_runs: int = 0

    def sample(self, ex_result: ExecutionResult) -> None:
        """Keep the schedule of a power-of-two-numbered complete execution."""
        outcome = ex_result.outcome
        if outcome is Outcome.REDUNDANT or outcome is Outcome.PRUNED:
            return
        self._complete_runs += 1
        n = self._complete_runs
        if n & (n - 1) == 0 and len(self.sampled) < DETERMINISM_SAMPLES:
            self.sampled.append(ex_result.schedule)

    def loop(self) -> ExitReason:
        """Run executions until an ExitReason applies; return it."""
        config = self.config
        strategy = self.strategy
        result = self.result
        outcomes = result.outcomes
        found = self.found
        max_executions = config.max_executions
        while True:
            if max_executions is not None and result.executions >= max_executions:
                return ExitReason.MAX_EXECUTIONS
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return ExitReason.TIME_BUDGET
            if not strategy.begin_execution():
                return ExitReason.EXHAUSTED
            execution = Execution(
                self.program,
                strategy,
                max_steps=config.max_steps,
                seed=config.seed,
                lockdep=self.lockdep,
                snapshots=self.snapshots,
            )
            try:
                ex_result = execution.run()
            except BudgetExpired:
                return ExitReason.TIME_BUDGET
            except MemoryExceeded as exc:
                used, limit = exc.args
                raise ModelError(
                    f"execution {result.executions + 1} used {used // 2**20} MiB "
                    f"after {execution.step} steps, over the memory limit of "
                    f"{limit // 2**20} MiB (one execution keeps about a kilobyte "
                    "per step): lower --max-steps, or raise HMMSIM_MEMORY_LIMIT_MB"
                ) from None
            strategy.end_execution(ex_result)
            result.executions += 1
            result.steps += ex_result.steps
            key = ex_result.outcome._value_  # .value is a Python-level property
            outcomes[key] = outcomes.get(key, 0) + 1
            for finding in ex_result.findings:
                if finding.kind not in found:
                    found[finding.kind] = (ex_result, result.executions)
            if config.check_determinism:
                self.sample(ex_result)
            if self.on_progress is not None:
                now = time.monotonic()
                if now - self.stat_time >= _STAT_EVERY:
                    self.stat_time = now
                    result.open_points = getattr(strategy, "open_points", None)
                self.on_progress(result)
            if found and (config.stop_on_first or "hung-task" in found):
                # Every further hang would cost the watchdog's whole timeout.
                return ExitReason.FOUND


def _memory_limit(config: ExploreConfig) -> int | None:
    if config.memory_limit_mb is not None:
        return config.memory_limit_mb * 2**20
    return default_memory_limit()


def _counterexample(
    program: Program,
    config: ExploreConfig,
    kind: str,
    ex_result: ExecutionResult,
    *,
    number: int,
    shrinker: Shrinker | None,
    memo: ReplayMemo | None = None,
) -> Counterexample:
    schedule = ex_result.schedule
    # A lock-order finding rests on the lock graph of the whole exploration,
    # which a replay of one schedule does not have: it is not shrunk.  A hung
    # task costs the watchdog's whole timeout on every replay: not shrunk.
    if kind == "hung-task":
        final = ex_result
    else:
        if shrinker is not None and kind != "lock-order":
            schedule = shrinker(program, schedule, kind, config.max_steps)
        # The shrinker ran the schedule it returns (unless it was not shrunk).
        known = memo and memo.result_of(schedule, max_steps=config.max_steps)
        final = known or replay(
            program,
            schedule,
            max_steps=config.max_steps,
            task_timeout=config.task_timeout_s,
        )
    if config.check_determinism:
        check_determinism(program, schedule, max_steps=config.max_steps)
    finding = next((f for f in final.findings if f.kind == kind), None)
    if finding is None:
        # Only a lock-order inversion whose first edge was recorded in an
        # earlier execution gets here: keep the execution that reported it.
        final, schedule = ex_result, ex_result.schedule
        finding = next(f for f in final.findings if f.kind == kind)
    return Counterexample(
        kind=kind,
        finding=finding,
        findings=final.findings,
        schedule=schedule,
        steps=final.steps,
        preemptions=final.preemptions,
        original_steps=ex_result.steps,
        execution=number,
    )


def replay(
    program: Program,
    schedule: Schedule,
    *,
    max_steps: int = 100_000,
    capture: bool = False,
    strict: bool = True,
    lockdep: LockGraph | None = None,
    capture_locations: bool = False,
    task_timeout: float | None = 5.0,
) -> ExecutionResult:
    """Re-run ``program`` along ``schedule``.

    ``capture`` records the Trace; ``capture_locations`` adds the model
    source line of each step's Op to it; ``task_timeout`` arms the
    watchdog (see :mod:`hmmsim.engine.watchdog`) unless one is armed already.

    Raises:
        ReplayDiverged: in strict mode, when the execution does not follow it.
    """
    return _replay(
        program,
        schedule,
        max_steps=max_steps,
        capture=capture,
        strict=strict,
        lockdep=lockdep,
        capture_locations=capture_locations,
        task_timeout=task_timeout,
    )[0]


def _replay(
    program: Program,
    schedule: Schedule,
    *,
    max_steps: int,
    capture: bool = False,
    strict: bool = True,
    lockdep: LockGraph | None = None,
    capture_locations: bool = False,
    task_timeout: float | None = 5.0,
) -> tuple[ExecutionResult, list[tuple[object, ...]]]:
    """Replay as :func:`replay` does; also return every Op performed, as data."""
    strategy = ReplayStrategy(schedule, strict=strict)
    strategy.begin_execution()
    with strict_coroutines(), watchdog(task_timeout=task_timeout):
        execution = Execution(
            program,
            strategy,
            max_steps=max_steps,
            seed=schedule.seed,
            lockdep=lockdep,
            capture=capture,
            capture_locations=capture_locations,
        )
        result = execution.run()
    strategy.end_execution(result)
    ops: list[tuple[object, ...]] = [
        (op.kind, op.oid, op.write, op.func, op.more_oids, op.timed)
        for op in execution.ops
    ]
    return result, ops


def check_determinism(program: Program, schedule: Schedule, *, max_steps: int) -> None:
    """Replay ``schedule`` twice, capturing everything, and compare the runs.

    Raises:
        ReplayDiverged: the two runs differ (the model depends on something
            outside the schedule: hash order, global state, time ...); the
            message names the first step that differs.
    """
    try:
        first, first_ops = _replay(program, schedule, max_steps=max_steps, capture=True)
        second, second_ops = _replay(
            program, schedule, max_steps=max_steps, capture=True
        )
    except ReplayDiverged as exc:
        raise ReplayDiverged(f"non-deterministic model: {exc}") from None
    assert first.trace is not None, "[hmmsim internal bug] capture without trace"
    assert second.trace is not None, "[hmmsim internal bug] capture without trace"
    for a, b, op_a, op_b in zip(
        first.trace.steps, second.trace.steps, first_ops, second_ops, strict=False
    ):
        # Every Op compares whole (kind, object ids, access mode), not only
        # its rendering: a model that touches another object under the same
        # name would mislead DPOR without changing the timeline.
        if a != b or op_a != op_b:
            raise ReplayDiverged(
                f"non-deterministic model: two replays of the same schedule differ "
                f"at step {a.index} ({a.task_name}: {a.op})"
            )
    if len(first.trace.steps) != len(second.trace.steps) or (
        first.findings != second.findings
    ):
        raise ReplayDiverged(
            "non-deterministic model: two replays of the same schedule end differently"
        )
