"""The ``hmmsim`` command: list, check, replay and compare scenarios.

Subcommands (``docs/cli.md`` is the full reference)::

    hmmsim list [-v]
    hmmsim check [SCENARIO | PATH.py[:NAME]] [--variant V | --all] [options]
    hmmsim replay TOKEN | REPORT.json [--file PATH.py]
    hmmsim compare SCENARIO [VARIANT VARIANT ...] [options]   (alias: explain)
    hmmsim pin TOKEN [--file PATH.py] [-o TEST.py] [--expect absent|present]
    hmmsim museum [list]
    hmmsim museum check|show [SLUG ...] [--jobs N] [--json FILE] [--report DIR]

Exit codes:

    0    the command completed, whatever it found
    1    a violation was found and --fail-on-violation was given (or a result
         differed from the scenario's expectation and --fail-on-unexpected was);
         ``museum check``: an exhibit does not hold its pin
    2    usage, input or model error: unknown scenario or variant, a file
         that is missing, does not import or defines no scenario, absurd
         bounds, a bad or tampered replay token, an output file that cannot
         be written, the model's own code failing (named by file and line)
    3    internal error (a bug in hmmsim; the message carries the tag
         ``[hmmsim internal bug]``)
    4    a replay did not reproduce (the schedule diverged, or the recorded
         violation kind did not occur)
    130  interrupted (SIGINT or SIGTERM); what was explored so far is reported
         and written first

Results go to stdout; progress and errors go to stderr.  Every error is one
line, ``hmmsim: error: ...``, never a traceback (``HMMSIM_TRACEBACK=1`` adds
the traceback of an unexpected error on stderr; the status stays the same).

The work itself (targets, configs, running, replay, report files) is done
by :mod:`hmmsim.service`; this module parses options, shows progress and
turns results and errors into output and a status.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import TYPE_CHECKING, Final, NoReturn

from hmmsim import __version__
from hmmsim.errors import (
    INTERNAL_BUG_TAG,
    ConfigError,
    HmmsimError,
    InternalError,
    ReplayDiverged,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from hmmsim.config import ExploreConfig
    from hmmsim.engine.partition import Estimate
    from hmmsim.museum import MuseumEntry
    from hmmsim.runs import ScenarioRun
    from hmmsim.scenarios import Scenario
    from hmmsim.service import Unit

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_VIOLATION",
    "main",
]

EXIT_OK: Final = 0
EXIT_VIOLATION: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERNAL: Final = 3
EXIT_DIVERGED: Final = 4
EXIT_INTERRUPTED: Final = 130

DEFAULT_REPORT_DIR: Final = "hmmsim-report"

#: ExploreConfig field -> the option that sets it, for error messages.
_OPTION_OF: Final = {
    "max_executions": "--max-executions",
    "max_steps": "--max-steps",
    "preemption_bound": "--preemption-bound",
    "pct_depth": "--pct-depth",
    "time_budget_s": "--time-budget",
    "task_timeout_s": "--task-timeout",
    "seed": "--seed",
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one-line ConfigErrors, not exits."""

    def error(self, message: str) -> NoReturn:
        """Raise a ConfigError naming the subcommand, instead of exiting."""
        command = self.prog.removeprefix("hmmsim").strip()
        raise ConfigError(f"{command}: {message}" if command else message)


# -- output ----------------------------------------------------------------


def _out(text: str) -> None:
    sys.stdout.write(text)


def _err(text: str) -> None:
    sys.stderr.write(f"hmmsim: {text}\n")


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _width() -> int:
    """COLUMNS if set, else the terminal's width, else 120 (not a terminal)."""
    import shutil  # noqa: PLC0415 - start-up time

    return shutil.get_terminal_size((120, 24)).columns


# -- argument parsing --------------------------------------------------------


def _strategies() -> tuple[list[str], str]:
    from hmmsim.engine.strategies import REGISTRY  # noqa: PLC0415 - start-up time

    names = [name for name, info in REGISTRY.items() if info.selectable]
    text = "; ".join(f"{name}: {REGISTRY[name].summary}" for name in names)
    return names, text


