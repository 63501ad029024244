"""--jobs N and --cluster give the same JSON for every N and every backend.

Every DPOR exploration runs as the same work units whatever the number of
workers, so ``check --all`` writes byte-identical JSON with ``--jobs 1``
(units one after the other in this process), ``--jobs 2`` (two forked
workers) and ``--cluster local:2`` (a real Dask LocalCluster).  The runs
happen in untraced children (tests/support/unmeasured.py): under coverage
they would take minutes.  ``--max-executions 600`` lets most variants run
to exhaustion and cuts the larger ones after their first sliced unit (400
executions), so the bound's exact cut across units is compared too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.support.unmeasured import cli_unmeasured

#: Full runs of most variants; the larger ones are cut across units.
BOUND = "600"


def _check(tmp_path: Path, name: str, *args: str) -> tuple[bytes, str]:
    out = tmp_path / f"{name}.json"
    done = cli_unmeasured(
        "check",
        "--all",
        "--max-executions",
        BOUND,
        *args,
        "--json",
        str(out),
        "--report",
        str(tmp_path / "html"),  # the same for every run: stdout names it
        "--no-store",
    )
    assert done.returncode == 0, done.stderr
    # The summary shows how long each run took: the only part that may differ
    # (with the width of its column).
    timeless = re.sub(r"\d+\.\d+ s\b", "T s", done.stdout)
    summary = re.sub(r"-+", "-", re.sub(r" +", " ", timeless))
    return out.read_bytes(), summary


def test_every_variant_gives_the_same_json_on_one_two_and_a_cluster(
    tmp_path: Path,
) -> None:
    """--jobs 1, --jobs 2 and --cluster local:2: byte-identical JSON and summary."""
    one, out_one = _check(tmp_path, "one", "--jobs", "1")
    two, out_two = _check(tmp_path, "two", "--jobs", "2")

    assert one == two
    assert out_one == out_two
    results = json.loads(one)["results"]
    assert len(results) >= 60
    exits = {(r["scenario"], r["variant"]): r["exit_reason"] for r in results}
    assert exits[("exit-vs-fault", "v5.3")] == "exhausted"
    cut = [r for r in results if r["exit_reason"] == "max-executions"]
    assert {"fault-vs-munmap", "concurrent-invalidations"} <= {
        r["scenario"] for r in cut
    }
    assert all(r["executions"] == int(BOUND) for r in cut)
    assert sum(r["exit_reason"] == "exhausted" for r in results) >= 40

    pytest.importorskip("distributed")
    cluster, out_cluster = _check(tmp_path, "cluster", "--cluster", "local:2")
    assert one == cluster
    assert out_one == out_cluster


def test_a_run_too_large_for_its_bound_is_told_early_to_try_pct() -> None:
    """After the first work unit, a run that will not fit its bound says so and names PCT."""
    done = cli_unmeasured(
        "check",
        "fault-vs-oom-reap",
        "--variant",
        "prepatch",
        "--max-executions",
        "450",
        "--no-store",
        "--json",
        "-",
    )
    (line,) = [w for w in done.stderr.splitlines() if "warning:" in w]
    assert "fault-vs-oom-reap/prepatch: exhaustive DPOR looks like roughly" in line
    assert "more than --max-executions 450 allows" in line
    assert line.endswith(
        "hmmsim check fault-vs-oom-reap --variant prepatch --strategy pct"
    )
    assert json.loads(done.stdout)["results"][0]["executions"] == 450


def test_a_run_within_its_bound_gets_no_warning() -> None:
    """The same run with room to finish prints no estimate."""
    done = cli_unmeasured(
        "check", "fault-vs-oom-reap", "--variant", "prepatch", "--no-store", "-q"
    )
    assert "warning:" not in done.stderr
