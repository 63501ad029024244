"""A pytest plugin: check hmmsim scenarios from your own test suite.

Installed with hmmsim (the ``pytest11`` entry point ``hmmsim``), it gives
every test the fixture :func:`hmmsim_check`::

    def test_my_driver_is_safe_on_v53(hmmsim_check):
        hmmsim_check("drivers/my_mirror.py:fault-vs-oom-reap", variant="v5.3")


    def test_the_buggy_driver_is_caught(hmmsim_check):
        hmmsim_check(
            "examples/mirror_sleeps.py:oom-vs-driver-lock",
            variant="v5.3",
            expect=["sleep-in-nonblockable"],
        )

A failing check fails the test with the text report of the counterexample
(its timeline, then the command that replays it), as
:func:`hmmsim.api.assert_no_violation` does.

A check that found nothing but did not explore every schedule (status
INCOMPLETE: a bound, the time budget or a sampling strategy cut it) fails
too, with the reason, unless the test passes ``allow_incomplete=True``: a
green test then never means "we stopped looking".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from hmmsim import __version__
from hmmsim.engine import ExplorationResult, Status
from hmmsim.errors import ConfigError
from hmmsim.report.text import render_run
from hmmsim.scenarios import Scenario
from hmmsim.service import one_scenario, resolve_config, run

__all__ = ["HmmsimCheck", "hmmsim_check"]


class HmmsimCheck:
    """Explore a scenario variant and fail the test if it is not as expected."""

    def __call__(
        self,
        target: Scenario | str | Path,
        variant: str | None = None,
        *,
        expect: Iterable[str] | None = None,
        allow_incomplete: bool = False,
        **config: object,
    ) -> ExplorationResult:
        """Check ``target`` (a Scenario, a registered name or ``PATH.py:NAME``).

        Args:
            target: what to explore; a file must define exactly one scenario
                unless ``:NAME`` picks one.
            variant: the variant (default: the scenario's default).
            expect: the violation kinds the variant must show, exactly
                (default: none at all).
            allow_incomplete: pass even if nothing was found and the
                exploration was cut short (status INCOMPLETE).
            config: ExploreConfig fields, e.g. ``strategy="dfs"``.

        Returns:
            The exploration result, for further assertions.
        """
        __tracebackhide__ = True
        scenario, file = _scenario(target)
        outcome = run(
            scenario,
            variant,
            config=resolve_config(scenario, overrides=config),
            file=file,
        )
        wanted = sorted(set(expect or ()))
        found = sorted(set(outcome.result.kinds))
        if wanted != found:
            report = render_run(outcome, version=__version__, timings=False)
            pytest.fail(
                f"{scenario.name}/{outcome.variant}: expected "
                f"{', '.join(wanted) or 'no violation'}, found "
                f"{', '.join(found) or 'no violation'}\n\n{report}",
                pytrace=False,
            )
        if outcome.result.status is Status.INCOMPLETE and not allow_incomplete:
            pytest.fail(
                f"{scenario.name}/{outcome.variant}: INCOMPLETE, not a proof: "
                f"{outcome.result.describe_exit()} after "
                f"{outcome.result.executions} executions (raise the bounds, or "
                "pass allow_incomplete=True if a partial search is what you want)",
                pytrace=False,
            )
        return outcome.result


def _scenario(target: Scenario | str | Path) -> tuple[Scenario, str | None]:
    try:
        return one_scenario(target)
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def hmmsim_check() -> HmmsimCheck:
    """Return a checker: ``hmmsim_check(target, variant, expect=..., **config)``."""
    return HmmsimCheck()