def _explore_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("exploration")
    names, described = _strategies()
    group.add_argument(
        "--strategy",
        choices=names,
        help=f"how to explore (default: dpor, or the profile's): {described}",
    )
    group.add_argument("--seed", type=int, help="seed of pct and random (default: 0)")
    group.add_argument(
        "--max-executions",
        type=int,
        metavar="N",
        help="stop after N executions (default: 100000 for dpor and dfs; "
        "none for pct and random, which stop on the time budget)",
    )
    group.add_argument(
        "--max-steps",
        type=int,
        metavar="N",
        help="cut an execution after N steps (outcome step-limit; default: 2000)",
    )
    group.add_argument(
        "--preemption-bound",
        type=int,
        metavar="N",
        help="skip schedules with more than N preemptions (then never VERIFIED)",
    )
    group.add_argument(
        "--pct-depth",
        type=int,
        metavar="N",
        help="bug depth of pct: N-1 priority change points (default: 3)",
    )
    group.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="stop after this long, also in the middle of an execution "
        "(default: none for dpor and dfs; 60 for pct and random)",
    )
    group.add_argument(
        "--task-timeout",
        type=float,
        metavar="SECONDS",
        help="report a task that runs this long without reaching an hmmsim "
        "operation as a hung-task finding (default: 5)",
    )
    group.add_argument(
        "--keep-going",
        action="store_true",
        default=None,
        help="pct and random: collect every violation kind up to the budget "
        "instead of stopping at the first violation",
    )
    group.add_argument(
        "--check-determinism",
        action="store_true",
        default=None,
        help="replay every counterexample twice more and fail (exit 4) if they differ",
    )
    group.add_argument(
        "--locations",
        action="store_true",
        default=None,
        help="show the model source line of every step in timelines (slower)",
    )
    group.add_argument(
        "--store",
        metavar="DIR",
        help="counterexample store: replay its saved schedules first, save new "
        "ones (default: $HMMSIM_STORE or .hmmsim; 'off': none)",
    )
    group.add_argument(
        "--no-store", action="store_true", help="neither replay nor save schedules"
    )
    group.add_argument(
        "--json", metavar="FILE", help="write the JSON report to FILE ('-': stdout)"
    )
    group.add_argument(
        "--timings",
        action="store_true",
        help="add wall-clock 'seconds' to the JSON report (breaks byte-identity)",
    )
    group.add_argument(
        "--quiet", "-q", action="store_true", help="no progress; short results"
    )
    return parent


def _parser() -> _Parser:
    parser = _Parser(
        prog="hmmsim",
        description="Explore interleavings of the HMM model and report violations. "
        "Model files given as PATH.py are imported and run as Python code.",
    )
    parser.add_argument("--version", action="version", version=f"hmmsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    explore = _explore_options()

    listing = sub.add_parser("list", help="list scenarios and their variants")
    listing.add_argument(
        "-v", "--verbose", action="store_true", help="add each scenario's description"
    )

    check = sub.add_parser("check", parents=[explore], help="explore scenarios")
    check.add_argument(
        "target",
        nargs="?",
        metavar="SCENARIO|PATH.py[:NAME]",
        help="a scenario name (see 'hmmsim list') or a model file (run as Python)",
    )
    check.add_argument(
        "--variant", metavar="V", help="the variant (default: the scenario's default)"
    )
    check.add_argument(
        "--all", action="store_true", help="every variant (of every scenario)"
    )
    check.add_argument(
        "--report",
        metavar="DIR",
        help=f"write an HTML report to DIR (with --all: default {DEFAULT_REPORT_DIR})",
    )
    check.add_argument(
        "--fail-on-violation",
        action="store_true",
        help="exit 1 if any violation was found (or a unit ended in an error)",
    )
    check.add_argument(
        "--fail-on-unexpected",
        action="store_true",
        help="exit 1 if a result differs from the scenario's declared expectation",
    )
    check.add_argument(
        "--full", action="store_true", help="show the set-up steps in timelines"
    )
    check.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="explore on N worker processes (default: one per CPU; 1: in this "
        "process); each DPOR exploration is split into work units that all "
        "workers share (same JSON for every N)",
    )
    check.add_argument(
        "--cluster",
        metavar="ADDRESS|local:N",
        help="run the work units on a Dask cluster (scheduler ADDRESS, or a "
        "local cluster of N processes); needs pip install 'hmmsim[cluster]'",
    )

    rep = sub.add_parser("replay", help="replay a token or a JSON report")
    rep.add_argument(
        "source",
        metavar="TOKEN|FILE.json",
        help="a replay token printed by check, or a report written by --json",
    )
    rep.add_argument(
        "--file",
        metavar="PATH.py",
        help="the model file of the scenario (imported and run as Python); "
        "never taken from a report",
    )
    rep.add_argument(
        "--quiet", "-q", action="store_true", help="print nothing if it reproduces"
    )
    rep.add_argument(
        "--full", action="store_true", help="show the set-up steps in the timeline"
    )
    rep.add_argument(
        "--locations",
        action="store_true",
        help="show the model source line of every step (slower)",
    )

    compare = sub.add_parser(
        "compare",
        aliases=["explain"],
        parents=[explore],
        help="run two or more variants, show how their outcomes differ and replay "
        "each counterexample on the others",
    )
    compare.add_argument(
        "target",
        metavar="SCENARIO|PATH.py[:NAME]",
        help="a scenario name or a model file (run as Python)",
    )
    compare.add_argument(
        "variants",
        nargs="*",
        metavar="VARIANT",
        help="two or more variants (default: every variant of the scenario)",
    )
    pin = sub.add_parser(
        "pin", help="write a pytest test that replays a token and asserts its kind"
    )
    pin.add_argument(
        "token", metavar="TOKEN", help="a replay token printed by check or replay"
    )
    pin.add_argument("--file", metavar="PATH.py", help="the user file of the scenario")
    pin.add_argument(
        "--output",
        "-o",
        metavar="TEST.py",
        help="write the test here (default: stdout)",
    )
    pin.add_argument(
        "--expect",
        choices=("absent", "present"),
        default="absent",
        help="the test asserts the kind no longer occurs (absent, the default: "
        "a regression test for a fix) or still occurs (present)",
    )
    _museum_parser(sub)
    return parser


