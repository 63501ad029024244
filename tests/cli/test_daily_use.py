"""Results are never lost, errors get the right blame (issue 11, defects D1-D21).

Each test names the defect it guards.  Tests that need a real process
(signals, a dying worker, ``sys.exit``) run ``python -m hmmsim`` on a small
user model written to ``tmp_path``; the others call ``main()`` in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cli.conftest import CliRunner

import hmmsim.cli as cli_module

DFS = ("--strategy", "dfs")

#: A user model whose behaviour the environment variable MODE picks.
MODEL = """
import os
import sys

from hmmsim.api import READ_ONCE, WRITE_ONCE, Cell, Finding, SimpleInstance, scenario

MODE = os.environ.get("MODE", "ok")


@scenario(name="m", title="modes", description="two increments", variants=("a", "b"))
def m(variant):
    cell = Cell("c", 0)
    if MODE == "build-raises":
        raise ValueError("bad build")
    if MODE == "build-none":
        return None
    if MODE == "ki-b" and variant == "b":
        raise KeyboardInterrupt

    async def incr():
        value = await READ_ONCE(cell)
        if MODE == "exit" or (MODE == "exit-b" and variant == "b"):
            sys.exit(0)
        if MODE == "die-b" and variant == "b":
            os.kill(os.getpid(), 9)
        if MODE == "spin":
            while True:
                pass
        if MODE == "spin-mark":
            open(os.environ["MARK"], "w").close()
            while True:
                pass
        if MODE == "print":
            print("hello from the model")
        await WRITE_ONCE(cell, value + 1)

    def end():
        if MODE == "end-raises":
            raise KeyError("end")
        if cell.value != 2:
            return [Finding(kind="lost", message="lost", step=-1)]
        return []

    def snap():
        if MODE == "snap-raises":
            raise RuntimeError("snap")
        return {"c": cell.value}

    return SimpleInstance(task_list=[("x", incr()), ("y", incr())], end=end, snap=snap)
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """Write the user model."""
    path = tmp_path / "model.py"
    path.write_text(MODEL, encoding="utf-8")
    return path


