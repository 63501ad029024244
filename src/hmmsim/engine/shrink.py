"""Counterexample shrinking: make a failing schedule shorter and simpler.

A schedule that shows a finding is rewritten by a few *passes*, each of which
proposes candidate schedules.  A candidate is replayed as a lenient prefix
(see :class:`~hmmsim.engine.strategies.replay.ReplayStrategy`: once the
candidate runs out or stops making sense, the execution continues without
preemption and data choices take 0) and is accepted when the replay shows a
finding of the same kind and is smaller in the shrink order (below).  What is
kept is the schedule the accepted replay *actually* took, so the result
replays strictly.

The passes are, coarsest first: drop a trailing segment, delete a run of
one task's steps, remove a preemption, move a context switch later, swap
adjacent independent steps, and lower data choices.

The shrink order compares, in turn: steps, preemptions, context switches,
the sum of the data choices, the positions of the context switches (later
is smaller), and finally the encoded choices themselves.  The first two are
"not longer" in the sense the runner promises; the rest only break ties, so
that every accepted candidate is strictly smaller and shrinking terminates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from hmmsim.engine.execution import Execution, ExecutionResult, strict_coroutines
from hmmsim.engine.ops import Op, dependent
from hmmsim.engine.program import Program
from hmmsim.engine.schedule import Choice, DataChoice, Schedule, TaskChoice
from hmmsim.engine.snapshot import SnapshotCache
from hmmsim.engine.strategies.replay import ReplayStrategy

__all__ = ["DEFAULT_MAX_REPLAYS", "ReplayMemo", "Shrinker", "shrink"]

#: Replays one shrink may spend (the initial replay included).  A replay of a
#: toy program costs well under a millisecond; one of an HMM scenario a few.
DEFAULT_MAX_REPLAYS: Final = 1_000

_Key = tuple[int, int, int, int, tuple[int, ...], tuple[int, ...]]
_Group = tuple[Choice, ...]


class ReplayMemo:
    """The lenient replays of one program, shared by the shrinkers of an exploration.

    Each distinct candidate schedule is run once, whichever kind is being
    shrunk (two kinds found in one execution start from the same schedule),
    and the result is kept under the candidate and under the schedule the
    replay actually took, so the runner's final replay of a shrunk schedule
    is found here too.  The replays also share one set-up snapshot.

    Attributes:
        snapshots: the set-up snapshot shared by the replays.
        runs: (seed, max_steps, choices) -> (result, Op of every step).
        hits: lookups answered without running anything.
    """

    __slots__ = ("hits", "runs", "snapshots")

    def __init__(self) -> None:
        """Start empty."""
        self.snapshots = SnapshotCache()
        self.runs: dict[
            tuple[int, int, tuple[Choice, ...]],
            tuple[ExecutionResult, tuple[Op, ...]],
        ] = {}
        self.hits = 0

    def run(
        self,
        program: Program,
        choices: tuple[Choice, ...],
        *,
        seed: int,
        max_steps: int,
    ) -> tuple[ExecutionResult, tuple[Op, ...]]:
        """Return the lenient replay of ``choices`` (run now, or remembered)."""
        key = (seed, max_steps, choices)
        known = self.runs.get(key)
        if known is not None:
            self.hits += 1
            return known
        strategy = ReplayStrategy(Schedule(seed=seed, choices=choices), strict=False)
        strategy.begin_execution()
        with strict_coroutines():
            execution = Execution(
                program,
                strategy,
                max_steps=max_steps,
                seed=seed,
                snapshots=self.snapshots,
            )
            result = execution.run()
        run = (result, tuple(execution.ops))
        self.runs[key] = run
        self.runs.setdefault((seed, max_steps, result.schedule.choices), run)
        return run

    def result_of(
        self, schedule: Schedule, *, max_steps: int
    ) -> ExecutionResult | None:
        """Return the remembered execution of ``schedule``, if it was run."""
        known = self.runs.get((schedule.seed, max_steps, schedule.choices))
        return None if known is None else known[0]


@dataclass(frozen=True, slots=True)
class _Run:
    """A replay that shows the kind: result, Op of every step, key, groups."""

    result: ExecutionResult
    ops: tuple[Op, ...]
    key: _Key
    prelude: _Group
    groups: list[_Group]


def _key(result: ExecutionResult) -> _Key:
    choices = result.schedule.choices
    tasks = [c.task for c in choices if isinstance(c, TaskChoice)]
    switches = [i for i in range(1, len(tasks)) if tasks[i] != tasks[i - 1]]
    data = sum(c.value for c in choices if isinstance(c, DataChoice))
    return (
        result.steps,
        result.preemptions,
        len(switches),
        data,
        tuple(-i for i in switches),
        tuple(map(_rank, choices)),
    )


def _rank(choice: Choice) -> int:
    """Order choices for the last tie-break: task t as 2t, data value v as 2v+1."""
    if isinstance(choice, TaskChoice):
        return choice.task << 1
    return (choice.value << 1) | 1


def _split(choices: Sequence[Choice]) -> tuple[_Group, list[_Group]]:
    """Split choices into the data choices before step 0 and one group per step.

    A group is a task choice followed by the data choices made in its step.
    """
    prelude: list[Choice] = []
    groups: list[list[Choice]] = []
    for choice in choices:
        if isinstance(choice, TaskChoice):
            groups.append([choice])
        elif groups:
            groups[-1].append(choice)
        else:
            prelude.append(choice)
    return tuple(prelude), [tuple(g) for g in groups]


def _join(prelude: _Group, groups: Sequence[_Group]) -> tuple[Choice, ...]:
    return prelude + tuple(c for group in groups for c in group)


class Shrinker:
    """Shrink one failing schedule of one program (see the module docstring).

    Contract of the passes (after Hypothesis's shrinker):

    * **Deterministic progress.**  Whether a candidate is accepted depends
      only on its replay, which is deterministic; the same input always
      shrinks to the same output.
    * **No internal fixed-point loops.**  Each pass sweeps its positions once
      and returns; only :meth:`shrink` repeats the list of passes, until a
      whole round accepts nothing or the replay budget is spent.
    * **Index-stable iteration.**  A pass walks positions from the start;
      after an accepted candidate it goes on from the same position in the
      new schedule rather than starting over.
    * **Coarse first.**  Passes run from the coarsest (cut the whole tail)
      to the finest (swap two steps, lower one data value); the tail cut
      tries the shortest prefix first, and at one position a bigger change
      comes before a smaller one (a whole run before one step, 0 before one
      lower).

    Every accepted candidate still shows a finding of ``kind`` and is
    strictly smaller in the shrink order, so the result is never longer than
    the input's replay.  At most ``max_replays`` executions are run.
    """

    def __init__(
        self,
        program: Program,
        kind: str,
        *,
        max_steps: int,
        seed: int = 0,
        max_replays: int = DEFAULT_MAX_REPLAYS,
        memo: ReplayMemo | None = None,
    ) -> None:
        """Prepare to shrink schedules of ``program`` that show ``kind``.

        ``memo`` shares replays with other shrinkers of the same program; a
        replay found there still counts against ``max_replays``, so the
        result does not depend on what the others ran.
        """
        self.program = program
        self.kind = kind
        self.max_steps = max_steps
        self.seed = seed
        self.max_replays = max_replays
        #: Executions run so far.
        self.replays = 0
        #: Candidates accepted so far.
        self.accepted = 0
        self._tried: set[tuple[Choice, ...]] = set()
        #: The replays, shared with other shrinkers when given.
        self.memo = memo if memo is not None else ReplayMemo()
        self._best: _Run | None = None

    # -- driver -----------------------------------------------------------------

    def shrink(self, schedule: Schedule) -> Schedule:
        """Return the smallest schedule found that still shows the kind.

        If ``schedule`` itself does not show the kind when replayed, it is
        returned unchanged.
        """
        self.seed = schedule.seed
        first = self._replay(schedule.choices)
        if first is None:
            return schedule
        self._best = first
        passes: tuple[Callable[[], None], ...] = (
            self.drop_trailing,
            self.delete_runs,
            self.remove_preemptions,
            self.move_switches_later,
            self.swap_independent,
            self.lower_data,
        )
        while not self._spent():
            before = self.best.key
            for shrink_pass in passes:
                shrink_pass()
            if self.best.key == before:
                break
        return self.best.result.schedule

    @property
    def best(self) -> _Run:
        """The smallest accepted replay so far."""
        assert self._best is not None, "[hmmsim internal bug] shrinker not started"
        return self._best

    def _spent(self) -> bool:
        return self.replays >= self.max_replays

    def _replay(self, choices: Sequence[Choice]) -> _Run | None:
        self.replays += 1
        result, ops = self.memo.run(
            self.program, tuple(choices), seed=self.seed, max_steps=self.max_steps
        )
        if not any(f.kind == self.kind for f in result.findings):
            return None
        prelude, groups = _split(result.schedule.choices)
        return _Run(result, ops, _key(result), prelude, groups)

    def consider(self, choices: Sequence[Choice]) -> bool:
        """Replay a candidate; keep it if it shows the kind and is smaller."""
        candidate = tuple(choices)
        if self._spent() or candidate in self._tried:
            return False
        self._tried.add(candidate)
        run = self._replay(candidate)
        if run is None or run.key >= self.best.key:
            return False
        self._best = run
        self.accepted += 1
        return True

    def _groups(self) -> tuple[_Group, list[_Group]]:
        best = self.best
        return best.prelude, best.groups

    # -- passes -------------------------------------------------------------------

    def drop_trailing(self) -> None:
        """Cut the schedule after a prefix; the rest runs without preemption.

        Cut points are the context switches and the steps after a data
        choice, shortest prefix first; the pass ends at the first success.
        """
        prelude, groups = self._groups()
        for cut in range(len(groups)):
            is_switch = cut > 0 and groups[cut][0] != groups[cut - 1][0]
            after_data = cut > 0 and len(groups[cut - 1]) > 1
            if (cut == 0 or is_switch or after_data) and self.consider(
                _join(prelude, groups[:cut])
            ):
                return

    def delete_runs(self) -> None:
        """Delete each run of consecutive steps of one task.

        The deleted steps are not lost: the task performs them later, when
        the lenient replay lets it run.  This removes wasted work, such as
        the iterations of a spin loop before the write it waits for.
        """
        start = 0
        while start < len(self._groups()[1]) and not self._spent():
            prelude, groups = self._groups()
            end = start + 1
            while end < len(groups) and groups[end][0] == groups[start][0]:
                end += 1
            if not self.consider(_join(prelude, [*groups[:start], *groups[end:]])):
                start = end

    def remove_preemptions(self) -> None:
        """At each context switch, let the task switched away from run on.

        The task's next run of steps is moved up to the switch, so the
        switched-to task resumes only after it.
        """
        index = 1
        while index < len(self._groups()[1]) and not self._spent():
            prelude, groups = self._groups()
            here = _next_run_of(groups, index)
            if here is not None:
                start, end = here
                self.consider(
                    _join(
                        prelude,
                        groups[:index]
                        + groups[start:end]
                        + groups[index:start]
                        + groups[end:],
                    )
                )
            index += 1

    def move_switches_later(self) -> None:
        """At each context switch, run one more step of the previous task first."""
        index = 1
        while index < len(self._groups()[1]) and not self._spent():
            prelude, groups = self._groups()
            here = _next_run_of(groups, index)
            if here is not None:
                start = here[0]
                self.consider(
                    _join(
                        prelude,
                        [
                            *groups[:index],
                            groups[start],
                            *groups[index:start],
                            *groups[start + 1 :],
                        ],
                    )
                )
            index += 1

    def swap_independent(self) -> None:
        """Swap adjacent steps of different tasks whose Ops are independent.

        At each boundary between two tasks' runs, first try to swap the two
        whole runs (when every Op of one is independent of every Op of the
        other), then the two steps at the boundary.  Swapping independent
        steps keeps the execution equivalent, and can merge two runs of one
        task into one, which saves a context switch.
        """
        index = 0
        while index + 1 < len(self._groups()[1]) and not self._spent():
            groups = self._groups()[1]
            if groups[index][0] != groups[index + 1][0] and not self._swap_runs(index):
                self._swap_steps(index)
            index += 1

    def _swap_runs(self, index: int) -> bool:
        """Try swapping the runs that meet after ``index``; True if accepted."""
        prelude, groups = self._groups()
        ops = self.best.ops
        first = _run_start(groups, index)
        last = _run_end(groups, index + 1)
        if last - first <= 2 or not _independent(
            ops[first : index + 1], ops[index + 1 : last]
        ):
            return False
        return self.consider(
            _join(
                prelude,
                [
                    *groups[:first],
                    *groups[index + 1 : last],
                    *groups[first : index + 1],
                    *groups[last:],
                ],
            )
        )

    def _swap_steps(self, index: int) -> None:
        """Try swapping steps ``index`` and ``index + 1`` if they commute."""
        prelude, groups = self._groups()
        ops = self.best.ops
        if dependent(ops[index], ops[index + 1]):
            return
        self.consider(
            _join(
                prelude,
                [
                    *groups[:index],
                    groups[index + 1],
                    groups[index],
                    *groups[index + 2 :],
                ],
            )
        )

    def lower_data(self) -> None:
        """Set each data choice to 0 (else one lower), keeping the rest."""
        position = 0
        while position < len(self.best.result.schedule.choices) and not self._spent():
            choices = list(self.best.result.schedule.choices)
            choice = choices[position]
            if isinstance(choice, DataChoice) and choice.value:
                for lower in dict.fromkeys((0, choice.value - 1)):
                    choices[position] = DataChoice(lower, choice.bound, choice.label)
                    if self.consider(choices):
                        break
            position += 1


def _run_start(groups: Sequence[_Group], index: int) -> int:
    """Return where the run of one task's steps that contains ``index`` starts."""
    task = groups[index][0]
    while index > 0 and groups[index - 1][0] == task:
        index -= 1
    return index


def _run_end(groups: Sequence[_Group], index: int) -> int:
    """Return the end (exclusive) of the run that contains ``index``."""
    task = groups[index][0]
    while index < len(groups) and groups[index][0] == task:
        index += 1
    return index


def _independent(left: Sequence[Op], right: Sequence[Op]) -> bool:
    """Return whether every Op of ``left`` commutes with every Op of ``right``."""
    return not any(dependent(a, b) for a in left for b in right)


def _next_run_of(groups: Sequence[_Group], index: int) -> tuple[int, int] | None:
    """Return the next run of the task switched away from at ``index``.

    Returns ``(start, end)`` such that ``groups[start:end]`` are the next
    consecutive steps of that task after ``index``, or None when ``index``
    is not a context switch or the task takes no later step.
    """
    previous = groups[index - 1][0]
    if groups[index][0] == previous:
        return None
    start = next(
        (i for i in range(index + 1, len(groups)) if groups[i][0] == previous), None
    )
    if start is None:
        return None
    end = start
    while end < len(groups) and groups[end][0] == previous:
        end += 1
    return start, end


def shrink(
    program: Program,
    schedule: Schedule,
    kind: str,
    max_steps: int,
    *,
    max_replays: int = DEFAULT_MAX_REPLAYS,
    memo: ReplayMemo | None = None,
) -> Schedule:
    """Return a schedule no longer than ``schedule`` that shows the same kind.

    Args:
        program: the program the schedule runs.
        schedule: a schedule whose execution has a finding of ``kind``.
        kind: the finding kind to keep.
        max_steps: step bound of the replays.
        max_replays: at most this many executions are spent.
        memo: replays shared with the other shrinks of the exploration.
    """
    shrinker = Shrinker(
        program,
        kind,
        max_steps=max_steps,
        seed=schedule.seed,
        max_replays=max_replays,
        memo=memo,
    )
    return shrinker.shrink(schedule)