def _museum_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    museum = sub.add_parser(
        "museum",
        help="the race museum: upstream fixes, each reproduced before and "
        "verified after (docs/museum.md)",
    )
    actions = museum.add_subparsers(
        dest="museum_command",
        metavar="ACTION",
        help="list (default), check or show",
    )
    actions.add_parser("list", help="list the exhibits (the default)")
    for name, text in (
        (
            "check",
            "explore every exhibit's before and after exhaustively and "
            "judge its pin (exit 1 if one fails)",
        ),
        ("show", "check exhibits and print each in full, with its CPU diagram"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "slugs",
            nargs="*",
            metavar="SLUG",
            help=(
                "exhibits to check, by slug or commit id (7+ hex digits; "
                "default: all; see 'hmmsim museum list')"
            ),
        )
        action.add_argument(
            "--jobs",
            "-j",
            type=int,
            metavar="N",
            help="explore on N worker processes (default: one per CPU)",
        )
        action.add_argument(
            "--json",
            metavar="FILE",
            help="write the museum's JSON report to FILE ('-': stdout)",
        )
        action.add_argument(
            "--report",
            metavar="DIR",
            help="write museum.html (and its counterexample pages) to DIR",
        )
        action.add_argument(
            "--quiet", "-q", action="store_true", help="no progress; verdicts only"
        )


# -- scenarios and configs ---------------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "strategy": args.strategy,
        "seed": args.seed,
        "max_executions": args.max_executions,
        "max_steps": args.max_steps,
        "preemption_bound": args.preemption_bound,
        "pct_depth": args.pct_depth,
        "time_budget_s": args.time_budget,
        "task_timeout_s": args.task_timeout,
        "stop_on_first": False if args.keep_going else None,
        "check_determinism": args.check_determinism,
        "capture_locations": args.locations,
    }


def _config(scenario: Scenario, args: argparse.Namespace) -> ExploreConfig:
    from hmmsim.service import resolve_config  # noqa: PLC0415 - start-up time

    try:
        return resolve_config(scenario, overrides=_overrides(args))
    except ConfigError as exc:
        message = str(exc)
        for field, option in _OPTION_OF.items():
            if message.startswith(field + " "):
                message = option + message.removeprefix(field)
        raise ConfigError(message) from None


# -- progress ----------------------------------------------------------------


def progress_text(executions: int, seconds: float, open_points: int | None) -> str:
    """Return the progress of one unit: executions, their rate, DPOR's open points.

    An exhaustive exploration has no meaningful total (a count bound is not
    its size), so progress shows the rate and, for DPOR, the backtrack points
    still open, which fall to zero at exhaustion.
    """
    rate = executions / seconds if seconds > 0 else 0.0
    text = f"{executions} executions, {rate:.0f}/s"
    if open_points is not None:
        text += f", {open_points} open backtrack points"
    return text


def _pct_command(unit: Unit) -> str:
    """The command that samples ``unit``'s scenario with PCT instead."""
    import shlex  # noqa: PLC0415 - start-up time

    name = unit.scenario.name
    target = name if unit.file is None else f"{unit.file}:{name}"
    return shlex.join(
        ["hmmsim", "check", target, "--variant", unit.variant, "--strategy", "pct"]
    )


def estimate_warning(unit: Unit, estimate: Estimate) -> str | None:
    """Return the warning for a run that looks too large for its bounds, if it does."""
    bound = estimate.beyond(unit.config)
    if bound is None:
        return None
    return (
        f"warning: {unit.scenario.name}/{unit.variant}: exhaustive DPOR looks like roughly "
        f"{estimate.executions:,} executions (~{estimate.seconds_needed():.0f} s on "
        f"one core; a rough estimate from the first {estimate.sample}), more than "
        f"{bound} allows; PCT samples schedules and finds shallow bugs fast: "
        f"{_pct_command(unit)}"
    )


