"""ScenarioRun: the result of exploring one scenario variant, ready to report.

A run couples the exploration result with what a report needs beyond it:
the scenario (title, kernel version, expectations), the variant, the
configuration used and, for each counterexample, its captured trace.  A run
whose unit could not finish (its worker died, the model's own code failed)
carries the reason in ``error`` and has the status ``error``: it is a row of
every report, never silently dropped.

It is plain data of the service layer (:mod:`hmmsim.service` builds it); it
lives in this small module so that :mod:`hmmsim.report` can render it
without importing the service facade.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass

from hmmsim.config import ExploreConfig
from hmmsim.engine import Counterexample, ExplorationResult, Status, Trace
from hmmsim.scenarios import Scenario

__all__ = ["ScenarioRun", "invoked_as", "token_context"]


def token_context(scenario: str, variant: str, kind: str = "") -> str:
    """Return the replay-token context ``scenario/variant[:kind]``."""
    context = f"{scenario}/{variant}"
    return f"{context}:{kind}" if kind else context


def invoked_as(argv0: str | None = None) -> str:
    """Return how to call hmmsim again from this shell, for printed commands.

    ``hmmsim`` when that name on ``PATH`` is the program that runs now (or
    when this is not the ``hmmsim`` script at all: tests, ``python -m``), else
    the path it was invoked by, such as ``.venv/bin/hmmsim``, which works when
    pasted in the same directory.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(argv0) != "hmmsim" or os.sep not in argv0:
        return "hmmsim"
    on_path = shutil.which("hmmsim")
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(argv0):
        return "hmmsim"
    return shlex.quote(argv0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioRun:
    """One exploration of one scenario variant, ready to be reported.

    Attributes:
        scenario: the scenario explored.
        variant: which of its variants.
        config: the exploration config actually used.
        result: what the exploration found.
        traces: the captured trace of each counterexample, in the order of
            ``result.counterexamples`` (``None`` where not captured).
        file: the user file the scenario came from, as given on the command
            line; ``None`` for registered scenarios.
        error: why the unit did not finish (its worker died, the model's
            code raised or exited); ``result`` then holds what it had
            explored, as far as known.
    """

    scenario: Scenario
    variant: str
    config: ExploreConfig
    result: ExplorationResult
    traces: tuple[Trace | None, ...] = ()
    file: str | None = None
    error: str | None = None

    @property
    def status(self) -> Status:
        """The verdict of the exploration (``error`` when it did not finish)."""
        if self.error is not None:
            return Status.ERROR
        return self.result.status

    def trace_of(self, index: int) -> Trace | None:
        """Return the trace of counterexample ``index``, if captured."""
        return self.traces[index] if index < len(self.traces) else None

    def token(self, counterexample: Counterexample) -> str:
        """Return the replay token of ``counterexample``.

        The context names the scenario, the variant and the kind, so replay
        can check that the same kind is reproduced.  A kind that a token
        cannot carry is left out of the context.
        """
        schedule = counterexample.schedule
        context = token_context(self.scenario.name, self.variant, counterexample.kind)
        try:
            return schedule.to_token(context)
        except ValueError:
            return schedule.to_token(token_context(self.scenario.name, self.variant))

    def replay_command(self, counterexample: Counterexample) -> str:
        """Return the exact shell command that replays ``counterexample``."""
        command = f"{invoked_as()} replay {self.token(counterexample)}"
        if self.file is not None:
            command += f" --file {shlex.quote(self.file)}"
        return command

    @property
    def expected(self) -> tuple[str, ...] | None:
        """The violation kinds the scenario expects of this variant, if declared."""
        return self.scenario.expected(self.variant)

    @property
    def as_expected(self) -> bool | None:
        """Whether the kinds found match the expectation (None: no expectation).

        A variant expected to be clean matches when nothing was found, even if
        the exploration was incomplete; one expected to fail matches when
        exactly the expected kinds were found.  A run that ended in an error
        is never as expected.
        """
        expected = self.expected
        if self.error is not None:
            return False
        if expected is None:
            return None
        return sorted(set(expected)) == sorted(set(self.result.kinds))
