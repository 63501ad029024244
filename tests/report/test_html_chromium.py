"""The HTML report renders in a real browser: headless Chromium (Debian's chromium).

Chromium parses each page and dumps the DOM it built (``--dump-dom``); the
tests look for what a reader must see: the matrix rows on ``index.html``, and
on a counterexample page the swimlanes, the folded set-up, the highlighted
state changes, the marked violating step and the steps that caused it.  The
``<tbody>`` elements the parser inserts (the report writes none) show the DOM
is the browser's, not our text.  A screenshot is taken too.

CI (``CI`` set) installs chromium in ``.ci/run``; there a missing browser is
a failure.  Elsewhere the tests are skipped without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest
from tests.support.toy_scenarios import COUNTER, MP

from hmmsim import museum
from hmmsim.api import run
from hmmsim.config import ExploreConfig
from hmmsim.report import ScenarioRun
from hmmsim.report.html import counterexample_path, write_museum, write_report
from hmmsim.scenarios import get

CHROMIUM_NAMES: Final = ("/usr/bin/chromium", "chromium", "chromium-browser")
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    """Return the browser's path; fail in CI, skip elsewhere, if there is none."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = (
        "chromium is not installed: the HTML report test needs headless Chromium "
        "(apt-get install -y chromium; .ci/run does it)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``page`` with its own throwaway profile."""
    return subprocess.run(
        [
            chromium(),
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            *extra,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tmp_path,
    )


@pytest.fixture(scope="module")
def reap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScenarioRun]:
    """A report of fault-vs-oom-reap on v5.3 (a device maps a page the reaper freed)."""
    found = run(get("fault-vs-oom-reap"), "v5.3")
    root = tmp_path_factory.mktemp("reap")
    write_report(root, [found], version="test")
    return root, found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScenarioRun]:
    """A report of toy runs and of a built-in scenario with a folded set-up."""
    dfs = ExploreConfig(strategy="dfs")
    builtin = run(get("oom-vs-driver-lock"), "prepatch")
    runs = [run(COUNTER, "buggy", config=dfs), run(MP, "ok", config=dfs), builtin]
    root = tmp_path_factory.mktemp("report")
    write_report(
        root,
        runs,
        version="test",
        command="hmmsim check --all",
        generated="2026-12-01 06:00 UTC",
        revision="abc1234",
    )
    return root, builtin


def test_index_renders_the_matrix(
    report: tuple[Path, ScenarioRun], tmp_path: Path
) -> None:
    """index.html, as Chromium builds it, holds a row per scenario with its cells."""
    root, _ = report

    dom = browse(root / "index.html", tmp_path, "--dump-dom").stdout

    assert "</thead>\n<tbody>" in dom
    assert ">counter<br>" in dom
    assert ">oom-vs-driver-lock<br>" in dom
    assert '<td class="violation expected">' in dom
    assert '<td class="verified unexpected">' in dom
    assert '<span class="tag unexpected">UNEXPECTED</span>' in dom
    assert 'class="legend"' in dom
    assert "red is expected on <code>prepatch</code>" in dom
    assert '<header class="top">' in dom
    assert "<code>hmmsim check --all</code>" in dom
    assert "2026-12-01 06:00 UTC" in dom
    assert "<code>abc1234</code>" in dom
    assert 'href="cx/oom-vs-driver-lock--prepatch--notifier-contract.html"' in dom


def test_counterexample_page_renders_swimlanes(
    report: tuple[Path, ScenarioRun], tmp_path: Path
) -> None:
    """A counterexample page has lanes per task, folded set-up, marks and replay."""
    root, builtin = report
    cx = builtin.result.counterexamples[1]
    page = root / counterexample_path(builtin, cx)

    dom = browse(page, tmp_path, "--dump-dom").stdout

    assert '<table class="lanes"><tbody>' in dom
    assert "<th>driver</th><th>oom_reaper</th><th>device</th>" in dom
    assert '<details class="setup"><summary>set-up:' in dom
    assert '<tr id="step-' in dom
    assert 'class="marked"' in dom
    assert '<span class="changed">hmm-&gt;notifiers=1</span>' in dom
    assert "notifier-contract" in dom
    assert '<pre class="replay">' + builtin.replay_command(cx) in dom
    assert '<input type="checkbox" id="hide-noise">' in dom
    assert 'class="noise"' in dom
    assert '<div class="held">holds ' in dom
    assert '<tr id="step-65" class="cause">' in dom
    assert "dropped" in dom


def test_the_reap_page_marks_the_device_pte_set_of_the_freed_page_as_the_cause(
    reap: tuple[Path, ScenarioRun], tmp_path: Path
) -> None:
    """fault-vs-oom-reap v5.3: the device_pte_set of the freed page is marked <<<."""
    root, found = reap
    cx = next(
        c for c in found.result.counterexamples if c.kind == "device-use-after-free"
    )
    step = cx.finding.causes[0].step

    dom = browse(root / counterexample_path(found, cx), tmp_path, "--dump-dom").stdout
    row = dom[dom.index(f'<tr id="step-{step}" class="cause">') :]
    row = row[: row.index("</tr>")]

    assert "device_pte_set(gpu0.pte[0x10000])" in row
    assert "&lt;&lt;&lt; cause of device-use-after-free" in row
    assert "which was already free" in row
    assert f'<tr id="step-{cx.finding.step}" class="marked">' in dom


def test_counterexample_page_screenshot(
    report: tuple[Path, ScenarioRun], tmp_path: Path
) -> None:
    """Chromium draws the page: a PNG of a real size comes out."""
    root, builtin = report
    page = root / counterexample_path(builtin, builtin.result.counterexamples[1])

    browse(page, tmp_path, "--screenshot=shot.png", "--window-size=1200,900")

    png = (tmp_path / "shot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000


def test_museum_page_renders_the_exhibit_and_its_diagram(
    report: tuple[Path, ScenarioRun], tmp_path: Path
) -> None:
    """museum.html, as Chromium builds it: the exhibit table, diagram and links."""
    root, builtin = report
    seed = museum.exhibit("hmm-error-flows")
    entry = museum.examine(seed, builtin, run(get("oom-vs-driver-lock"), "v5.3"))
    page = write_museum(root, [entry], version="test")

    dom = browse(page, tmp_path, "--dump-dom").stdout

    assert '<table class="matrix"><thead>' in dom
    assert "</thead>\n<tbody>" in dom
    assert '<section id="hmm-error-flows">' in dom
    assert '<pre class="diagram">' in dom
    assert "dummy_sync_cpu_device_pagetables()" in dom
    assert "&gt;&gt;&gt; notifier-contract (oom_reaper)" in dom
    assert '<a href="index.html">' in dom
    assert (
        'href="museum-cx/oom-vs-driver-lock--prepatch--notifier-contract.html"' in dom
    )
    assert (
        root / "museum-cx" / "oom-vs-driver-lock--prepatch--notifier-contract.html"
    ).exists()


class TestWithoutChromium:
    def test_missing_browser_fails_in_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """In CI a missing chromium is a failure that says how to install it."""
        monkeypatch.setattr(shutil, "which", lambda name: None)
        monkeypatch.setenv("CI", "true")

        with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
            chromium()

    def test_missing_browser_skips_elsewhere(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Outside CI a missing chromium skips the test."""
        monkeypatch.setattr(shutil, "which", lambda name: None)
        monkeypatch.delenv("CI", raising=False)

        with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
            chromium()
