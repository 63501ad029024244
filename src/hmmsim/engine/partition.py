"""Work units: split an exhaustive exploration into schedule prefixes and merge.

An exhaustive DFS explores a tree whose nodes are choice points.  Cutting the
tree at depth ``d`` gives independent *work units*: each is a schedule prefix
(the encoded choices of the first ``d`` choice points, or fewer when an
execution ends earlier), and the subtrees below the prefixes partition the
whole tree.  Units can run in other processes or on other machines
(:meth:`WorkUnit.to_json` / :meth:`WorkUnit.from_json`), each with
:func:`explore_unit`, and :func:`merge` combines their results, in unit
order, into the result the serial exploration gives: the same executions,
steps and outcome counts, and the same first counterexample of each kind
with the same execution number.

Exceptions, stated so that nobody relies on them:
    * the lock-order graph (lockdep) is per unit, so an inversion whose two
      edges lie in different units is not found, and outcome counts of
      executions with ``lock-order`` findings may differ from a serial run;
    * per-unit bounds (``max_executions``, ``time_budget_s``) apply to each
      unit; a unit stopped by a bound makes the merge incomplete.

**DPOR work units** (:class:`DporCoordinator`).  DPOR cannot be cut at a
fixed depth: the races found below a prefix add backtrack points to the
prefix's own choice points, and the sleep set of a branch depends on the
branches explored before it.  A :class:`~hmmsim.engine.strategies.dpor.DporUnit`
is a schedule prefix plus the sleep-set information of its path (the tasks
explored before each chosen one) and a *root*: the whole tree, some tasks
at the state the prefix leads to, or a range of values of a data choice.
The unit explores everything below its root with ordinary DPOR; a race that
reverses at the prefix or at a task root becomes a *claim* sent to the
coordinator, which owns those choice points.  The coordinator adds a claimed
task only if no unit explores it there yet, so no branch is explored twice,
and makes a new unit of the new branches, with every branch explored there
before (whose step is known not to be fatal) in their sleep set.  A unit
that ran ``slice_executions`` executions stops and hands its remaining
branches back as new units (time slicing measured in executions, so that
it is the same on every machine).

Reports are *processed* strictly in unit order (unit numbers are given in
the order units are created, which is itself decided in processing order),
whatever order the units finish in.  Each unit is a pure function of its
description and of the lock graph it starts from, so the units, their
results and the merged result are the same for every number of workers and
every backend: only wall-clock time changes.  The merge numbers executions
in unit order and keeps the first counterexample of each kind, shrunk once
at the end.  Executions differ from a serial DPOR run by a few per cent:
a branch created while a sibling's first step is not known yet to be
non-fatal cannot sleep on it, and branches are explored in another order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hmmsim.config import ExploreConfig
from hmmsim.engine.execution import Execution, LockGraph, strict_coroutines
from hmmsim.engine.program import Program
from hmmsim.engine.runner import (
    Counterexample,
    ExitReason,
    ExplorationResult,
    Shrinker,
    _counterexample,
    explore,
    replay,
)
from hmmsim.engine.schedule import Schedule
from hmmsim.engine.snapshot import SnapshotCache
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import Claim, DporStrategy, DporUnit, NodeInfo
from hmmsim.errors import ConfigError, InternalError, ReplayError

__all__ = [
    "SLICE_EXECUTIONS",
    "DporCoordinator",
    "DporUnit",
    "Estimate",
    "UnitReport",
    "WorkUnit",
    "explore_dpor_unit",
    "explore_split",
    "explore_unit",
    "merge",
    "split",
]

#: Executions after which a DPOR unit hands the rest of its work back.
SLICE_EXECUTIONS = 400


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkUnit:
    """One independent part of an exhaustive exploration.

    Attributes:
        index: position of the unit in DFS order (merge order).
        prefix: the choices every execution of the unit starts with.
    """

    index: int
    prefix: Schedule

    def to_json(self) -> dict[str, object]:
        """Return the JSON form, to ship the unit elsewhere."""
        return {"index": self.index, "prefix": self.prefix.to_json()}

    @classmethod
    def from_json(cls, data: object) -> WorkUnit:
        """Parse the JSON form; raise ReplayError when it is malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("index"), int):
            raise ReplayError("work unit must be an object with an integer 'index'")
        return cls(index=data["index"], prefix=Schedule.from_json(data.get("prefix")))


