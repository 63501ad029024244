"""A pytest plugin: check hmmsim scenarios from your own test suite.

Installed with hmmsim (the ``pytest11`` entry point ``hmmsim``), it gives
every test the fixture :func:`hmmsim_check`::

    def test_my_driver_is_safe_on_v53(hmmsim_check):
        hmmsim_check("drivers/my_mirror.py:fault-vs-oom", variant="v5.3")


    def test_the_buggy_driver_is_caught(hmmsim_check):
        hmmsim_check(
            "examples/mirror_sleeps.py:driver-lock-vs-oom",
            variant="v5.3",
            expect=["sleep-in-nonblockable"],
        )

A failing check fails the test with the text report of the counterexample
(its timeline, then the command that replays it), as
:func:`hmmsim.api.assert_no_violation` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from hmmsim import __version__
from hmmsim.api import ExplorationResult, Scenario, load_file, resolve_config, run
from hmmsim.loader import is_file_target, select, split_target
from hmmsim.report.text import render_run
from hmmsim.scenarios import get

__all__ = ["HmmsimCheck", "hmmsim_check"]


class HmmsimCheck:
    """Explore a scenario variant and fail the test if it is not as expected."""

    def __call__(
        self,
        target: Scenario | str | Path,
        variant: str | None = None,
        *,
        expect: Iterable[str] | None = None,
        **config: object,
    ) -> ExplorationResult:
        """Check ``target`` (a Scenario, a registered name or ``PATH.py:NAME``).

        Args:
            target: what to explore; a file must define exactly one scenario
                unless ``:NAME`` picks one.
            variant: the variant (default: the scenario's default).
            expect: the violation kinds the variant must show, exactly
                (default: none at all).
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
        return outcome.result


def _scenario(target: Scenario | str | Path) -> tuple[Scenario, str | None]:
    if isinstance(target, Scenario):
        return target, None
    text = str(target)
    if not is_file_target(text):
        return get(text), None
    path, name = split_target(text)
    found = select(load_file(path), name, path)
    if len(found) != 1:
        names = ", ".join(s.name for s in found)
        pytest.fail(
            f"{path} defines several scenarios ({names}); name one as {path}:NAME",
            pytrace=False,
        )
    return found[0], path


@pytest.fixture
def hmmsim_check() -> HmmsimCheck:
    """Return a checker: ``hmmsim_check(target, variant, expect=..., **config)``."""
    return HmmsimCheck()