def overrun_warning(
    unit: Unit, executions: int, seconds: float, estimate: Estimate | None
) -> str | None:
    """Return the warning for a DPOR run that is outgrowing its bounds, if it is.

    The first unit's estimate (:func:`estimate_warning`) is low more often
    than high, so a run it let pass is watched as it goes: once it has used
    half of ``--max-executions`` or of ``--time-budget``, or run past twice
    the estimate, without finishing, it is unlikely to finish in time.
    """
    config = unit.config
    if config.strategy != "dpor":
        return None
    reasons = []
    if config.max_executions is not None and 2 * executions >= config.max_executions:
        reasons.append(f"half of --max-executions {config.max_executions}")
    budget = config.time_budget_s
    if budget is not None and 2 * seconds >= budget:
        reasons.append(f"half of --time-budget {budget:g}")
    if estimate is not None and executions > 2 * estimate.executions:
        reasons.append(f"twice the first estimate of {estimate.executions:,}")
    if not reasons:
        return None
    return (
        f"warning: {unit.scenario.name}/{unit.variant}: exhaustive DPOR has not finished "
        f"after {executions:,} executions ({seconds:.0f} s), past {' and '.join(reasons)}, "
        f"and may not finish within its bounds; PCT samples schedules and finds "
        f"shallow bugs fast: {_pct_command(unit)}"
    )


class _Progress:
    """Progress on stderr: rich bars on a terminal, one line per run otherwise.

    The bars are redrawn by the events themselves (``auto_refresh=False``, at
    most ten times a second), so no thread runs while workers are forked.
    Each unit's bar pulses (no total) beside :func:`progress_text`; the
    overall bar counts runs.
    """

    def __init__(self, *, quiet: bool, total_runs: int) -> None:
        """Report the progress of ``total_runs`` runs (nothing when quiet)."""
        self.quiet = quiet
        self.total_runs = total_runs
        self._bars: Progress | None = None
        self._overall: TaskID | None = None
        self._tasks: dict[int, TaskID] = {}
        self._started: dict[int, float] = {}
        self._open: dict[int, int] = {}
        self._units: dict[int, Unit] = {}
        self._estimates: dict[int, Estimate] = {}
        self._warned: set[int] = set()
        self._drawn = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        """Show the bars while the block runs (on a terminal only)."""
        if self.quiet or not sys.stderr.isatty():
            yield
            return
        from rich.console import Console  # noqa: PLC0415 - pragma: no cover
        from rich.progress import (  # noqa: PLC0415 - pragma: no cover
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bars = Progress(  # pragma: no cover - needs a terminal
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[text]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            auto_refresh=False,
        )
        with bars:  # pragma: no cover - needs a terminal
            self._bars = bars
            self._overall = bars.add_task(
                "all runs", total=self.total_runs, text=f"of {self.total_runs} runs"
            )
            bars.refresh()
            yield
        self._bars = None  # pragma: no cover - needs a terminal

    def _draw(self, *, now: bool = False) -> None:  # pragma: no cover - terminal
        moment = time.monotonic()
        if self._bars is not None and (now or moment - self._drawn >= 0.1):
            self._drawn = moment
            self._bars.refresh()

    def started(self, index: int, unit: Unit) -> None:
        """Add a bar for unit ``index``."""
        self._started[index] = time.monotonic()
        self._units[index] = unit
        if self._bars is None:
            return
        self._tasks[index] = self._bars.add_task(  # pragma: no cover - terminal
            f"{unit.scenario.name}/{unit.variant}", total=None, text="starting"
        )
        self._draw(now=True)  # pragma: no cover - needs a terminal

    def measured(self, index: int, open_points: int) -> None:
        """Note DPOR's open backtrack points of unit ``index``."""
        self._open[index] = open_points

    def progressed(self, index: int, executions: int) -> None:
        """Move the bar of unit ``index``; warn once if it outgrows its bounds."""
        seconds = time.monotonic() - self._started.get(index, time.monotonic())
        unit = self._units.get(index)
        if unit is not None and index not in self._warned:
            line = overrun_warning(
                unit, executions, seconds, self._estimates.get(index)
            )
            if line is not None:
                self._warned.add(index)
                self._say(line)
        if self._bars is None or index not in self._tasks:
            return
        self._bars.update(  # pragma: no cover - needs a terminal
            self._tasks[index],
            completed=executions,
            text=progress_text(executions, seconds, self._open.get(index)),
        )
        self._draw()  # pragma: no cover - needs a terminal

    def estimated(self, index: int, unit: Unit, estimate: Estimate) -> None:
        """Warn early when a run looks too large for its bounds (suggest PCT)."""
        self._estimates[index] = estimate
        line = estimate_warning(unit, estimate)
        if line is None:
            return
        self._warned.add(index)
        self._say(line)

    def _say(self, line: str) -> None:
        """Print a warning line above the bars (nothing when quiet)."""
        if self.quiet:
            return
        if self._bars is not None:  # pragma: no cover - needs a terminal
            self._bars.console.print(line, markup=False, highlight=False)
        else:
            _err(line)

    def finished(self, index: int, done: ScenarioRun) -> None:
        """Record that a run finished."""
        from hmmsim.report.text import outcome_label  # noqa: PLC0415

        bars = self._bars
        if bars is not None:  # pragma: no cover - needs a terminal
            task = self._tasks.pop(index, None)
            if task is not None:
                bars.remove_task(task)
            if self._overall is not None:
                bars.advance(self._overall)
            self._draw(now=True)
        elif not self.quiet:
            kinds = ", ".join(done.result.kinds)
            why = done.error or done.result.exit_reason.value
            _err(
                f"{done.scenario.name}/{done.variant}: {outcome_label(done)}"
                + (f" ({kinds})" if kinds else "")
                + f" after {done.result.executions} executions ({why})"
            )


# -- commands ----------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    from hmmsim.scenarios import all_scenarios  # noqa: PLC0415 - start-up time

    scenarios = all_scenarios()
    if not scenarios:
        _out("no scenario is registered\n")
        return EXIT_OK
    width = max(len(s.name) for s in scenarios)
    for item in scenarios:
        variants = ", ".join(
            v + ("*" if v == item.default_variant else "") for v in item.variants
        )
        _out(f"{item.name.ljust(width)}  {item.title}\n")
        _out(f"{'':{width}}  variants: {variants}\n")
        if args.verbose and item.description:
            for line in item.description.splitlines():
                _out(f"{'':{width}}    {line}".rstrip() + "\n")
    _out("(* default variant)\n")
    return EXIT_OK


def _report_dir(args: argparse.Namespace) -> str | None:
    report: str | None = getattr(args, "report", None)
    if report is not None:
        return report
    return DEFAULT_REPORT_DIR if getattr(args, "all", False) else None


def _check_targets(args: argparse.Namespace) -> None:
    """Fail before exploring if an output target cannot be written (D9)."""
    from hmmsim.service import check_output_target  # noqa: PLC0415

    if args.json is not None and args.json != "-":
        check_output_target(args.json, option="--json")
    report = _report_dir(args)
    if report is not None:
        check_output_target(report, option="--report", directory=True)


def _workers(args: argparse.Namespace, units: int) -> int:
    from hmmsim.parallel import available_cpus  # noqa: PLC0415 - start-up time

    jobs: int | None = getattr(args, "jobs", None)
    if jobs is None:
        return min(available_cpus(), units)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}")
    return min(jobs, units)