def split(program: Program, config: ExploreConfig, *, depth: int) -> list[WorkUnit]:
    """Cut the DFS tree of ``program`` at ``depth`` choice points.

    Runs one execution per unit (the first branch below each prefix).

    Raises:
        ConfigError: ``depth`` is not a positive integer.
    """
    checked: object = depth  # callers outside typed code may pass anything
    if isinstance(checked, bool) or not isinstance(checked, int) or depth < 1:
        raise ConfigError(f"split depth must be a positive integer, got {depth!r}")
    enumerator = DfsStrategy(preemption_bound=config.preemption_bound, horizon=depth)
    units: list[WorkUnit] = []
    with strict_coroutines():
        while enumerator.begin_execution():
            execution = Execution(
                program, enumerator, max_steps=config.max_steps, seed=config.seed
            )
            result = execution.run()
            enumerator.end_execution(result)
            prefix = Schedule(seed=config.seed, choices=result.schedule.choices[:depth])
            units.append(WorkUnit(index=len(units), prefix=prefix))
    return units


def explore_unit(
    program: Program,
    unit: WorkUnit,
    config: ExploreConfig,
    *,
    shrinker: Shrinker | None = None,
) -> ExplorationResult:
    """Explore the subtree below ``unit.prefix`` exhaustively (DFS)."""
    strategy = DfsStrategy(
        preemption_bound=config.preemption_bound, prefix=unit.prefix.choices
    )
    return explore(program, config, strategy=strategy, shrinker=shrinker)


def merge(results: Sequence[ExplorationResult]) -> ExplorationResult:
    """Combine the results of the units, given in unit order.

    Each unit's own result is ``partial`` (never VERIFIED on its own); the
    merge is not, so ``results`` must be those of every unit of one split.
    """
    merged = ExplorationResult(strategy="dfs", exit_reason=ExitReason.EXHAUSTED)
    seen: set[str] = set()
    for result in results:
        if (
            merged.exit_reason is ExitReason.EXHAUSTED
            and result.exit_reason is not ExitReason.EXHAUSTED
        ):
            merged.exit_reason = result.exit_reason
        for example in result.counterexamples:
            if example.kind not in seen:
                seen.add(example.kind)
                merged.counterexamples.append(_shifted(example, merged.executions))
        merged.executions += result.executions
        merged.steps += result.steps
        merged.seconds += result.seconds
        merged.complete = merged.complete and result.complete
        for key, count in result.outcomes.items():
            merged.outcomes[key] = merged.outcomes.get(key, 0) + count
    return merged


def _shifted(example: Counterexample, offset: int) -> Counterexample:
    return Counterexample(
        kind=example.kind,
        finding=example.finding,
        findings=example.findings,
        schedule=example.schedule,
        steps=example.steps,
        preemptions=example.preemptions,
        original_steps=example.original_steps,
        execution=example.execution + offset,
        trace=example.trace,
    )


