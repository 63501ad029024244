"""Tests for the built-in scenarios: the verdict of an exhaustive DPOR run.

The expected outcomes are what the faithful model gives (docs/scenarios.md
explains each one with its kernel evidence); they are not tuned.  A change
that alters one of them is either a model fix or a regression, and must be
explained in docs/scenarios.md.
"""

from __future__ import annotations

import pytest

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.scenarios import all_scenarios, get

#: scenario -> variant -> violation kinds an exhaustive DPOR run reports.
EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    "oom-vs-driver-lock": {
        "prepatch": frozenset(
            {
                "sleep-in-nonblockable",
                "notifier-contract",
                "device-use-after-free",
                "device-stale-mapping",
            }
        ),
        "v5.3": frozenset(),
        "v5.5": frozenset(),
    },
    "oom-vs-mirror-unregister": {
        "prepatch": frozenset(
            {"sleep-in-nonblockable", "range-stuck-invalid", "notifier-leak"}
        ),
        "v5.3": frozenset(),
        # Alistair Popple's 2022 fix: remove's lockless wait sees the last
        # end's increment before the deferred removal; the caller frees.
        "v5.5": frozenset({"use-after-free"}),
    },
    "oom-two-mirrors": {
        "prepatch": frozenset(
            {
                "sleep-in-nonblockable",
                "notifier-contract",
                "device-use-after-free",
                "device-stale-mapping",
            }
        ),
        "v5.3": frozenset(),
        "v5.5": frozenset(),
    },
    "fault-vs-munmap": {
        "prepatch": frozenset({"bug"}),
        "v5.3": frozenset({"bug"}),
        "v5.5": frozenset(),
    },
    "concurrent-invalidations": {
        "prepatch": frozenset({"sleep-in-nonblockable"}),
        "v5.3": frozenset(),
        "v5.5": frozenset(),
    },
    "exit-vs-fault": {
        "prepatch": frozenset(),
        "v5.3": frozenset(),
        "v5.5": frozenset(),
    },
    "fault-vs-oom-reap": {
        "prepatch": frozenset(
            {
                "sleep-in-nonblockable",
                "notifier-contract",
                "device-use-after-free",
                "device-stale-mapping",
            }
        ),
        "v5.3": frozenset({"device-use-after-free"}),
        "v5.5": frozenset(),
    },
    "oom-hmm-and-kvm": {
        "prepatch": frozenset({"sleep-in-nonblockable", "notifier-leak"}),
        "v5.3": frozenset({"notifier-leak"}),
        # The interval part is not unwound when an hlist subscriber refuses
        # a non-blocking start (docs/scenarios.md).
        "v5.5": frozenset({"notifier-leak"}),
    },
}

CASES = [
    pytest.param(name, variant, kinds, id=f"{name}-{variant}")
    for name, variants in EXPECTED.items()
    for variant, kinds in variants.items()
]


def test_every_builtin_scenario_and_variant_has_an_expectation() -> None:
    """The table above covers exactly the registered scenarios and variants."""
    registered = {(s.name, v) for s in all_scenarios() for v in s.variants}

    assert registered == {(n, v) for n, vs in EXPECTED.items() for v in vs}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant", "kinds"), CASES)
def test_dpor_exhausts_with_the_documented_verdict(
    name: str, variant: str, kinds: frozenset[str]
) -> None:
    """DPOR exhausts the scenario and reports exactly the documented kinds."""
    scenario = get(name)
    config = scenario.explore_config(
        ExploreConfig(max_executions=100_000, shrink=False)
    )

    result = explore(scenario.program(variant), config)

    assert ExitReason.EXHAUSTED == result.exit_reason
    assert kinds == frozenset(result.kinds)
    assert (Status.VIOLATION if kinds else Status.VERIFIED) == result.status


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("oom-vs-driver-lock", "device-use-after-free"),
        ("oom-vs-mirror-unregister", "notifier-leak"),
        ("oom-two-mirrors", "notifier-contract"),
    ],
)
def test_shrunk_prepatch_counterexample_replays_strictly(name: str, kind: str) -> None:
    """The shrunk counterexample replays exactly and shows the same kind."""
    scenario = get(name)
    config = scenario.explore_config(
        ExploreConfig(max_executions=100_000, stop_on_first=False)
    )
    result = explore(scenario.program("prepatch"), config)
    example = next(c for c in result.counterexamples if c.kind == kind)

    again = replay(scenario.program("prepatch"), example.schedule, max_steps=4000)

    assert kind in {f.kind for f in again.findings}
    assert example.steps <= example.original_steps
