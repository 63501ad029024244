"""Tests for `hmmsim.config`."""

from __future__ import annotations

import dataclasses

import pytest

from hmmsim.config import PROFILES, STRATEGY_NAMES, ExploreConfig
from hmmsim.errors import ConfigError


class TestValidation:
    def test_defaults_are_valid(self) -> None:
        """The default config is DPOR with documented bounds."""
        config = ExploreConfig()

        assert ("dpor", 0, 100_000, 2_000, 3) == (
            config.strategy,
            config.seed,
            config.max_executions,
            config.max_steps,
            config.pct_depth,
        )

    def test_an_unknown_strategy_names_the_field_and_the_known_ones(self) -> None:
        """strategy='bogus' raises ConfigError listing the strategy names."""
        with pytest.raises(
            ConfigError, match=r"unknown strategy 'bogus' \(known: dpor, dfs"
        ):
            ExploreConfig(strategy="bogus")

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("max_executions", 0),
            ("max_executions", -5),
            ("max_executions", 10**12),
            ("max_executions", 2.5),
            ("max_executions", True),
            ("max_steps", 0),
            ("max_steps", 10**9),
            ("preemption_bound", -1),
            ("preemption_bound", 10**6),
            ("pct_depth", 0),
            ("pct_depth", 5_000),
        ],
    )
    def test_a_bad_bound_names_its_field(self, field: str, value: object) -> None:
        """Negative, zero, absurd or non-integer bounds raise ConfigError naming the field."""
        with pytest.raises(ConfigError, match=rf"^{field} must be an integer in \["):
            ExploreConfig(**{field: value})  # type: ignore[arg-type]

    @pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "7"])
    def test_a_bad_seed_is_refused(self, seed: object) -> None:
        """The seed must be an integer in [0, 2**64)."""
        with pytest.raises(ConfigError, match=r"^seed must be an integer"):
            ExploreConfig(seed=seed)  # type: ignore[arg-type]

    @pytest.mark.parametrize("budget", [0, -1.0, 10**7, float("nan"), True, "1"])
    def test_a_bad_time_budget_is_refused(self, budget: object) -> None:
        """time_budget_s must be a positive number of seconds up to a week."""
        with pytest.raises(ConfigError, match=r"^time_budget_s must be a number"):
            ExploreConfig(time_budget_s=budget)  # type: ignore[arg-type]

    def test_a_non_boolean_flag_is_refused(self) -> None:
        """Boolean knobs refuse other values, naming the field."""
        with pytest.raises(ConfigError, match=r"^shrink must be True or False"):
            ExploreConfig(shrink="yes")  # type: ignore[arg-type]

    def test_none_means_unbounded_where_allowed(self) -> None:
        """max_executions, preemption_bound and time_budget_s accept None."""
        config = ExploreConfig(
            max_executions=None, preemption_bound=None, time_budget_s=None
        )

        assert (None, None, None) == (
            config.max_executions,
            config.preemption_bound,
            config.time_budget_s,
        )

    def test_the_config_is_frozen(self) -> None:
        """Fields cannot be assigned after construction."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            ExploreConfig().seed = 3  # type: ignore[misc]


class TestReplace:
    def test_replace_validates_again(self) -> None:
        """replace() returns a validated copy and leaves the original alone."""
        config = ExploreConfig()

        assert 5 == config.replace(seed=5).seed
        assert 0 == config.seed
        with pytest.raises(ConfigError, match=r"^max_steps"):
            config.replace(max_steps=0)

    def test_replace_refuses_unknown_fields(self) -> None:
        """An unknown field name is a ConfigError that names it."""
        with pytest.raises(ConfigError, match="unknown config field 'max_stepz'"):
            ExploreConfig().replace(max_stepz=3)


class TestProfiles:
    def test_the_three_profiles_exist(self) -> None:
        """dev, ci and exhaustive are the named profiles."""
        assert ["ci", "dev", "exhaustive"] == sorted(PROFILES)

    def test_profiles_differ_in_their_budgets(self) -> None:
        """ci bounds executions more tightly; exhaustive removes the bound."""
        assert (100_000, 20_000, None) == tuple(
            ExploreConfig.profile(name).max_executions
            for name in ("dev", "ci", "exhaustive")
        )
        assert 100_000 == ExploreConfig.profile("exhaustive").max_steps

    def test_profile_overrides_are_applied(self) -> None:
        """profile(name, **overrides) changes the named fields."""
        assert "dfs" == ExploreConfig.profile("ci", strategy="dfs").strategy

    def test_an_unknown_profile_is_refused(self) -> None:
        """An unknown profile name raises ConfigError listing the known ones."""
        with pytest.raises(
            ConfigError, match=r"unknown profile 'fast' \(known: ci, dev"
        ):
            ExploreConfig.profile("fast")


class TestFromEnv:
    def test_without_variables_it_is_the_dev_profile(self) -> None:
        """An empty environment gives the dev profile."""
        assert PROFILES["dev"] == ExploreConfig.from_env({})

    def test_the_profile_variable_selects_a_profile(self) -> None:
        """HMMSIM_PROFILE picks the base profile."""
        assert PROFILES["ci"] == ExploreConfig.from_env({"HMMSIM_PROFILE": "ci"})

    def test_field_variables_are_parsed_by_type(self) -> None:
        """HMMSIM_<FIELD> values are parsed as int, float, bool, str or None."""
        config = ExploreConfig.from_env(
            {
                "HMMSIM_STRATEGY": "pct",
                "HMMSIM_SEED": " 42 ",
                "HMMSIM_MAX_EXECUTIONS": "none",
                "HMMSIM_TIME_BUDGET_S": "1.5",
                "HMMSIM_SHRINK": "off",
                "HMMSIM_CHECK_DETERMINISM": "yes",
                "HMMSIM_PREEMPTION_BOUND": "",
            }
        )

        assert ("pct", 42, None, 1.5, False, True, None) == (
            config.strategy,
            config.seed,
            config.max_executions,
            config.time_budget_s,
            config.shrink,
            config.check_determinism,
            config.preemption_bound,
        )

    def test_overrides_win_over_the_environment(self) -> None:
        """Explicit keyword overrides beat HMMSIM_* variables, which beat the profile."""
        config = ExploreConfig.from_env(
            {"HMMSIM_PROFILE": "ci", "HMMSIM_SEED": "1", "HMMSIM_MAX_STEPS": "50"},
            seed=2,
        )

        assert (2, 50, 20_000) == (config.seed, config.max_steps, config.max_executions)

    @pytest.mark.parametrize(
        ("name", "raw", "kind"),
        [
            ("SEED", "twelve", "int"),
            ("SHRINK", "maybe", "bool"),
            ("TIME_BUDGET_S", "soon", "float"),
        ],
    )
    def test_an_unparsable_variable_names_itself(
        self, name: str, raw: str, kind: str
    ) -> None:
        """A value that does not parse raises ConfigError naming the variable."""
        with pytest.raises(
            ConfigError, match=rf"^HMMSIM_{name}='{raw}' is not a valid {kind}"
        ):
            ExploreConfig.from_env({f"HMMSIM_{name}": raw})

    def test_a_parsed_but_invalid_value_is_still_validated(self) -> None:
        """HMMSIM_MAX_STEPS=-3 parses but fails validation, naming max_steps."""
        with pytest.raises(ConfigError, match=r"^max_steps must be"):
            ExploreConfig.from_env({"HMMSIM_MAX_STEPS": "-3"})

    def test_the_process_environment_is_the_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """from_env() without a mapping reads os.environ."""
        monkeypatch.setenv("HMMSIM_PCT_DEPTH", "7")

        assert 7 == ExploreConfig.from_env().pct_depth


def test_strategy_names_are_the_cli_names() -> None:
    """STRATEGY_NAMES lists the six strategies, lowercase."""
    assert ("dpor", "dfs", "pct", "random", "replay", "round_robin") == STRATEGY_NAMES
