"""Side by side: one variant's counterexample replayed on another (data and text).

:mod:`hmmsim.crosscheck` makes a :class:`CrossReplay` for ``compare``: the
counterexample's schedule replayed leniently on the other variant, the first
step where the two executions differ, both executions around it, what the
other variant found and the replay commands of both sides.
:func:`render_cross` draws them as two columns, the differing steps marked
``=>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["DIVERGE_MARK", "CrossReplay", "SideBySideRow", "render_cross"]

#: Marks the first step the two executions give to different tasks.
DIVERGE_MARK: Final = "=>"
#: Separates the two columns where their steps differ.
_DIFFERS: Final = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class SideBySideRow:
    """One step of both executions: ``task: op`` on each side ("" past the end).

    ``index`` -1 is a gap between two windows; ``mark`` is ``<<<`` (the
    source's cause), ``>>>`` (its detection), ``=>`` (the first step run by
    different tasks) or ""; ``differs``: the two sides' steps differ.
    """

    index: int
    mark: str
    source: str
    target: str
    differs: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossReplay:
    """One counterexample of ``source`` replayed on ``target``.

    Attributes:
        kind: the counterexample's kind (found on ``source``).
        source: the variant that found it; ``target``: the other variant.
        source_command: the command that replays it on ``source``.
        target_command: the command that replays the target's execution.
        followed: how many of the schedule's choices the target followed.
        total: how many choices the schedule has.
        diverge: the first step run by different tasks (None: never).
        rows: both executions around the key steps, side by side.
        target_kinds: what the target's execution found.
        also: other kinds of ``source`` with the same schedule.
    """

    kind: str
    source: str
    target: str
    source_command: str
    target_command: str
    followed: int
    total: int
    diverge: int | None
    rows: tuple[SideBySideRow, ...]
    target_kinds: tuple[str, ...]
    also: tuple[str, ...] = ()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def render_cross(items: Sequence[CrossReplay], *, width: int = 120) -> str:
    """Return the side-by-side sections of ``items`` ("" when there are none)."""
    if not items:
        return ""
    column = max(20, (width - 16) // 2)
    lines = [
        "the same interleavings on the other variants "
        "(<<< cause, >>> detection, => first step run by another task, * steps differ):"
    ]
    for item in items:
        found = ", ".join(item.target_kinds) or "nothing"
        kinds = ", ".join((item.kind, *item.also))
        lines += [
            "",
            f"{kinds} of {item.source}, replayed on {item.target}: "
            f"{item.target} follows {item.followed} of its {item.total} choices "
            f"and finds {found}",
        ]
        if item.diverge is None:
            lines.append("  both run the same task at every step")
        else:
            lines.append(f"  the tasks differ from step {item.diverge}")
        lines.append(f"  {'':3} {'step':>5}  {item.source:<{column}}    {item.target}")
        for row in item.rows:
            if row.index < 0:
                lines.append(f"  {'':3} {'...':>5}")
                continue
            sep = _DIFFERS if row.differs else " "
            lines.append(
                f"  {row.mark:3} {row.index:>5}  "
                f"{_cut(row.source, column):<{column}}  {sep} "
                f"{_cut(row.target, column)}".rstrip()
            )
        lines += [
            f"  {item.source}: {item.source_command}",
            f"  {item.target}: {item.target_command}",
        ]
    return "\n".join(lines) + "\n"
