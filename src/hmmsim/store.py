"""The counterexample store: found schedules saved on disk and replayed first.

Like Hypothesis's example database: every counterexample ``hmmsim check``
finds is saved under a store directory (``.hmmsim/`` in the current directory
by default; ``--store DIR`` or ``HMMSIM_STORE=DIR`` to move it,
``HMMSIM_STORE=off`` or ``--no-store`` to turn it off), and the next run of
the same scenario variant replays the saved schedules *before* exploring:

- a saved schedule that still shows its kind is a counterexample of the run
  at once.  It is reported only for kinds the exploration itself did not find
  (an exploration cut short by a budget, or one that stops at the first
  violation and so need not explore at all), so an exhaustive run reports
  exactly what it would without the store;
- a saved schedule that no longer shows its kind (the bug was fixed, or the
  scenario changed) is deleted, as Hypothesis deletes examples that pass.

Layout: ``<store>/examples/<scenario>--<variant>[--<file hash>]/<kind>.token``,
one replay token per line-terminated file (the token names scenario, variant
and kind and carries a checksum).  The file hash keeps two user files whose
scenarios share a name apart.  Nothing here depends on the clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hmmsim.engine import (
    Counterexample,
    ExitReason,
    ExplorationResult,
    Program,
    Schedule,
    replay,
)
from hmmsim.errors import ConfigError, ReplayError
from hmmsim.runs import ScenarioRun
from hmmsim.service import Unit

__all__ = [
    "DEFAULT_STORE",
    "STORE_ENV",
    "Saved",
    "Store",
    "explore_with_store",
    "store_from",
]

#: The store directory when neither ``--store`` nor ``HMMSIM_STORE`` says.
DEFAULT_STORE: Final = ".hmmsim"
#: The environment variable naming the store directory (``off``: no store).
STORE_ENV: Final = "HMMSIM_STORE"
_OFF: Final = "off"
_SUFFIX: Final = ".token"


def store_from(
    option: str | None, *, disabled: bool = False, env: Mapping[str, str] | None = None
) -> Store | None:
    """Return the store chosen by ``--store``/``--no-store`` and the environment.

    Raises:
        ConfigError: the directory named is empty or is a file.
    """
    env = os.environ if env is None else env
    if disabled:
        return None
    where = option if option is not None else env.get(STORE_ENV, DEFAULT_STORE)
    if where == _OFF:
        return None
    if not where.strip():
        raise ConfigError(f"--store / {STORE_ENV}: the directory name is empty")
    root = Path(where)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--store {where}: not a directory")
    return Store(root)


@dataclass(frozen=True, slots=True, kw_only=True)
class Saved:
    """A saved counterexample replayed on a later run.

    Attributes:
        kind: the violation kind it was saved for.
        counterexample: the replayed counterexample (``execution`` is 0:
            it comes from the store, not from an execution of this run).
    """

    kind: str
    counterexample: Counterexample


class Store:
    """One store directory (see the module docstring)."""

    def __init__(self, root: Path | str) -> None:
        """Use ``root`` (created on the first save)."""
        self.root = Path(root)

    def directory(self, scenario: str, variant: str, file: str | None) -> Path:
        """Return the directory of one scenario variant's saved schedules."""
        name = f"{scenario}--{variant}"
        if file is not None:
            where = str(Path(file).resolve())
            name += "--" + hashlib.sha256(where.encode()).hexdigest()[:12]
        return self.root / "examples" / name

    @staticmethod
    def _file_name(kind: str) -> str:
        # Kinds ``x.y`` and ``x_y`` must not share a file: the hash keeps
        # them apart, the readable part is for people.
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in kind)
        digest = hashlib.sha256(kind.encode()).hexdigest()[:8]
        return f"{safe}-{digest}{_SUFFIX}"

    def tokens(self, scenario: str, variant: str, file: str | None) -> list[Path]:
        """Return the saved token files of a scenario variant, sorted."""
        folder = self.directory(scenario, variant, file)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.name.endswith(_SUFFIX))

    def replay_saved(
        self,
        scenario: str,
        variant: str,
        file: str | None,
        program: Program,
        *,
        max_steps: int,
    ) -> list[Saved]:
        """Replay every saved schedule; keep those that still show their kind.

        A token that is unreadable, names another scenario or no longer
        reproduces its kind is deleted.
        """
        found: list[Saved] = []
        for path in self.tokens(scenario, variant, file):
            saved = self._replay_one(path, f"{scenario}/{variant}", program, max_steps)
            if saved is None:
                path.unlink(missing_ok=True)
            else:
                found.append(saved)
        return found

    @staticmethod
    def _replay_one(
        path: Path, where: str, program: Program, max_steps: int
    ) -> Saved | None:
        try:
            context, schedule = Schedule.from_token(path.read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError, ReplayError):
            return None
        place, _, kind = context.partition(":")
        if place != where or not kind:
            return None
        result = replay(
            program,
            schedule,
            strict=False,
            max_steps=max(max_steps, len(schedule.tasks)),
        )
        finding = next((f for f in result.findings if f.kind == kind), None)
        if finding is None:
            return None
        return Saved(
            kind=kind,
            counterexample=Counterexample(
                kind=kind,
                finding=finding,
                findings=result.findings,
                schedule=result.schedule,
                steps=result.steps,
                preemptions=result.preemptions,
                original_steps=result.steps,
                execution=0,
            ),
        )

    def save(
        self,
        scenario: str,
        variant: str,
        file: str | None,
        tokens: Mapping[str, str],
    ) -> None:
        """Save ``tokens`` (kind -> replay token) of a scenario variant.

        Raises:
            OSError: the store cannot be written.
        """
        if not tokens:
            return
        folder = self.directory(scenario, variant, file)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, token in tokens.items():
            target = folder / self._file_name(kind)
            temporary = target.with_suffix(".tmp")
            temporary.write_text(token + "\n", encoding="ascii")
            temporary.replace(target)


