"""Tests for `hmmsim.cli`: exit codes, stdout and one-line errors of main(argv)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli.conftest import CliRunner, Ran
from tests.support.toy_scenarios import COUNTER, interrupt_scenario, toy_scenarios

from hmmsim import cli as cli_module
from hmmsim.engine import Schedule
from hmmsim.errors import INTERNAL_BUG_TAG
from hmmsim.scenarios import Registry

DFS = ("--strategy", "dfs")
TOKEN_RE = re.compile(r"hmmsim replay (hs1\.\S+)")

USER_FILE = '''\
from hmmsim.api import Cell, READ_ONCE, WRITE_ONCE, Finding, SimpleInstance, scenario


@scenario(name="pair", title="Two writers", variants=("racy", "calm"))
def pair(variant: str) -> SimpleInstance:
    """Two tasks write, one reads."""
    cell = Cell("x", 0)
    seen = []

    async def writer() -> None:
        await WRITE_ONCE(cell, 1)

    async def reader() -> None:
        seen.append(await READ_ONCE(cell))

    def end():
        if variant == "racy" and seen == [0]:
            yield Finding(kind="early-read", message="reader ran first", step=-1)

    return SimpleInstance(task_list=[("writer", writer()), ("reader", reader())], end=end)
'''


def one_error_line(ran: Ran) -> str:
    """Return the only stderr line of a failed run (asserting there is one)."""
    lines = ran.err.splitlines()

    assert 1 == len(lines), ran.err
    assert lines[0].startswith("hmmsim: error: ")
    return lines[0]


def token_of(out: str) -> str:
    """Return the first replay token printed in ``out``."""
    match = TOKEN_RE.search(out)
    assert match is not None, out
    return match.group(1)


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    """Write a user model file defining one scenario, ``pair``."""
    path = tmp_path / "model.py"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


class TestList:
    def test_list_shows_scenarios_titles_and_variants(self, cli: CliRunner) -> None:
        """``list`` prints each scenario with its title and variants, default starred."""
        ran = cli("list")

        assert 0 == ran.code
        assert "counter  Two increments of a shared counter race" in ran.out
        assert "variants: buggy*, fixed" in ran.out
        assert "Tasks: incr0, incr1." not in ran.out

    def test_list_verbose_adds_descriptions(self, cli: CliRunner) -> None:
        """``list -v`` adds each description under its scenario."""
        ran = cli("list", "-v")

        assert "    Tasks: incr0, incr1." in ran.out

    def test_list_with_an_empty_registry_says_so(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no scenario registered, ``list`` says so and succeeds."""
        monkeypatch.setattr("hmmsim.scenarios.all_scenarios", list)

        ran = cli("list")

        assert 0 == ran.code
        assert "no scenario is registered\n" == ran.out


