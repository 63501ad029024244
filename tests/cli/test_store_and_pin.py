"""The counterexample store (`--store`, replayed first) and `hmmsim pin`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest
from tests.cli.conftest import CliRunner

from hmmsim.cli import main
from hmmsim.pin import check_pinned, pin_source
from hmmsim.store import DEFAULT_STORE, Store, store_from

EXAMPLES: Final = Path(__file__).resolve().parents[2] / "examples"


def _tokens(root: Path) -> list[Path]:
    return sorted(root.glob("examples/*/*.token"))


class TestStore:
    """Found schedules are saved, replayed first, and dropped once fixed."""

    def test_a_check_saves_one_token_per_kind(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """check --store DIR writes a token file naming scenario, variant and kind."""
        ran = cli("check", "counter", "--variant", "buggy", "--store", str(tmp_path))

        tokens = _tokens(tmp_path)
        assert 0 == ran.code
        assert ["counter--buggy"] == [p.parent.name for p in tokens]
        assert tokens[0].read_text().startswith("hs1.counter/buggy:")

    def test_a_saved_kind_is_reported_when_the_budget_misses_it(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """A saved schedule is replayed first, so a 1-execution run still reports it."""
        cli("check", "counter", "--variant", "buggy", "--store", str(tmp_path))
        starved = ("check", "counter", "--variant", "buggy", "--strategy", "dfs")
        without = cli(*starved, "--max-executions", "1", "--no-store", "--json", "-")
        with_store = cli(
            *starved, "--max-executions", "1", "--store", str(tmp_path), "--json", "-"
        )

        assert [] == json.loads(without.out)["results"][0]["violations"]
        assert (
            "counter/buggy: replayed 1 saved schedule(s) first; 1 still fail, "
            "0 no longer do (deleted)"
        ) in with_store.err
        kinds = [
            v["kind"] for v in json.loads(with_store.out)["results"][0]["violations"]
        ]
        assert kinds

    def test_an_exhaustive_run_reports_the_same_json_with_or_without_a_store(
        self, cli: CliRunner, tmp_path: Path
    ) -> None:
        """The store never changes what an exhaustive exploration reports."""
        args = ("check", "counter", "--variant", "buggy", "--json", "-")
        first = cli(*args, "--store", str(tmp_path))
        second = cli(*args, "--store", str(tmp_path))
        bare = cli(*args, "--no-store")

        assert first.out == second.out == bare.out

    def test_stop_on_first_skips_exploring_when_a_saved_schedule_fails(
        self, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With stop_on_first, a saved schedule answers the run with no execution."""
        cli("check", "counter", "--variant", "buggy", "--store", str(tmp_path))
        monkeypatch.setenv("HMMSIM_STOP_ON_FIRST", "1")

        ran = cli(
            "check",
            "counter",
            "--variant",
            "buggy",
            "--store",
            str(tmp_path),
            "--json",
            "-",
        )

        result = json.loads(ran.out)["results"][0]
        assert (0, "found") == (result["executions"], result["exit_reason"])
        assert result["violations"]

    def test_a_schedule_that_no_longer_fails_is_deleted(self, tmp_path: Path) -> None:
        """Replaying a token whose kind is gone removes it, as Hypothesis does."""
        store = Store(tmp_path)
        from tests.support.toy_scenarios import COUNTER  # noqa: PLC0415

        folder = store.directory("counter", "fixed", None)
        folder.mkdir(parents=True)
        (folder / "x.token").write_text("not a token\n")

        saved = store.replay_saved(
            "counter", "fixed", None, COUNTER.program("fixed"), max_steps=100
        )

        assert ([], []) == (saved, store.tokens("counter", "fixed", None))

    def test_kinds_with_dot_and_underscore_get_separate_files(
        self, tmp_path: Path
    ) -> None:
        """Kinds x.y and x_y never share a token file."""
        store = Store(tmp_path)
        store.save("s", "v", None, {"x.y": "hs1.a", "x_y": "hs1.b"})

        assert 2 == len(store.tokens("s", "v", None))

    def test_the_store_is_chosen_by_option_then_environment(
        self, tmp_path: Path
    ) -> None:
        """--store wins over HMMSIM_STORE; 'off' and --no-store disable; a file is refused."""
        (tmp_path / "f").write_text("")

        assert Path(DEFAULT_STORE) == store_from(None, env={}).root  # type: ignore[union-attr]
        assert Path("a") == store_from("a", env={"HMMSIM_STORE": "b"}).root  # type: ignore[union-attr]
        assert store_from(None, env={"HMMSIM_STORE": "off"}) is None
        assert store_from("a", disabled=True, env={}) is None
        with pytest.raises(Exception, match="not a directory"):
            store_from(str(tmp_path / "f"), env={})
        with pytest.raises(Exception, match="empty"):
            store_from(" ", env={})


