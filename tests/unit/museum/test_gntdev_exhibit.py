"""Exhibit gntdev-unmap-deadlock (dbe97cff7dd9): the QubesOS 7481 cycle, and its fix."""

from __future__ import annotations

import pytest

from hmmsim import museum
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.errors import ConfigError
from hmmsim.report.museum import build_diagram
from hmmsim.scenarios import get

#: Both explorations are exhaustive well below this bound.
BOUND = ExploreConfig(max_executions=5_000, shrink=True)


def test_exhibit_is_registered_with_the_commit() -> None:
    """The exhibit names the commit, its release and the scenario's two variants."""
    item = museum.exhibit("gntdev-unmap-deadlock")

    assert "dbe97cff7dd9" == item.commit
    assert "xen/gntdev: Avoid blocking in unmap_grant_pages()" == item.subject
    assert "v5.19" == item.release
    assert ("current-revert-dbe97cff7dd9", "current") == (item.before, item.after)
    assert ("hang",) == item.kinds
    assert ("munmap", "execbuf") == item.columns
    assert [item] == museum.select(["dbe97cff7dd9"])


def test_before_hangs_with_both_threads_asleep_in_the_cycle() -> None:
    """Reverted: the only kind is hang; munmap sleeps in gntdev's unmap, execbuf in read_begin."""
    item = museum.exhibit("gntdev-unmap-deadlock")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VIOLATION == result.status
    assert ["hang"] == sorted(result.kinds)
    found = next(c for c in result.counterexamples if c.kind == "hang")
    again = replay(
        scenario.program(item.before), found.schedule, max_steps=4000, capture=True
    )
    assert ["hang"] == [f.kind for f in again.findings]
    detail = "\n".join(again.findings[0].detail)
    assert "munmap waits in schedule(unmap_refs.wait)" in detail
    assert "execbuf waits in schedule(mm->notifier_subscriptions->wq)" in detail
    assert "kworker goes round a loop" in detail
    assert again.trace is not None
    events = [(s.task_name, e) for s in again.trace.steps for e in s.events]
    names = [(task, e.name) for task, e in events]
    # The invalidation reaches i915's object first, then gntdev's map.
    set_seq = names.index(("munmap", "mmu_interval_set_seq"))
    unmap = names.index(("munmap", "unmap_grant_pages"))
    assert set_seq < unmap
    # The grant-table work finds i915's pin on the page every time.
    busy = [e for task, e in events if e.name == "gnttab_unmap_busy"]
    assert busy
    assert ("munmap", "gnttab_unmap_busy") == names[unmap + 1]
    assert not [e for _, e in events if e.name == "gnttab_unmap_refs"]
    pins = [e.fields["pinned"] for _, e in events if e.name == "pin_user_pages_fast"]
    assert [1] == pins  # only the set-up's submission pinned


def test_before_diagram_draws_munmap_and_execbuf_as_the_cpus() -> None:
    """The diagram's columns are the exhibit's two tasks; the kworker is folded."""
    item = museum.exhibit("gntdev-unmap-deadlock")
    scenario = get(item.scenario)
    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))
    found = next(c for c in result.counterexamples if c.kind == "hang")
    located = replay(
        scenario.program(item.before),
        found.schedule,
        max_steps=4000,
        capture=True,
        capture_locations=True,
    )
    assert located.trace is not None

    diagram = build_diagram(
        located.trace, located.findings, primary="hang", columns=item.columns
    )

    assert ("munmap", "execbuf") == diagram.names
    assert "kworker" in dict(diagram.folded)
    left = [line.text.strip() for line in diagram.lines if line.column == 0]
    right = [line.text.strip() for line in diagram.lines if line.column == 1]
    order = [
        "i915_gem_userptr_invalidate()",
        "unmap_grant_pages()",
        "wait_for_completion()",
    ]
    assert [left.index(text) for text in order] == sorted(
        left.index(text) for text in order
    )
    assert "mmu_interval_read_begin()" in right
    assert diagram.lines[-1].text.startswith("hang: kworker repeats a loop")


def test_after_is_verified_and_the_grant_is_unmapped() -> None:
    """Applied: in every schedule both tasks finish and the grant ends unmapped."""
    item = museum.exhibit("gntdev-unmap-deadlock")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.after), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VERIFIED == result.status
    assert result.executions < 1_000


def test_an_exhibit_is_also_named_by_its_commit_id() -> None:
    """The 12-digit id and a 7-digit prefix both name the exhibit; 6 digits do not."""
    item = museum.exhibit("gntdev-unmap-deadlock")

    assert item is museum.exhibit("dbe97cff7dd9")
    assert item is museum.exhibit("DBE97CF")
    with pytest.raises(ConfigError, match="unknown exhibit 'dbe97c'"):
        museum.exhibit("dbe97c")
