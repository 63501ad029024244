"""Scale benchmarks, run by ``make bench`` after bench/run.py.

Measures, with bounded budgets so that the whole run takes minutes:

* executions and time against pages, mirrors and actors (bench/large.py
  worlds), serial DPOR and split DPOR on 1 and 2 worker processes;
* DPOR against PCT: time to the first violation on the pre-patch variant;
* the ``--jobs 1`` / ``--jobs 2`` speedup on concurrent-invalidations v5.3,
  measured, and the speedup the unit schedule allows (from each unit's CPU
  time: what an idle machine would show);
* peak RSS, and the time to a verdict end to end (a fresh ``python -m
  hmmsim check`` process) for a small scenario;
* the "large" world (2 pages, 2 mirrors, 5 actors) on 1 and 2 workers,
  and PCT on it.

Writes bench/results.json (key ``scale``; other keys are kept) and
docs/PERFORMANCE.md with plots in docs/img/perf-*.png (matplotlib).
Wall-clock numbers depend on the machine and on its load; nothing asserts
on them.  Usage: ``python bench/scale.py [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

large: Any = importlib.import_module("large")  # bench/large.py
redundancy: Any = importlib.import_module("redundancy")  # bench/redundancy.py
from hmmsim.backends import Job, run_jobs  # noqa: E402
from hmmsim.backends.local import InlineBackend, ProcessBackend  # noqa: E402
from hmmsim.config import ExploreConfig  # noqa: E402
from hmmsim.engine import ExplorationResult, Instance, explore  # noqa: E402
from hmmsim.engine.partition import (  # noqa: E402
    DporCoordinator,
    copy_graph,
    explore_dpor_unit,
)
from hmmsim.scenarios import Scenario, get  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
REPORT = ROOT / "docs" / "PERFORMANCE.md"
IMAGES = ROOT / "docs" / "img"


class _Quiet:
    def started(self, index: int) -> None:
        del index

    def progressed(self, index: int, executions: int) -> None:
        del index, executions

    def finished(self, index: int, result: ExplorationResult) -> None:
        del index, result


def _scenario(pages: int, mirrors: int, actors: int) -> Scenario:
    return Scenario(
        name=f"scale-p{pages}-m{mirrors}-a{actors}",
        title="bench world",
        description="",
        variants=large.VARIANTS,
        build=lambda variant: large.world(
            variant, pages=pages, mirrors=mirrors, actors=actors
        )(),
        config={"max_steps": 8000},
    )


def _config(budget: float, **changes: object) -> ExploreConfig:
    return ExploreConfig(
        max_steps=8000, time_budget_s=budget, shrink=False, max_executions=None
    ).replace(**changes)


def _row(result: ExplorationResult, seconds: float) -> dict[str, Any]:
    return {
        "executions": result.executions,
        "seconds": round(seconds, 2),
        "exit": result.exit_reason.value,
        "status": result.status.value,
        "kinds": result.kinds,
        "redundant": result.outcomes.get("redundant", 0),
    }


def _serial(program: Callable[[], Instance], config: ExploreConfig) -> dict[str, Any]:
    start = time.monotonic()
    result = explore(program, config)
    return _row(result, time.monotonic() - start)


def _split(
    scenario: Scenario, variant: str, config: ExploreConfig, workers: int
) -> dict[str, Any]:
    job = Job(scenario=scenario, variant=variant, config=config)
    backend = InlineBackend() if workers == 1 else ProcessBackend(workers)
    start = time.monotonic()
    results, _ = run_jobs([job], backend, _Quiet())
    return _row(results[0], time.monotonic() - start)


def schedule_speedup(
    program: Callable[[], Instance], config: ExploreConfig
) -> dict[str, Any]:
    """Run the units in this process, timing each; replay the schedule on W workers.

    A unit can start once the unit whose report created it was processed,
    and reports are processed in unit order: the makespan on W workers of
    that schedule, from the units' CPU times, is what an idle machine with
    W cores would show (communication not counted).
    """
    coordinator = DporCoordinator(config)
    cost: dict[int, float] = {}
    creator: dict[int, int] = {0: -1}
    start = time.monotonic()
    while not coordinator.is_done():
        for index, unit, graph in coordinator.take():
            cpu = time.process_time()
            report = explore_dpor_unit(program, unit, config, lockdep=copy_graph(graph))
            cost[index] = time.process_time() - cpu
            before = len(coordinator.units)
            coordinator.accept(index, report)
            for new in range(before, len(coordinator.units)):
                creator[new] = index
    wall = time.monotonic() - start
    result = coordinator.finish(program)
    total = sum(cost.values())
    speedups = {}
    for workers in (1, 2, 4, 8):
        free = [0.0] * workers
        processed: dict[int, float] = {}
        for i in range(len(cost)):
            ready = 0.0 if creator[i] < 0 else processed[creator[i]]
            w = min(range(workers), key=free.__getitem__)
            free[w] = max(free[w], ready) + cost[i]
            processed[i] = max(free[w], processed.get(i - 1, 0.0))
        speedups[workers] = round(total / max(processed.values()), 2)
    return {
        "units": len(cost),
        "cpu_seconds": round(total, 2),
        "wall_seconds": round(wall, 2),
        "executions": result.executions,
        "speedup_by_workers": speedups,
    }


def curves(budget: float, quick: bool) -> dict[str, list[dict[str, Any]]]:
    """Executions and time against actors, pages and mirrors; serial vs 2 workers."""
    axes = {
        "actors": [(1, 1, a) for a in ((1, 2) if quick else (1, 2, 3))],
        "pages": [(p, 1, 2) for p in ((1, 2) if quick else (1, 2, 3))],
        "mirrors": [(1, m, 2) for m in ((1, 2) if quick else (1, 2, 3))],
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for axis, points in axes.items():
        rows = []
        for pages, mirrors, actors in points:
            scenario = _scenario(pages, mirrors, actors)
            config = _config(budget)
            row: dict[str, Any] = {"pages": pages, "mirrors": mirrors, "actors": actors}
            row["serial"] = _serial(scenario.program("v5.3"), config)
            row["jobs1"] = _split(scenario, "v5.3", config, 1)
            row["jobs2"] = _split(scenario, "v5.3", config, 2)
            print(f"  {axis}: {row}", flush=True)
            rows.append(row)
        out[axis] = rows
    return out


def first_violation(budget: float, quick: bool) -> list[dict[str, Any]]:
    """DPOR (stop at the first violation) against PCT (median of 5 seeds)."""
    targets: list[tuple[str, Callable[[], Instance]]] = [
        ("large world a=3 prepatch", large.world("prepatch", actors=3)),
        ("fault-vs-oom-reap v5.3", get("fault-vs-oom-reap").program("v5.3")),
        ("fault-vs-munmap v5.3", get("fault-vs-munmap").program("v5.3")),
    ]
    if not quick:
        targets.append(
            (
                "large world 2p 2m a=5 prepatch",
                large.world("prepatch", pages=2, mirrors=2, actors=5),
            )
        )
    rows = []
    for label, program in targets:
        dpor = _serial(program, _config(budget, stop_on_first=True))
        pct = [
            _serial(
                program,
                _config(
                    budget,
                    strategy="pct",
                    seed=seed,
                    stop_on_first=True,
                    max_executions=5000,
                ),
            )
            for seed in range(5)
        ]
        found = [r for r in pct if r["kinds"]]
        rows.append(
            {
                "target": label,
                "dpor": dpor,
                "pct_seeds_found": len(found),
                "pct_median_seconds": statistics.median(r["seconds"] for r in pct),
                "pct_median_executions": statistics.median(
                    r["executions"] for r in pct
                ),
            }
        )
        print(f"  first violation: {rows[-1]}", flush=True)
    return rows


def jobs_speedup(quick: bool) -> dict[str, Any]:
    """--jobs 1 against --jobs 2 on concurrent-invalidations v5.3, and the schedule's bound."""
    scenario = get("concurrent-invalidations")
    config = scenario.explore_config().replace(shrink=False)
    if quick:
        config = config.replace(max_executions=2000)
    one = _split(scenario, "v5.3", config, 1)
    two = _split(scenario, "v5.3", config, 2)
    bound = schedule_speedup(scenario.program("v5.3"), config)
    return {
        "jobs1": one,
        "jobs2": two,
        "measured_ratio": round(two["seconds"] / one["seconds"], 2),
        "schedule": bound,
        "schedule_ratio_2_workers": round(1 / bound["speedup_by_workers"][2], 2),
        "load_average": os.getloadavg()[0],
    }


