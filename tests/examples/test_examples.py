"""The example drivers in examples/: each finds exactly the kinds it documents.

Checked through the public API (``api.load_file`` + ``api.check``), through
the pytest fixture, and from the command line with ``--fail-on-unexpected``
(each example declares its expectations).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import pytest

from hmmsim import api
from hmmsim.cli import main
from hmmsim.pytest_plugin import HmmsimCheck

EXAMPLES: Final = Path(__file__).resolve().parents[2] / "examples"

HMM_BUGS: Final = {
    "sleep-in-nonblockable",
    "notifier-contract",
    "device-use-after-free",
    "device-stale-mapping",
}
LIES: Final = {"notifier-contract", "device-use-after-free", "device-stale-mapping"}
STALE: Final = {"device-use-after-free", "device-stale-mapping", "notifier-contract"}
UAF: Final = {"device-use-after-free"}
#: fault-vs-oom since pages are freed in tlb_finish_mmu: the same race also
#: shows while the unmapped page waits in the gather (docs/scenarios.md).
UAF_OR_STALE: Final = {"device-use-after-free", "device-stale-mapping"}
SLEEP: Final = {"sleep-in-nonblockable"}
NONE: Final[set[str]] = set()

#: file -> scenario -> (kinds on prepatch, kinds on v5.3)
EXPECTED: Final[dict[str, dict[str, tuple[set[str], set[str]]]]] = {
    "mirror_correct.py": {
        "driver-lock-vs-oom": (HMM_BUGS, NONE),
        "fault-vs-oom": (HMM_BUGS, NONE),
        "fault-vs-reclaim": (NONE, NONE),
    },
    "mirror_sleeps.py": {
        "driver-lock-vs-oom": (SLEEP, SLEEP),
        "fault-vs-oom": (SLEEP, SLEEP),
        "fault-vs-reclaim": (NONE, NONE),
    },
    "mirror_trylock_lies.py": {
        "driver-lock-vs-oom": (HMM_BUGS, LIES),
        "fault-vs-oom": (HMM_BUGS, LIES),
        "fault-vs-reclaim": (NONE, NONE),
    },
    "mirror_check_before_lock.py": {
        "driver-lock-vs-oom": (HMM_BUGS, NONE),
        "fault-vs-oom": (HMM_BUGS, STALE),
        "fault-vs-reclaim": (STALE, STALE),
    },
    "mirror_trusts_valid.py": {
        "driver-lock-vs-oom": (HMM_BUGS, NONE),
        "fault-vs-oom": (HMM_BUGS, UAF_OR_STALE),
        "fault-vs-reclaim": (UAF, UAF),
    },
}

#: The tutorial's bug and its fix, through the API (the CLI test covers all).
PYTEST_CASES: Final = [
    ("mirror_trusts_valid.py", "fault-vs-oom", "v5.3", UAF_OR_STALE),
    ("mirror_correct.py", "fault-vs-oom", "v5.3", NONE),
    ("mirror_check_before_lock.py", "fault-vs-reclaim", "v5.3", STALE),
]


def test_there_are_at_least_three_buggy_drivers_and_the_correct_one() -> None:
    """examples/ holds the correct driver and at least three buggy ones, all listed."""
    files = sorted(p.name for p in EXAMPLES.glob("mirror_*.py"))

    assert sorted(EXPECTED) == files
    assert len(files) - 1 >= 3


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_each_example_documents_what_it_finds(file: str) -> None:
    """Each example's docstring names every kind it is expected to find on v5.3."""
    doc = (EXAMPLES / file).read_text(encoding="utf-8").split('"""')[1]
    found_on_v53 = set().union(*(v53 for _, v53 in EXPECTED[file].values()))

    assert all(kind in doc for kind in found_on_v53), doc


@pytest.mark.slow
@pytest.mark.parametrize(("file", "scenario", "variant", "kinds"), PYTEST_CASES)
def test_example_finds_exactly_its_kinds_through_the_api(
    file: str, scenario: str, variant: str, kinds: set[str]
) -> None:
    """api.check on an example scenario finds exactly the expected kinds."""
    (chosen,) = [s for s in api.load_file(EXAMPLES / file) if s.name == scenario]

    result = api.check(chosen, variant)

    assert kinds == set(result.kinds)
    assert result.exit_reason is api.ExitReason.EXHAUSTED


def test_the_fixture_passes_the_correct_driver_and_catches_a_buggy_one() -> None:
    """The plugin's checker passes on a clean variant and fails with the report."""
    check = HmmsimCheck()
    correct = EXAMPLES / "mirror_correct.py"

    check(f"{correct}:driver-lock-vs-oom", "v5.3")
    with pytest.raises(pytest.fail.Exception) as failed:
        check(f"{EXAMPLES / 'mirror_sleeps.py'}:driver-lock-vs-oom", "v5.3")

    message = str(failed.value)
    assert "expected no violation, found sleep-in-nonblockable" in message
    assert "hmmsim replay hs1.driver-lock-vs-oom/v5.3:sleep-in-nonblockable" in message
    assert "--file" in message


def test_assert_no_violation_fails_with_the_counterexample() -> None:
    """api.assert_no_violation on a buggy example raises with the timeline."""
    (scenario,) = [
        s
        for s in api.load_file(EXAMPLES / "mirror_trylock_lies.py")
        if s.name == "driver-lock-vs-oom"
    ]

    with pytest.raises(AssertionError, match="notifier-contract") as failed:
        api.assert_no_violation(scenario, "v5.3")

    assert ">>>" in str(failed.value)


@pytest.mark.slow
@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_cli_checks_each_example_exactly(
    file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hmmsim check examples/F --all --fail-on-unexpected`` finds exactly the kinds.

    Exit 0 says every result matches the example's own EXPECT; the JSON is
    compared with this test's table too, kind set by kind set.
    """
    report = tmp_path / "r.json"

    code = main(
        [
            "check",
            str(EXAMPLES / file),
            "--all",
            "--fail-on-unexpected",
            "--json",
            str(report),
            "--report",
            str(tmp_path / "html"),
            "-q",
        ]
    )

    out = capsys.readouterr().out
    assert 0 == code, out
    assert "UNEXPECTED" not in out
    found = {
        (r["scenario"], r["variant"]): {v["kind"] for v in r["violations"]}
        for r in json.loads(report.read_text(encoding="utf-8"))["results"]
    }
    expected = {
        (scenario, variant): kinds[i]
        for scenario, kinds in EXPECTED[file].items()
        for i, variant in enumerate(("prepatch", "v5.3"))
    }
    assert expected == found