@contextmanager
def _model_output_to_stderr(args: argparse.Namespace) -> Iterator[None]:
    """With ``--json -``, send what the model prints to stderr, not into the JSON."""
    if args.json != "-":
        yield
        return
    saved: int | None = None
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # captured in tests
        fd = -1
    if fd >= 0:
        sys.stdout.flush()
        saved = os.dup(fd)
        os.dup2(sys.stderr.fileno(), fd)  # forked workers inherit this
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def _explore_all(
    units: Sequence[Unit], args: argparse.Namespace
) -> tuple[list[ScenarioRun], bool]:
    from hmmsim.parallel import explore_units  # noqa: PLC0415 - start-up time

    workers = _workers(args, len(units))
    progress = _Progress(quiet=args.quiet, total_runs=len(units))
    from hmmsim.store import explore_with_store, store_from  # noqa: PLC0415

    store = store_from(
        getattr(args, "store", None), disabled=getattr(args, "no_store", False)
    )
    cluster: str | None = getattr(args, "cluster", None)
    # Every DPOR exploration runs as the same work units whatever the number
    # of workers (this process for --jobs 1), so the JSON is the same for
    # every --jobs and every backend, and the units of a long run spread over
    # every worker.  Other strategies run one exploration per worker process.
    if cluster is not None or any(u.config.strategy == "dpor" for u in units):
        from hmmsim.parallel import available_cpus, explore_split  # noqa: PLC0415

        jobs: int = getattr(args, "jobs", None) or available_cpus()

        def explore(todo: Sequence[Unit]) -> tuple[list[ScenarioRun], bool]:
            return explore_split(todo, progress, workers=jobs, cluster=cluster)

    else:

        def explore(todo: Sequence[Unit]) -> tuple[list[ScenarioRun], bool]:
            return explore_units(todo, progress, workers=workers)

    notes: list[str] = []
    with progress.running(), _model_output_to_stderr(args):
        done = explore_with_store(store, units, explore, notes=notes)
    if not args.quiet:
        for note in notes:
            _err(note)
    return done