# -- DPOR work units ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitReport:
    """What exploring one DPOR unit gives back to the coordinator.

    Attributes:
        result: the unit's exploration (counterexamples not shrunk).
        claims: races reversed at the coordinator's choice points, in order.
        statuses: (position, task, fatal) of tasks at those choice points
            whose steps have all run.
        nodes: when the unit was sliced, the choice points it owned.
        frontier: when the unit was sliced, the units of its remaining work.
        lockdep: the lock-order graph after the unit.
        trail: under ``max_executions``, the steps so far and the outcome
            after each execution, so that the coordinator can cut the unit
            at the bound exactly (empty without the bound).
        estimate: for the first unit (the whole tree) when it was sliced,
            the size of the whole exploration it estimates.
    """

    result: ExplorationResult
    claims: tuple[Claim, ...]
    statuses: tuple[tuple[int, int, bool], ...]
    nodes: tuple[NodeInfo, ...]
    frontier: tuple[DporUnit, ...]
    lockdep: LockGraph
    trail: tuple[tuple[int, str], ...] = ()
    estimate: Estimate | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """How large an exhaustive DPOR exploration looks after a sample of it.

    Made from the first unit's tree when it is sliced, by the weighted
    backtrack estimator (:attr:`DporStrategy.explored_fraction`); rough,
    within a factor of a few on the built-in scenarios, and low more often
    than high.  Deterministic: the same for every backend.

    Attributes:
        executions: the estimated executions of the whole exploration.
        sample: the executions it was estimated from.
        seconds: the sample's time (wall clock of the worker that ran it).
    """

    executions: int
    sample: int
    seconds: float

    def beyond(self, config: ExploreConfig) -> str | None:
        """Say which bound of ``config`` the estimate exceeds, if any."""
        if (
            config.max_executions is not None
            and self.executions > config.max_executions
        ):
            return f"--max-executions {config.max_executions}"
        budget = config.time_budget_s
        if budget is not None and self.seconds_needed() > budget:
            return f"--time-budget {budget:g}"
        return None

    def seconds_needed(self) -> float:
        """The estimated time of the whole exploration on one core."""
        return self.executions * self.seconds / max(self.sample, 1)


def explore_dpor_unit(
    program: Program,
    unit: DporUnit,
    config: ExploreConfig,
    *,
    lockdep: LockGraph | None = None,
    slice_executions: int | None = SLICE_EXECUTIONS,
    on_progress: Callable[[ExplorationResult], None] | None = None,
    snapshots: SnapshotCache | None = None,
) -> UnitReport:
    """Explore ``unit`` of ``program``'s DPOR tree (in any process or machine).

    ``lockdep`` is updated in place: pass a copy to keep the original.
    Counterexamples are not shrunk (the coordinator shrinks the ones it keeps).
    ``snapshots``: the set-up snapshot cache to use; pass the same one for
    every unit of one program in a process, so that the post-set-up world is
    pickled once, not once per unit (an 18 % CPU overhead of 400-execution
    units on concurrent-invalidations v5.3 otherwise).
    """
    strategy = DporStrategy(
        preemption_bound=config.preemption_bound,
        unit=unit,
        slice_executions=slice_executions,
    )
    graph = LockGraph() if lockdep is None else lockdep
    # A unit never needs more executions than the whole exploration may run.
    unit_config = config.replace(shrink=False, check_determinism=False)
    trail: list[tuple[int, str]] = []
    progress = on_progress
    if config.max_executions is not None:
        counts: dict[str, int] = {}

        def record(result: ExplorationResult) -> None:
            for key, count in result.outcomes.items():
                if counts.get(key, 0) != count:
                    counts[key] = count
                    trail.append((result.steps, key))
                    break
            if on_progress is not None:
                on_progress(result)

        progress = record
    result = explore(
        program,
        unit_config,
        strategy=strategy,
        lockdep=graph,
        on_progress=progress,
        snapshots=SnapshotCache() if snapshots is None else snapshots,
    )
    estimate = None
    if unit == DporUnit() and strategy.frontier:
        # The first unit explores the whole tree until it is sliced.
        fraction = strategy.explored_fraction
        if fraction > 0:
            estimate = Estimate(
                executions=max(round(result.executions / fraction), result.executions),
                sample=result.executions,
                seconds=result.seconds,
            )
    return UnitReport(
        result=result,
        claims=tuple(strategy.claims),
        statuses=tuple(strategy.statuses),
        nodes=tuple(strategy.nodes),
        frontier=tuple(strategy.frontier),
        lockdep=graph,
        trail=tuple(trail),
        estimate=estimate,
    )


