"""Tests for `hmmsim.service`: targets, plans, report input and output files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support.toy_scenarios import counter, toy_scenarios

from hmmsim.errors import ConfigError, ReplayError
from hmmsim.scenarios import MUSEUM_GROUP, Scenario
from hmmsim.service import (
    MAX_REPORT_BYTES,
    SAMPLING_TIME_BUDGET_S,
    check_output_target,
    one_scenario,
    plan,
    replay_items,
    resolve_config,
    write_output,
)


class TestPlan:
    def test_empty_variant_is_an_error_not_the_default(self) -> None:
        """``--variant ""`` names no variant; it does not run the default (D20)."""
        with toy_scenarios(), pytest.raises(ConfigError, match="has no variant ''"):
            plan("counter", variant="")

    def test_every_variant_of_a_scenario(self) -> None:
        """``every`` plans one unit per variant, in declaration order."""
        with toy_scenarios():
            units = plan("counter", every=True)

        assert ["buggy", "fixed"] == [u.variant for u in units]

    def test_check_all_leaves_museum_scenarios_out_but_a_name_finds_them(
        self,
    ) -> None:
        """``check --all`` plans the main group only; ``check NAME`` finds a museum one."""
        exhibit = Scenario(
            name="museum-toy",
            title="t",
            description="",
            variants=("before", "after"),
            build=counter,
            group=MUSEUM_GROUP,
        )
        with toy_scenarios(exhibit):
            matrix = {u.scenario.name for u in plan(None, every=True)}
            named = plan("museum-toy", every=True)

        assert "museum-toy" not in matrix
        assert "counter" in matrix
        assert ["before", "after"] == [u.variant for u in named]

    def test_one_scenario_refuses_a_file_with_several(self, tmp_path: Path) -> None:
        """A file with two scenarios must be narrowed with :NAME."""
        model = tmp_path / "two.py"
        model.write_text(
            "from tests.support.toy_scenarios import counter\n"
            "from hmmsim.api import Scenario\n"
            "A = Scenario(name='a', title='a', description='a', build=counter, variants=('buggy',))\n"
            "B = Scenario(name='b', title='b', description='b', build=counter, variants=('buggy',))\n",
            encoding="utf-8",
        )

        with pytest.raises(ConfigError, match="defines several scenarios"):
            one_scenario(str(model), command="compare")


class TestOutputTargets:
    def test_directory_as_json_target(self, tmp_path: Path) -> None:
        """A directory given to --json fails before exploring (D9)."""
        with pytest.raises(ConfigError, match="is a directory"):
            check_output_target(str(tmp_path), option="--json")

    def test_missing_parent(self, tmp_path: Path) -> None:
        """A file in a directory that does not exist fails before exploring."""
        with pytest.raises(ConfigError, match="does not exist"):
            check_output_target(str(tmp_path / "no" / "r.json"), option="--json")

    @pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only dirs")
    def test_read_only_directory(self, tmp_path: Path) -> None:  # pragma: no cover
        """A read-only directory fails before exploring."""
        tmp_path.chmod(0o500)
        try:
            with pytest.raises(ConfigError, match="cannot write there"):
                check_output_target(str(tmp_path / "r.json"), option="--json")
        finally:
            tmp_path.chmod(0o700)

    def test_read_only_file(self, tmp_path: Path) -> None:
        """An existing file without write permission fails before exploring."""
        target = tmp_path / "r.json"
        target.write_text("{}", encoding="utf-8")
        target.chmod(0o400)
        if os.access(target, os.W_OK):
            pytest.skip("root can write read-only files")
        with pytest.raises(ConfigError, match="not writable"):  # pragma: no cover
            check_output_target(str(target), option="--json")

    def test_empty_name(self) -> None:
        """``--report ""`` is an error, not "no report" (D20)."""
        with pytest.raises(ConfigError, match="--report needs a directory"):
            check_output_target("", option="--report", directory=True)

    def test_report_dir_that_is_a_file(self, tmp_path: Path) -> None:
        """A report directory that is a regular file fails before exploring."""
        blocker = tmp_path / "f"
        blocker.write_text("", encoding="utf-8")

        with pytest.raises(ConfigError, match="not a directory"):
            check_output_target(str(blocker), option="--report", directory=True)

    def test_devices_are_accepted(self) -> None:
        """A writable device such as /dev/null is a valid target."""
        check_output_target(os.devnull, option="--json")

    def test_write_output_replaces_atomically(self, tmp_path: Path) -> None:
        """write_output leaves the full text and no temporary file."""
        target = tmp_path / "r.json"
        target.write_text("old", encoding="utf-8")

        write_output(str(target), "new\n")

        assert "new\n" == target.read_text(encoding="utf-8")
        assert [target] == list(tmp_path.iterdir())

    def test_write_output_failure_removes_the_temporary(self, tmp_path: Path) -> None:
        """A failed rename leaves no temporary file behind."""
        target = tmp_path / "d"
        target.mkdir()
        (target / "x").write_text("", encoding="utf-8")

        with pytest.raises(IsADirectoryError):
            write_output(str(target), "text")
        assert ["d"] == [p.name for p in tmp_path.iterdir()]

    def test_write_output_to_a_device(self) -> None:
        """A device is written directly."""
        write_output(os.devnull, "text")


class TestReplayItems:
    def test_binary_report_is_a_replay_error(self, tmp_path: Path) -> None:
        """A non-UTF-8 file given to replay is bad input, not an internal bug (D8)."""
        report = tmp_path / "r.json"
        report.write_bytes(b"\xff\xfe\x00binary")

        with pytest.raises(ReplayError, match="not UTF-8"):
            replay_items(str(report))

    def test_deeply_nested_report_is_a_replay_error(self, tmp_path: Path) -> None:
        """JSON nested too deep for the parser is bad input (D8)."""
        report = tmp_path / "r.json"
        report.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")

        with pytest.raises(ReplayError, match="not a JSON report"):
            replay_items(str(report))

    def test_huge_report_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file larger than the report cap is not read whole."""
        monkeypatch.setattr("hmmsim.service.MAX_REPORT_BYTES", 10)
        report = tmp_path / "r.json"
        report.write_text("{" + " " * 20 + "}", encoding="utf-8")

        with pytest.raises(ReplayError, match="not a report"):
            replay_items(str(report))
        assert MAX_REPORT_BYTES > 10

    def test_unreadable_report_is_a_config_error(self, tmp_path: Path) -> None:
        """A report that cannot be opened is one usage error."""
        with pytest.raises(ConfigError):
            replay_items(str(tmp_path / "missing.json"))