def _merged_run(run: ScenarioRun, saved: list[Saved]) -> ScenarioRun:
    """``run`` plus the saved counterexamples of kinds it did not find."""
    kinds = set(run.result.kinds)
    extra = [s.counterexample for s in saved if s.kind not in kinds]
    if not extra:
        return run
    program = run.scenario.program(run.variant)
    traces = list(run.traces) + [None] * (
        len(run.result.counterexamples) - len(run.traces)
    )
    if run.traces:
        traces += [
            replay(
                program,
                cx.schedule,
                capture=True,
                max_steps=max(run.config.max_steps, len(cx.schedule.tasks)),
            ).trace
            for cx in extra
        ]
    result = dataclasses.replace(
        run.result,
        counterexamples=[*run.result.counterexamples, *extra],
        outcomes=dict(run.result.outcomes),
    )
    return dataclasses.replace(run, result=result, traces=tuple(traces))


def _saved_only(unit: Unit, saved: list[Saved]) -> ScenarioRun:
    """The run of a stop-at-first unit that a saved schedule answered at once."""
    cxs = [s.counterexample for s in saved]
    program = unit.scenario.program(unit.variant)
    traces = tuple(
        replay(
            program,
            cx.schedule,
            capture=True,
            max_steps=max(unit.config.max_steps, len(cx.schedule.tasks)),
        ).trace
        for cx in cxs
    )
    result = ExplorationResult(
        strategy=unit.config.strategy,
        exit_reason=ExitReason.FOUND,
        counterexamples=cxs,
        complete=False,
    )
    return ScenarioRun(
        scenario=unit.scenario,
        variant=unit.variant,
        config=unit.config,
        result=result,
        traces=traces,
        file=unit.file,
    )


def _replay_or_skip(store: Store, unit: Unit) -> list[Saved]:
    """Replay a unit's saved schedules; on any failure, use none of them.

    The exploration that follows runs the model under the service's guards
    (a model that raises or exits becomes an error row there); the replays
    here must not end hmmsim before it.  The tokens are kept.
    """
    try:
        return store.replay_saved(
            unit.scenario.name,
            unit.variant,
            unit.file,
            unit.scenario.program(unit.variant),
            max_steps=unit.config.max_steps,
        )
    except (Exception, SystemExit):
        return []


def explore_with_store(
    store: Store | None,
    units: Sequence[Unit],
    explore: Callable[[Sequence[Unit]], tuple[list[ScenarioRun], bool]],
    *,
    notes: list[str] | None = None,
) -> tuple[list[ScenarioRun], bool]:
    """Replay each unit's saved schedules, explore, merge, and save what was found.

    A unit whose config stops at the first violation is not explored when a
    saved schedule already shows a violation.  ``explore`` runs units and
    returns their runs in order (fewer when interrupted) and whether it was.
    ``notes`` receives one line per unit whose saved schedules were replayed
    (how many still fail, how many were deleted), for stderr.

    Raises:
        OSError: the store cannot be written.
    """
    if store is None:
        return explore(units)
    before = [len(store.tokens(u.scenario.name, u.variant, u.file)) for u in units]
    saved = [_replay_or_skip(store, u) for u in units]
    if notes is not None:
        for unit, count, kept in zip(units, before, saved, strict=True):
            if count:
                gone = count - len(
                    store.tokens(unit.scenario.name, unit.variant, unit.file)
                )
                notes.append(
                    f"store {store.root}: {unit.scenario.name}/{unit.variant}: "
                    f"replayed {count} saved schedule(s) first; {len(kept)} still "
                    f"fail, {gone} no longer do (deleted)"
                )
    todo = [i for i, u in enumerate(units) if not (saved[i] and u.config.stop_on_first)]
    explored, interrupted = explore([units[i] for i in todo])
    by_index = dict(zip(todo, explored, strict=False))
    runs: list[ScenarioRun] = []
    for i, unit in enumerate(units):
        if i in by_index:
            runs.append(_merged_run(by_index[i], saved[i]))
        elif i not in todo:
            runs.append(_saved_only(unit, saved[i]))
        else:
            break  # interrupted before this unit ran
    for done in runs:
        store.save(
            done.scenario.name,
            done.variant,
            done.file,
            {cx.kind: done.token(cx) for cx in done.result.counterexamples},
        )
    return runs, interrupted
