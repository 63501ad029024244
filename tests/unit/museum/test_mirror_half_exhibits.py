"""The mirror-half museum exhibits: before shows the commit's bug, after is verified."""

from __future__ import annotations

import pytest

from hmmsim import museum
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.errors import ConfigError
from hmmsim.scenarios import get
from hmmsim.scenarios.museum._reverts import revert_variant, reverting_world

#: The exhibits of the mirror half (HMM mirroring and the notifier core).
SLUGS = (
    "hmm-free-vs-notifier",
    "release-vs-unregister",
    "release-vs-reclaim",
    "fault-vs-munmap-unlock",
)

#: Every exploration here is exhaustive well below this bound.
BOUND = ExploreConfig(max_executions=5_000, shrink=False)


@pytest.mark.parametrize("slug", SLUGS)
def test_before_reports_the_commits_kinds(slug: str) -> None:
    """An exhaustive exploration of ``before`` reports every kind the exhibit names."""
    item = museum.exhibit(slug)
    scenario = get(item.scenario)

    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VIOLATION == result.status
    assert set(item.kinds) <= set(result.kinds)
    assert set(result.kinds) == set(scenario.expected(item.before) or ())
    first = next(c for c in result.counterexamples if c.kind == item.kinds[0])
    assert first.finding.task in item.columns


@pytest.mark.parametrize("slug", SLUGS)
def test_after_is_verified(slug: str) -> None:
    """An exhaustive exploration of ``after`` finds nothing."""
    item = museum.exhibit(slug)
    scenario = get(item.scenario)

    result = explore(scenario.program(item.after), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VERIFIED == result.status


def _counterexample_events(slug: str, kind: str) -> tuple[list[tuple[str, str]], str]:
    """Replay ``before``'s counterexample of ``kind``: (task, event) pairs and the finding's task."""
    item = museum.exhibit(slug)
    scenario = get(item.scenario)
    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))
    found = next(c for c in result.counterexamples if c.kind == kind)
    again = replay(
        scenario.program(item.before), found.schedule, max_steps=4000, capture=True
    )
    assert [kind] == [f.kind for f in again.findings]
    assert again.trace is not None
    events = [(s.task_name, e.name) for s in again.trace.steps for e in s.events]
    return events, again.findings[0].task


def test_hmm_free_counterexample_is_the_commits_diagram() -> None:
    """The use after free follows 6d7c3cde93c1's diagram: kfree, then the callback."""
    events, task = _counterexample_events("hmm-free-vs-notifier", "use-after-free")

    names = [name for _, name in events]
    assert "munmap" == task
    # CPU1 entered the notifier core before CPU0 freed the hmm ...
    assert names.index("mmu_notifier_invalidate_range_start") < names.index("hmm_free")
    # ... and reached the callback only after the free.
    assert "hmm_invalidate_range_start" not in names


def test_reverting_world_refuses_unknown_variants() -> None:
    """A museum world factory names the variant it does not know."""
    make = reverting_world(
        {revert_variant("v5.3", "6d7c3cde93c1"): ("v5.3", ("6d7c3cde93c1",))}
    )

    world = make("v5.3-revert-6d7c3cde93c1")

    assert "v5.3" == world.variant
    assert {"6d7c3cde93c1"} == world.mm.reverted_fixes
    with pytest.raises(ConfigError, match=r"no museum world for variant 'v5\.3'"):
        make("v5.3")


def test_loading_the_exhibits_keeps_the_exhibits_function() -> None:
    """Importing the exhibits subpackage does not shadow museum.exhibits()."""
    museum.exhibits()

    assert callable(museum.exhibits)
    assert {"hmm-free-vs-notifier"} <= {e.slug for e in museum.exhibits()}


def test_release_vs_unregister_counterexample_is_robin_holts_diagram() -> None:
    """751efd8610d3's race: exit unhooks the subscriber, unregister's hlist_del_rcu oopses."""
    events, task = _counterexample_events("release-vs-unregister", "null-deref")

    assert "unregister" == task
    assert ("exit", "mmu_notifier_release") in events
    assert ("exit", "exit_mmap_done") in events


def test_release_vs_reclaim_counterexample_is_xiao_guangrongs_race() -> None:
    """d34883d4e35c's race: release unhooked KVM, reclaim's invalidation misses it."""
    events, task = _counterexample_events("release-vs-reclaim", "notifier-contract")

    names = [name for _, name in events]
    assert "reclaim" == task
    assert names.index("mmu_notifier_release") < names.index(
        "mmu_notifier_invalidate_range_start"
    )
    # No subscriber was called by reclaim's invalidation.
    assert "kvm_invalidate_range_start" not in names


def test_release_vs_unregister_is_verified_on_v5_3() -> None:
    """v5.3's notifier core (d34883d4e35c's unhook) is verified on the same race."""
    scenario = get("release-vs-unregister")

    result = explore(scenario.program("v5.3"), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert Status.VERIFIED == result.status


def test_fault_vs_munmap_unlock_counterexample_is_the_double_up_read() -> None:
    """2bcbeaefde2f's bug: hmm_range_fault dropped mmap_sem and the driver drops it again."""
    events, task = _counterexample_events("fault-vs-munmap-unlock", "bad-unlock")

    names = [name for _, name in events]
    assert "device" == task
    # munmap's invalidation is open when the device's walk finds the range invalid.
    assert names.index("mmu_notifier_invalidate_range_start") < names.index(
        "hmm_range_fault"
    )
    # Only its increment of hmm->notifiers precedes the walk: not yet ended.
    assert 1 == names[: names.index("hmm_range_fault")].count("hmm_notifiers")
