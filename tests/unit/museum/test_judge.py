"""Tests for the museum's judgement (hmmsim.museum: judge, examine, select)."""

from __future__ import annotations

import dataclasses
import pkgutil

import pytest
from tests.support.toy_exhibits import BROKEN, TOY, toy_museum
from tests.support.toy_scenarios import COUNTER, toy_scenarios

from hmmsim import museum
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason
from hmmsim.errors import ConfigError, InternalError
from hmmsim.runs import ScenarioRun
from hmmsim.service import run

DFS = ExploreConfig(strategy="dfs")


@pytest.fixture(scope="module")
def buggy() -> ScenarioRun:
    """The racy counter: lost-update found."""
    return run(COUNTER, "buggy", config=DFS)


@pytest.fixture(scope="module")
def fixed() -> ScenarioRun:
    """The locked counter: verified."""
    return run(COUNTER, "fixed", config=DFS)


class TestJudge:
    def test_violation_before_and_verified_after_pass(
        self, buggy: ScenarioRun, fixed: ScenarioRun
    ) -> None:
        """Before reporting the kinds and a verified after hold the pin."""
        verdict = museum.judge(TOY, buggy, fixed)

        assert verdict.passed
        assert "before (buggy) reports lost-update" in verdict.reason

    def test_a_missing_kind_fails_naming_it(self, fixed: ScenarioRun) -> None:
        """A before side without the exhibit's kind fails, naming what it found."""
        verdict = museum.judge(TOY, fixed, fixed)

        assert not verdict.passed
        assert (
            "before (buggy) did not report lost-update (found: no violation; exhausted)"
            == verdict.reason
        )

    def test_an_after_side_with_a_violation_fails(self, buggy: ScenarioRun) -> None:
        """An after side that still reports a violation is not verified."""
        verdict = museum.judge(TOY, buggy, buggy)

        assert not verdict.passed
        assert (
            "after (fixed) is not verified: violation (lost-update)" == verdict.reason
        )

    def test_an_incomplete_after_side_fails(
        self, buggy: ScenarioRun, fixed: ScenarioRun
    ) -> None:
        """An after side cut short by a bound is incomplete, never verified."""
        result = dataclasses.replace(
            fixed.result, exit_reason=ExitReason.MAX_EXECUTIONS
        )
        cut = dataclasses.replace(fixed, result=result)

        verdict = museum.judge(TOY, buggy, cut)

        assert not verdict.passed
        assert verdict.reason.startswith("after (fixed) is not verified: incomplete")

    @pytest.mark.parametrize("side", ["before", "after"])
    def test_an_error_row_fails(
        self, buggy: ScenarioRun, fixed: ScenarioRun, side: str
    ) -> None:
        """A run that ended in an error fails the exhibit with its reason."""
        runs = {"before": buggy, "after": fixed}
        runs[side] = dataclasses.replace(runs[side], error="worker died")

        verdict = museum.judge(TOY, runs["before"], runs["after"])

        assert not verdict.passed
        assert verdict.reason.endswith("ended in an error: worker died")


class TestExamine:
    def test_examine_replays_the_primary_counterexample_with_locations(
        self, buggy: ScenarioRun, fixed: ScenarioRun
    ) -> None:
        """The entry carries before's counterexample, replayed with source lines."""
        entry = museum.examine(TOY, buggy, fixed)

        assert entry.judgement.passed
        assert entry.counterexample is not None
        assert "lost-update" == entry.counterexample.kind
        assert entry.trace is not None
        assert all(" in incr" in s.location for s in entry.trace.steps)
        assert entry.replay_command.startswith("hmmsim replay hs1.counter/buggy:")

    def test_examine_without_a_counterexample_has_no_trace(
        self, fixed: ScenarioRun
    ) -> None:
        """A before side with nothing found gives an entry without a diagram."""
        entry = museum.examine(TOY, fixed, fixed)

        assert not entry.judgement.passed
        assert entry.trace is None
        assert "" == entry.replay_command

    def test_a_counterexample_that_does_not_replay_fails(
        self, buggy: ScenarioRun, fixed: ScenarioRun, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A pin must replay: a replay without the kind fails the exhibit."""
        replayed = museum.located_trace(buggy, buggy.result.counterexamples[0])
        monkeypatch.setattr(
            museum,
            "located_trace",
            lambda run, cx: dataclasses.replace(replayed, findings=()),
        )

        entry = museum.examine(TOY, buggy, fixed)

        assert not entry.judgement.passed
        assert "counterexample does not replay" in entry.judgement.reason


class TestSelect:
    def test_select_keeps_museum_order_and_refuses_unknown_slugs(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Slugs pick exhibits in museum order; an unknown one is a ConfigError."""
        with toy_museum(monkeypatch, TOY, BROKEN):
            assert [TOY, BROKEN] == museum.select(["toy-broken", "toy-counter"])
            assert [TOY, BROKEN] == museum.select([])
            with pytest.raises(ConfigError, match="unknown exhibit 'nope'"):
                museum.select(["nope"])

    def test_scenario_of_checks_both_variants(self) -> None:
        """An exhibit naming a variant its scenario lacks is a ConfigError."""
        with toy_scenarios():
            assert COUNTER is museum.scenario_of(TOY)
            with pytest.raises(ConfigError, match="has no variant 'v9'"):
                museum.scenario_of(dataclasses.replace(TOY, after="v9"))

    def test_an_exhibit_module_that_fails_to_import_is_an_internal_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A broken exhibit module is never skipped: InternalError names it."""
        broken = pkgutil.ModuleInfo(None, "no_such_exhibit_module", False)  # type: ignore[arg-type]
        monkeypatch.setattr(museum, "_EXHIBITS", {})
        monkeypatch.setattr(museum, "_LOADED", [])
        monkeypatch.setattr(pkgutil, "iter_modules", lambda path: [broken])

        with pytest.raises(
            InternalError, match="no_such_exhibit_module failed to import"
        ):
            museum.exhibits()

    def test_the_shipped_exhibits_load_and_list_twice(self) -> None:
        """exhibits() stays a function after the exhibit package is imported."""
        first = museum.exhibits()

        assert first == museum.exhibits()
        assert {"hmm-error-flows", "range-valid-aba"} <= {e.slug for e in first}
