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
      unit; a unit stopped by a bound makes the merge incomplete;
    * only DFS splits this way: DPOR's backtrack sets span subtrees, so
      splitting it needs the sleep set of each prefix (future work).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hmmsim.config import ExploreConfig
from hmmsim.engine.execution import Execution, strict_coroutines
from hmmsim.engine.program import Program
from hmmsim.engine.runner import (
    Counterexample,
    ExitReason,
    ExplorationResult,
    Shrinker,
    explore,
)
from hmmsim.engine.schedule import Schedule
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.errors import ConfigError, ReplayError

__all__ = ["WorkUnit", "explore_unit", "merge", "split"]


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
