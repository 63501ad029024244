"""Tests for the built-in scenarios: the verdict of an exhaustive DPOR run.

The expected outcomes are what the faithful model gives (docs/scenarios.md
explains each one with its kernel evidence); they are not tuned.  A change
that alters one of them is either a model fix or a regression, and must be
explained in docs/scenarios.md.

The exhaustive runs of the matrix happen in untraced child processes
(``tests/support/unmeasured.py``): this is the one full run of the matrix in
the suite, and under coverage tracing its largest units alone took minutes.
"""

from __future__ import annotations

import pytest
from tests.support.unmeasured import explore_unmeasured

from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Status, explore, replay
from hmmsim.scenarios import all_scenarios, get


def _expected() -> dict[str, dict[str, frozenset[str]]]:
    """Each built-in scenario's declared ``expect``, by variant."""
    return {
        s.name: {v: frozenset(s.expect[v]) for v in s.expect} for s in all_scenarios()
    }


#: scenario -> variant -> violation kinds an exhaustive DPOR run reports, as
#: declared next to each scenario (``Scenario.expect``) and explained in
#: docs/scenarios.md.
EXPECTED = _expected()

CASES = [
    pytest.param(name, variant, kinds, id=f"{name}-{variant}")
    for name, variants in EXPECTED.items()
    for variant, kinds in variants.items()
]


def test_every_builtin_scenario_and_variant_has_an_expectation() -> None:
    """Every registered scenario declares the verdict of every variant."""
    registered = {(s.name, v) for s in all_scenarios() for v in s.variants}

    assert registered == {(n, v) for n, vs in EXPECTED.items() for v in vs}
    assert 8 <= len(EXPECTED)


def test_the_seed_patch_fixes_are_declared() -> None:
    """The three seed-patch scenarios: violations before the patch, none at it."""
    for name in ("oom-vs-driver-lock", "oom-vs-mirror-unregister", "oom-two-mirrors"):
        assert EXPECTED[name]["prepatch"]
        assert frozenset() == EXPECTED[name]["v5.3"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant", "kinds"), CASES)
def test_dpor_exhausts_with_the_documented_verdict(
    name: str, variant: str, kinds: frozenset[str]
) -> None:
    """DPOR exhausts the scenario and reports exactly the documented kinds."""
    result = explore_unmeasured(name, variant, max_executions=100_000)

    assert ExitReason.EXHAUSTED.name == result["exit_reason"]
    assert sorted(kinds) == result["kinds"]
    assert (Status.VIOLATION if kinds else Status.VERIFIED).name == result["status"]


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
