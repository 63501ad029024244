"""--jobs N and --cluster give the same JSON for every N and every backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _check(tmp_path: Path, name: str, *args: str) -> bytes:
    out = tmp_path / f"{name}.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hmmsim",
            "check",
            *args,
            "--json",
            str(out),
            "--no-store",
            "--quiet",
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    return out.read_bytes()


def test_jobs_1_and_2_give_identical_json_for_every_scenario(tmp_path: Path) -> None:
    """Every built-in scenario and variant, bounded: byte-identical reports."""
    bound = ["--all", "--max-executions", "150"]
    one = _check(tmp_path, "one", *bound, "--jobs", "1")
    two = _check(tmp_path, "two", *bound, "--jobs", "2")
    assert one == two
    assert b'"executions"' in one


def test_a_local_dask_cluster_gives_the_same_json(tmp_path: Path) -> None:
    """A real LocalCluster of two processes matches --jobs 1 on a small scenario."""
    pytest.importorskip("distributed")
    target = ["fault-vs-oom-reap", "--variant", "v5.3"]
    one = _check(tmp_path, "one", *target, "--jobs", "1")
    cluster = _check(tmp_path, "cluster", *target, "--cluster", "local:2")
    assert one == cluster
    assert b"device-use-after-free" in one