def _report_meta(args: argparse.Namespace) -> dict[str, str]:
    """The command, date and git revision the HTML pages name (never the JSON)."""
    import datetime  # noqa: PLC0415 - start-up time
    import shlex  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    revision = ""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hangs
        done = None
    if done is not None and done.returncode == 0:
        revision = done.stdout.strip()
    now = datetime.datetime.now(datetime.UTC)
    return {
        "command": shlex.join(["hmmsim", *getattr(args, "argv", [])]),
        "generated": now.strftime("%Y-%m-%d %H:%M UTC"),
        "revision": revision,
    }


def _write_files(runs: Sequence[ScenarioRun], args: argparse.Namespace) -> bool:
    """Write the --json file and the HTML report; return whether all went well.

    A failure is one error line on stderr: the summary is already out.
    """
    from hmmsim.service import json_text, write_output  # noqa: PLC0415

    fine = True
    if args.json is not None and args.json != "-":
        try:
            write_output(args.json, json_text(runs, timings=args.timings))
        except OSError as exc:
            _err(f"error: --json {args.json}: cannot write: {exc.strerror or exc}")
            fine = False
    report_dir = _report_dir(args)
    if report_dir is not None:
        from hmmsim.report.html import write_report  # noqa: PLC0415 - start-up

        try:
            index = write_report(
                report_dir, runs, version=__version__, **_report_meta(args)
            )
        except OSError as exc:
            _err(f"error: --report {report_dir}: cannot write: {exc.strerror or exc}")
            fine = False
        else:
            if not args.quiet:
                _err(f"HTML report: {index}")
    return fine


def _print_summary(runs: Sequence[ScenarioRun], args: argparse.Namespace) -> None:
    from hmmsim.report.text import render_replays, render_summary  # noqa: PLC0415

    _out(render_summary(runs, timings=not args.quiet))
    replays = render_replays(runs)
    if replays:
        _out("\n" + replays)


def _print_short(item: ScenarioRun) -> None:
    from hmmsim.report.text import outcome_label  # noqa: PLC0415

    kinds = ", ".join(item.result.kinds)
    _out(f"{item.scenario.name}/{item.variant}: {outcome_label(item)}")
    _out(f" ({kinds})" if kinds else "")
    _out(f": {item.error}\n" if item.error else "\n")
    for cx in item.result.counterexamples:
        _out(item.replay_command(cx) + "\n")


def _print_results(
    runs: Sequence[ScenarioRun], args: argparse.Namespace, *, many: bool
) -> None:
    """Print the results on stdout (the JSON itself with ``--json -``)."""
    if args.json == "-":
        from hmmsim.service import json_text  # noqa: PLC0415

        _out(json_text(runs, timings=args.timings))
        return
    if many:
        _print_summary(runs, args)
        return
    from hmmsim.report.text import render_run  # noqa: PLC0415

    for item in runs:
        if args.quiet:
            _print_short(item)
        else:
            _out(render_run(item, version=__version__, width=_width(), full=args.full))


def _exit_code(runs: Sequence[ScenarioRun], args: argparse.Namespace) -> int:
    fail_on_violation = getattr(args, "fail_on_violation", False)
    fail_on_unexpected = getattr(args, "fail_on_unexpected", False)
    errors = any(r.error is not None for r in runs)
    if fail_on_violation and (errors or any(r.result.counterexamples for r in runs)):
        return EXIT_VIOLATION
    if fail_on_unexpected and any(r.as_expected is False for r in runs):
        return EXIT_VIOLATION
    return EXIT_OK


def _finish(
    runs: Sequence[ScenarioRun],
    args: argparse.Namespace,
    *,
    many: bool,
    interrupted: str | None,
) -> int:
    """Report ``runs``: stdout first, then the files; return the exit status.

    The status is known before anything is printed, so a reader that goes
    away (``| true``) does not turn a failing check into status 0.
    """
    global _status_if_pipe_closes  # noqa: PLW0603 - read by main() on EPIPE
    failed = [r for r in runs if r.error is not None]
    status = EXIT_INTERRUPTED if interrupted else _exit_code(runs, args)
    if failed and status != EXIT_INTERRUPTED:
        status = EXIT_USAGE
    _status_if_pipe_closes = status
    _print_results(runs, args, many=many)
    sys.stdout.flush()
    if not _write_files(runs, args) and status == EXIT_OK:
        status = EXIT_USAGE
    for run in failed:
        _err(f"error: {run.scenario.name}/{run.variant}: {_one_line(run.error or '')}")
    if interrupted:
        _err(interrupted)
    return status


