"""The example drivers in examples/: each finds exactly the kinds it documents.

Checked through the public API (``api.load_file`` + ``api.check``), through
the pytest fixture, and from the command line with ``--fail-on-unexpected``
(each example declares its expectations).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from tests.support.unmeasured import cli_unmeasured

from hmmsim import api
from hmmsim.pytest_plugin import HmmsimCheck
from hmmsim.sync import audit


@pytest.fixture(autouse=True)
def _without_the_audit() -> Iterator[None]:
    """Run the example drivers without the shared-state audit.

    Some buggy examples call a helper the kernel requires under the driver
    lock (``mmu_interval_read_retry``) without it: that race is the bug they
    demonstrate, and it must show as its finding, not as a model error.
    """
    was_on = audit.enabled()
    audit.disable()
    try:
        yield
    finally:
        if was_on:
            audit.enable()


EXAMPLES: Final = Path(__file__).resolve().parents[2] / "examples"

HMM_BUGS: Final = {
    "sleep-in-nonblockable",
    "notifier-contract",
    "device-use-after-free",
    "device-stale-mapping",
}
LIES: Final = {"notifier-contract", "device-use-after-free", "device-stale-mapping"}
STALE: Final = {"device-use-after-free", "device-stale-mapping", "notifier-contract"}
SEEN: Final = {"device-stale-mapping", "notifier-contract"}
UAF: Final = {"device-use-after-free"}
SLEEP: Final = {"sleep-in-nonblockable"}
REFUSED: Final = {"warn", "notifier-contract", "device-stale-mapping"}
NONE: Final[frozenset[str]] = frozenset()

MIRROR: Final = ("prepatch", "v5.3")
INTERVAL: Final = ("v5.5", "current")

#: What the hmm_mirror kernels show whatever the driver: scenario -> variant -> kinds.
MIRROR_KERNEL: Final[dict[str, dict[str, set[str]]]] = {
    "oom-vs-driver-lock": {"prepatch": HMM_BUGS},
    "oom-vs-mirror-unregister": {
        "prepatch": {"sleep-in-nonblockable", "range-stuck-invalid", "notifier-leak"}
    },
    "oom-two-mirrors": {"prepatch": HMM_BUGS},
    "fault-vs-oom-reap": {"prepatch": HMM_BUGS},
    "fault-vs-mprotect": {"prepatch": {"hang"}, "v5.3": {"hang"}},
}


def _on(variants: tuple[str, ...], **found: set[str]) -> dict[str, dict[str, set[str]]]:
    """``found`` (race with ``_`` for ``-``) on every one of ``variants``."""
    return {
        race.replace("_", "-"): dict.fromkeys(variants, kinds)
        for race, kinds in found.items()
    }


def _mirror(found: dict[str, dict[str, set[str]]]) -> dict[str, dict[str, set[str]]]:
    """MIRROR_KERNEL plus what a driver adds."""
    merged = {race: dict(kinds) for race, kinds in MIRROR_KERNEL.items()}
    for race, kinds in found.items():
        merged.setdefault(race, {}).update(kinds)
    return merged


#: file -> (its variants, scenario -> variant -> kinds); unnamed pairs find nothing.
EXPECTED: Final[dict[str, tuple[tuple[str, ...], dict[str, dict[str, set[str]]]]]] = {
    "mirror_correct.py": (MIRROR, _mirror({})),
    "mirror_frees_before_unregister.py": (
        MIRROR,
        _mirror(
            {
                "oom-vs-mirror-unregister": {
                    "prepatch": {
                        "sleep-in-nonblockable",
                        "range-stuck-invalid",
                        "notifier-leak",
                        "use-after-free",
                    },
                    "v5.3": {"use-after-free"},
                }
            }
        ),
    ),
    "mirror_sleeps.py": (
        MIRROR,
        _mirror(
            {
                **_on(MIRROR, oom_vs_driver_lock=SLEEP, oom_two_mirrors=SLEEP),
                **_on(MIRROR, fault_vs_oom_reap=SLEEP),
                "oom-vs-mirror-unregister": {"v5.3": SLEEP},
            }
        ),
    ),
    "mirror_trylock_lies.py": (
        MIRROR,
        _mirror(
            {
                "oom-vs-driver-lock": {"v5.3": LIES},
                "oom-two-mirrors": {"v5.3": LIES},
                "fault-vs-oom-reap": {"v5.3": LIES},
            }
        ),
    ),
    "mirror_check_before_lock.py": (
        MIRROR,
        _mirror(
            {
                "fault-vs-oom-reap": {"v5.3": STALE},
                **_on(MIRROR, fault_vs_reclaim=STALE),
            }
        ),
    ),
    "mirror_trusts_valid.py": (
        MIRROR,
        _mirror(
            {
                "fault-vs-oom-reap": {"v5.3": UAF | {"device-stale-mapping"}},
                **_on(MIRROR, fault_vs_reclaim=UAF | {"device-stale-mapping"}),
            }
        ),
    ),
    "interval_correct.py": (INTERVAL, {}),
    "interval_no_set_seq.py": (
        INTERVAL,
        _on(
            INTERVAL,
            fault_vs_munmap=STALE,
            fault_vs_oom_reap=STALE,
            fault_vs_reclaim=STALE,
            fault_vs_mprotect=SEEN,
            fault_vs_fork=SEEN,
            two_pages_both_invalidated=STALE,
        ),
    ),
    "interval_retry_outside_lock.py": (
        INTERVAL,
        _on(
            INTERVAL,
            fault_vs_munmap=STALE,
            fault_vs_oom_reap=STALE,
            fault_vs_reclaim=STALE,
            fault_vs_mprotect=SEEN,
            fault_vs_fork=SEEN,
            two_pages_both_invalidated=STALE,
        ),
    ),
    "interval_program_after_unlock.py": (
        INTERVAL,
        _on(
            INTERVAL,
            fault_vs_munmap=STALE - {"notifier-contract"},
            fault_vs_oom_reap=STALE - {"notifier-contract"},
            fault_vs_reclaim=STALE - {"notifier-contract"},
            fault_vs_mprotect=SEEN,
            fault_vs_fork={"device-stale-mapping"},
            two_pages_both_invalidated=STALE,
        ),
    ),
    "interval_refuses_blockable.py": (
        INTERVAL,
        _on(
            INTERVAL,
            fault_vs_munmap=REFUSED | UAF,
            fault_vs_reclaim=REFUSED | UAF,
            fault_vs_mprotect=REFUSED,
            fault_vs_fork=REFUSED,
            two_pages_one_invalidated=REFUSED | UAF,
            two_pages_both_invalidated=REFUSED | UAF,
        ),
    ),
    "interval_sleeps.py": (
        INTERVAL,
        _on(
            INTERVAL,
            oom_vs_driver_lock=SLEEP,
            oom_vs_mirror_unregister=SLEEP,
            oom_two_mirrors=SLEEP,
            fault_vs_oom_reap=SLEEP,
        ),
    ),
}

#: The tutorial's bugs and their fixes, through the API (the CLI test covers all).
PYTEST_CASES: Final = [
    (
        "mirror_trusts_valid.py",
        "fault-vs-reclaim",
        "v5.3",
        UAF | {"device-stale-mapping"},
    ),
    ("mirror_correct.py", "fault-vs-oom-reap", "v5.3", NONE),
    ("mirror_check_before_lock.py", "fault-vs-reclaim", "v5.3", STALE),
    ("interval_retry_outside_lock.py", "fault-vs-reclaim", "v5.5", STALE),
    ("interval_correct.py", "fault-vs-reclaim", "v5.5", NONE),
    ("interval_retry_outside_lock.py", "fault-vs-reclaim", "current", STALE),
    ("interval_correct.py", "fault-vs-reclaim", "current", NONE),
]


def _races(file: str) -> list[str]:
    """The races an example runs: the whole battery, except fault-vs-munmap for
    the hmm_mirror examples (a minute per variant of the kernel's own bug)."""
    every = api.race_names()
    if file.startswith("mirror_"):
        return [name for name in every if name != "fault-vs-munmap"]
    return every


def _kinds(file: str, scenario: str, variant: str) -> set[str]:
    """The kinds ``file`` is expected to find in ``scenario`` on ``variant``."""
    return set(EXPECTED[file][1].get(scenario, {}).get(variant, NONE))


def test_examples_hold_a_correct_driver_and_buggy_ones_of_each_api() -> None:
    """examples/ holds, per API, the correct driver and enough buggy ones, all listed."""
    files = sorted(p.name for p in EXAMPLES.glob("*.py"))

    assert sorted(EXPECTED) == files
    assert len([f for f in files if f.startswith("mirror_")]) - 1 >= 3
    assert len([f for f in files if f.startswith("interval_")]) - 1 >= 5


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_each_example_documents_what_it_finds(file: str) -> None:
    """Each example's docstring names every kind a driver bug of it shows."""
    doc = (EXAMPLES / file).read_text(encoding="utf-8").split('"""')[1]
    variants, table = EXPECTED[file]
    own = variants[-1]
    found = set().union(*(kinds.get(own, NONE) for kinds in table.values()))
    kernel = set().union(*(k.get(own, NONE) for k in MIRROR_KERNEL.values()))

    assert all(kind in doc for kind in found - kernel), doc


def test_every_example_runs_the_whole_battery_on_the_variants_of_its_api() -> None:
    """Each example gets every race of the battery, on its API's variants only."""
    for file, (variants, _) in EXPECTED.items():
        scenarios = api.load_file(EXAMPLES / file)

        assert all(s.variants == variants for s in scenarios), file
        assert len(scenarios) == len(_races(file))


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

    check(f"{correct}:oom-vs-driver-lock", "v5.3")
    with pytest.raises(pytest.fail.Exception) as failed:
        check(f"{EXAMPLES / 'mirror_sleeps.py'}:oom-vs-driver-lock", "v5.3")

    message = str(failed.value)
    assert "expected no violation, found sleep-in-nonblockable" in message
    assert "hmmsim replay hs1.oom-vs-driver-lock/v5.3:sleep-in-nonblockable" in message
    assert "--file" in message


def test_assert_no_violation_fails_with_the_counterexample() -> None:
    """api.assert_no_violation on a buggy example raises with the timeline."""
    (scenario,) = [
        s
        for s in api.load_file(EXAMPLES / "mirror_trylock_lies.py")
        if s.name == "oom-vs-driver-lock"
    ]

    with pytest.raises(AssertionError, match="notifier-contract") as failed:
        api.assert_no_violation(scenario, "v5.3")

    assert ">>>" in str(failed.value)


@pytest.mark.slow
@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_cli_checks_each_example_exactly(file: str, tmp_path: Path) -> None:
    """``hmmsim check examples/F --all --fail-on-unexpected`` finds exactly the kinds.

    Exit 0 says every result matches the example's own EXPECT; the JSON is
    compared with this test's table too, kind set by kind set.  The command
    runs in a child that coverage does not trace (tests/support/unmeasured.py):
    it explores the whole race battery exhaustively.
    """
    report = tmp_path / "r.json"

    done = cli_unmeasured(
        "check",
        str(EXAMPLES / file),
        "--all",
        "--fail-on-unexpected",
        "--json",
        str(report),
        "--report",
        str(tmp_path / "html"),
        "-q",
    )

    out = done.stdout
    assert 0 == done.returncode, out + done.stderr
    assert "UNEXPECTED" not in out
    found = {
        (r["scenario"], r["variant"]): {v["kind"] for v in r["violations"]}
        for r in json.loads(report.read_text(encoding="utf-8"))["results"]
    }
    expected = {key: _kinds(file, *key) for key in found}
    assert expected == found
    assert len(found) == len(_races(file)) * len(EXPECTED[file][0])
