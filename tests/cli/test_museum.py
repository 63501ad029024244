"""Tests for `hmmsim museum` (hmmsim.cli): list, check, show, files and exit codes."""

from __future__ import annotations

import dataclasses
import errno
import json
from pathlib import Path

import pytest
from tests.cli.conftest import CliRunner
from tests.support.toy_exhibits import BROKEN, TOY, toy_museum
from tests.support.toy_scenarios import interrupt_scenario, toy_scenarios

from hmmsim import museum
from hmmsim.cli import main


def test_list_shows_the_shipped_exhibits(capsys: pytest.CaptureFixture[str]) -> None:
    """``museum`` alone lists every exhibit with its commit and pin."""
    code = main(["museum"])
    out = capsys.readouterr().out

    assert 0 == code
    assert "5a136b4ae327  v5.3   hmm-error-flows" in out
    assert "oom-vs-driver-lock: prepatch -> v5.3 (notifier-contract" in out
    assert out == (main(["museum", "list"]), capsys.readouterr().out)[1]


class TestCheck:
    def test_a_holding_exhibit_passes_with_status_0(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """check runs before and after and prints one verdict per exhibit."""
        with toy_museum(monkeypatch):
            ran = cli("museum", "check", "--jobs", "1", "-q")

        assert 0 == ran.code, ran.err
        assert (
            "PASS toy-counter: before (buggy) reports lost-update in 4 executions; "
            "after (fixed) is verified in 2 executions\n"
            "1 of 1 exhibits hold their pins\n"
        ) == ran.out

    def test_a_failing_pin_exits_1_with_a_one_line_reason(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An exhibit whose after side still fails gives status 1 and its reason."""
        with toy_museum(monkeypatch, TOY, BROKEN):
            ran = cli("museum", "check", "toy-broken", "-j", "1", "-q")

        assert 1 == ran.code
        assert ran.out.startswith("FAIL toy-broken: before (fixed) did not report")
        assert [
            "hmmsim: error: exhibit toy-broken fails its pin: before (fixed) did not "
            "report lost-update (found: no violation; exhausted)"
        ] == ran.err.splitlines()

    def test_an_unknown_slug_is_one_line_and_status_2(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A slug that names no exhibit fails before exploring anything."""
        with toy_museum(monkeypatch):
            ran = cli("museum", "check", "nope")

        assert 2 == ran.code
        assert [
            "hmmsim: error: unknown exhibit 'nope' (known: toy-counter)"
        ] == ran.err.splitlines()
        assert "" == ran.out

    def test_bad_options_are_one_line_errors(self, cli: CliRunner) -> None:
        """An unknown option or action of museum is a one-line usage error."""
        ran = cli("museum", "check", "--frobnicate")
        wrong = cli("museum", "chek")

        assert 2 == ran.code
        assert [
            "hmmsim: error: unrecognized arguments: --frobnicate"
        ] == ran.err.splitlines()
        assert 2 == wrong.code
        assert wrong.err.startswith(
            "hmmsim: error: museum: argument ACTION: invalid choice"
        )

    def test_json_is_byte_identical_across_runs_and_jobs(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """The same exhibits give the same JSON bytes, serial or on two workers."""
        first, second = tmp_path / "a.json", tmp_path / "b.json"
        with toy_museum(monkeypatch):
            assert (
                0 == cli("museum", "check", "-j", "1", "-q", "--json", str(first)).code
            )
            assert (
                0 == cli("museum", "check", "-j", "2", "-q", "--json", str(second)).code
            )

        assert first.read_bytes() == second.read_bytes()
        data = json.loads(first.read_text(encoding="utf-8"))
        assert ["toy-counter"] == [e["slug"] for e in data["exhibits"]]
        assert "pass" == data["exhibits"][0]["verdict"]

    def test_json_to_stdout_prints_nothing_else(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``--json -`` writes only the JSON document on stdout."""
        with toy_museum(monkeypatch):
            ran = cli("museum", "check", "-j", "1", "-q", "--json", "-")

        assert 0 == ran.code
        assert 1 == json.loads(ran.out)["schema"]

    def test_report_writes_the_museum_page(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """``--report DIR`` writes museum.html with the exhibit's diagram."""
        with toy_museum(monkeypatch):
            ran = cli("museum", "check", "-j", "1", "--report", str(tmp_path))

        assert 0 == ran.code
        assert f"hmmsim: HTML museum: {tmp_path / 'museum.html'}" in ran.err
        html = (tmp_path / "museum.html").read_text(encoding="utf-8")
        assert '<pre class="diagram">' in html

    def test_an_unwritable_json_target_fails_before_exploring(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A --json path in a missing directory is refused with status 2."""
        with toy_museum(monkeypatch):
            ran = cli("museum", "check", "--json", str(tmp_path / "no" / "x.json"))

        assert 2 == ran.code
        assert 1 == len(ran.err.splitlines())
        assert "" == ran.out


def test_show_prints_each_exhibit_with_its_diagram(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """show prints the exhibit in full: diagram, rule, verdict and replay command."""
    with toy_museum(monkeypatch):
        ran = cli("museum", "show", "toy-counter", "-j", "1")

    assert 0 == ran.code
    assert "    incr0" in ran.out
    assert ">>> lost-update: counter is 1" in ran.out
    assert "Rule: Hold the lock across read and write." in ran.out
    assert "hmmsim replay hs1.counter/buggy:lost-update." in ran.out


class TestFailures:
    def test_an_interrupted_check_judges_nothing_and_exits_130(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Ctrl-C during the exploration stops the command with status 130."""
        scenario = dataclasses.replace(
            interrupt_scenario(), variants=("buggy", "other")
        )
        item = dataclasses.replace(
            TOY, slug="toy-interrupt", scenario="interrupt", after="other"
        )
        with toy_scenarios(scenario), toy_museum(monkeypatch, item):
            code = main(["museum", "check", "-j", "1", "-q"])
        captured = capsys.readouterr()

        assert 130 == code
        assert "" == captured.out
        assert "hmmsim: interrupted; no exhibit was judged" in captured.err

    def test_an_empty_museum_lists_nothing_and_checks_nothing(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without exhibits, list says so and check is a one-line error."""
        monkeypatch.setattr(museum, "_EXHIBITS", {})
        monkeypatch.setattr(museum, "_LOADED", [True])

        listed = cli("museum", "list")
        checked = cli("museum", "check")

        assert (0, "no exhibit is registered\n") == (listed.code, listed.out)
        assert 2 == checked.code
        assert [
            "hmmsim: error: museum: no exhibit is registered"
        ] == checked.err.splitlines()

    @pytest.mark.parametrize(
        ("option", "target"),
        [
            ("--json", "hmmsim.service.write_output"),
            ("--report", "hmmsim.report.html.write_museum"),
        ],
    )
    def test_a_file_that_cannot_be_written_is_status_2(
        self,
        cli: CliRunner,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        option: str,
        target: str,
    ) -> None:
        """A failing write of the JSON or the page is one error line and status 2."""

        def full(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(target, full)
        where = str(tmp_path / ("m.json" if option == "--json" else "site"))
        with toy_museum(monkeypatch):
            ran = cli("museum", "check", "-j", "1", "-q", option, where)

        assert 2 == ran.code
        assert ran.out.startswith("PASS toy-counter")
        assert [
            f"hmmsim: error: {option} {where}: cannot write: No space left on device"
        ] == ran.err.splitlines()