class TestSamplingConfig:
    def test_sampling_stops_at_the_first_violation_on_a_time_budget(self) -> None:
        """pct and random stop at the first violation, bounded by time, not by 100,000 executions."""
        with toy_scenarios():
            from hmmsim.scenarios import get  # noqa: PLC0415

            config = resolve_config(
                get("counter"), overrides={"strategy": "pct"}, env={}
            )

        assert (True, None, SAMPLING_TIME_BUDGET_S) == (
            config.stop_on_first,
            config.max_executions,
            config.time_budget_s,
        )

    def test_keep_going_and_explicit_bounds_win(self) -> None:
        """--keep-going and an explicit --max-executions are kept as given."""
        with toy_scenarios():
            from hmmsim.scenarios import get  # noqa: PLC0415

            config = resolve_config(
                get("counter"),
                overrides={
                    "strategy": "random",
                    "stop_on_first": False,
                    "max_executions": 50,
                },
                env={},
            )

        assert (False, 50, None) == (
            config.stop_on_first,
            config.max_executions,
            config.time_budget_s,
        )

    def test_unbounded_sampling_always_gets_a_time_budget(self) -> None:
        """A sampling strategy with no execution bound never runs for ever (D14)."""
        with toy_scenarios():
            from hmmsim.scenarios import get  # noqa: PLC0415

            config = resolve_config(
                get("counter"),
                env={"HMMSIM_PROFILE": "exhaustive", "HMMSIM_STRATEGY": "pct"},
            )

        assert SAMPLING_TIME_BUDGET_S == config.time_budget_s

    def test_exhaustive_strategies_keep_the_profile(self) -> None:
        """dpor keeps its count bound and collects every kind."""
        with toy_scenarios():
            from hmmsim.scenarios import get  # noqa: PLC0415

            config = resolve_config(get("counter"), env={})

        assert (False, 100_000, None) == (
            config.stop_on_first,
            config.max_executions,
            config.time_budget_s,
        )
