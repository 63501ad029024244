"""Tests for `hmmsim.crosscheck` and `hmmsim.report.sidebyside`: compare's cross replays."""

from __future__ import annotations

import pytest

from hmmsim.api import run
from hmmsim.config import ExploreConfig
from hmmsim.crosscheck import cross_replay, cross_replays
from hmmsim.engine import Schedule
from hmmsim.report.sidebyside import CrossReplay, SideBySideRow, render_cross
from hmmsim.runs import ScenarioRun


@pytest.fixture(scope="module")
def driver_lock() -> tuple[ScenarioRun, ScenarioRun]:
    """oom-vs-driver-lock on prepatch (four kinds) and v5.3 (verified)."""
    return (
        run("oom-vs-driver-lock", "prepatch", config=ExploreConfig()),
        run("oom-vs-driver-lock", "v5.3", config=ExploreConfig()),
    )


def test_the_counterexample_replays_on_the_fixed_variant_without_its_kind(
    driver_lock: tuple[ScenarioRun, ScenarioRun],
) -> None:
    """prepatch's notifier-contract schedule runs on v5.3, which finds nothing."""
    prepatch, v53 = driver_lock
    cx = next(
        c for c in prepatch.result.counterexamples if c.kind == "notifier-contract"
    )

    cross = cross_replay(prepatch, cx, v53)

    assert (cross.source, cross.target, cross.target_kinds) == ("prepatch", "v5.3", ())
    assert cross.followed == cross.total
    marks = {row.mark: row for row in cross.rows}
    assert marks["<<<"].index == cx.finding.causes[0].step
    assert marks[">>>"].index == cx.finding.step
    assert marks[">>>"].differs
    assert "replay hs1.oom-vs-driver-lock/v5.3." in cross.target_command
    context, _ = Schedule.from_token(cross.target_command.split()[2])
    assert "oom-vs-driver-lock/v5.3" == context


def test_kinds_with_one_schedule_are_replayed_once(
    driver_lock: tuple[ScenarioRun, ScenarioRun],
) -> None:
    """Counterexamples sharing a schedule give one cross replay naming both kinds."""
    crosses = cross_replays(list(driver_lock))
    schedules = {
        c.kind: c.schedule.choices for c in driver_lock[0].result.counterexamples
    }

    assert len(crosses) == len(set(schedules.values()))
    assert all(c.source == "prepatch" for c in crosses)
    assert sum(1 + len(c.also) for c in crosses) == len(schedules)


def test_render_cross_draws_both_sides_with_marks_and_gaps() -> None:
    """The text has both columns, the marks, a gap line and both commands."""
    rows = (
        SideBySideRow(
            index=3, mark="<<<", source="a: x()", target="a: x()", differs=False
        ),
        SideBySideRow(index=-1, mark="", source="", target="", differs=False),
        SideBySideRow(index=9, mark="=>", source="", target="b: y()", differs=True),
    )
    item = CrossReplay(
        kind="k",
        source="old",
        target="new",
        source_command="hmmsim replay A",
        target_command="hmmsim replay B",
        followed=5,
        total=6,
        diverge=9,
        rows=rows,
        target_kinds=(),
        also=("k2",),
    )

    text = render_cross([item], width=80)

    assert "k, k2 of old, replayed on new: new follows 5 of its 6 choices" in text
    assert "the tasks differ from step 9" in text
    assert "<<<     3  a: x()" in text
    assert "  ...\n" in text
    assert "* b: y()" in text
    assert "  new: hmmsim replay B" in text
    assert "" == render_cross([])