def end_to_end() -> dict[str, Any]:
    """A fresh process: start-up, exploration and JSON of a small scenario."""
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hmmsim",
            "check",
            "exit-vs-fault",
            "--json",
            "-",
            "--no-store",
        ],
        check=True,
        capture_output=True,
    )
    return {"scenario": "exit-vs-fault", "seconds": round(time.monotonic() - start, 2)}


def large_world(budget: float) -> dict[str, Any]:
    """The large world: exhaustive DPOR on 1 and 2 workers within a budget, and PCT."""
    scenario = _scenario(2, 2, 5)
    config = _config(budget)
    out = {
        "budget_seconds": budget,
        "jobs1": _split(scenario, "v5.3", config, 1),
        "jobs2": _split(scenario, "v5.3", config, 2),
        "pct_prepatch": _serial(
            scenario.program("prepatch"),
            _config(budget, strategy="pct", stop_on_first=True, max_executions=5000),
        ),
        "dpor_prepatch": _serial(
            scenario.program("prepatch"), _config(budget, stop_on_first=True)
        ),
    }
    print(f"  large: {out}", flush=True)
    return out


def plots(results: dict[str, Any]) -> list[str]:
    """Draw the curves; return the image paths relative to docs/."""
    import matplotlib  # noqa: PLC0415 - bench-only dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    IMAGES.mkdir(parents=True, exist_ok=True)
    names = []
    for axis, rows in results["curves"].items():
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
        xs = [r[axis] for r in rows]
        for key, label in (
            ("serial", "serial DPOR"),
            ("jobs1", "split, 1 worker"),
            ("jobs2", "split, 2 workers"),
        ):
            left.plot(xs, [r[key]["executions"] for r in rows], marker="o", label=label)
            right.plot(xs, [r[key]["seconds"] for r in rows], marker="o", label=label)
        left.set_xlabel(axis)
        left.set_ylabel("executions")
        left.set_yscale("log")
        right.set_xlabel(axis)
        right.set_ylabel("seconds (budget-capped)")
        right.legend(fontsize=7)
        fig.suptitle(f"DPOR against {axis}")
        fig.tight_layout()
        name = f"img/perf-{axis}.png"
        fig.savefig(ROOT / "docs" / name, dpi=80)
        plt.close(fig)
        names.append(name)
    rows = results["first_violation"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = list(range(len(rows)))
    ax.bar(
        [x - 0.2 for x in xs], [r["dpor"]["seconds"] for r in rows], 0.4, label="DPOR"
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [max(r["pct_median_seconds"], 0.001) for r in rows],
        0.4,
        label="PCT (median of 5 seeds)",
    )
    ax.set_xticks(xs, [r["target"] for r in rows], fontsize=6, rotation=15)
    ax.set_ylabel("seconds to first violation")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "img/perf-first-violation.png", dpi=80)
    plt.close(fig)
    names.append("img/perf-first-violation.png")
    return names


