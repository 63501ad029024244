"""Tests for `hmmsim.api`."""

from __future__ import annotations

import pytest
from tests.support.toy_scenarios import COUNTER, toy_scenarios

from hmmsim import api
from hmmsim.config import ExploreConfig
from hmmsim.errors import ConfigError


class TestResolveConfig:
    def test_layers_profile_scenario_env_overrides(self) -> None:
        """Profile < scenario config < HMMSIM_* variables < explicit overrides."""
        scenario = api.Scenario(
            name="s",
            title="t",
            description="",
            variants=("v",),
            build=COUNTER.build,
            config={"max_steps": 50, "seed": 4},
        )
        env = {"HMMSIM_PROFILE": "ci", "HMMSIM_SEED": "7"}

        config = api.resolve_config(
            scenario, overrides={"strategy": "dfs", "pct_depth": None}, env=env
        )

        assert 20_000 == config.max_executions
        assert 50 == config.max_steps
        assert 7 == config.seed
        assert "dfs" == config.strategy
        assert 3 == config.pct_depth

    def test_unknown_override_is_a_config_error(self) -> None:
        """An override that is not an ExploreConfig field is rejected by name."""
        with pytest.raises(ConfigError, match="unknown config option 'max_step'"):
            api.resolve_config(COUNTER, overrides={"max_step": 3}, env={})


class TestCheck:
    def test_check_returns_the_exploration_result(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """check() explores a scenario given by object or by registered name."""
        monkeypatch.delenv("HMMSIM_PROFILE", raising=False)
        with toy_scenarios():
            by_name = api.check("counter", "fixed", strategy="dfs")
        by_object = api.check(COUNTER, strategy="dfs")

        assert api.Status.VERIFIED == by_name.status
        assert ["lost-update"] == by_object.kinds

    def test_assert_no_violation_passes_a_clean_variant(self) -> None:
        """assert_no_violation() returns the result when nothing is found."""
        result = api.assert_no_violation(COUNTER, "fixed", strategy="dfs")

        assert api.Status.VERIFIED == result.status

    def test_assert_no_violation_fails_with_the_report(self) -> None:
        """A violation fails with the text report, ending with the replay command."""
        with pytest.raises(AssertionError) as info:
            api.assert_no_violation(COUNTER, "buggy", strategy="dfs")

        message = str(info.value)
        assert "violation 1: lost-update: counter is 1" in message
        assert (
            message.rstrip()
            .splitlines()[-1]
            .startswith("hmmsim replay hs1.counter/buggy:")
        )

    def test_run_captures_traces_unless_told_not_to(self) -> None:
        """run() captures one trace per counterexample by default."""
        config = ExploreConfig(strategy="dfs")

        captured = api.run(COUNTER, config=config)
        bare = api.run(COUNTER, config=config, capture=False)

        assert 1 == len(captured.traces)
        assert captured.traces[0] is not None
        assert () == bare.traces
