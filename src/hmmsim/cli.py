"""The ``hmmsim`` command: list, check, replay and compare scenarios.

Subcommands (``docs/cli.md`` is the full reference)::

    hmmsim list [-v]
    hmmsim check [SCENARIO | PATH.py[:NAME]] [--variant V | --all] [options]
    hmmsim replay TOKEN | REPORT.json [--file PATH.py]
    hmmsim compare SCENARIO [VARIANT VARIANT ...] [options]   (alias: explain)

Exit codes:

    0    the command completed, whatever it found
    1    a violation was found and --fail-on-violation was given (or a result
         differed from the scenario's expectation and --fail-on-unexpected was)
    2    usage or input error: unknown scenario or variant, a file that is
         missing, does not import or defines no scenario, absurd bounds, a bad
         or tampered replay token
    3    internal error (a bug in hmmsim; the message carries the tag
         ``[hmmsim internal bug]``)
    4    a replay did not reproduce (the schedule diverged, or the recorded
         violation kind did not occur)
    130  interrupted; what was explored so far is reported first

Results go to stdout; progress and errors go to stderr.  Every error is one
line, ``hmmsim: error: ...``, never a traceback (set ``HMMSIM_TRACEBACK=1``
to see the traceback of an internal error).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from hmmsim import __version__
from hmmsim.api import resolve_config, run
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExitReason, Schedule, replay
from hmmsim.errors import (
    INTERNAL_BUG_TAG,
    ConfigError,
    HmmsimError,
    InternalError,
    ReplayDiverged,
    ReplayError,
)
from hmmsim.loader import is_file_target, load_file, select, split_target
from hmmsim.parallel import Unit, available_cpus, explore_units
from hmmsim.report import ScenarioRun
from hmmsim.report import json as json_report
from hmmsim.report.html import write_report
from hmmsim.report.json import ReplayItem
from hmmsim.report.text import (
    outcome_label,
    render_comparison,
    render_replay,
    render_replays,
    render_run,
    render_summary,
)
from hmmsim.scenarios import NAME_PATTERN, Scenario, all_scenarios, get

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

STRATEGIES: Final = ("dpor", "dfs", "pct", "random")
DEFAULT_REPORT_DIR: Final = "hmmsim-report"

#: ExploreConfig field -> the option that sets it, for error messages.
_OPTION_OF: Final = {
    "max_executions": "--max-executions",
    "max_steps": "--max-steps",
    "preemption_bound": "--preemption-bound",
    "pct_depth": "--pct-depth",
    "time_budget_s": "--time-budget",
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
    return shutil.get_terminal_size((120, 24)).columns


# -- argument parsing --------------------------------------------------------


def _explore_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("exploration")
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="exploration strategy (default: dpor, or the profile's)",
    )
    group.add_argument("--seed", type=int, help="seed of pct and random")
    group.add_argument("--max-executions", type=int, metavar="N")
    group.add_argument("--max-steps", type=int, metavar="N")
    group.add_argument("--preemption-bound", type=int, metavar="N")
    group.add_argument("--pct-depth", type=int, metavar="N")
    group.add_argument("--time-budget", type=float, metavar="SECONDS")
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
        description="Explore interleavings of the HMM model and report violations.",
    )
    parser.add_argument("--version", action="version", version=f"hmmsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    explore = _explore_options()

    listing = sub.add_parser("list", help="list scenarios and their variants")
    listing.add_argument("-v", "--verbose", action="store_true")

    check = sub.add_parser("check", parents=[explore], help="explore scenarios")
    check.add_argument("target", nargs="?", metavar="SCENARIO|PATH.py[:NAME]")
    check.add_argument("--variant", metavar="V")
    check.add_argument(
        "--all", action="store_true", help="every variant (of every scenario)"
    )
    check.add_argument("--report", metavar="DIR", help="write an HTML report to DIR")
    check.add_argument("--fail-on-violation", action="store_true")
    check.add_argument("--fail-on-unexpected", action="store_true")
    check.add_argument(
        "--full", action="store_true", help="show the set-up steps in timelines"
    )
    check.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="explore up to N scenario variants at once, in worker processes "
        "(default: one per CPU; 1: in this process)",
    )

    rep = sub.add_parser("replay", help="replay a token or a JSON report")
    rep.add_argument("source", metavar="TOKEN|FILE.json")
    rep.add_argument("--file", metavar="PATH.py", help="the user file of the scenario")
    rep.add_argument("--quiet", "-q", action="store_true")
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
        help="run two variants and show how their outcomes differ",
    )
    compare.add_argument("target", metavar="SCENARIO|PATH.py[:NAME]")
    compare.add_argument(
        "variants",
        nargs="*",
        metavar="VARIANT",
        help="two or more variants (default: every variant of the scenario)",
    )
    return parser


# -- scenarios and configs ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    """One scenario variant to explore."""

    scenario: Scenario
    variant: str
    file: str | None


def _scenarios_of(target: str) -> tuple[list[Scenario], str | None]:
    if not is_file_target(target):
        return [get(target)], None
    path, name = split_target(target)
    return select(load_file(path), name, path), path


def _jobs(args: argparse.Namespace) -> list[_Job]:
    if args.all and args.variant:
        raise ConfigError("check: --all and --variant cannot be combined")
    if args.target is None:
        if not args.all:
            raise ConfigError("check: name a SCENARIO or PATH.py, or give --all")
        scenarios, file = all_scenarios(), None
        if not scenarios:
            raise ConfigError("check --all: no scenario is registered")
    else:
        scenarios, file = _scenarios_of(args.target)
    jobs: list[_Job] = []
    for item in scenarios:
        if args.all:
            variants: Sequence[str] = item.variants
        else:
            variants = [item.check_variant(args.variant or item.default_variant)]
        jobs.extend(_Job(scenario=item, variant=v, file=file) for v in variants)
    return jobs


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "strategy": args.strategy,
        "seed": args.seed,
        "max_executions": args.max_executions,
        "max_steps": args.max_steps,
        "preemption_bound": args.preemption_bound,
        "pct_depth": args.pct_depth,
        "time_budget_s": args.time_budget,
        "check_determinism": args.check_determinism,
        "capture_locations": args.locations,
    }


def _strategy_available(name: str) -> bool:
    if name not in ("dpor", "pct"):
        return True
    return importlib.util.find_spec(f"hmmsim.engine.strategies.{name}") is not None


def _config(job: _Job, args: argparse.Namespace) -> ExploreConfig:
    try:
        config = resolve_config(job.scenario, overrides=_overrides(args))
    except ConfigError as exc:
        message = str(exc)
        for field, option in _OPTION_OF.items():
            if message.startswith(field + " "):
                message = option + message.removeprefix(field)
        raise ConfigError(message) from None
    if _strategy_available(config.strategy):
        return config
    chosen_by_user = (
        args.strategy is not None
        or "HMMSIM_STRATEGY" in os.environ
        or "strategy" in job.scenario.config
    )
    if chosen_by_user:
        raise ConfigError(
            f"strategy {config.strategy!r} is not available in this build yet "
            "(try --strategy dfs)"
        )
    if not getattr(args, "noted_fallback", False):
        args.noted_fallback = True
        _err(f"note: strategy {config.strategy} is not available yet; using dfs")
    return config.replace(strategy="dfs")


# -- progress ----------------------------------------------------------------


class _Progress:
    """Progress on stderr: rich bars on a terminal, one line per run otherwise.

    The bars are redrawn by the events themselves (``auto_refresh=False``, at
    most ten times a second), so no thread runs while workers are forked.
    """

    def __init__(self, *, quiet: bool, total_runs: int) -> None:
        """Report the progress of ``total_runs`` runs (nothing when quiet)."""
        self.quiet = quiet
        self.total_runs = total_runs
        self._bars: Progress | None = None
        self._overall: TaskID | None = None
        self._tasks: dict[int, TaskID] = {}
        self._drawn = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        """Show the bars while the block runs (on a terminal only)."""
        if self.quiet or not sys.stderr.isatty():
            yield
            return
        bars = Progress(  # pragma: no cover - needs a terminal
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            auto_refresh=False,
        )
        with bars:  # pragma: no cover - needs a terminal
            self._bars = bars
            self._overall = bars.add_task("all runs", total=self.total_runs)
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
        if self._bars is None:
            return
        self._tasks[index] = self._bars.add_task(  # pragma: no cover - terminal
            f"{unit.scenario.name}/{unit.variant}", total=unit.config.max_executions
        )
        self._draw(now=True)  # pragma: no cover - needs a terminal

    def progressed(self, index: int, executions: int) -> None:
        """Move the bar of unit ``index``."""
        if self._bars is None or index not in self._tasks:
            return
        self._bars.update(  # pragma: no cover - needs a terminal
            self._tasks[index], completed=executions
        )
        self._draw()  # pragma: no cover - needs a terminal

    def finished(self, index: int, done: ScenarioRun) -> None:
        """Record that a run finished."""
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
            _err(
                f"{done.scenario.name}/{done.variant}: {outcome_label(done)}"
                + (f" ({kinds})" if kinds else "")
                + f" after {done.result.executions} executions"
                f" ({done.result.exit_reason.value})"
            )


# -- commands ----------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
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


def _check_json_target(path: str | None) -> None:
    if path is None or path == "-":
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"--json {path}: directory {parent} does not exist")


def _workers(args: argparse.Namespace, units: int) -> int:
    jobs: int | None = getattr(args, "jobs", None)
    if jobs is None:
        return min(available_cpus(), units)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}")
    return min(jobs, units)


def _explore_all(
    jobs: Sequence[_Job], args: argparse.Namespace
) -> tuple[list[ScenarioRun], bool]:
    units = [
        Unit(
            scenario=job.scenario,
            variant=job.variant,
            config=_config(job, args),
            file=job.file,
        )
        for job in jobs
    ]
    workers = _workers(args, len(units))
    progress = _Progress(quiet=args.quiet, total_runs=len(units))
    with progress.running():
        return explore_units(units, progress, workers=workers)


def _write_files(runs: Sequence[ScenarioRun], args: argparse.Namespace) -> None:
    if args.json is not None:
        text = json_report.dumps(runs, version=__version__, timings=args.timings)
        if args.json == "-":
            _out(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    report_dir = args.report or (DEFAULT_REPORT_DIR if args.all else None)
    if report_dir is not None:
        index = write_report(report_dir, runs, version=__version__)
        if not args.quiet:
            _err(f"HTML report: {index}")


def _print_summary(runs: Sequence[ScenarioRun], args: argparse.Namespace) -> None:
    _out(render_summary(runs, timings=not args.quiet))
    replays = render_replays(runs)
    if replays:
        _out("\n" + replays)


def _print_short(item: ScenarioRun) -> None:
    kinds = ", ".join(item.result.kinds)
    _out(f"{item.scenario.name}/{item.variant}: {outcome_label(item)}")
    _out(f" ({kinds})\n" if kinds else "\n")
    for cx in item.result.counterexamples:
        _out(item.replay_command(cx) + "\n")


def _write_outputs(
    runs: Sequence[ScenarioRun], args: argparse.Namespace, *, many: bool
) -> None:
    _write_files(runs, args)
    if args.json == "-":
        return
    if many:
        _print_summary(runs, args)
        return
    for item in runs:
        if args.quiet:
            _print_short(item)
        else:
            _out(render_run(item, version=__version__, width=_width(), full=args.full))


def _exit_code(runs: Sequence[ScenarioRun], args: argparse.Namespace) -> int:
    if args.fail_on_violation and any(r.result.counterexamples for r in runs):
        return EXIT_VIOLATION
    if args.fail_on_unexpected and any(r.as_expected is False for r in runs):
        return EXIT_VIOLATION
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    _check_json_target(args.json)
    jobs = _jobs(args)
    runs, interrupted = _explore_all(jobs, args)
    _write_outputs(runs, args, many=args.all or len(runs) > 1)
    if interrupted:
        last = runs[-1].result
        _err(
            f"interrupted after {last.executions} executions of "
            f"{runs[-1].scenario.name}/{runs[-1].variant} "
            f"({last.describe_exit()}); {len(jobs) - len(runs)} runs not started"
        )
        return EXIT_INTERRUPTED
    return _exit_code(runs, args)


def _cmd_compare(args: argparse.Namespace) -> int:
    _check_json_target(args.json)
    scenarios, file = _scenarios_of(args.target)
    if len(scenarios) != 1:
        names = ", ".join(s.name for s in scenarios)
        raise ConfigError(
            f"compare: {args.target} defines several scenarios ({names}); "
            "name one as PATH.py:NAME"
        )
    item = scenarios[0]
    variants = args.variants or list(item.variants)
    if len(variants) < 2:
        raise ConfigError(
            f"compare needs two or more variants of {item.name!r} "
            f"(variants: {', '.join(item.variants)})"
        )
    runs: list[ScenarioRun] = []
    for variant in variants:
        job = _Job(scenario=item, variant=item.check_variant(variant), file=file)
        runs.append(run(item, job.variant, config=_config(job, args), file=file))
        if runs[-1].result.exit_reason is ExitReason.INTERRUPTED:
            _out(render_summary(runs))
            _err("interrupted")
            return EXIT_INTERRUPTED
    if args.json is not None:
        text = json_report.dumps(runs, version=__version__, timings=args.timings)
        if args.json == "-":
            _out(text)
            return EXIT_OK
        Path(args.json).write_text(text, encoding="utf-8")
    _out(render_comparison(*runs))
    return EXIT_OK


def _parse_context(context: str) -> tuple[str, str, str]:
    where, _, kind = context.partition(":")
    scenario, sep, variant = where.partition("/")
    if not (sep and NAME_PATTERN.match(scenario) and NAME_PATTERN.match(variant)):
        raise ReplayError(
            f"replay token names {context!r}, not scenario/variant[:kind]"
        )
    return scenario, variant, kind


def _replay_items(source: str, file: str | None) -> list[ReplayItem]:
    if source.endswith(".json") or os.path.exists(source):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: {exc.strerror or exc}") from None
        parsed = json_report.parse(text)
        if not parsed:
            raise ReplayError(f"{source}: the report holds no violation to replay")
        return [
            ReplayItem(
                scenario=p.scenario,
                variant=p.variant,
                kind=p.kind,
                schedule=p.schedule,
                file=file or p.file,
            )
            for p in parsed
        ]
    context, schedule = Schedule.from_token(source)
    scenario, variant, kind = _parse_context(context)
    return [
        ReplayItem(
            scenario=scenario, variant=variant, kind=kind, schedule=schedule, file=file
        )
    ]


def _replay_scenario(item: ReplayItem) -> Scenario:
    if item.file is None:
        try:
            return get(item.scenario)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}; if it comes from a user file, pass --file PATH.py"
            ) from None
    return select(load_file(item.file), item.scenario, item.file)[0]


def _cmd_replay(args: argparse.Namespace) -> int:
    items = _replay_items(args.source, args.file)
    failed = []
    for item in items:
        scenario = _replay_scenario(item)
        program = scenario.program(item.variant)
        config = resolve_config(scenario)
        result = replay(
            program,
            item.schedule,
            capture=True,
            capture_locations=args.locations,
            max_steps=max(config.max_steps, len(item.schedule.tasks)),
        )
        kinds = [f.kind for f in result.findings]
        reproduced = not item.kind or item.kind in kinds
        label = f"{item.scenario}/{item.variant}"
        if not args.quiet:
            _out(
                render_replay(
                    label=label,
                    kind=item.kind,
                    result=result,
                    reproduced=reproduced,
                    width=_width(),
                    full=args.full,
                    full_hint="--full shows them",
                )
            )
        if not reproduced:
            failed.append(
                f"{label}: expected {item.kind}, found {', '.join(kinds) or 'none'}"
            )
    if failed:
        _err("error: replay did not reproduce: " + "; ".join(failed))
        return EXIT_DIVERGED
    return EXIT_OK


_COMMANDS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "list": _cmd_list,
    "check": _cmd_check,
    "replay": _cmd_replay,
    "compare": _cmd_compare,
    "explain": _cmd_compare,
}


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    return _COMMANDS[args.command](args)


def _failure(exc: Exception) -> int:
    """Print one line for ``exc`` and return its exit status."""
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
        raise exc
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hmmsim`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see the module docstring).
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``hmmsim ... | head``): stop quietly, as
        # Unix tools do; point stdout at /dev/null so the interpreter's final
        # flush does not complain again.
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # every error becomes one line and a status
        return _failure(exc)
