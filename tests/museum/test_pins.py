"""The museum's pins: every exhibit's before reports its kinds, after is verified.

Each exhibit is explored exhaustively (DPOR) in an untraced child process
(``tests/support/unmeasured.py``), as the matrix is, so ``make test`` stays
fast; the judgement is :func:`hmmsim.museum.examine`'s, the one
``hmmsim museum check`` prints.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.support.unmeasured import (
    ROOT,
    _untraced_env,
    explore_unmeasured,
    museum_unmeasured,
)

from hmmsim import museum
from hmmsim.scenarios import MUSEUM_GROUP, all_scenarios

EXHIBITS = museum.exhibits()

#: Every declared verdict of every museum scenario variant.
VERDICTS = [
    pytest.param(s.name, v, frozenset(s.expect[v]), id=f"{s.name}-{v}")
    for s in all_scenarios(MUSEUM_GROUP)
    for v in s.variants
    if v in s.expect
]


@pytest.mark.slow
@pytest.mark.parametrize("item", EXHIBITS, ids=[e.slug for e in EXHIBITS])
def test_exhibit_holds_its_pin(item: museum.Exhibit) -> None:
    """Before shows the exhibit's kinds (replayable); after is verified."""
    result = museum_unmeasured(item.slug)

    assert result["passed"], result["reason"]
    assert set(item.kinds) <= set(result["before"])
    assert "verified" == result["after"]
    assert set(item.columns) <= set(result["tasks"])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant", "kinds"), VERDICTS)
def test_museum_scenario_verdicts_hold(
    name: str, variant: str, kinds: frozenset[str]
) -> None:
    """Each museum scenario variant exhausts with exactly its declared kinds."""
    result = explore_unmeasured(name, variant, max_executions=100_000)

    assert "EXHAUSTED" == result["exit_reason"]
    assert sorted(kinds) == result["kinds"]


def test_every_exhibit_scenario_is_found_without_the_museum() -> None:
    """A lookup by name (replay, a cluster worker) finds each exhibit's scenario."""
    names = sorted({e.scenario for e in EXHIBITS})
    script = (
        "import sys\n"
        "from hmmsim.scenarios import get\n"
        "for name in sys.argv[1:]:\n"
        "    get(name)\n"
        "assert 'hmmsim.museum' not in sys.modules\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script, *names],
        cwd=ROOT,
        env=_untraced_env(),
        capture_output=True,
        text=True,
        check=False,
    )

    assert 0 == done.returncode, done.stderr


def test_exhibit_commits_and_slugs_are_unique_and_ordered() -> None:
    """Exhibits come oldest fix first, one per commit."""
    assert len({e.commit for e in EXHIBITS}) == len(EXHIBITS)
    assert [e.date for e in EXHIBITS] == sorted(e.date for e in EXHIBITS)
    assert EXHIBITS


@pytest.mark.slow
def test_museum_json_is_byte_identical_across_hash_seeds_and_jobs() -> None:
    """Same exhibits, other PYTHONHASHSEED or --jobs: the same JSON bytes."""

    def museum_json(seed: str, jobs: str) -> bytes:
        env = {**_untraced_env(), "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "hmmsim",
                "museum",
                "check",
                "hmm-error-flows",
                "range-end-paired",
                "-q",
                "-j",
                jobs,
                "--json",
                "-",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,
        )
        assert 0 == done.returncode, done.stderr
        return done.stdout

    first = museum_json("0", "1")

    assert first == museum_json("12345", "1")
    assert first == museum_json("0", "2")