BUGGY: Final = (EXAMPLES / "mirror_trylock_lies.py").read_text()
BUG_LINE: Final = "return 0  # BUG: claims the device no longer maps the range"
FIXED: Final = BUGGY.replace(BUG_LINE, "return -11  # -EAGAIN: the fix")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A user model file in tmp_path (with the module it imports), buggy at first."""
    assert BUG_LINE in BUGGY
    shutil.copyfile(EXAMPLES / "mirror_correct.py", tmp_path / "mirror_correct.py")
    path = tmp_path / "model.py"
    path.write_text(BUGGY)
    return path


@pytest.fixture(scope="module")
def buggy_token(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The device-use-after-free token the buggy model yields (found once)."""
    folder = tmp_path_factory.mktemp("found")
    shutil.copyfile(EXAMPLES / "mirror_correct.py", folder / "mirror_correct.py")
    (folder / "model.py").write_text(BUGGY)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hmmsim",
            "check",
            f"{folder / 'model.py'}:fault-vs-oom-reap",
            "--variant",
            "v5.3",
            "-q",
            "--no-store",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [
        line for line in done.stdout.splitlines() if ":device-use-after-free." in line
    ]
    return lines[0].split()[2]


class TestPin:
    """`hmmsim pin` writes a test that passes on the fix and fails on the bug."""

    def test_the_pinned_test_fails_on_the_bug_and_passes_on_the_fix(
        self, model: Path, tmp_path: Path, buggy_token: str
    ) -> None:
        """Run under pytest: red with the buggy model, green once it is fixed."""
        token = buggy_token
        test = tmp_path / "tests" / "test_pinned.py"
        test.parent.mkdir()
        (tmp_path / "pytest.ini").write_text("[pytest]\n")

        assert 0 == main(["pin", token, "--file", str(model), "-o", str(test)])

        def pytest_exit() -> tuple[int, str]:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:randomly",
                    "-p",
                    "no:cacheprovider",
                    str(test),
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
            )
            return done.returncode, done.stdout

        buggy_code, buggy_out = pytest_exit()
        model.write_text(FIXED)
        fixed_code, fixed_out = pytest_exit()
        model.write_text(BUGGY)  # the model is changed back to the bug
        again_code, again_out = pytest_exit()

        assert 1 == buggy_code, buggy_out
        assert "occurs again" in buggy_out
        assert 0 == fixed_code, fixed_out
        assert 1 == again_code, again_out

    def test_check_pinned_asserts_presence_or_absence(
        self, model: Path, buggy_token: str
    ) -> None:
        """expect='present' passes on the bug; 'absent' raises with the timeline."""
        token = buggy_token

        check_pinned(token, file=model, expect="present")
        with pytest.raises(AssertionError, match=r"occurs again(.|\n)*>>>"):
            check_pinned(token, file=model)
        model.write_text(FIXED)
        check_pinned(token, file=model)
        with pytest.raises(AssertionError, match="no longer occurs"):
            check_pinned(token, file=model, expect="present")

    def test_pin_prints_to_stdout_without_output(self, cli: CliRunner) -> None:
        """Without -o the test source goes to stdout and the note to stderr."""
        ran = cli("check", "counter", "--variant", "buggy", "-q", "--no-store")
        token = ran.out.splitlines()[1].split()[2]

        pinned = cli("pin", token, "--expect", "present")

        assert 0 == pinned.code
        assert "def test_pinned_counter_buggy_" in pinned.out
        assert 'expect="present"' in pinned.out
        assert "the test passes until that changes" in pinned.err

    def test_pin_refuses_a_token_without_a_kind(self, cli: CliRunner) -> None:
        """A token whose context names no kind cannot be pinned (exit 2)."""
        from hmmsim.engine import Schedule  # noqa: PLC0415

        token = Schedule.parse("t0").to_token("counter/buggy")

        assert 2 == cli("pin", token).code
        with pytest.raises(Exception, match="expect"):
            pin_source(Schedule.parse("t0").to_token("a/b:k"), expect="maybe")  # type: ignore[arg-type]


class TestCompareReplaysAcrossVariants:
    """compare prints replay tokens and the other variant on the same interleaving."""

    def test_compare_prints_tokens_and_the_side_by_side(self, cli: CliRunner) -> None:
        """The buggy variant's lost-update is replayed on fixed, with both commands."""
        ran = cli("compare", "counter", "buggy", "fixed", "--strategy", "dfs")

        assert 0 == ran.code
        assert "counterexamples (replay one to see its timeline):" in ran.out
        assert "replay hs1.counter/buggy:lost-update." in ran.out
        assert "lost-update of buggy, replayed on fixed: fixed follows" in ran.out
        assert "  fixed: " in ran.out
        assert "replay hs1.counter/fixed." in ran.out


def test_a_replay_that_exits_leaves_the_exploration_to_report_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that exits while a saved schedule replays does not end hmmsim; tokens stay."""
    from tests.support.toy_scenarios import COUNTER  # noqa: PLC0415

    from hmmsim.config import ExploreConfig  # noqa: PLC0415
    from hmmsim.service import Unit  # noqa: PLC0415
    from hmmsim.store import explore_with_store  # noqa: PLC0415

    store = Store(tmp_path)
    store.save("counter", "buggy", None, {"lost-update": "hs1.x"})

    def exits(*_: object, **__: object) -> list[object]:
        raise SystemExit(0)

    monkeypatch.setattr(Store, "replay_saved", exits)
    unit = Unit(scenario=COUNTER, variant="buggy", config=ExploreConfig(), file=None)
    seen: list[int] = []

    def explore(units: object) -> tuple[list[object], bool]:
        seen.append(len(units))  # type: ignore[arg-type]
        return [], True

    runs, interrupted = explore_with_store(store, [unit], explore)  # type: ignore[arg-type]

    assert ([], True, [1]) == (runs, interrupted, seen)
    assert 1 == len(store.tokens("counter", "buggy", None))