def _cmd_check(args: argparse.Namespace) -> int:
    from hmmsim.service import plan  # noqa: PLC0415 - start-up time

    _check_targets(args)
    units = plan(
        args.target,
        variant=args.variant,
        every=args.all,
        configure=lambda scenario: _config(scenario, args),
    )
    runs, interrupted = _explore_all(units, args)
    note = None
    if interrupted:
        note = f"interrupted; {len(units) - len(runs)} runs not started"
        if runs:
            last = runs[-1]
            note = (
                f"interrupted after {last.result.executions} executions of "
                f"{last.scenario.name}/{last.variant} "
                f"({last.result.describe_exit()}); "
                f"{len(units) - len(runs)} runs not started"
            )
    return _finish(runs, args, many=args.all or len(runs) > 1, interrupted=note)


def _cmd_compare(args: argparse.Namespace) -> int:
    from hmmsim.report.text import render_comparison  # noqa: PLC0415
    from hmmsim.service import Unit, one_scenario  # noqa: PLC0415

    _check_targets(args)
    item, file = one_scenario(args.target, command="compare")
    variants = args.variants or list(item.variants)
    if len(variants) < 2:
        raise ConfigError(
            f"compare needs two or more variants of {item.name!r} "
            f"(variants: {', '.join(item.variants)})"
        )
    config = _config(item, args)
    units = [
        Unit(scenario=item, variant=item.check_variant(v), config=config, file=file)
        for v in variants
    ]
    args.jobs = 1
    runs, interrupted = _explore_all(units, args)
    if interrupted:
        return _finish(runs, args, many=True, interrupted="interrupted")
    if args.json == "-":
        return _finish(runs, args, many=True, interrupted=None)
    from hmmsim.crosscheck import cross_replays  # noqa: PLC0415 - start-up
    from hmmsim.report.sidebyside import render_cross  # noqa: PLC0415
    from hmmsim.report.text import render_replays  # noqa: PLC0415

    _out(render_comparison(*runs))
    replays = render_replays(runs)
    if replays:
        _out("\n" + replays)
    cross = render_cross(cross_replays(runs), width=_width())
    if cross:
        _out("\n" + cross)
    sys.stdout.flush()
    return EXIT_OK if _write_files(runs, args) else EXIT_USAGE


def _cmd_replay(args: argparse.Namespace) -> int:
    from hmmsim.report.text import render_replay  # noqa: PLC0415
    from hmmsim.service import replay_item, replay_items  # noqa: PLC0415

    failed = []
    for item in replay_items(args.source, args.file):
        done = replay_item(item, locations=args.locations)
        if not args.quiet:
            _out(
                render_replay(
                    label=done.label,
                    kind=item.kind,
                    result=done.result,
                    reproduced=done.reproduced,
                    width=_width(),
                    full=args.full,
                    full_hint="--full shows them",
                )
            )
        if not done.reproduced:
            failed.append(
                f"{done.label}: expected {item.kind}, "
                f"found {', '.join(done.kinds) or 'none'}"
            )
    if failed:
        _err("error: replay did not reproduce: " + "; ".join(failed))
        return EXIT_DIVERGED
    return EXIT_OK


def _cmd_pin(args: argparse.Namespace) -> int:
    from hmmsim.pin import pin_source, replay_pinned  # noqa: PLC0415 - start-up
    from hmmsim.service import check_output_target, write_output  # noqa: PLC0415

    if args.output is not None:
        check_output_target(args.output, option="--output")

    source = pin_source(
        args.token,
        file=args.file,
        output=args.output,
        expect=args.expect,
        version=__version__,
    )
    kind, result = replay_pinned(args.token, file=args.file)
    shows = kind in {f.kind for f in result.findings}
    if args.output is None:
        _out(source)
    else:
        write_output(args.output, source)
        _err(f"wrote {args.output}")
    _err(
        f"note: the schedule {'shows' if shows else 'does not show'} {kind} on the "
        f"model now, so the test {'fails' if shows == (args.expect == 'absent') else 'passes'}"
        " until that changes"
    )
    return EXIT_OK


def _museum_entries(args: argparse.Namespace) -> tuple[list[MuseumEntry], bool]:
    """Explore the chosen exhibits' before and after variants; judge each."""
    from hmmsim import museum  # noqa: PLC0415 - start-up time
    from hmmsim.service import Unit, resolve_config  # noqa: PLC0415

    items = museum.select(args.slugs)
    if not items:
        raise ConfigError("museum: no exhibit is registered")
    _check_targets(args)
    units = []
    for item in items:
        scenario = museum.scenario_of(item)
        # An exhibit is judged by exhaustive DPOR, whatever the profile says.
        config = resolve_config(
            scenario, overrides={"strategy": "dpor", "stop_on_first": False}
        )
        units += [
            Unit(scenario=scenario, variant=v, config=config, file=None)
            for v in (item.before, item.after)
        ]
    args.store, args.no_store, args.cluster = None, True, None
    runs, interrupted = _explore_all(units, args)
    if interrupted:
        return [], True
    entries = [
        museum.examine(item, runs[2 * i], runs[2 * i + 1])
        for i, item in enumerate(items)
    ]
    return entries, False


