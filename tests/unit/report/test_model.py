"""Tests for `hmmsim.report.model`."""

from __future__ import annotations

import dataclasses

from hmmsim.engine import Schedule
from hmmsim.report import ScenarioRun, token_context


class TestScenarioRun:
    def test_token_carries_scenario_variant_and_kind(self, buggy: ScenarioRun) -> None:
        """The replay token's context is ``scenario/variant:kind``."""
        cx = buggy.result.counterexamples[0]

        context, schedule = Schedule.from_token(buggy.token(cx))

        assert "counter/buggy:lost-update" == context
        assert cx.schedule == schedule

    def test_kind_a_token_cannot_carry_is_left_out(self, buggy: ScenarioRun) -> None:
        """A kind with characters tokens cannot hold is dropped from the context."""
        cx = dataclasses.replace(buggy.result.counterexamples[0], kind="lost update")

        context, _ = Schedule.from_token(buggy.token(cx))

        assert "counter/buggy" == context

    def test_replay_command_quotes_the_user_file(self, buggy: ScenarioRun) -> None:
        """A user file is passed with --file, shell-quoted."""
        run = dataclasses.replace(buggy, file="my models/m.py")

        command = run.replay_command(run.result.counterexamples[0])

        assert command.endswith(" --file 'my models/m.py'")
        assert command.startswith("hmmsim replay hs1.")

    def test_token_context_without_kind(self) -> None:
        """token_context() omits the colon when there is no kind."""
        assert "a/b" == token_context("a", "b")
        assert "a/b:k" == token_context("a", "b", "k")

    def test_expectations(self, buggy: ScenarioRun, locks: ScenarioRun) -> None:
        """as_expected compares kinds found with kinds expected (None if undeclared)."""
        assert buggy.as_expected is True
        assert locks.as_expected is None
