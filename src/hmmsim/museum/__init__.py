"""The race museum: upstream HMM / mmu-notifier concurrency fixes, each an exhibit.

An :class:`Exhibit` pins one upstream fix: a scenario whose ``before``
variant is the kernel just before the commit (a violation of the kinds the
commit describes, with a replayable counterexample) and whose ``after``
variant is the kernel just after it (verified exhaustively within the
scenario's bounds).  Where no modelled release falls between the two, the
scenario's variants build the later release with the commit reverted
(:mod:`hmmsim.kernel.fixes`).

Exhibits live in ``hmmsim/museum/exhibits/<slug>.py``; each module calls
:func:`register_exhibit` at import time.  :func:`exhibits` imports every
module of that package once (sorted by module name) and returns the
exhibits ordered by commit date.

How to add an exhibit
---------------------

1. Read the commit with the search tools (repo ``torvalds/linux``): its id
   (12 digits), subject, author date and the first release that carries it
   (``git describe --contains``: the tag after the merge).
2. Find the scenario.  If a built-in scenario shows the race on the variant
   before the fix and is verified on the one after, use it (no new code).
   Otherwise write ``src/hmmsim/scenarios/museum/<name>.py`` registering a
   scenario with ``group=MUSEUM_GROUP`` (``hmmsim.scenarios.base``; for a
   race: ``race_scenario(..., group=MUSEUM_GROUP)`` of a ``battery=False``
   race).  Museum scenarios stay out of ``check --all`` and ``list`` but
   ``check NAME``, ``replay`` and pinned tokens find them by name.  Never
   register a scenario from the exhibit module itself: a lookup by name
   (a replay, a cluster worker) imports the scenario package, not the
   museum.
3. Where no variant falls between the two kernels, add a patch switch: a
   line in :data:`hmmsim.kernel.fixes.FIXES` and ``fix_applied(mm, id)``
   around the fixed lines, and build the ``before`` variant's world with
   ``World.create(variant, reverted_fixes=[id])``.
4. Write ``src/hmmsim/museum/exhibits/<slug>.py`` calling
   ``register_exhibit(Exhibit(...))``: ``before`` must report ``kinds``
   with an exhaustive DPOR run, ``after`` must be verified (exhausted, no
   bound cut it).  ``columns`` names the two tasks of the diagram.
5. Run ``hmmsim museum check <slug>``, read the before counterexample's
   diagram (``hmmsim museum show <slug>``) against the commit message, and
   write what agrees (and what the model abstracts) into ``checked``.
6. Add the exhibit to docs/museum.md; the pin test
   (tests/museum/test_pins.py) picks it up by itself.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hmmsim.engine import (
    Counterexample,
    ExecutionResult,
    Finding,
    Status,
    Trace,
    replay,
)
from hmmsim.errors import ConfigError, InternalError, ScenarioError
from hmmsim.runs import ScenarioRun
from hmmsim.scenarios import Scenario, get
from hmmsim.scenarios.base import NAME_PATTERN

__all__ = [
    "Exhibit",
    "Judgement",
    "MuseumEntry",
    "examine",
    "exhibit",
    "exhibits",
    "judge",
    "located_trace",
    "primary_counterexample",
    "register_exhibit",
    "scenario_of",
    "select",
]

_COMMIT: Final = re.compile(r"^[0-9a-f]{12}$")
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RELEASE: Final = re.compile(r"^v\d+\.\d+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Exhibit:
    """One upstream race fix, reproduced before and verified after.

    Attributes:
        slug: exhibit name (``NAME_PATTERN``), e.g. ``hmm-notifiers-leak``.
        commit: the fix's 12-digit commit id.
        subject: the commit's subject line, as upstream spelled it.
        release: the first kernel release carrying it (``v5.3``).
        date: the commit's author date (``YYYY-MM-DD``), for ordering.
        scenario: the registered scenario that shows the race.
        before: the scenario's variant for the kernel just before the fix.
        after: the scenario's variant for the kernel just after it.
        kinds: the violation kinds ``before`` must report (the commit's bug).
        columns: the two task names drawn as the CPU columns of the diagram.
        summary: the race in two or three sentences.
        rule: what a driver author (or kernel developer) takes from it.
        checked: the record of the hand check of ``before``'s counterexample
            against the commit message (who/what/which lines agree).
        bounds: the bounds within which ``after`` is verified, in words.
    """

    slug: str
    commit: str
    subject: str
    release: str
    date: str
    scenario: str
    before: str
    after: str
    kinds: tuple[str, ...]
    columns: tuple[str, str]
    summary: str
    rule: str
    checked: str
    bounds: str

    def __post_init__(self) -> None:
        """Validate the definition; raise ScenarioError naming the problem."""
        if not NAME_PATTERN.match(self.slug):
            raise ScenarioError(
                f"exhibit slug {self.slug!r} must match {NAME_PATTERN.pattern}"
            )
        if not _COMMIT.match(self.commit):
            raise ScenarioError(f"exhibit {self.slug!r}: commit must be 12 hex digits")
        if not _DATE.match(self.date):
            raise ScenarioError(f"exhibit {self.slug!r}: date must be YYYY-MM-DD")
        if not _RELEASE.match(self.release):
            raise ScenarioError(f"exhibit {self.slug!r}: release must look like v5.3")
        if not self.kinds:
            raise ScenarioError(
                f"exhibit {self.slug!r}: kinds must name the bug's kinds"
            )
        if self.before == self.after:
            raise ScenarioError(
                f"exhibit {self.slug!r}: before and after are one variant"
            )
        for name in ("subject", "summary", "rule", "checked", "bounds"):
            if not str(getattr(self, name)).strip():
                raise ScenarioError(f"exhibit {self.slug!r}: {name} is empty")

    @property
    def primary(self) -> str:
        """The kind whose counterexample the diagram draws (the first of ``kinds``)."""
        return self.kinds[0]


_EXHIBITS: dict[str, Exhibit] = {}
_LOADED: list[bool] = []  # non-empty once the exhibit modules are imported


def register_exhibit(item: Exhibit) -> Exhibit:
    """Add ``item`` to the museum and return it.

    Raises:
        ScenarioError: another exhibit has that slug or commit.
    """
    for known in _EXHIBITS.values():
        if known is not item and (
            known.slug == item.slug or known.commit == item.commit
        ):
            raise ScenarioError(
                f"exhibit {item.slug!r} ({item.commit}) is registered twice"
            )
    _EXHIBITS[item.slug] = item
    return item


def _load() -> None:
    if _LOADED:
        return
    # Importing the subpackage binds it as this module's attribute
    # ``exhibits``, over the function of that name: put the function back.
    function = globals()["exhibits"]
    package = importlib.import_module("hmmsim.museum.exhibits")
    globals()["exhibits"] = function

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = f"{package.__name__}.{info.name}"
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise InternalError(
                f"exhibit module {module} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
    _LOADED.append(True)


def exhibits() -> list[Exhibit]:
    """Return every exhibit, oldest fix first (then by commit id)."""
    _load()
    return sorted(_EXHIBITS.values(), key=lambda e: (e.date, e.commit))


#: The shortest commit-id prefix that names an exhibit (git's default abbreviation).
MIN_COMMIT_PREFIX: Final = 7


def exhibit(slug: str) -> Exhibit:
    """Return the exhibit called ``slug``, or the one of commit ``slug``.

    A commit id names an exhibit by its first :data:`MIN_COMMIT_PREFIX` or
    more hex digits (``dbe97cff7dd9``, ``dbe97cf``), if only one matches.

    Raises:
        ConfigError: no such exhibit; the message lists the known slugs.
    """
    _load()
    found = _EXHIBITS.get(slug)
    if found is not None:
        return found
    prefix = slug.lower()
    if len(prefix) >= MIN_COMMIT_PREFIX:
        by_commit = [e for e in _EXHIBITS.values() if e.commit.startswith(prefix)]
        if len(by_commit) == 1:
            return by_commit[0]
    known = ", ".join(e.slug for e in exhibits()) or "none"
    raise ConfigError(f"unknown exhibit {slug!r} (known: {known})")


def select(slugs: Sequence[str] = ()) -> list[Exhibit]:
    """Return the exhibits named by ``slugs`` in museum order (all when empty).

    Raises:
        ConfigError: an unknown slug; the message lists the known ones.
    """
    chosen = {exhibit(slug).slug for slug in slugs}
    return [e for e in exhibits() if not chosen or e.slug in chosen]


def scenario_of(item: Exhibit) -> Scenario:
    """Return the exhibit's scenario after checking it has both variants.

    Raises:
        ConfigError: the scenario or one of the variants is unknown.
    """
    scenario = get(item.scenario)
    scenario.check_variant(item.before)
    scenario.check_variant(item.after)
    return scenario


@dataclass(frozen=True, slots=True, kw_only=True)
class Judgement:
    """Whether an exhibit holds its pin, with a one-line reason.

    Attributes:
        slug: the exhibit.
        passed: before reported every kind of the exhibit (with a replayable
            counterexample) and after was verified.
        reason: one line saying why (or what was found).
    """

    slug: str
    passed: bool
    reason: str


def _kinds(run: ScenarioRun) -> str:
    return ", ".join(run.result.kinds) or "no violation"


def judge(item: Exhibit, before: ScenarioRun, after: ScenarioRun) -> Judgement:
    """Judge ``item`` on its two runs (before's first, then after's).

    ``before`` must report every kind of ``item.kinds``, each with a
    counterexample; ``after`` must be *verified*: exhausted, complete and
    without step-limit executions, never merely incomplete.
    """

    def failed(reason: str) -> Judgement:
        return Judgement(slug=item.slug, passed=False, reason=reason)

    if before.error is not None:
        return failed(f"before ({item.before}) ended in an error: {before.error}")
    found = {cx.kind for cx in before.result.counterexamples}
    missing = [k for k in item.kinds if k not in found]
    if missing:
        return failed(
            f"before ({item.before}) did not report {', '.join(missing)} "
            f"(found: {_kinds(before)}; {before.result.exit_reason.value})"
        )
    if after.error is not None:
        return failed(f"after ({item.after}) ended in an error: {after.error}")
    if after.status is not Status.VERIFIED:
        what = after.status.value
        detail = _kinds(after) if after.result.kinds else after.result.describe_exit()
        return failed(f"after ({item.after}) is not verified: {what} ({detail})")
    return Judgement(
        slug=item.slug,
        passed=True,
        reason=(
            f"before ({item.before}) reports {', '.join(item.kinds)} in "
            f"{before.result.executions} executions; after ({item.after}) is "
            f"verified in {after.result.executions} executions"
        ),
    )


def primary_counterexample(item: Exhibit, before: ScenarioRun) -> Counterexample | None:
    """Return before's counterexample of the exhibit's primary kind, if found."""
    return next(
        (cx for cx in before.result.counterexamples if cx.kind == item.primary), None
    )


def located_trace(before: ScenarioRun, cx: Counterexample) -> ExecutionResult:
    """Replay ``cx`` on ``before`` with source locations: the diagram's input.

    The replay is strict: a counterexample that does not replay is no
    exhibit (ReplayDiverged).

    The locations name the kernel function of every step, which the diagram
    shows as the commit messages do.

    Raises:
        ReplayDiverged: the model did not follow the schedule.
    """
    program = before.scenario.program(before.variant)
    result = replay(
        program,
        cx.schedule,
        capture=True,
        capture_locations=True,
        max_steps=max(before.config.max_steps, len(cx.schedule.tasks)),
    )
    assert result.trace is not None, "[hmmsim internal bug] replay captured no trace"
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class MuseumEntry:
    """One exhibit checked: its runs, the judgement and the diagram's input.

    Attributes:
        exhibit: the exhibit.
        before: the run of the kernel before the fix.
        after: the run of the kernel after it.
        judgement: whether it holds its pin.
        counterexample: before's counterexample of the primary kind, if any.
        trace: that counterexample replayed with source locations, if any.
        findings: the findings of that replay.
    """

    exhibit: Exhibit
    before: ScenarioRun
    after: ScenarioRun
    judgement: Judgement
    counterexample: Counterexample | None = None
    trace: Trace | None = None
    findings: tuple[Finding, ...] = ()

    @property
    def replay_command(self) -> str:
        """The command that replays the counterexample ("" without one)."""
        if self.counterexample is None:
            return ""
        return self.before.replay_command(self.counterexample)


def examine(item: Exhibit, before: ScenarioRun, after: ScenarioRun) -> MuseumEntry:
    """Judge ``item`` and replay its primary counterexample with locations.

    A counterexample whose replay does not show the primary kind again fails
    the exhibit (a pin must be replayable).

    Raises:
        ReplayDiverged: the counterexample does not follow its schedule.
    """
    judgement = judge(item, before, after)
    cx = primary_counterexample(item, before)
    if cx is None:
        return MuseumEntry(
            exhibit=item, before=before, after=after, judgement=judgement
        )
    again = located_trace(before, cx)
    if judgement.passed and item.primary not in {f.kind for f in again.findings}:
        judgement = Judgement(
            slug=item.slug,
            passed=False,
            reason=f"before's {item.primary} counterexample does not replay",
        )
    return MuseumEntry(
        exhibit=item,
        before=before,
        after=after,
        judgement=judgement,
        counterexample=cx,
        trace=again.trace,
        findings=again.findings,
    )
