"""Quality: PCT and random sampling find the seed patch's bugs at fixed seeds.

Budgets and seeds are fixed; each test asserts what is found within the
budget (never "eventually").  The v5.3 model is checked with the same
budget and must show nothing.
"""

from __future__ import annotations

import pytest

from hmmsim.config import ExploreConfig
from hmmsim.engine import Status, explore
from hmmsim.scenarios import get

SEED = 1
BUDGET = 500

CASES = [
    ("oom-vs-driver-lock", "pct", {"notifier-contract", "device-use-after-free"}),
    ("oom-vs-driver-lock", "random", {"notifier-contract", "device-stale-mapping"}),
    ("oom-vs-mirror-unregister", "pct", {"range-stuck-invalid", "notifier-leak"}),
    ("oom-vs-mirror-unregister", "random", {"range-stuck-invalid"}),
    ("oom-two-mirrors", "pct", {"notifier-contract", "device-use-after-free"}),
    ("oom-two-mirrors", "random", {"notifier-contract", "device-stale-mapping"}),
]


@pytest.mark.quality
@pytest.mark.parametrize(("name", "strategy", "kinds"), CASES)
def test_prepatch_bug_found_within_budget(
    name: str, strategy: str, kinds: set[str]
) -> None:
    """The strategy finds the listed kinds on prepatch within the budget."""
    scenario = get(name)
    config = scenario.explore_config(
        ExploreConfig(strategy=strategy, seed=SEED, max_executions=BUDGET, shrink=False)
    )

    result = explore(scenario.program("prepatch"), config)

    assert kinds <= set(result.kinds)
    assert all(c.execution <= BUDGET for c in result.counterexamples)


@pytest.mark.quality
@pytest.mark.parametrize("strategy", ["pct", "random"])
@pytest.mark.parametrize("name", ["oom-vs-driver-lock", "oom-two-mirrors"])
def test_v53_sampling_finds_nothing_and_is_never_verified(
    name: str, strategy: str
) -> None:
    """On v5.3 sampling finds no violation and reports incomplete, not verified."""
    scenario = get(name)
    config = scenario.explore_config(
        ExploreConfig(strategy=strategy, seed=SEED, max_executions=200, shrink=False)
    )

    result = explore(scenario.program("v5.3"), config)

    assert Status.INCOMPLETE == result.status
