"""Exhibit device-private-fault (16ce101db85d): before is the commit's use-after-free, after is verified."""

from __future__ import annotations

from hmmsim import museum
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.kernel.memremap import DEVICE_PFN_BASE
from hmmsim.scenarios import get

#: Both explorations are exhaustive well below this bound (86 and 22 executions).
BOUND = ExploreConfig(max_executions=2_000, shrink=False)


def test_before_is_the_use_after_free_exhaustively() -> None:
    """With 16ce101db85d reverted, exhaustive DPOR reports use-after-free and nothing else."""
    item = museum.exhibit("device-private-fault")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))

    assert (ExitReason.EXHAUSTED, Status.VIOLATION) == (
        result.exit_reason,
        result.status,
    )
    assert ["use-after-free"] == sorted(result.kinds)
    assert 86 == result.executions


def test_after_is_verified_exhaustively() -> None:
    """v6.16 as released: no interleaving of the two faults finds anything."""
    item = museum.exhibit("device-private-fault")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.after), scenario.explore_config(BOUND))

    assert (ExitReason.EXHAUSTED, Status.VERIFIED) == (
        result.exit_reason,
        result.status,
    )
    assert 22 == result.executions


def test_counterexample_frees_the_page_between_the_lockless_read_and_its_use() -> None:
    """One CPU reads the entry, the other migrates the page back and frees it, then the first uses it."""
    item = museum.exhibit("device-private-fault")
    scenario = get(item.scenario)
    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))
    found = next(c for c in result.counterexamples if c.kind == "use-after-free")

    again = replay(
        scenario.program(item.before), found.schedule, max_steps=4000, capture=True
    )

    assert ["use-after-free"] == [f.kind for f in again.findings]
    victim = again.findings[0].task
    assert victim in item.columns
    other = next(c for c in item.columns if c != victim)
    assert again.trace is not None
    steps = [(s.task_name, s.op) for s in again.trace.steps]
    events = [
        (i, s.task_name, e.name, dict(e.fields))
        for i, s in enumerate(again.trace.steps)
        for e in s.events
    ]
    # The victim read the CPU PTE (the device-private entry) ...
    read = next(
        i
        for i, (t, op) in enumerate(steps)
        if t == victim and op.startswith("READ_ONCE(mm.pte")
    )
    # ... before the other CPU migrated the page back ...
    migrated = next(
        i for i, t, name, _ in events if t == other and name == "migrate_vma_setup"
    )
    # ... and freed the device page, which the victim then dereferenced.
    freed = [
        (i, t)
        for i, t, name, f in events
        if name == "page_free"
        and isinstance(f["page"], int)
        and f["page"] >= DEVICE_PFN_BASE
    ]
    assert read < migrated
    assert [other] == [t for _, t in freed]
    assert freed[0][0] < len(steps) - 1
    last_task, last_op = steps[-1]
    assert (last_task, last_op.split("(")[0]) == (victim, "do_swap_page")