def copy_graph(graph: LockGraph) -> LockGraph:
    """Return an independent copy of a lock-order graph."""
    copy = LockGraph()
    copy.edges = dict(graph.edges)
    copy.reported = set(graph.reported)
    copy.successors = {k: list(v) for k, v in graph.successors.items()}
    return copy


def _merge_graph(into: LockGraph, other: LockGraph) -> None:
    for edge, value in other.edges.items():
        if edge not in into.edges:
            into.edges[edge] = value
            into.successors.setdefault(edge[0], []).append(edge[1])
    into.reported |= other.reported


class _Node:
    """A choice point the coordinator owns."""

    __slots__ = ("busy", "claimed", "done_before", "final", "open", "parked")

    def __init__(self, done_before: tuple[tuple[int, ...], ...]) -> None:
        self.done_before = done_before
        self.claimed: set[int] = set()
        self.final: dict[int, bool] = {}
        # Units rooted here not processed yet; claimed tasks that wait for
        # them, so that they can sleep on the branches those units explore.
        self.busy = 0
        self.parked: list[int] = []
        # task -> units not processed yet that explore other values of the
        # data choices of its step from here (its status is not final).
        self.open: dict[int, int] = {}

    def ready(self) -> bool:
        """Whether parked tasks can go: every other claimed task's status is final."""
        return bool(self.parked) and not self.busy and not self.open

    def status(self, task: int, fatal: bool) -> None:
        if fatal or task not in self.final:
            self.final[task] = fatal


