"""--jobs N and --cluster give the same JSON for every N and every backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TARGET = ["fault-vs-oom-reap", "--variant", "v5.3"]


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


def test_two_workers_split_a_scenario_into_the_same_json(tmp_path: Path) -> None:
    """--jobs 2 splits the one DPOR exploration; the JSON equals --jobs 1's."""
    one = _check(tmp_path, "one", *TARGET, "--jobs", "1")
    two = _check(tmp_path, "two", *TARGET, "--jobs", "2")
    assert one == two
    assert b"device-use-after-free" in one


def test_a_local_dask_cluster_gives_the_same_json(tmp_path: Path) -> None:
    """A real LocalCluster of two processes matches two local workers."""
    pytest.importorskip("distributed")
    two = _check(tmp_path, "two", *TARGET, "--jobs", "2")
    cluster = _check(tmp_path, "cluster", *TARGET, "--cluster", "local:2")
    assert two == cluster
