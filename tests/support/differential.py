"""Drive a strategy to exhaustion and compare what two strategies reach.

Unlike :func:`hmmsim.engine.explore`, :func:`run_all` keeps every execution's
result and gives each execution a lock graph of its own, so that a
lock-order finding belongs to the execution that shows both orders and the
results of equivalent executions are equal.
"""

from __future__ import annotations

from hmmsim.engine import Execution, ExecutionResult, LockGraph, Outcome, Program
from hmmsim.engine.execution import strict_coroutines
from hmmsim.engine.strategies.base import Strategy

Behaviour = tuple[str, object, frozenset[str]]


def run_all(
    program: Program, strategy: Strategy, *, limit: int = 100_000, max_steps: int = 500
) -> list[ExecutionResult] | None:
    """Exhaust ``strategy`` on ``program``; None if it needs more than ``limit`` runs."""
    results: list[ExecutionResult] = []
    with strict_coroutines():
        while strategy.begin_execution():
            if len(results) == limit:
                return None
            execution = Execution(
                program, strategy, max_steps=max_steps, lockdep=LockGraph()
            )
            result = execution.run()
            strategy.end_execution(result)
            results.append(result)
    return results


def behaviours(results: list[ExecutionResult]) -> set[Behaviour]:
    """Return the (outcome, final state, kinds) of the non-redundant executions."""
    return {
        (r.outcome.value, r.final_state, frozenset(f.kind for f in r.findings))
        for r in results
        if r.outcome is not Outcome.REDUNDANT
    }
