"""Tests for `hmmsim.report.museum` and the museum page of `hmmsim.report.html`."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from tests.support.toy_exhibits import TOY
from tests.support.toy_scenarios import counter

from hmmsim import museum
from hmmsim.engine import Cause, Event, Finding, Schedule, Step, Trace, replay
from hmmsim.report import museum as report
from hmmsim.report.html import write_museum, write_report
from hmmsim.runs import ScenarioRun

RACY = partial(counter, "buggy")


def counter_race() -> tuple[Trace, tuple[Finding, ...]]:
    """The lost update, each task reading before either writes, with locations."""
    result = replay(
        RACY, Schedule.parse("t0 t1 t0 t1"), capture=True, capture_locations=True
    )
    assert result.trace is not None
    return result.trace, result.findings


def step(
    index: int, task: int, name: str, op: str, where: str = "", **kw: object
) -> Step:
    """A hand-made step (``where``: the function of its location)."""
    location = f"kernel/x.py:{index} in {where}" if where else ""
    return Step(
        index=index,
        task=task,
        task_name=name,
        op=op,
        kind="read",
        location=location,
        **kw,  # type: ignore[arg-type]
    )


class TestDiagram:
    def test_two_columns_read_top_to_bottom(self) -> None:
        """Each task's ops sit in its column under its function, the violation last."""
        trace, findings = counter_race()

        text = report.render_diagram(
            trace, findings, primary="lost-update", columns=("incr0", "incr1"), width=60
        )

        assert (
            "    incr0                        incr1\n"
            "    -----                        -----\n"
            "    incr()\n"
            "      READ_ONCE(counter)\n"
            "                                 incr()\n"
            "                                   READ_ONCE(counter)\n"
            "      WRITE_ONCE(counter)\n"
            "                                   WRITE_ONCE(counter)\n"
            ">>> lost-update: counter is 1\n"
        ) == text

    def test_tasks_outside_the_columns_are_folded(self) -> None:
        """A task not named as a column is folded into a count above the diagram."""
        trace, findings = counter_race()

        text = report.render_diagram(
            trace, findings, primary="lost-update", columns=("incr1",), width=60
        )

        assert (
            "folded: incr0 (2 steps)\n"
            "\n"
            "    incr1\n"
            "    -----\n"
            "    incr()\n"
            "      READ_ONCE(counter)\n"
            "      WRITE_ONCE(counter)\n"
            ">>> lost-update: counter is 1\n"
        ) == text

    def test_marks_causes_third_column_and_the_cut_after_detection(self) -> None:
        """A marked step of another task gets a column; nothing after detection shows."""
        trace = Trace(
            tasks=("setup", "a", "b", "c"),
            steps=(
                step(0, 0, "setup", "mmap()"),
                step(1, 1, "a", "spin_lock(l)", "do_a"),
                step(2, 1, "a", "do_a_more(x)", "do_a_more"),
                step(
                    3,
                    2,
                    "b",
                    "kfree(p)",
                    "_helper",
                    events=(Event(name="freed", fields={"addr": 16}, task=2),),
                ),
                step(4, 3, "c", "read(p)", "use"),
                step(5, 1, "a", "spin_unlock(l)", "do_a"),
            ),
        )
        uaf = Finding(
            kind="uaf",
            message="uaf: c read p after its free",
            step=4,
            task="c",
            causes=(Cause(step=3, task="b", note="b freed p"),),
        )

        text = report.render_diagram(
            trace, (uaf,), primary="uaf", columns=("a", "b"), width=70
        )

        assert (
            "folded: setup (1 step)\n"
            "\n"
            "    a                     b                     c\n"
            "    -                     -                     -\n"
            "    do_a()\n"
            "      spin_lock(l)\n"
            "      do_a_more(x)\n"
            "<<<                       kfree(p)\n"
            "                            -> freed addr=0x10\n"
            "<<< b freed p\n"
            "                                                use()\n"
            ">>>                                               read(p)\n"
            ">>> uaf (c): c read p after its free\n"
        ) == text

    def test_a_loop_that_ends_the_diagram_is_drawn_once(self) -> None:
        """A livelock's repeated block is folded into one copy and a count."""
        loop = [("spin_lock(l)", "poll"), ("READ_ONCE(flag)", "check")]
        steps = [step(0, 0, "a", "start(a)", "start")]
        steps += [
            step(1 + 2 * i + j, 0, "a", op, where)
            for i in range(4)
            for j, (op, where) in enumerate(loop)
        ]
        trace = Trace(tasks=("a", "b"), steps=tuple(steps))
        hang = Finding(kind="hang", message="hang: a spins", step=8, task="a")

        text = report.render_diagram(
            trace, (hang,), primary="hang", columns=("a", "b"), width=60
        )

        assert (
            "    a                            b\n"
            "    -                            -\n"
            "    start(a)\n"
            "    poll()\n"
            "      spin_lock(l)\n"
            "    check()\n"
            ">>>   READ_ONCE(flag)\n"
            "    (the 4 lines above, 4 times\n"
            "      in a row)\n"
            ">>> hang (a): a spins\n"
        ) == text

    def test_long_ops_wrap_inside_their_column(self) -> None:
        """An op wider than its column (20 at least) continues on the next lines."""
        trace = Trace(
            tasks=("a", "b"),
            steps=(step(0, 0, "a", "WRITE_ONCE(mm->mmu_notifier_mm->invalidate_seq)"),),
        )

        text = report.render_diagram(
            trace, (), primary="x", columns=("a", "b"), width=40
        )

        assert (
            "    a                     b\n"
            "    -                     -\n"
            "    WRITE_ONCE(mm->\n"
            "      mmu_notifier_mm->\n"
            "      invalidate_seq)\n"
        ) == text