def hmmsim(
    *argv: str, mode: str = "ok", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hmmsim`` with MODE set; return the finished process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMMSIM_")}
    env["HMMSIM_STORE"] = "off"  # no .hmmsim/ in the working tree
    env["MODE"] = mode
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run(
        [sys.executable, "-m", "hmmsim", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


class TestOutputs:
    def test_summary_reaches_stdout_when_the_json_write_fails(
        self, cli: CliRunner
    ) -> None:
        """--json /dev/full: the summary and replay lines are printed, then one error, exit 2 (D9)."""
        ran = cli("check", "counter", *DFS, "-q", "--json", "/dev/full")

        assert 2 == ran.code
        assert "counter/buggy: VIOLATION (lost-update)" in ran.out
        assert "replay hs1.counter/buggy" in ran.out
        assert "--json /dev/full: cannot write" in ran.err.splitlines()[-1]

    def test_directory_json_target_fails_before_exploring(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """A directory as --json target is refused before anything is explored (D9)."""
        ran = cli("check", "counter", *DFS, "--json", str(tmp_path))

        assert 2 == ran.code
        assert "" == ran.out
        assert "is a directory" in ran.err

    def test_closed_pipe_keeps_the_failing_status(
        self, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``--fail-on-violation ... | true`` still exits 1 (D10)."""

        def closed(text: str) -> None:
            raise BrokenPipeError

        monkeypatch.setattr(cli_module, "_out", closed)

        ran = cli("check", "counter", *DFS, "-q", "--fail-on-violation")

        assert 1 == ran.code
        assert "" == ran.err

    def test_empty_variant_and_report_are_errors(self, cli: CliRunner) -> None:
        """``--variant ""`` and ``--report ""`` are usage errors (D20)."""
        assert 2 == cli("check", "counter", "--variant", "").code
        assert 2 == cli("check", "counter", *DFS, "--report", "").code

    def test_model_output_does_not_corrupt_json_on_stdout(self, model: Path) -> None:
        """A model that prints leaves ``--json -`` parseable; its text goes to stderr (D21)."""
        done = hmmsim("check", str(model), *DFS, "--json", "-", mode="print")

        assert 0 == done.returncode
        assert "m" == json.loads(done.stdout)["results"][0]["scenario"]
        assert "hello from the model" in done.stderr


class TestBlame:
    @pytest.mark.parametrize(
        ("mode", "message"),
        [
            (
                "build-raises",
                "building the world (the scenario's build function) raised ValueError: bad build",
            ),
            (
                "build-none",
                "the scenario's build function returned None, not an Instance",
            ),
            ("end-raises", "the end-of-execution check (end) raised KeyError: 'end'"),
            ("snap-raises", "the state snapshot (snap) raised RuntimeError: snap"),
        ],
    )
    def test_errors_in_model_code_name_the_file_and_line(
        self,
        cli: CliRunner,
        model: Path,
        monkeypatch: pytest.MonkeyPatch,
        mode: str,
        message: str,
    ) -> None:
        """Model code that fails is a model error at its file and line, exit 2, never an internal bug (D6, D7)."""
        monkeypatch.setenv("MODE", mode)

        ran = cli("check", str(model), *DFS, "-q", "--variant", "a")

        assert 2 == ran.code
        last = ran.err.splitlines()[-1]
        assert f"m/a: model error: {model}:" in last
        assert message in last
        assert "internal bug" not in ran.err

    def test_a_model_that_is_not_deterministic_is_blamed(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """A model whose choices change between executions is a model error, exit 2 (D8)."""
        model = tmp_path / "flaky.py"
        model.write_text(
            "import itertools\n"
            "from hmmsim.api import READ_ONCE, Cell, SimpleInstance, scenario\n"
            "calls = itertools.count()\n"
            "@scenario(name='flaky', title='t', description='d', variants=('a',))\n"
            "def flaky(variant):\n"
            "    cell = Cell('c', 0)\n"
            "    async def t():\n"
            "        await READ_ONCE(cell)\n"
            "    n = 3 if next(calls) % 2 else 2\n"
            "    return SimpleInstance(task_list=[(f't{i}', t()) for i in range(n)])\n",
            encoding="utf-8",
        )

        ran = cli("check", str(model), *DFS, "-q")

        assert 2 == ran.code
        assert "the model is not deterministic" in ran.err.splitlines()[-1]
        assert "internal bug" not in ran.err

    def test_sys_exit_in_a_task_is_an_error_row_not_a_silent_exit(
        self, model: Path
    ) -> None:
        """``sys.exit(0)`` in a model with --jobs 1 is an error row and exit 2, with output (D2)."""
        done = hmmsim(
            "check",
            str(model),
            *DFS,
            "--all",
            "-j",
            "1",
            "--report",
            str(model.parent / "h"),
            mode="exit-b",
        )

        assert 2 == done.returncode
        assert re.search(r"m\s+a\s+VIOLATION\s+lost", done.stdout)
        assert re.search(r"m\s+b\s+ERROR", done.stdout)
        assert "called sys.exit(0)" in done.stderr

    @pytest.mark.parametrize("mode", ["exit-b", "build-raises"])
    def test_a_split_exploration_keeps_error_rows(self, model: Path, mode: str) -> None:
        """--jobs 2 on one variant splits DPOR; sys.exit or a bad build is still an error row, exit 2."""
        done = hmmsim(
            "check",
            f"{model}:m",
            "--variant",
            "b",
            "-j",
            "2",
            "--report",
            str(model.parent / "h"),
            mode=mode,
        )

        assert 2 == done.returncode
        assert "outcome: ERROR (model error: " in done.stdout
        assert "internal bug" not in done.stderr

    def test_bug_on_without_a_message_says_where(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """The kind ``bug`` names the BUG_ON's function, file and line when it has no message."""
        model = tmp_path / "bugon.py"
        model.write_text(
            "from hmmsim.api import BUG_ON, READ_ONCE, Cell, SimpleInstance, scenario\n"
            "@scenario(name='b', title='t', description='d', variants=('a',))\n"
            "def b(variant):\n"
            "    cell = Cell('c', 0)\n"
            "    async def t():\n"
            "        await READ_ONCE(cell)\n"
            "        BUG_ON(cell.value == 0)\n"
            "    return SimpleInstance(task_list=[('t', t())])\n",
            encoding="utf-8",
        )

        ran = cli("check", str(model), *DFS)

        assert "bug: kernel BUG: BUG_ON(t() at bugon.py:7)" in ran.out


class TestWatchdog:
    def test_a_busy_looping_task_is_a_hung_task_finding(
        self, cli: CliRunner, model: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A task that loops without await is a hung-task finding with a replayable schedule (D3)."""
        monkeypatch.setenv("MODE", "spin")

        ran = cli(
            "check", str(model), *DFS, "--variant", "a", "--task-timeout", "0.2", "-q"
        )

        assert 0 == ran.code
        assert "m/a: VIOLATION (hung-task)" in ran.out
        assert "replay hs1.m/a:hung-task." in ran.out

    def test_time_budget_holds_inside_one_execution(
        self,
        cli: CliRunner,
        model: Path,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """--time-budget stops an execution that is still running, as time-budget (D15)."""
        monkeypatch.setenv("MODE", "spin")
        report = tmp_path / "r.json"

        ran = cli(
            "check",
            str(model),
            *DFS,
            "--variant",
            "a",
            "--task-timeout",
            "3600",
            "--time-budget",
            "0.2",
            "-q",
            "--json",
            str(report),
        )

        result = json.loads(report.read_text(encoding="utf-8"))["results"][0]
        assert 0 == ran.code
        assert ("incomplete", "time-budget", 0) == (
            result["outcome"],
            result["exit_reason"],
            result["executions"],
        )


def children(pid: int) -> list[int]:
    """Return the pids of the live child processes of ``pid``."""
    done = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(x) for x in done.stdout.split()]


def processes_running(marker: str) -> list[str]:
    """Return the ``ps`` lines of processes whose command line holds ``marker``."""
    done = subprocess.run(
        ["ps", "-eo", "pid,stat,args"], capture_output=True, text=True, check=True
    )
    return [
        line
        for line in done.stdout.splitlines()
        if marker in line and " Z" not in line and "ps -eo" not in line
    ]


def wait_for(predicate: Callable[[], bool], *, seconds: float = 60) -> bool:
    """Poll ``predicate`` until it holds or ``seconds`` pass; return whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def start_busy_run(model: Path, *extra: str) -> subprocess.Popen[str]:
    """Start ``check --all -j 2`` on a model whose tasks spin; wait for both workers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMMSIM_")}
    env["HMMSIM_STORE"] = "off"  # no .hmmsim/ in the working tree
    env["MODE"] = "spin"
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hmmsim",
            "check",
            str(model),
            "--all",
            *DFS,
            "-j",
            "2",
            "--task-timeout",
            "600",
            "--report",
            str(model.parent / "html"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert wait_for(lambda: len(children(parent.pid)) >= 2), "workers never started"
    return parent


class TestWorkers:
    def test_a_killed_worker_is_an_error_row(self, model: Path, tmp_path: Path) -> None:
        """A worker killed by SIGKILL leaves an error row, the other results and exit 2 (D1)."""
        report = tmp_path / "r.json"

        done = hmmsim(
            "check",
            str(model),
            *DFS,
            "--all",
            "-j",
            "2",
            "--fail-on-violation",
            "--json",
            str(report),
            "--report",
            str(tmp_path / "h"),
            mode="die-b",
        )

        results = json.loads(report.read_text(encoding="utf-8"))["results"]
        assert 2 == done.returncode
        assert ["violation", "error"] == [r["outcome"] for r in results]
        assert "worker process died: killed by SIGKILL" in results[1]["error"]
        assert re.search(r"m\s+b\s+ERROR", done.stdout)
        assert "m/b: worker process died: killed by SIGKILL" in done.stderr

    def test_sigterm_stops_every_worker_and_writes_what_was_explored(
        self, model: Path, tmp_path: Path
    ) -> None:
        """SIGTERM: workers stop, the summary and JSON are written, no process is left (D5, D4)."""
        report = tmp_path / "r.json"
        parent = start_busy_run(model, "--json", str(report))

        parent.send_signal(signal.SIGTERM)
        out, err = parent.communicate(timeout=60)

        assert 130 == parent.returncode
        assert re.search(r"m\s+a\s+INCOMPLETE", out)
        assert "interrupted" in err.splitlines()[-1]
        assert 2 == len(json.loads(report.read_text(encoding="utf-8"))["results"])
        assert wait_for(lambda: not processes_running(str(model)), seconds=10)

    def test_sigterm_without_workers_reports_and_writes(
        self, model: Path, tmp_path: Path
    ) -> None:
        """SIGTERM to a serial run (-j 1) interrupts the execution, prints and writes the report (D5)."""
        report, mark = tmp_path / "r.json", tmp_path / "mark"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HMMSIM_")}
        env.update(
            MODE="spin-mark", MARK=str(mark), PYTHONPATH=os.pathsep.join(sys.path)
        )
        argv = ["check", str(model), *DFS, "--variant", "a", "-j", "1"]
        argv += ["--task-timeout", "600", "--json", str(report), "-q"]
        run = subprocess.Popen(
            [sys.executable, "-m", "hmmsim", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert wait_for(mark.exists), "the model never started"

        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)

        assert 130 == run.returncode
        assert "m/a: INCOMPLETE" in out
        assert (
            "interrupted" == json.loads(report.read_text())["results"][0]["exit_reason"]
        )

    def test_sigint_stops_busy_workers(self, model: Path) -> None:
        """Ctrl-C with workers in a task that never yields ends within the grace time (D4)."""
        parent = start_busy_run(model, "-q")

        parent.send_signal(signal.SIGINT)
        out, _ = parent.communicate(timeout=60)

        assert 130 == parent.returncode
        assert re.search(r"m\s+a\s+INCOMPLETE", out)
        assert wait_for(lambda: not processes_running(str(model)), seconds=10)

    def test_workers_die_with_a_killed_parent(self, model: Path) -> None:
        """SIGKILL of the parent leaves no worker exploring on its own (D4)."""
        parent = start_busy_run(model, "-q")

        parent.kill()
        parent.communicate(timeout=60)

        assert wait_for(lambda: not processes_running(str(model)), seconds=10)


class TestCompare:
    def test_interrupted_compare_writes_json_and_replay_commands(
        self, model: Path, tmp_path: Path
    ) -> None:
        """An interrupted compare still writes the JSON and prints the replay commands (D17)."""
        report = tmp_path / "r.json"

        done = hmmsim(
            "compare", str(model), "a", "b", *DFS, "--json", str(report), mode="ki-b"
        )

        results = json.loads(report.read_text(encoding="utf-8"))["results"]
        assert 130 == done.returncode
        assert "a" == results[0]["variant"]
        assert "replay hs1.m/a:lost." in done.stdout


class TestNewUser:
    def test_every_option_has_a_description(self) -> None:
        """Every option of every command says what it does in --help."""
        parser = cli_module._parser()
        choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        commands: dict[str, argparse.ArgumentParser] = dict(choices)  # type: ignore[arg-type]
        missing = [
            f"{name} {'/'.join(action.option_strings) or action.dest}"
            for name, sub in commands.items()
            for action in sub._actions
            if not action.help and action.dest != "help"
        ]

        assert [] == missing

    @pytest.mark.parametrize(
        ("argv0", "on_path", "expected"),
        [
            (".venv/bin/hmmsim", None, ".venv/bin/hmmsim"),
            ("/opt/x y/hmmsim", None, "'/opt/x y/hmmsim'"),
            ("/usr/bin/pytest", None, "hmmsim"),
            ("hmmsim", "/usr/bin/hmmsim", "hmmsim"),
        ],
    )
    def test_printed_commands_work_when_pasted(
        self,
        monkeypatch: pytest.MonkeyPatch,
        argv0: str,
        on_path: str | None,
        expected: str,
    ) -> None:
        """Replay commands name the program as invoked when plain hmmsim is not on PATH."""
        from hmmsim.runs import invoked_as  # noqa: PLC0415

        monkeypatch.setattr("shutil.which", lambda name: on_path)

        assert expected == invoked_as(argv0)

    def test_the_same_program_on_path_is_called_hmmsim(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """When PATH finds the very program that runs, the command says hmmsim."""
        from hmmsim.runs import invoked_as  # noqa: PLC0415

        program = tmp_path / "hmmsim"
        program.write_text("", encoding="utf-8")
        monkeypatch.setattr("shutil.which", lambda name: str(program))

        assert "hmmsim" == invoked_as(str(program))

    def test_a_crafted_token_is_one_usage_error(self, cli: CliRunner) -> None:
        """A token that inflates past the cap is refused in one line, exit 2 (D16)."""
        import base64  # noqa: PLC0415
        import zlib  # noqa: PLC0415

        payload = base64.b32encode(zlib.compress(b"\0" * (5 * 2**20), 9))
        body = "hs1.counter/buggy." + payload.decode().rstrip("=").lower()
        token = f"{body}.{zlib.crc32(body.encode()):08x}"

        ran = cli("replay", token)

        assert 2 == ran.code
        assert "inflates to more than 4 MiB" in ran.err
        assert 1 == len(ran.err.splitlines())
