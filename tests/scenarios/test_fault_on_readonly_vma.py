"""fault-on-readonly-vma: v5.3's hmm_range_fault loops for ever (hang); v5.4+ says -EPERM."""

from __future__ import annotations

import errno

import pytest
from tests.support.harness import sequential

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.scenarios import get

SCENARIO = get("fault-on-readonly-vma")


@pytest.mark.parametrize("variant", ["prepatch", "v5.3"])
def test_v53_write_fault_on_a_read_only_vma_is_a_replayable_hang(variant: str) -> None:
    """DPOR reports a hang whose shrunk schedule replays strictly to the same hang."""
    config = SCENARIO.explore_config(ExploreConfig(max_executions=1_000))

    result = explore(SCENARIO.program(variant), config)

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VIOLATION == result.status
    assert {"hang"} == set(result.kinds)
    example = result.counterexamples[0]
    again = replay(
        SCENARIO.program(variant), example.schedule, max_steps=4000, capture=True
    )
    assert ["hang"] == [f.kind for f in again.findings]
    assert "device" in again.findings[0].message
    # The loop re-faults the same address, each time "successfully"
    # (VM_FAULT_WRITE); the set-up's own CPU fault comes first.
    faults = [
        e.fields
        for s in (again.trace.steps if again.trace else ())
        for e in s.events
        if e.name == "handle_mm_fault"
    ]
    assert len(faults) >= 3
    assert all(f["write"] and f["ret"] == 8 for f in faults[-2:])


@pytest.mark.parametrize("variant", ["v5.5", "current"])
def test_v54_and_later_refuse_the_write_with_eperm(variant: str) -> None:
    """From v5.4 on the walk returns -EPERM: verified, and the fault fails cleanly."""
    config = SCENARIO.explore_config(ExploreConfig(max_executions=1_000))

    result = explore(SCENARIO.program(variant), config)

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VERIFIED == result.status
    run = sequential(SCENARIO.program(variant), max_steps=4000)
    assert () == tuple(run.findings)
    results = dict(run.final_state[-1])  # type: ignore[index]
    # The device's fault is refused and its page table stays empty; the CPU reads.
    assert repr((-errno.EPERM, None)) == results["device"]
    assert repr((0, 0x42)) == results["cpu"]