@pytest.fixture(scope="module")
def entry(buggy: ScenarioRun, fixed: ScenarioRun) -> museum.MuseumEntry:
    """The toy exhibit examined on its two runs."""
    return museum.examine(TOY, buggy, fixed)


class TestText:
    def test_list_names_commit_release_slug_and_pin(self) -> None:
        """The list shows each exhibit's commit, release, slug, subject and variants."""
        assert (
            "0123456789ab  v5.4   toy-counter  counter: take the lock around the increment\n"
            + " " * 34
            + "counter: buggy -> fixed (lost-update)\n"
        ) == report.render_list([TOY])
        assert "no exhibit is registered\n" == report.render_list([])

    def test_entry_shows_summary_diagram_rule_verdict_and_replay(
        self, entry: museum.MuseumEntry
    ) -> None:
        """The full text holds every part of the exhibit, the diagram included."""
        text = report.render_entry(entry, width=80)

        assert text.startswith(
            "0123456789ab counter: take the lock around the increment\n"
        )
        assert "The race on buggy (lost-update):" in text
        assert ">>> lost-update: counter is 1" in text
        assert "Rule: Hold the lock across read and write." in text
        assert "PASS toy-counter: before (buggy) reports lost-update" in text
        assert (
            text.rstrip().splitlines()[-1].startswith("hmmsim replay hs1.counter/buggy")
        )

    def test_an_entry_without_a_counterexample_has_no_diagram_or_replay(
        self, fixed: ScenarioRun
    ) -> None:
        """A failed exhibit whose before found nothing prints no diagram, no command."""
        failed = museum.examine(TOY, fixed, fixed)

        text = report.render_entry(failed, width=80)

        assert "The race on" not in text
        assert text.endswith("(found: no violation; exhausted)\n")
        assert "" == report.entry_diagram(failed)

    def test_verdicts_count_the_pins_held(self, entry: museum.MuseumEntry) -> None:
        """One line per exhibit and a total."""
        text = report.render_verdicts([entry])

        assert text.endswith("\n1 of 1 exhibits hold their pins\n")
        assert text.startswith("PASS toy-counter: ")

    def test_json_is_stable_and_carries_the_pin(
        self, entry: museum.MuseumEntry
    ) -> None:
        """The JSON report names the verdict, both sides and before's replay token."""
        text = report.museum_json([entry], version="9.9")
        data = json.loads(text)

        assert text == report.museum_json([entry], version="9.9")
        assert ["schema", "hmmsim", "exhibits"] == list(data)
        (item,) = data["exhibits"]
        assert "pass" == item["verdict"]
        assert "verified" == item["after"]["outcome"]
        assert ["lost-update"] == item["before"]["kinds"]
        assert item["before"]["replay"].startswith("hs1.counter/buggy:lost-update.")


class TestHtml:
    def test_museum_page_has_every_part_and_the_index_links_to_it(
        self, entry: museum.MuseumEntry, tmp_path: Path
    ) -> None:
        """museum.html holds the diagram and links; index.html links to it."""
        page = write_museum(tmp_path, [entry], version="9.9", command="hmmsim museum")
        write_report(tmp_path, [entry.before], version="9.9")

        html = page.read_text(encoding="utf-8")
        assert "museum.html" == page.name
        assert (
            "<code>0123456789ab</code> counter: take the lock around the increment"
            in html
        )
        assert '<pre class="diagram">' in html
        assert "&gt;&gt;&gt; lost-update: counter is 1" in html
        assert "Checked by hand.</b> Both tasks read 0 and write 1." in html
        assert "hmmsim replay hs1.counter/buggy:lost-update." in html
        assert '<a href="index.html">' not in html  # no index when written
        cx = sorted((tmp_path / "museum-cx").iterdir())
        assert ["counter--buggy--lost-update.html"] == [p.name for p in cx]
        assert 'href="museum-cx/counter--buggy--lost-update.html"' in html
        assert '<a href="../museum.html">' in cx[0].read_text(encoding="utf-8")
        index = (tmp_path / "index.html").read_text(encoding="utf-8")
        assert '<a href="museum.html">the race museum</a>' in index

    def test_stale_museum_pages_are_removed(
        self, entry: museum.MuseumEntry, tmp_path: Path
    ) -> None:
        """A museum page of an earlier run that this run did not write goes away."""
        (tmp_path / "museum-cx").mkdir()
        (tmp_path / "museum-cx" / "old--v--k.html").write_text("old", encoding="utf-8")
        (tmp_path / "index.html").write_text("<html></html>", encoding="utf-8")

        page = write_museum(tmp_path, [entry], version="9.9")

        assert not (tmp_path / "museum-cx" / "old--v--k.html").exists()
        assert '<a href="index.html">' in page.read_text(encoding="utf-8")