def _write_museum_files(
    entries: Sequence[MuseumEntry], args: argparse.Namespace
) -> bool:
    from hmmsim.report.museum import museum_json  # noqa: PLC0415 - start-up time
    from hmmsim.service import write_output  # noqa: PLC0415

    fine = True
    if args.json is not None and args.json != "-":
        try:
            write_output(args.json, museum_json(entries, version=__version__))
        except OSError as exc:
            _err(f"error: --json {args.json}: cannot write: {exc.strerror or exc}")
            fine = False
    if args.report is not None:
        from hmmsim.report.html import write_museum  # noqa: PLC0415 - start-up

        try:
            page = write_museum(
                args.report, entries, version=__version__, **_report_meta(args)
            )
        except OSError as exc:
            _err(f"error: --report {args.report}: cannot write: {exc.strerror or exc}")
            fine = False
        else:
            if not args.quiet:
                _err(f"HTML museum: {page}")
    return fine


def _cmd_museum(args: argparse.Namespace) -> int:
    global _status_if_pipe_closes  # noqa: PLW0603 - read by main() on EPIPE
    from hmmsim.report import museum as museum_report  # noqa: PLC0415

    if args.museum_command in (None, "list"):
        from hmmsim.museum import exhibits  # noqa: PLC0415 - start-up time

        _out(museum_report.render_list(exhibits()))
        return EXIT_OK
    entries, interrupted = _museum_entries(args)
    if interrupted:
        _err("interrupted; no exhibit was judged")
        return EXIT_INTERRUPTED
    failed = [e for e in entries if not e.judgement.passed]
    status = EXIT_VIOLATION if failed else EXIT_OK
    _status_if_pipe_closes = status
    if args.json == "-":
        _out(museum_report.museum_json(entries, version=__version__))
    elif args.museum_command == "show" and not args.quiet:
        for i, entry in enumerate(entries):
            _out(
                ("\n" if i else "") + museum_report.render_entry(entry, width=_width())
            )
    else:
        _out(museum_report.render_verdicts(entries))
    sys.stdout.flush()
    if not _write_museum_files(entries, args) and status == EXIT_OK:
        status = EXIT_USAGE
    for entry in failed:
        _err(
            f"error: exhibit {entry.exhibit.slug} fails its pin: {entry.judgement.reason}"
        )
    return status


_COMMANDS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "list": _cmd_list,
    "check": _cmd_check,
    "replay": _cmd_replay,
    "compare": _cmd_compare,
    "explain": _cmd_compare,
    "pin": _cmd_pin,
    "museum": _cmd_museum,
}


def _failure(exc: Exception) -> int:
    """Print one line for ``exc`` and return its exit status.

    ``HMMSIM_TRACEBACK=1`` adds the traceback of an unexpected error on
    stderr; the status does not change.
    """
    if isinstance(exc, ReplayDiverged):
        _err(f"error: replay diverged: {_one_line(str(exc))}")
        return EXIT_DIVERGED
    if isinstance(exc, InternalError):
        _err(f"error: {_one_line(str(exc))}")
        return EXIT_INTERNAL
    if isinstance(exc, HmmsimError):
        _err(f"error: {_one_line(str(exc))}")
        return EXIT_USAGE
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        _err(f"error: {where}{exc.strerror or exc}")
        return EXIT_USAGE
    if os.environ.get("HMMSIM_TRACEBACK"):
        import traceback  # noqa: PLC0415 - start-up time

        traceback.print_exception(exc, file=sys.stderr)
    _err(
        f"error: {INTERNAL_BUG_TAG} {type(exc).__name__}: {_one_line(str(exc))} "
        "(set HMMSIM_TRACEBACK=1 for the traceback)"
    )
    return EXIT_INTERNAL


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (e.g. captured in tests)
        pass


#: The status of the results being printed, for a reader that goes away.
_status_if_pipe_closes = EXIT_OK


def _run(argv: Sequence[str] | None) -> int:
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:
        _out(f"hmmsim {__version__}\n")  # the quick path: no argparse, no model
        return EXIT_OK
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return _COMMANDS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hmmsim`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see the module docstring).
    """
    global _status_if_pipe_closes  # noqa: PLW0603 - one command per call
    _status_if_pipe_closes = EXIT_OK
    try:
        return _run(argv)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``hmmsim ... | head``): stop quietly, as
        # Unix tools do, with the status the results called for; point stdout
        # at /dev/null so the interpreter's final flush does not complain.
        _silence_stdout()
        return _status_if_pipe_closes
    except Exception as exc:  # every error becomes one line and a status
        return _failure(exc)
