"""Tests for the causes the HMM contract names beside each finding (CauseLog)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmmsim.api import run
from hmmsim.config import ExploreConfig
from hmmsim.engine import Counterexample, Trace
from hmmsim.loader import load_file, select
from hmmsim.report import ScenarioRun


def _explore(scenario: str, variant: str) -> ScenarioRun:
    return run(scenario, variant, config=ExploreConfig(strategy="dpor"))


def _cx(found: ScenarioRun, kind: str) -> tuple[Counterexample, Trace]:
    index = next(
        i for i, c in enumerate(found.result.counterexamples) if c.kind == kind
    )
    trace = found.trace_of(index)
    assert trace is not None
    return found.result.counterexamples[index], trace


@pytest.fixture(scope="module")
def reap_v53() -> ScenarioRun:
    """fault-vs-oom-reap on v5.3: a device maps a page the reaper freed."""
    return _explore("fault-vs-oom-reap", "v5.3")


@pytest.fixture(scope="module")
def driver_lock_prepatch() -> ScenarioRun:
    """oom-vs-driver-lock before the patch: a mirror's -EAGAIN is dropped."""
    return _explore("oom-vs-driver-lock", "prepatch")


def test_use_after_free_names_the_device_pte_set_of_the_freed_page(
    reap_v53: ScenarioRun,
) -> None:
    """The first cause of v5.3's use-after-free is the device_pte_set that mapped a free page."""
    cx, trace = _cx(reap_v53, "device-use-after-free")
    cause = cx.finding.causes[0]

    assert trace.steps[cause.step].op.startswith("device_pte_set(")
    assert "already free" in cause.note
    assert cause.step < cx.finding.step


def test_dropped_eagain_is_the_cause_of_the_contract_violation(
    driver_lock_prepatch: ScenarioRun,
) -> None:
    """On prepatch the callback's -EAGAIN that the start dropped is named first."""
    cx, trace = _cx(driver_lock_prepatch, "notifier-contract")
    cause = cx.finding.causes[0]

    assert "-EAGAIN" in cause.note
    assert "dropped" in cause.note
    assert any(e.fields.get("ret") == -11 for e in trace.steps[cause.step].events), (
        trace.steps[cause.step]
    )


def test_a_leaked_count_names_the_increments_never_undone() -> None:
    """notifier-leak's causes are the steps that raised hmm->notifiers for good."""
    found = _explore("oom-vs-mirror-unregister", "prepatch")
    cx, trace = _cx(found, "notifier-leak")

    assert cx.finding.causes
    for cause in cx.finding.causes:
        assert "not lowered since" in cause.note
        assert any(e.name == "hmm_notifiers" for e in trace.steps[cause.step].events)


def test_a_clean_variant_has_no_causes_to_name() -> None:
    """v5.5 verifies fault-vs-oom-reap, so no finding (and no cause) is reported."""
    assert not _explore("fault-vs-oom-reap", "v5.5").result.counterexamples


def test_a_start_that_claims_success_while_a_device_maps_the_range_is_a_cause() -> None:
    """A driver whose failed trylock returns 0: the start's success is the cause."""
    examples = Path(__file__).resolve().parents[3] / "examples"
    path = str(examples / "mirror_trylock_lies.py")
    scenario = select(load_file(path), "oom-vs-driver-lock", path)[0]
    found = run(scenario, "v5.3", config=ExploreConfig(), file=path)
    cx, trace = _cx(found, "notifier-contract")
    cause = cx.finding.causes[0]

    assert "claimed a success it did not achieve" in cause.note
    assert any(
        e.name == "hmm_invalidate_range_start" and e.fields["ret"] == 0
        for e in trace.steps[cause.step].events
    )