class TestCheck:
    def test_violation_report_has_header_timeline_and_replay_last(
        self, cli: CliRunner
    ) -> None:
        """A failing check prints the header, the timeline and ends with the replay command."""
        ran = cli("check", "counter", *DFS)

        assert 0 == ran.code
        assert ran.out.startswith("hmmsim 0.1.0: scenario counter, variant buggy\n")
        assert "kernel v5.3 modelled" in ran.out
        assert "outcome: VIOLATION (1 kind: lost-update)" in ran.out
        assert "incr0" in ran.out
        assert "incr1" in ran.out
        assert ">> at the end: lost-update: counter is 1" in ran.out
        assert "exit: exhausted: every schedule class was explored" in ran.out
        assert ran.out.splitlines()[-1].startswith("hmmsim replay hs1.counter/buggy:")

    def test_progress_goes_to_stderr(self, cli: CliRunner) -> None:
        """Progress lines go to stderr, results to stdout."""
        ran = cli("check", "counter", *DFS)

        assert "hmmsim: counter/buggy: VIOLATION (lost-update)" in ran.err
        assert "hmmsim:" not in ran.out

    def test_fail_on_violation_exits_1(self, cli: CliRunner) -> None:
        """--fail-on-violation turns a found violation into exit status 1."""
        assert 1 == cli("check", "counter", *DFS, "--fail-on-violation").code

    def test_fail_on_violation_passes_a_verified_variant(self, cli: CliRunner) -> None:
        """--fail-on-violation exits 0 when nothing is found."""
        ran = cli("check", "counter", "--variant", "fixed", *DFS, "--fail-on-violation")

        assert 0 == ran.code
        assert "outcome: VERIFIED" in ran.out
        assert "hmmsim replay" not in ran.out

    def test_fail_on_unexpected_exits_1_on_a_mismatch(self, cli: CliRunner) -> None:
        """--fail-on-unexpected fails when a result contradicts the expectation."""
        assert 1 == cli("check", "mp", *DFS, "--fail-on-unexpected").code
        assert 0 == cli("check", "counter", *DFS, "--fail-on-unexpected").code

    def test_quiet_prints_one_line_and_the_replay_command(self, cli: CliRunner) -> None:
        """--quiet prints the verdict line and the replay command only."""
        ran = cli("check", "counter", *DFS, "--quiet")

        lines = ran.out.splitlines()
        assert "counter/buggy: VIOLATION (lost-update)" == lines[0]
        assert lines[1].startswith("hmmsim replay hs1.")
        assert 2 == len(lines)
        assert "" == ran.err

    def test_quiet_verified_prints_just_the_verdict(self, cli: CliRunner) -> None:
        """--quiet on a clean variant prints one line."""
        ran = cli("check", "counter", "--variant", "fixed", *DFS, "-q")

        assert "counter/fixed: VERIFIED\n" == ran.out

    def test_incomplete_when_the_execution_bound_stops_it(self, cli: CliRunner) -> None:
        """A bound hit before exhaustion reports INCOMPLETE, not VERIFIED."""
        ran = cli(
            "check", "counter", "--variant", "fixed", *DFS, "--max-executions", "1"
        )

        assert "outcome: INCOMPLETE" in ran.out
        assert "exit: max-executions" in ran.out

    def test_preemption_bound_is_reported_as_not_a_proof(self, cli: CliRunner) -> None:
        """A preemption bound that cut schedules is flagged in the stats."""
        ran = cli("check", "locks", *DFS, "--preemption-bound", "0")

        assert "preemption bound 0" in ran.out
        assert "not a proof" in ran.out

    def test_exception_in_a_task_is_a_finding(self, cli: CliRunner) -> None:
        """A task that raises is reported as an ``exception`` violation, not a crash."""
        ran = cli("check", "crash", *DFS)

        assert 0 == ran.code
        assert "violation 1: exception: task boom raised ZeroDivisionError" in ran.out

    def test_all_prints_a_summary_and_writes_html(
        self, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--all runs every scenario and variant, prints a table, writes hmmsim-report/."""
        monkeypatch.chdir(tmp_path)

        ran = cli("check", "--all", *DFS)

        assert 0 == ran.code
        assert re.search(r"counter\s+buggy\s+VIOLATION\s+lost-update", ran.out)
        assert re.search(r"counter\s+fixed\s+VERIFIED", ran.out)
        assert re.search(
            r"mp\s+ok\s+VERIFIED\s+-\s+\d+\s+\d+\.\d s\s+yes\s+UNEXPECTED", ran.out
        )
        assert "5 runs: 1 verified" not in ran.out
        assert "counterexamples (replay one to see its timeline):" in ran.out
        assert "  hmmsim replay hs1.locks/abba:deadlock." in ran.out
        assert (tmp_path / "hmmsim-report" / "index.html").is_file()
        assert "HTML report: hmmsim-report/index.html" in ran.err

    def test_all_of_one_scenario_runs_its_variants(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """``check SCENARIO --all`` runs every variant of that scenario only."""
        ran = cli("check", "counter", "--all", *DFS, "--report", str(tmp_path / "r"))

        assert "2 runs: 1 verified, 1 violation" in ran.out
        assert "locks" not in ran.out

    def test_report_option_writes_html_for_one_check(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """--report DIR writes the HTML report of a single check too."""
        cli("check", "counter", *DFS, "--report", str(tmp_path / "out"), "-q")

        assert (tmp_path / "out" / "cx" / "counter--buggy--lost-update.html").is_file()

    def test_interrupt_reports_progress_and_exits_130(self, cli: CliRunner) -> None:
        """Ctrl-C during an exploration prints what was explored and exits 130."""
        with toy_scenarios(interrupt_scenario()):
            ran = cli("check", "interrupt", *DFS)

        assert 130 == ran.code
        assert "exit: interrupted: interrupted by the user" in ran.out
        assert "interrupted after 2 executions of interrupt/buggy" in ran.err

    def test_interrupt_during_all_stops_the_remaining_runs(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """Ctrl-C during --all stops, summarises the finished runs and exits 130."""
        with toy_scenarios(interrupt_scenario()):
            ran = cli("check", "--all", *DFS, "--report", str(tmp_path), "-q")

        assert 130 == ran.code
        assert "interrupt  buggy" in ran.out
        assert "0 runs not started" in ran.err


class TestJson:
    def test_json_is_byte_identical_across_runs(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """Two runs with the same options write the same JSON bytes."""
        first, second = tmp_path / "a.json", tmp_path / "b.json"
        cli(
            "check",
            "counter",
            "--all",
            *DFS,
            "--json",
            str(first),
            "--report",
            str(tmp_path),
        )
        cli(
            "check",
            "counter",
            "--all",
            *DFS,
            "--json",
            str(second),
            "--report",
            str(tmp_path),
        )

        assert first.read_bytes() == second.read_bytes()

    def test_json_to_stdout_has_the_schema_and_nothing_else(
        self, cli: CliRunner
    ) -> None:
        """``--json -`` prints only the JSON document on stdout."""
        ran = cli("check", "counter", *DFS, "--json", "-")

        data = json.loads(ran.out)
        assert 1 == data["schema"]
        assert ["schema", "hmmsim", "results"] == list(data)
        result = data["results"][0]
        assert "violation" == result["outcome"]
        assert "seconds" not in result
        violation = result["violations"][0]
        assert "lost-update" == violation["kind"]
        assert violation["replay"].startswith("hs1.counter/buggy:lost-update.")
        assert {"seed", "choices"} == set(violation["schedule"])

    def test_timings_add_seconds(self, cli: CliRunner) -> None:
        """--timings adds the wall-clock ``seconds`` of each result."""
        ran = cli("check", "counter", *DFS, "--json", "-", "--timings")

        assert isinstance(json.loads(ran.out)["results"][0]["seconds"], float)

    def test_json_into_a_missing_directory_fails_before_running(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """A --json path in a missing directory is a usage error, found up front."""
        ran = cli("check", "counter", *DFS, "--json", str(tmp_path / "no" / "x.json"))

        assert 2 == ran.code
        assert "does not exist" in one_error_line(ran)


class TestReplay:
    def test_printed_token_reproduces(self, cli: CliRunner) -> None:
        """The token a failing check prints replays the same violation, exit 0."""
        token = token_of(cli("check", "counter", *DFS).out)

        ran = cli("replay", token)

        assert 0 == ran.code
        assert ran.out.startswith("replay counter/buggy: 4 steps, outcome violation")
        assert "reproduced: lost-update" in ran.out
        assert ">> at the end: lost-update" in ran.out

    def test_quiet_replay_prints_nothing(self, cli: CliRunner) -> None:
        """``replay -q`` of a reproducing token prints nothing and exits 0."""
        token = token_of(cli("check", "locks", *DFS).out)

        assert Ran(0, "", "") == cli("replay", token, "-q")

    def test_tampered_token_exits_2(self, cli: CliRunner) -> None:
        """A token with an edited character is rejected by its checksum."""
        token = token_of(cli("check", "counter", *DFS).out)
        tampered = token[:-1] + ("0" if token[-1] != "0" else "1")

        ran = cli("replay", tampered)

        assert 2 == ran.code
        assert "checksum mismatch" in one_error_line(ran)

    def test_garbage_token_exits_2(self, cli: CliRunner) -> None:
        """Something that is neither a token nor a file is a usage error."""
        ran = cli("replay", "not-a-token")

        assert 2 == ran.code
        assert "not an hmmsim replay token" in one_error_line(ran)

    @pytest.mark.parametrize(
        ("context", "message"),
        [
            ("nosuch/x", "unknown scenario 'nosuch'"),
            ("counter/nosuch", "has no variant 'nosuch'"),
            ("counter", "not scenario/variant[:kind]"),
        ],
    )
    def test_bad_token_context_exits_2(
        self, cli: CliRunner, context: str, message: str
    ) -> None:
        """A token naming an unknown scenario or variant is a usage error."""
        token = Schedule.parse("t0 t1").to_token(context)

        ran = cli("replay", token)

        assert 2 == ran.code
        assert message in one_error_line(ran)

    def test_other_kind_is_not_reproduced_exit_4(self, cli: CliRunner) -> None:
        """A replay that does not show the recorded kind exits 4."""
        schedule = Schedule.parse("t0 t0 t1 t1")  # incr0 then incr1: no lost update
        token = schedule.to_token("counter/buggy:lost-update")

        ran = cli("replay", token)

        assert 4 == ran.code
        assert "NOT reproduced: expected lost-update, found none" in ran.out
        assert "did not reproduce: counter/buggy: expected lost-update" in (
            one_error_line(ran)
        )

    def test_divergent_schedule_exits_4(self, cli: CliRunner) -> None:
        """A schedule the execution cannot follow is a divergence, exit 4."""
        token = Schedule.parse(" ".join(["t0"] * 9)).to_token(
            "counter/buggy:lost-update"
        )

        ran = cli("replay", token)

        assert 4 == ran.code
        assert "replay diverged:" in one_error_line(ran)

    def test_token_without_kind_replays_without_verifying(self, cli: CliRunner) -> None:
        """A token with no kind replays and says there is nothing to verify."""
        token = Schedule.parse("t0 t0 t1 t1").to_token("counter/buggy")

        ran = cli("replay", token)

        assert 0 == ran.code
        assert "nothing to verify" in ran.out

    def test_json_report_replays_every_violation(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """``replay REPORT.json`` replays each violation of a --json report."""
        report = tmp_path / "r.json"
        cli("check", "locks", *DFS, "--json", str(report))

        ran = cli("replay", str(report))

        assert 0 == ran.code
        assert "reproduced: lock-order" in ran.out
        assert "reproduced: deadlock" in ran.out

    def test_json_report_without_violations_exits_2(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """A report with nothing to replay is a usage error."""
        report = tmp_path / "r.json"
        cli("check", "counter", "--variant", "fixed", *DFS, "--json", str(report))

        ran = cli("replay", str(report))

        assert 2 == ran.code
        assert "holds no violation" in one_error_line(ran)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("{", "not a JSON report"),
            ('{"schema": 2, "results": []}', "unsupported report schema 2"),
            ("[]", "no 'results'"),
        ],
    )
    def test_malformed_json_report_exits_2(
        self, cli: CliRunner, tmp_path: Path, text: str, message: str
    ) -> None:
        """A file that is not a schema-1 report is a usage error."""
        report = tmp_path / "bad.json"
        report.write_text(text, encoding="utf-8")

        ran = cli("replay", str(report))

        assert 2 == ran.code
        assert message in one_error_line(ran)

    def test_missing_json_file_exits_2(self, cli: CliRunner, tmp_path: Path) -> None:
        """A .json path that does not exist is a usage error."""
        ran = cli("replay", str(tmp_path / "gone.json"))

        assert 2 == ran.code
        assert "No such file" in one_error_line(ran)


class TestUserFiles:
    def test_check_a_user_file(self, cli: CliRunner, user_file: Path) -> None:
        """``check PATH.py`` explores the scenario the file defines."""
        ran = cli("check", str(user_file), *DFS)

        assert 0 == ran.code
        assert "scenario pair, variant racy" in ran.out
        assert "violation 1: early-read: reader ran first" in ran.out
        assert ran.out.splitlines()[-1].endswith(f"--file {user_file}")

    def test_replay_of_a_user_file_token_needs_the_file(
        self, cli: CliRunner, user_file: Path
    ) -> None:
        """A user-file token replays with --file and is a usage error without it."""
        token = token_of(cli("check", str(user_file), *DFS).out)

        assert 0 == cli("replay", token, "--file", str(user_file)).code
        ran = cli("replay", token)
        assert 2 == ran.code
        assert "pass --file PATH.py" in one_error_line(ran)

    def test_json_report_of_a_user_file_replays_with_file(
        self, cli: CliRunner, user_file: Path, tmp_path: Path
    ) -> None:
        """A report of a user scenario replays when the user names the file."""
        report = tmp_path / "r.json"
        cli("check", str(user_file), *DFS, "--json", str(report))

        assert 0 == cli("replay", str(report), "--file", str(user_file)).code

    def test_json_report_never_imports_the_file_it_names(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """replay REPORT.json refuses to run the report's 'file' unless --file names it (D11)."""
        planted = tmp_path / "planted.py"
        marker = tmp_path / "ran"
        planted.write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
        report = tmp_path / "r.json"
        report.write_text(
            json.dumps(
                {
                    "schema": 1,
                    "results": [
                        {
                            "scenario": "pair",
                            "variant": "racy",
                            "file": str(planted),
                            "violations": [
                                {"kind": "x", "schedule": {"seed": 0, "choices": []}}
                            ],
                        }
                    ],
                }
            ),
            encoding="utf-8",
        )

        ran = cli("replay", str(report))

        assert 2 == ran.code
        assert "add --file PATH.py" in one_error_line(ran)
        assert not marker.exists()

    def test_path_with_a_scenario_name_selects_it(
        self, cli: CliRunner, user_file: Path
    ) -> None:
        """``PATH.py:NAME`` selects one scenario of the file."""
        ran = cli("check", f"{user_file}:pair", "--variant", "calm", *DFS, "-q")

        assert "pair/calm: VERIFIED\n" == ran.out

    def test_unknown_scenario_in_a_file_exits_2(
        self, cli: CliRunner, user_file: Path
    ) -> None:
        """``PATH.py:NAME`` with a name the file lacks is a usage error."""
        ran = cli("check", f"{user_file}:other", *DFS)

        assert 2 == ran.code
        assert "has no scenario 'other' (it defines: pair)" in one_error_line(ran)

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("x = (\n", "syntax error"),
            ("import nonexistent_module_xyz\n", "ModuleNotFoundError"),
            ("x = 1\n", "defines no scenario"),
            ("raise SystemExit(3)\n", "SystemExit"),
        ],
    )
    def test_broken_user_file_exits_2(
        self, cli: CliRunner, tmp_path: Path, source: str, message: str
    ) -> None:
        """A user file that does not import or defines nothing is one error line."""
        path = tmp_path / "broken.py"
        path.write_text(source, encoding="utf-8")

        ran = cli("check", str(path))

        assert 2 == ran.code
        assert message in one_error_line(ran)

    def test_missing_user_file_exits_2(self, cli: CliRunner, tmp_path: Path) -> None:
        """A path that does not exist is a usage error naming it."""
        ran = cli("check", str(tmp_path / "nope.py"))

        assert 2 == ran.code
        assert f"{tmp_path / 'nope.py'}: no such file" in one_error_line(ran)


