"""The pytest plugin (entry point ``hmmsim``): the ``hmmsim_check`` fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

pytest_plugins = ["pytester"]

EXAMPLES: Final = Path(__file__).resolve().parents[2] / "examples"

USER_TESTS: Final = f'''
def test_correct_driver(hmmsim_check):
    hmmsim_check(r"{EXAMPLES / "mirror_correct.py"}:oom-vs-driver-lock", "v5.3")


def test_buggy_driver_is_caught(hmmsim_check):
    hmmsim_check(
        r"{EXAMPLES / "mirror_sleeps.py"}:oom-vs-driver-lock",
        "v5.3",
        expect=["sleep-in-nonblockable"],
    )


def test_buggy_driver_fails(hmmsim_check):
    hmmsim_check(r"{EXAMPLES / "mirror_sleeps.py"}:oom-vs-driver-lock", "v5.3")


def test_several_scenarios_need_a_name(hmmsim_check):
    hmmsim_check(r"{EXAMPLES / "mirror_sleeps.py"}", "v5.3")
'''


def test_fixture_from_a_users_test_suite(pytester: pytest.Pytester) -> None:
    """A user's tests get the fixture from the entry point, and fail with the report."""
    pytester.makepyfile(test_driver=USER_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*oom-vs-driver-lock/v5.3: expected no violation, found "
            "sleep-in-nonblockable*",
            "*hmmsim replay hs1.oom-vs-driver-lock/v5.3:sleep-in-nonblockable*",
            "*defines several scenarios (oom-vs-driver-lock, "
            "oom-vs-mirror-unregister, *); name one as*",
        ]
    )


def test_fixture_checks_a_registered_scenario_and_a_scenario_object(
    hmmsim_check: object,
) -> None:
    """In-process: a registered name, and a Scenario from api.load_file, both work."""
    from hmmsim import api  # noqa: PLC0415
    from hmmsim.pytest_plugin import HmmsimCheck  # noqa: PLC0415

    assert isinstance(hmmsim_check, HmmsimCheck)
    result = hmmsim_check("oom-vs-driver-lock", "v5.3")
    assert [] == result.kinds
    (scenario,) = [
        s
        for s in api.load_file(EXAMPLES / "mirror_sleeps.py")
        if s.name == "oom-vs-driver-lock"
    ]
    hmmsim_check(scenario, "prepatch", expect=["sleep-in-nonblockable"])


def test_a_file_of_several_scenarios_needs_a_name() -> None:
    """In-process: a file target without ``:NAME`` fails, naming the scenarios."""
    from hmmsim.pytest_plugin import HmmsimCheck  # noqa: PLC0415

    with pytest.raises(pytest.fail.Exception, match="name one as"):
        HmmsimCheck()(EXAMPLES / "mirror_sleeps.py", "v5.3")


def test_an_incomplete_check_fails_unless_allowed(hmmsim_check: object) -> None:
    """A check cut short with nothing found fails with the reason, unless allowed (D13)."""
    from hmmsim.pytest_plugin import HmmsimCheck  # noqa: PLC0415

    assert isinstance(hmmsim_check, HmmsimCheck)
    with pytest.raises(pytest.fail.Exception, match="INCOMPLETE, not a proof"):
        hmmsim_check("oom-vs-driver-lock", "v5.3", strategy="dfs", max_executions=2)
    result = hmmsim_check(
        "oom-vs-driver-lock",
        "v5.3",
        allow_incomplete=True,
        strategy="dfs",
        max_executions=2,
    )

    assert 2 == result.executions