class DporCoordinator:
    """Hands out DPOR units and merges their reports (see the module docstring).

    Use: :meth:`take` the units created so far, explore each anywhere with
    :func:`explore_dpor_unit` (on a copy of the graph given with it), hand
    each report to :meth:`accept` in any order, until :meth:`is_done`; then
    :meth:`finish`.

    Attributes:
        config: the exploration's config.
        slice_executions: executions after which a unit is sliced.
        units: every unit created, by number.
        processed: how many reports were processed (in unit order).
        estimate: the size of the exploration estimated from its first
            unit, once that unit was processed and sliced (else None).
    """

    def __init__(
        self, config: ExploreConfig, *, slice_executions: int | None = SLICE_EXECUTIONS
    ) -> None:
        """Start with one unit: the whole tree."""
        if config.strategy != "dpor":
            raise ConfigError(
                f"only dpor explorations split into DPOR units, not {config.strategy}"
            )
        self.config = config
        self.slice_executions = slice_executions
        self.units: list[DporUnit] = []
        self.processed = 0
        self.estimate: Estimate | None = None
        self._graphs: list[LockGraph] = []
        self._tree: dict[tuple[int, ...], _Node] = {}
        self._reports: dict[int, UnitReport] = {}
        self._fresh: list[int] = []
        self._lockdep = LockGraph()
        self._start = time.monotonic()
        self._stop: ExitReason | None = None
        self.result = ExplorationResult(
            strategy="dpor", exit_reason=ExitReason.EXHAUSTED
        )
        self._add(DporUnit())

    def is_done(self) -> bool:
        """Whether the exploration is over (every report processed, or a stop)."""
        return self._stop is not None or self.processed == len(self.units)

    def take(self) -> list[tuple[int, DporUnit, LockGraph]]:
        """Return the units created since the last call, with their graphs."""
        if self._stop is not None:
            self._fresh = []
        fresh = [(i, self.units[i], self._graphs[i]) for i in self._fresh]
        self._fresh = []
        return fresh

    def accept(self, index: int, report: UnitReport) -> None:
        """Take the report of unit ``index``; process every report now in order."""
        if not 0 <= index < len(self.units) or index < self.processed:
            raise InternalError(f"unexpected report of DPOR unit {index}")
        self._reports[index] = report
        while self._stop is None and self.processed in self._reports:
            self._process(self.units[self.processed], self._reports.pop(self.processed))
            self.processed += 1

    def interrupt(self) -> None:
        """Stop handing out units: the result is ``interrupted``."""
        if self._stop is None:
            self._stop = ExitReason.INTERRUPTED

    # -- processing -----------------------------------------------------------

    def _add(self, unit: DporUnit) -> None:
        self._fresh.append(len(self.units))
        self.units.append(unit)
        self._graphs.append(copy_graph(self._lockdep))
        if unit.branches:
            node = self._node(unit.prefix, unit.done_before)
            node.claimed.update(unit.branches)
            node.busy += 1
        step = _step_of(unit)
        if step is not None:
            node = self._tree[step[0]]
            node.open[step[1]] = node.open.get(step[1], 0) + 1

    def _node(
        self, path: tuple[int, ...], done_before: tuple[tuple[int, ...], ...]
    ) -> _Node:
        node = self._tree.get(path)
        if node is None:
            node = self._tree[path] = _Node(done_before)
        return node

    def _merge_result(self, result: ExplorationResult) -> None:
        merged = self.result
        for example in result.counterexamples:
            if example.kind not in {c.kind for c in merged.counterexamples}:
                merged.counterexamples.append(_shifted(example, merged.executions))
        merged.executions += result.executions
        merged.steps += result.steps
        merged.complete = merged.complete and result.complete
        for key, count in result.outcomes.items():
            merged.outcomes[key] = merged.outcomes.get(key, 0) + count

    def _process(self, unit: DporUnit, report: UnitReport) -> None:
        if report.estimate is not None and self.estimate is None:
            self.estimate = report.estimate
        limit = self.config.max_executions
        if (
            limit is not None
            and self.result.executions + report.result.executions > limit
        ):
            # Cut the unit at the bound: the merged result counts exactly the
            # first ``limit`` executions in unit order, as a serial run would.
            self._merge_result(_cut(report, limit - self.result.executions))
            self._stop = ExitReason.MAX_EXECUTIONS
            return
        self._merge_result(report.result)
        _merge_graph(self._lockdep, report.lockdep)
        tree = self._tree
        for pos, task, fatal in report.statuses:
            tree[unit.prefix[:pos]].status(task, fatal)
        for info in report.nodes:
            node = self._node(info.path, info.done_before)
            node.claimed.update(info.claimed)
            for task, fatal in info.final:
                node.status(task, fatal)
        touched: dict[tuple[int, ...], _Node] = {}
        self._take_frontier(report, touched)
        self._close(unit, touched)
        self._take_claims(unit, report, touched)
        for path, node in touched.items():
            if node.ready():
                tasks, node.parked = node.parked, []
                self._add(
                    DporUnit(
                        prefix=path,
                        done_before=node.done_before,
                        branches=tuple(sorted(tasks)),
                        root_done=tuple(
                            sorted(t for t, fatal in node.final.items() if not fatal)
                        ),
                    )
                )
        self._check_stop(report.result)

    def _take_frontier(
        self, report: UnitReport, touched: dict[tuple[int, ...], _Node]
    ) -> None:
        for frontier in report.frontier:
            if frontier.values is not None:
                self._add(frontier)
        for frontier in report.frontier:
            if frontier.values is None:
                node = self._tree[frontier.prefix]
                if node.open:
                    # Park: the branches sleep on the chosen task once its
                    # status is final.
                    node.parked.extend(frontier.branches)
                    touched[frontier.prefix] = node
                else:
                    self._add(frontier)

    def _close(self, unit: DporUnit, touched: dict[tuple[int, ...], _Node]) -> None:
        """Count the processed unit out of the nodes that wait for it."""
        if unit.branches:
            node = self._tree[unit.prefix]
            node.busy -= 1
            touched[unit.prefix] = node
        step = _step_of(unit)
        if step is not None:
            path, task = step
            node = self._tree[path]
            node.open[task] -= 1
            if not node.open[task]:
                del node.open[task]
                node.status(task, False)
            touched[path] = node

    def _take_claims(
        self,
        unit: DporUnit,
        report: UnitReport,
        touched: dict[tuple[int, ...], _Node],
    ) -> None:
        for claim in report.claims:
            path = unit.prefix[: claim.pos]
            node = self._tree[path]
            if claim.every:
                new = [t for t in claim.tasks if t not in node.claimed]
            elif any(t in node.claimed for t in claim.tasks):
                new = []
            else:
                new = [claim.tasks[0]]
            node.claimed.update(new)
            if new:
                node.parked.extend(new)
                touched[path] = node

    def _check_stop(self, result: ExplorationResult) -> None:
        config = self.config
        reason = result.exit_reason
        if reason is not ExitReason.EXHAUSTED:
            self._stop = reason  # FOUND too: units stop at their first violation
        elif (
            config.max_executions is not None
            and self.result.executions >= config.max_executions
            and self.processed + 1 < len(self.units)
        ):
            self._stop = ExitReason.MAX_EXECUTIONS
        elif (
            config.time_budget_s is not None
            and time.monotonic() - self._start >= config.time_budget_s
            and self.processed + 1 < len(self.units)
        ):
            self._stop = ExitReason.TIME_BUDGET

    def finish(
        self, program: Program, *, shrinker: Shrinker | None = None
    ) -> ExplorationResult:
        """Return the merged result, its counterexamples shrunk as configured."""
        merged = self.result
        config = self.config
        if self._stop is not None:
            merged.exit_reason = self._stop
        merged.seconds = time.monotonic() - self._start
        if config.shrink and shrinker is None:
            from hmmsim.engine.shrink import shrink  # noqa: PLC0415 - import cycle

            shrinker = shrink
        if not config.shrink:
            shrinker = None
        examples = []
        for example in merged.counterexamples:
            if example.kind == "lock-order" or (
                shrinker is None and not config.check_determinism
            ):
                examples.append(example)
                continue
            found = replay(program, example.schedule, max_steps=config.max_steps)
            examples.append(
                _counterexample(
                    program,
                    config,
                    example.kind,
                    found,
                    number=example.execution,
                    shrinker=shrinker,
                )
            )
        merged.counterexamples = examples
        return merged