def report(results: dict[str, Any], images: list[str]) -> str:
    """Return docs/PERFORMANCE.md."""
    s = results["jobs_speedup"]
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (bench/scale.py); the numbers are those of the last run,",
        f"on a machine with load average {s['load_average']:.1f} on {os.cpu_count()} cores at the time:",
        "wall-clock times on a shared machine are noisy, CPU-based figures are not.",
        "Raw data: bench/results.json.",
        "",
        "## --jobs 1 against --jobs 2 (concurrent-invalidations v5.3)",
        "",
        "| run | executions | seconds | verdict |",
        "| --- | ---: | ---: | --- |",
        f"| --jobs 1 | {s['jobs1']['executions']} | {s['jobs1']['seconds']} | {s['jobs1']['status']} |",
        f"| --jobs 2 | {s['jobs2']['executions']} | {s['jobs2']['seconds']} | {s['jobs2']['status']} |",
        "",
        f"Measured: --jobs 2 takes {s['measured_ratio']}x the time of --jobs 1 (target: at most 0.6x).",
        f"The unit schedule ({s['schedule']['units']} units, {s['schedule']['cpu_seconds']} s of CPU) allows "
        + ", ".join(
            f"{k} workers: {v}x" for k, v in s["schedule"]["speedup_by_workers"].items()
        )
        + f" speedup, i.e. {s['schedule_ratio_2_workers']}x the time on 2 idle cores.",
        "",
    ]
    lines += redundancy.section(results["redundancy"])
    lines += [
        "",
        "## Scale curves",
        "",
        "Worlds of bench/large.py (concurrent-invalidations grown); each run is capped by the budget,",
        "so a point at the budget did not finish (exit `time-budget`).",
        "",
    ]
    lines += [f"![{name}]({name})" for name in images[:-1]]
    for rows in results["curves"].values():
        lines += [
            "",
            "| pages | mirrors | actors | serial execs / s | 1 worker execs / s | 2 workers execs / s | exit |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in rows:
            lines.append(
                f"| {r['pages']} | {r['mirrors']} | {r['actors']} | "
                f"{r['serial']['executions']} / {r['serial']['seconds']} | "
                f"{r['jobs1']['executions']} / {r['jobs1']['seconds']} | "
                f"{r['jobs2']['executions']} / {r['jobs2']['seconds']} | {r['serial']['exit']} |"
            )
    lines += [
        "",
        "## DPOR against PCT: time to the first violation (pre-patch variant)",
        "",
        f"![first violation]({images[-1]})",
        "",
        "| target | DPOR seconds | DPOR executions | PCT median seconds | PCT median executions | PCT seeds that found it |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["first_violation"]:
        lines.append(
            f"| {r['target']} | {r['dpor']['seconds']} | {r['dpor']['executions']} | "
            f"{r['pct_median_seconds']} | {r['pct_median_executions']} | {r['pct_seeds_found']}/5 |"
        )
    big = results["large"]
    lines += [
        "",
        "## The large world (2 pages, 2 mirrors, 5 actors)",
        "",
        "`hmmsim check bench/large.py` (scenario `large`).  Exhaustive DPOR does not finish it within any budget",
        "measured (about 27,000 executions after 150 s on one core, unfinished, on 2026-12-01);",
        f"within a {big['budget_seconds']} s budget:",
        "",
        "| run | executions | seconds | exit | verdict |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for key, label in (
        ("jobs1", "DPOR, 1 worker"),
        ("jobs2", "DPOR, 2 workers"),
        ("dpor_prepatch", "DPOR, prepatch, stop at first"),
        ("pct_prepatch", "PCT, prepatch, stop at first"),
    ):
        r = big[key]
        lines.append(
            f"| {label} | {r['executions']} | {r['seconds']} | {r['exit']} | {r['status']} {', '.join(r['kinds'])} |"
        )
    lines += [
        "",
        "Under a time budget the split runs count only the units merged in unit order when the budget",
        "ran out: work that faster workers finished beyond the first unfinished unit is dropped, so",
        "these counts understate what 2 workers did; neither run finishes the world.",
        "",
        "When an exhaustive exploration stops at its budget, hmmsim says so in the verdict (`incomplete`,",
        "with the exit reason) and suggests `--strategy pct`, which finds shallow bugs in few executions",
        "at every world size measured here.",
        "",
        "## Memory and start-up",
        "",
        f"Peak RSS of the bench process: {results['peak_rss_mib']} MiB (workers: {results['peak_rss_children_mib']} MiB).",
        f"End to end, `python -m hmmsim check {results['end_to_end']['scenario']} --json -` (start-up included): {results['end_to_end']['seconds']} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run everything and write the results."""
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="smaller worlds and budgets"
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds per run")
    parser.add_argument(
        "--redundancy-budget",
        type=float,
        default=300.0,
        help="seconds per scenario run of the before/after table",
    )
    parser.add_argument(
        "--skip-redundancy",
        action="store_true",
        help="keep the before/after table of the last run (it takes ~15 minutes)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite docs/PERFORMANCE.md from bench/results.json, run nothing",
    )
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads(RESULTS.read_text())["scale"]
        REPORT.write_text(report(saved, plots(saved)))
        return
    budget = args.budget or (5.0 if args.quick else 10.0)
    results: dict[str, Any] = {}
    print("scale: --jobs speedup", flush=True)
    results["jobs_speedup"] = jobs_speedup(args.quick)
    print(f"  {results['jobs_speedup']}", flush=True)
    previous: dict[str, Any] = {}
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text()).get("scale", {})
    if args.skip_redundancy and "redundancy" in previous:
        print("scale: before/after table kept from the last run", flush=True)
        results["redundancy"] = previous["redundancy"]
    else:
        print("scale: executions before/after the redundancy work", flush=True)
        results["redundancy"] = redundancy.measure(args.redundancy_budget, args.quick)
        print("\n".join(redundancy.table(results["redundancy"])), flush=True)
    print("scale: curves", flush=True)
    results["curves"] = curves(budget, args.quick)
    print("scale: first violation", flush=True)
    results["first_violation"] = first_violation(budget, args.quick)
    print("scale: large world", flush=True)
    results["large"] = large_world(budget * 6)
    results["end_to_end"] = end_to_end()
    results["peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    results["peak_rss_children_mib"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
    )
    images = plots(results)
    existing: dict[str, Any] = {}
    if RESULTS.exists():
        existing = json.loads(RESULTS.read_text())
    existing["scale"] = results
    RESULTS.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    REPORT.write_text(report(results, images))
    print(f"scale: wrote {RESULTS.relative_to(ROOT)} and {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