class TestCompare:
    def test_compare_a_file_with_several_scenarios_needs_a_name(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """``compare PATH.py`` with several scenarios asks for PATH.py:NAME."""
        path = tmp_path / "two.py"
        path.write_text(
            USER_FILE
            + USER_FILE.split("\n\n\n", 1)[1]
            .replace('"pair"', '"pair2"')
            .replace("def pair(", "def pair2("),
            encoding="utf-8",
        )

        ran = cli("compare", str(path), "racy", "calm", *DFS)

        assert 2 == ran.code
        assert "defines several scenarios (pair, pair2)" in one_error_line(ran)

    def test_compare_shows_the_kinds_only_one_variant_has(self, cli: CliRunner) -> None:
        """``compare`` names the kind found only in the buggy variant."""
        ran = cli("compare", "counter", "buggy", "fixed", *DFS)

        assert 0 == ran.code
        assert "outcome differs: buggy VIOLATION, fixed VERIFIED" in ran.out
        assert "only in buggy: lost-update:" in ran.out

    def test_compare_without_variants_compares_them_all(self, cli: CliRunner) -> None:
        """With no variant named, every variant is compared, kinds by variant."""
        ran = cli("compare", "counter", *DFS)

        assert 0 == ran.code
        assert "scenario counter: buggy vs fixed" in ran.out
        assert "only in buggy: lost-update:" in ran.out

    def test_compare_three_variants_tabulates_kinds(self, cli: CliRunner) -> None:
        """Three variants give the kind-by-variant table."""
        ran = cli("compare", "counter", "buggy", "fixed", "buggy", *DFS)

        assert 0 == ran.code
        assert (
            "outcome differs: buggy VIOLATION, fixed VERIFIED, buggy VIOLATION"
            in ran.out
        )
        assert any(
            line.split() == ["lost-update", "yes", "-", "yes"]
            for line in ran.out.splitlines()
        )

    def test_compare_needs_two_variants(self, cli: CliRunner) -> None:
        """One variant is not a comparison: a one-line error, exit 2."""
        ran = cli("compare", "counter", "buggy", *DFS)

        assert 2 == ran.code
        assert "compare needs two or more variants" in one_error_line(ran)

    def test_explain_is_an_alias_and_same_variants_do_not_differ(
        self, cli: CliRunner
    ) -> None:
        """``explain`` is ``compare``; one variant twice shows no difference."""
        ran = cli("explain", "counter", "fixed", "fixed", *DFS)

        assert "no difference: both VERIFIED" in ran.out

    def test_compare_json_to_stdout(self, cli: CliRunner) -> None:
        """``compare --json -`` prints both results as JSON."""
        ran = cli("compare", "counter", "buggy", "fixed", *DFS, "--json", "-")

        assert ["buggy", "fixed"] == [
            r["variant"] for r in json.loads(ran.out)["results"]
        ]

    def test_compare_json_file_and_text(self, cli: CliRunner, tmp_path: Path) -> None:
        """``compare --json FILE`` writes JSON and still prints the comparison."""
        ran = cli(
            "compare",
            "counter",
            "buggy",
            "fixed",
            *DFS,
            "--json",
            str(tmp_path / "c.json"),
        )

        assert (tmp_path / "c.json").is_file()
        assert "only in buggy" in ran.out

    def test_compare_unknown_variant_exits_2(self, cli: CliRunner) -> None:
        """An unknown variant is a usage error listing the known ones."""
        ran = cli("compare", "counter", "buggy", "nope", *DFS)

        assert 2 == ran.code
        assert "variants: buggy, fixed" in one_error_line(ran)

    def test_compare_interrupted_exits_130(self, cli: CliRunner) -> None:
        """Ctrl-C during compare exits 130."""
        with toy_scenarios(interrupt_scenario()):
            ran = cli("compare", "interrupt", "buggy", "buggy", *DFS)

        assert 130 == ran.code


class TestUsageErrors:
    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["check", "nosuch"], "unknown scenario 'nosuch' (known: counter, locks"),
            (["check", "counter", "--variant", "x"], "has no variant 'x'"),
            (["check"], "name a SCENARIO or PATH.py, or give --all"),
            (["check", "--all", "--variant", "x"], "cannot be combined"),
            (["check", "counter", "--max-executions", "0"], "--max-executions must be"),
            (["check", "counter", "--max-steps", "-1"], "--max-steps must be"),
            (
                ["check", "counter", "--preemption-bound", "-1"],
                "--preemption-bound must",
            ),
            (["check", "counter", "--time-budget", "0"], "--time-budget must be"),
            (
                ["check", "counter", "--seed", "x"],
                "check: argument --seed: invalid int",
            ),
            (["check", "counter", "--strategy", "magic"], "invalid choice: 'magic'"),
            (["frobnicate"], "invalid choice: 'frobnicate'"),
            ([], "the following arguments are required: COMMAND"),
        ],
    )
    def test_bad_input_is_one_line_and_exit_2(
        self, cli: CliRunner, argv: list[str], message: str
    ) -> None:
        """Every bad input gives one ``hmmsim: error:`` line and exit status 2."""
        ran = cli(*argv)

        assert 2 == ran.code
        assert message in one_error_line(ran)
        assert "" == ran.out

    def test_help_exits_0(self, cli: CliRunner) -> None:
        """``--help`` prints the usage and exits 0."""
        ran = cli("--help")

        assert 0 == ran.code
        assert "usage: hmmsim" in ran.out

    def test_version(self, cli: CliRunner) -> None:
        """``--version`` prints the version."""
        ran = cli("--version")

        assert (0, "hmmsim 0.1.0\n") == (ran.code, ran.out)

    def test_report_dir_that_is_a_file_exits_2(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """An OSError while writing the report is one line and exit 2."""
        blocker = tmp_path / "file"
        blocker.write_text("", encoding="utf-8")

        ran = cli("check", "counter", *DFS, "-q", "--report", str(blocker))

        assert 2 == ran.code
        assert str(blocker) in ran.err.splitlines()[-1]


class TestEmptyRegistry:
    def test_check_all_with_no_scenario_exits_2(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """``check --all`` with nothing registered is a usage error."""
        monkeypatch.setattr("hmmsim.service.all_scenarios", list)

        ran = cli("check", "--all", "--report", str(tmp_path))

        assert 2 == ran.code
        assert "no scenario is registered" in one_error_line(ran)

    def test_replay_of_a_directory_named_json_exits_2(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """A report path that cannot be read is a usage error."""
        folder = tmp_path / "r.json"
        folder.mkdir()

        ran = cli("replay", str(folder))

        assert 2 == ran.code
        assert str(folder) in one_error_line(ran)


class TestInternalErrors:
    def test_failing_builtin_module_exits_3(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A built-in scenario module that does not import is an internal error."""
        from hmmsim.scenarios import use_registry  # noqa: PLC0415

        with use_registry(Registry(builtin_modules=("hmmsim.scenarios.nonexistent",))):
            ran = cli("list")

        assert 3 == ran.code
        line = one_error_line(ran)
        assert INTERNAL_BUG_TAG in line
        assert "hmmsim.scenarios.nonexistent failed to import" in line

    def test_unexpected_exception_is_tagged_and_exits_3(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unexpected exception is reported with the internal-bug tag."""

        def broken(args: object) -> int:
            raise RuntimeError("boom\nsecond line")

        monkeypatch.setitem(cli_module._COMMANDS, "list", broken)

        ran = cli("list")

        assert 3 == ran.code
        assert f"{INTERNAL_BUG_TAG} RuntimeError: boom second line" in one_error_line(
            ran
        )

    def test_traceback_env_prints_the_traceback_and_keeps_status_3(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """HMMSIM_TRACEBACK=1 adds the traceback on stderr; the status stays 3 (D20)."""

        def broken(args: object) -> int:
            raise RuntimeError("boom")

        monkeypatch.setitem(cli_module._COMMANDS, "list", broken)
        monkeypatch.setenv("HMMSIM_TRACEBACK", "1")

        ran = cli("list")

        assert 3 == ran.code
        assert "Traceback (most recent call last)" in ran.err
        assert "[hmmsim internal bug] RuntimeError: boom" in ran.err.splitlines()[-1]

    def test_keyboard_interrupt_outside_exploration_exits_130(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ctrl-C outside an exploration (e.g. during replay) exits 130."""

        def interrupted(args: object) -> int:
            raise KeyboardInterrupt

        monkeypatch.setitem(cli_module._COMMANDS, "list", interrupted)

        assert Ran(130, "", "hmmsim: interrupted\n") == cli("list")


def test_counter_scenario_is_the_default_variant_buggy() -> None:
    """The toy counter scenario runs ``buggy`` when no variant is named."""
    assert "buggy" == COUNTER.default_variant


class TestDeterminism:
    def test_json_is_identical_under_different_hash_seeds(
        self, user_file: Path, tmp_path: Path
    ) -> None:
        """``python -m hmmsim check --json -`` prints the same bytes whatever PYTHONHASHSEED is."""
        outputs = []
        for seed in ("0", "12345"):
            env = {**os.environ, "PYTHONHASHSEED": seed}
            env.pop("HMMSIM_PROFILE", None)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hmmsim",
                    "check",
                    str(user_file),
                    "--all",
                    "--strategy",
                    "dfs",
                    "--json",
                    "-",
                    "--report",
                    str(tmp_path / seed),
                ],
                capture_output=True,
                check=False,
                env=env,
                cwd=Path(__file__).resolve().parents[2],
            )
            assert 0 == done.returncode, done.stderr
            outputs.append(done.stdout)

        assert outputs[0] == outputs[1]
        assert b'"schema": 1' in outputs[0]