def _cut(report: UnitReport, executions: int) -> ExplorationResult:
    """Return the result of the first ``executions`` executions of a unit."""
    full = report.result
    if len(report.trail) != full.executions:
        raise InternalError("a DPOR unit under max_executions without its trail")
    trail = report.trail[:executions]
    outcomes: dict[str, int] = {}
    for _, key in trail:
        outcomes[key] = outcomes.get(key, 0) + 1
    return ExplorationResult(
        strategy=full.strategy,
        exit_reason=ExitReason.MAX_EXECUTIONS,
        executions=executions,
        steps=trail[-1][0] if trail else 0,
        outcomes=outcomes,
        counterexamples=[c for c in full.counterexamples if c.execution <= executions],
        complete=full.complete,
        partial=full.partial,
    )


def _step_of(unit: DporUnit) -> tuple[tuple[int, ...], int] | None:
    """Return (path, task) of the step whose data choice a data root is in."""
    if unit.values is None:
        return None
    prefix = unit.prefix
    for k in range(len(prefix) - 1, -1, -1):
        if not prefix[k] & 1:
            return prefix[:k], prefix[k] >> 1
    return None


def explore_split(
    program: Program,
    config: ExploreConfig,
    *,
    slice_executions: int | None = SLICE_EXECUTIONS,
    shrinker: Shrinker | None = None,
) -> ExplorationResult:
    """Explore ``program`` with DPOR units, one after the other, in this process.

    The result is the one every parallel backend gives for the same
    ``slice_executions``.
    """
    coordinator = DporCoordinator(config, slice_executions=slice_executions)
    snapshots = SnapshotCache()
    while not coordinator.is_done():
        for index, unit, graph in coordinator.take():
            report = explore_dpor_unit(
                program,
                unit,
                config,
                lockdep=copy_graph(graph),
                slice_executions=slice_executions,
                snapshots=snapshots,
            )
            coordinator.accept(index, report)
    return coordinator.finish(program, shrinker=shrinker)
