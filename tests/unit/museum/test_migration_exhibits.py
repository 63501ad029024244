"""The migration museum exhibits: before shows the commit's bug, after is verified."""

from __future__ import annotations

from hmmsim import museum
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.scenarios import get

#: Every exploration here is exhaustive well below this bound.
BOUND = ExploreConfig(max_executions=20_000, shrink=True)


def test_device_fault_livelock_before_is_the_commits_race() -> None:
    """1afaeb8293c9 reverted: exhaustively, the only kind is fault-livelock; its counterexample has each migration fail on the other fault's reference."""
    item = museum.exhibit("device-fault-livelock")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VIOLATION == result.status
    assert ["fault-livelock"] == sorted(result.kinds)
    found = next(c for c in result.counterexamples if c.kind == "fault-livelock")
    again = replay(
        scenario.program(item.before), found.schedule, max_steps=4000, capture=True
    )
    assert ["fault-livelock"] == [f.kind for f in again.findings]
    assert again.trace is not None
    events = [(s.task_name, e) for s in again.trace.steps for e in s.events]
    refused = sorted(
        (task, e.fields["refcount"], e.fields["expected"], e.fields["ret"])
        for task, e in events
        if e.name == "folio_migrate_mapping" and task in item.columns
    )
    assert [("cpu0", 3, 2, -11), ("cpu1", 3, 2, -11)] == refused
    faults = sorted(
        (task, e.fields["ret"]) for task, e in events if e.name == "do_swap_page"
    )
    assert [("cpu0", 0), ("cpu1", 0)] == faults


def test_device_fault_livelock_after_is_verified() -> None:
    """1afaeb8293c9 applied: in every schedule one of the two faults moves the page back."""
    item = museum.exhibit("device-fault-livelock")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.after), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VERIFIED == result.status
    assert result.executions < 100


def test_migrate_vs_madvise_before_is_the_commits_diagram() -> None:
    """60bae7370896 reverted: the store made after madvise returned goes through the stale TLB entry before the migration's late flush."""
    item = museum.exhibit("migrate-vs-madvise")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VIOLATION == result.status
    assert ["stale-tlb"] == sorted(result.kinds)
    found = next(c for c in result.counterexamples if c.kind == "stale-tlb")
    again = replay(
        scenario.program(item.before), found.schedule, max_steps=4000, capture=True
    )
    assert ["stale-tlb"] == [f.kind for f in again.findings]
    assert again.trace is not None
    events = [(s.task_name, e) for s in again.trace.steps for e in s.events]
    names = [(task, e.name) for task, e in events]
    # CPU0 installs the migration entry; CPU1's madvise returns; the thread
    # stores through its TLB; only then does CPU0 flush.
    madvised = names.index(("madvise", "madvise"))
    stale = [
        i
        for i, (task, e) in enumerate(events)
        if task == "cpu" and e.name == "cpu_tlb_access" and e.fields["value"] == 2
    ]
    flushed = [
        i
        for i, (task, e) in enumerate(events)
        if task == "migrate" and e.name == "flush_tlb_range"
    ]
    assert stale
    assert flushed
    assert madvised < stale[0] < flushed[0]


def test_migrate_vs_madvise_after_is_verified() -> None:
    """60bae7370896 applied: the thread always reads back what it stored after madvise returned."""
    item = museum.exhibit("migrate-vs-madvise")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.after), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VERIFIED == result.status
