"""Tests for `hmmsim.scenarios.base`."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.toy_scenarios import COUNTER, counter

from hmmsim.config import ExploreConfig
from hmmsim.engine import Status, explore
from hmmsim.errors import ConfigError, ScenarioError
from hmmsim.scenarios import Scenario


def make(**changes: Any) -> Scenario:
    """Return a valid scenario with some fields changed."""
    fields: dict[str, Any] = {
        "name": "toy",
        "title": "A toy",
        "description": "Tasks: none.",
        "variants": ("a", "b"),
        "build": counter,
    }
    fields.update(changes)
    return Scenario(**fields)


class TestScenarioValidation:
    def test_defaults(self) -> None:
        """The default variant is the first; config and expect are empty."""
        scenario = make()

        assert "a" == scenario.default_variant
        assert "main" == scenario.group
        assert {} == dict(scenario.config)
        assert scenario.expected("a") is None

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"name": "Bad Name"}, "scenario name 'Bad Name' must match"),
            ({"name": 3}, "scenario name 3 must match"),
            ({"title": "two\nlines"}, "title must be one line"),
            ({"title": " "}, "title must be one line"),
            ({"description": None}, "description must be a str"),
            ({"variants": ()}, "variants must be a non-empty tuple"),
            ({"variants": ["a"]}, "variants must be a non-empty tuple"),
            ({"variants": ("a", "B!")}, "variant name 'B!' must match"),
            ({"variants": ("a", "a")}, "variant names repeat"),
            ({"default_variant": "c"}, "default_variant 'c' is not one of"),
            ({"build": 42}, "build must be callable"),
            ({"config": {"max_stepz": 1}}, "config has unknown keys ['max_stepz']"),
            ({"config": {"max_steps": 0}}, "config: max_steps must be"),
            ({"expect": {"c": ()}}, "expect names unknown variant 'c'"),
            ({"expect": {"a": "deadlock"}}, "expect['a'] must be a tuple"),
            ({"group": "Museum!"}, "group 'Museum!' must match"),
            ({"group": None}, "group None must match"),
        ],
    )
    def test_bad_definition_raises_scenario_error(
        self, changes: dict[str, Any], message: str
    ) -> None:
        """An ill-formed definition raises ScenarioError naming the problem."""
        with pytest.raises(ScenarioError) as info:
            make(**changes)

        assert message in str(info.value)

    def test_mappings_are_frozen_copies(self) -> None:
        """Config and expect are read-only copies of what was passed."""
        config: dict[str, object] = {"max_steps": 10}
        scenario = make(config=config)
        config["max_steps"] = 20

        assert 10 == scenario.config["max_steps"]
        with pytest.raises(TypeError):
            scenario.config["max_steps"] = 5  # type: ignore[index]

    def test_scenarios_compare_by_identity(self) -> None:
        """Two equal definitions are distinct scenarios."""
        assert make() != make()


class TestProgram:
    def test_program_builds_the_named_variant(self) -> None:
        """program(variant) explores that variant."""
        result = explore(COUNTER.program("fixed"), ExploreConfig(strategy="dfs"))

        assert Status.VERIFIED == result.status

    def test_program_defaults_to_the_default_variant(self) -> None:
        """program() explores the default variant."""
        result = explore(COUNTER.program(), ExploreConfig(strategy="dfs"))

        assert ["lost-update"] == result.kinds

    def test_unknown_variant_is_a_config_error(self) -> None:
        """An unknown variant raises ConfigError listing the known ones."""
        with pytest.raises(
            ConfigError, match=r"has no variant 'x' \(variants: buggy, fixed\)"
        ):
            COUNTER.program("x")

    def test_explore_config_applies_the_overrides(self) -> None:
        """explore_config() layers the scenario's config over the base."""
        scenario = make(config={"max_steps": 7})

        assert 7 == scenario.explore_config().max_steps
        assert "dfs" == scenario.explore_config(ExploreConfig(strategy="dfs")).strategy
