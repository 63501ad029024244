"""oom-vs-nouveau-fault (v5.5, current): a refused reap leaves the interval section open."""

from __future__ import annotations

import pytest

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.scenarios import get

SCENARIO = get("oom-vs-nouveau-fault")


@pytest.mark.parametrize("variant", ["v5.5", "current"])
def test_refused_reap_hangs_the_next_gpu_fault_and_leaks_the_section(
    variant: str,
) -> None:
    """DPOR finds both outcomes, and the hang replays: the GPU fault sleeps in read_begin."""
    config = SCENARIO.explore_config(ExploreConfig(max_executions=2_000))

    result = explore(SCENARIO.program(variant), config)

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VIOLATION == result.status
    assert {"deadlock", "notifier-leak"} == set(result.kinds)
    hang = next(c for c in result.counterexamples if c.kind == "deadlock")
    again = replay(
        SCENARIO.program(variant), hang.schedule, max_steps=4000, capture=True
    )
    assert ["deadlock"] == [f.kind for f in again.findings]
    assert again.trace is not None
    events = [e for s in again.trace.steps for e in s.events]
    # The reaper's start was refused by nouveau's hlist notifier ...
    assert any(
        e.name == "nouveau_svmm_invalidate_range_start" and e.fields["ret"] == -11
        for e in events
    )
    # ... after the interval part had counted the section (never ended).
    starts = [e for e in events if e.name == "mn_itree_inv_start_range"]
    assert starts
    assert "wq" in again.findings[0].detail[0]
