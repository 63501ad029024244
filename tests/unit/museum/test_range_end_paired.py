"""The exhibit of c2655835fd8c: KVM's start is ended after nouveau's refusal."""

from __future__ import annotations

import pytest

from hmmsim import museum
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore
from hmmsim.scenarios import get
from hmmsim.scenarios.museum.oom_kvm_and_nouveau import AFTER, BEFORE

#: The explorations here exhaust far below this bound.
BOUND = ExploreConfig(max_executions=2_000, shrink=False)


@pytest.mark.parametrize(
    ("variant", "kinds"),
    [(BEFORE, {"notifier-leak"}), (AFTER, set()), ("v5.5", {"notifier-leak"})],
)
def test_the_count_is_balanced_only_with_the_commit(
    variant: str, kinds: set[str]
) -> None:
    """Without c2655835fd8c (and on v5.5) KVM's count leaks; with it, verified."""
    scenario = get("oom-kvm-and-nouveau")

    result = explore(scenario.program(variant), scenario.explore_config(BOUND))

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert kinds == set(result.kinds)
    assert (Status.VIOLATION if kinds else Status.VERIFIED) == result.status


def test_the_leak_is_kvms_count_after_nouveaus_refusal() -> None:
    """The counterexample names kvm0's count and marks nouveau's refusal as a cause."""
    item = museum.exhibit("range-end-paired")
    scenario = get(item.scenario)

    result = explore(scenario.program(item.before), scenario.explore_config(BOUND))
    leak = next(c for c in result.counterexamples if c.kind == "notifier-leak")

    assert "kvm0->mmu_notifier_count is 1" in leak.finding.message
    assert any("raised kvm0->mmu_notifier_count" in c.note for c in leak.finding.causes)
