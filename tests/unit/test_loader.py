"""Tests for `hmmsim.loader`."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmmsim.errors import ConfigError, ScenarioError
from hmmsim.loader import is_file_target, load_file, select, split_target
from hmmsim.scenarios import Registry, use_registry

HEADER = "from tests.support.toy_scenarios import counter\nfrom hmmsim.api import Scenario, register, scenario\n"


def scenario_source(name: str) -> str:
    """Return source that builds (without registering) a scenario called ``name``."""
    return (
        f"Scenario(name={name!r}, title='t', description='', variants=('buggy',), "
        "build=counter)"
    )


def write(tmp_path: Path, body: str, name: str = "model.py") -> Path:
    """Write a user file with the usual imports and ``body``."""
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


class TestTargets:
    @pytest.mark.parametrize(
        ("target", "is_file"),
        [
            ("counter", False),
            ("model.py", True),
            ("a/b", True),
            ("x.py:n", True),
        ],
    )
    def test_file_targets_are_recognised(self, target: str, is_file: bool) -> None:
        """Names with a dot or a slash are paths; bare names are scenarios."""
        assert is_file == is_file_target(target)

    @pytest.mark.parametrize(
        ("target", "expected"),
        [
            ("model.py", ("model.py", None)),
            ("dir/model.py:pair", ("dir/model.py", "pair")),
            ("model.py:", ("model.py:", None)),
        ],
    )
    def test_split_target(self, target: str, expected: tuple[str, str | None]) -> None:
        """``PATH.py:NAME`` splits into the path and the name."""
        assert expected == split_target(target)


class TestLoadFile:
    def test_module_level_scenarios_are_collected_in_order(
        self, tmp_path: Path
    ) -> None:
        """Scenario objects bound at module level are found, in definition order."""
        path = write(
            tmp_path, f"B = {scenario_source('b')}\nA = {scenario_source('a')}\n"
        )

        assert ["b", "a"] == [s.name for s in load_file(path)]

    def test_scenarios_list_wins(self, tmp_path: Path) -> None:
        """A SCENARIOS list gives exactly its scenarios."""
        path = write(
            tmp_path,
            f"A = {scenario_source('a')}\nB = {scenario_source('b')}\nSCENARIOS = [B]\n",
        )

        assert ["b"] == [s.name for s in load_file(path)]

    def test_repeated_entries_are_collected_once(self, tmp_path: Path) -> None:
        """The same scenario listed twice is collected once."""
        path = write(tmp_path, f"A = {scenario_source('a')}\nSCENARIOS = [A, A]\n")

        assert ["a"] == [s.name for s in load_file(path)]

    def test_registered_scenarios_are_collected_not_registered(
        self, tmp_path: Path
    ) -> None:
        """register() and @scenario inside a user file do not touch the registry."""
        path = write(
            tmp_path,
            f"register({scenario_source('reg')})\n"
            "@scenario(name='deco', title='t', variants=('v',))\n"
            "def deco(variant):\n    return counter('buggy')\n",
        )

        with use_registry(Registry(builtin_modules=())) as registry:
            loaded = load_file(path)
            again = load_file(path)

            assert ["reg", "deco"] == [s.name for s in loaded]
            assert ["reg", "deco"] == [s.name for s in again]
            assert [] == registry.all()

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("SCENARIOS = 3\n", "SCENARIOS must be a list of Scenario objects"),
            ("SCENARIOS = [3]\n", "SCENARIOS must be a list of Scenario objects"),
            (
                f"A = {scenario_source('a')}\nB = {scenario_source('a')}\n",
                "two scenarios are named 'a'",
            ),
            ("x = 1\n", "defines no scenario"),
            (
                "\n\n\nraise ValueError('nope')\n",
                ":6: importing it raised ValueError: nope",
            ),
            (f"A = {scenario_source('Bad')}\n", ":3: scenario name 'Bad' must match"),
            ("def f(:\n", ":3: syntax error"),
        ],
    )
    def test_bad_files_raise_one_line_scenario_errors(
        self, tmp_path: Path, body: str, message: str
    ) -> None:
        """Every way a file can fail is a ScenarioError naming the file."""
        path = write(tmp_path, body)

        with pytest.raises(ScenarioError) as info:
            load_file(path)

        assert str(info.value).startswith(str(path))
        assert message in str(info.value)
        assert "\n" not in str(info.value)

    def test_missing_file_and_directory_are_config_errors(self, tmp_path: Path) -> None:
        """A missing path or a directory is a ConfigError."""
        with pytest.raises(ConfigError, match="no such file"):
            load_file(tmp_path / "none.py")
        with pytest.raises(ConfigError, match="not a regular file"):
            load_file(tmp_path)

    def test_unimportable_suffix_is_a_scenario_error(self, tmp_path: Path) -> None:
        """A file Python cannot import as a module is a ScenarioError."""
        path = tmp_path / "data.txt"
        path.write_text("x = 1\n", encoding="utf-8")

        with pytest.raises(
            ScenarioError, match="cannot be imported as a Python module"
        ):
            load_file(path)


class TestSelect:
    def test_select_by_name_or_all(self, tmp_path: Path) -> None:
        """select() picks one scenario by name, or all when no name is given."""
        path = write(
            tmp_path, f"A = {scenario_source('a')}\nB = {scenario_source('b')}\n"
        )
        loaded = load_file(path)

        assert loaded == select(loaded, None, "f")
        assert [loaded[1]] == select(loaded, "b", "f")
        with pytest.raises(
            ConfigError, match=r"f has no scenario 'c' \(it defines: a, b\)"
        ):
            select(loaded, "c", "f")
