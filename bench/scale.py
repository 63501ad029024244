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
engine_speed: Any = importlib.import_module("engine_speed")  # bench/engine_speed.py
from hmmsim.backends import Job, run_jobs  # noqa: E402
from hmmsim.backends.local import InlineBackend, ProcessBackend  # noqa: E402
from hmmsim.config import ExploreConfig  # noqa: E402
from hmmsim.engine import (  # noqa: E402
    ExplorationResult,
    Instance,
    SnapshotCache,
    explore,
)
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
    def __init__(self) -> None:
        self.estimate: Any = None

    def estimated(self, index: int, estimate: Any) -> None:
        del index
        self.estimate = estimate

    def started(self, index: int) -> None:
        del index

    def progressed(self, index: int, executions: int) -> None:
        del index, executions

    def finished(self, index: int, result: ExplorationResult) -> None:
        del index, result

    def failed(self, index: int, reason: str, partial: ExplorationResult) -> None:
        raise RuntimeError(f"bench job {index} failed: {reason}")


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


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (forked workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _split(
    scenario: Scenario,
    variant: str,
    config: ExploreConfig,
    workers: int,
    *,
    cluster: str | None = None,
    file: str | None = None,
) -> dict[str, Any]:
    job = Job(scenario=scenario, variant=variant, config=config, file=file)
    if cluster is not None:
        from hmmsim.backends.cluster import DaskBackend  # noqa: PLC0415 - extra

        backend: Any = DaskBackend.connect(cluster)
    else:
        backend = InlineBackend() if workers == 1 else ProcessBackend(workers)
    events = _Quiet()
    load = os.getloadavg()[0]
    cpu = _cpu()
    start = time.monotonic()
    results, _ = run_jobs([job], backend, events)
    row = _row(results[0], time.monotonic() - start)
    # Dask's worker processes are not this process's children: their CPU is
    # not counted for a cluster run.
    row["cpu_seconds"] = round(_cpu() - cpu, 2)
    row["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    if events.estimate is not None:
        row["estimate"] = {
            "executions": events.estimate.executions,
            "sample": events.estimate.sample,
            "seconds_one_core": round(events.estimate.seconds_needed(), 1),
        }
    return row


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
    snapshots = SnapshotCache()  # one per program and worker, as the backends keep
    cost: dict[int, float] = {}
    creator: dict[int, int] = {0: -1}
    start = time.monotonic()
    while not coordinator.is_done():
        for index, unit, graph in coordinator.take():
            cpu = time.process_time()
            report = explore_dpor_unit(
                program, unit, config, lockdep=copy_graph(graph), snapshots=snapshots
            )
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
    """The large world: exhaustive DPOR on 1 and 2 workers and a LocalCluster, and PCT.

    Each DPOR run has ``budget`` seconds; the verdict is ``incomplete`` when
    it runs out (with the estimated size of the whole exploration, from its
    first work unit).  PCT: time to the first violation on the pre-patch
    variant (median of 5 seeds), and 1000 executions of v5.3.
    """
    # The scenario `large` of bench/large.py: Dask workers import it by path.
    scenario = get("large")
    path = str(ROOT / "bench" / "large.py")
    config = _config(budget)
    out: dict[str, Any] = {"budget_seconds": budget}
    out["jobs1"] = _split(scenario, "v5.3", config, 1, file=path)
    print(f"  large, 1 worker: {out['jobs1']}", flush=True)
    out["jobs2"] = _split(scenario, "v5.3", config, 2, file=path)
    print(f"  large, 2 workers: {out['jobs2']}", flush=True)
    try:
        out["cluster2"] = _split(
            scenario, "v5.3", config, 2, cluster="local:2", file=path
        )
        print(f"  large, LocalCluster of 2: {out['cluster2']}", flush=True)
    except Exception as exc:  # no extra, or Dask fails to start: a row, not the end
        out["cluster2"] = {"error": str(exc)[:120]}
    pct = [
        _serial(
            scenario.program("prepatch"),
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
    out["pct_prepatch"] = {
        "seeds_found": sum(1 for r in pct if r["kinds"]),
        "median_seconds": statistics.median(r["seconds"] for r in pct),
        "median_executions": statistics.median(r["executions"] for r in pct),
        "kinds": sorted({k for r in pct for k in r["kinds"]}),
    }
    out["pct_v53"] = _serial(
        scenario.program("v5.3"),
        _config(budget, strategy="pct", max_executions=1000),
    )
    out["dpor_prepatch"] = _serial(
        scenario.program("prepatch"), _config(budget, stop_on_first=True)
    )
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
    if RESULTS.exists():  # bench/engine_speed.py's targets, run before this script
        speed = json.loads(RESULTS.read_text()).get("engine_speed", {})
        if speed.get("targets"):
            lines += engine_speed.section(speed["targets"])
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
        "`hmmsim check bench/large.py` (scenario `large`, v5.3).  Exhaustive DPOR within a",
        f"{big['budget_seconds']} s budget per run, on 1 worker (this process), 2 forked workers and a",
        "Dask LocalCluster of 2 workers (`--cluster local:2`); CPU seconds count this process and",
        "its forked workers (not Dask's), and the load average is that before and after the run:",
        "",
        "| run | executions | seconds | CPU seconds | load | exit | verdict | estimated size |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for key, label in (
        ("jobs1", "DPOR, 1 worker"),
        ("jobs2", "DPOR, 2 workers"),
        ("cluster2", "DPOR, LocalCluster of 2"),
    ):
        r = big.get(key, {"error": "not run"})
        if "error" in r:
            lines.append(f"| {label} | | | | | | {r['error']} | |")
            continue
        est = r.get("estimate")
        size = (
            f"{est['executions']:,} (~{est['seconds_one_core']:.0f} s on one core)"
            if est
            else "n/a"
        )
        load = r.get("load_average", ["?", "?"])
        lines.append(
            f"| {label} | {r['executions']} | {r['seconds']} | {r.get('cpu_seconds', 'n/a')} | "
            f"{load[0]} -> {load[1]} | {r['exit']} | {r['status']} {', '.join(r['kinds'])} | {size} |"
        )
    pct = big["pct_prepatch"]
    v53 = big.get("pct_v53")
    dpor_first = big["dpor_prepatch"]
    verdict = (
        "**Verdict: exhaustive DPOR does not finish the large world within the budget on 1 or 2 workers "
        "or the cluster (`incomplete`, exit `time-budget`)**"
        if all(big.get(k, {}).get("exit") == "time-budget" for k in ("jobs1", "jobs2"))
        else "**Verdict: see the table (an exhaustive run finished within the budget)**"
    )
    runs = [
        big[k] for k in ("jobs1", "jobs2", "cluster2") if "estimate" in big.get(k, {})
    ]
    low = any(r["executions"] > r["estimate"]["executions"] for r in runs)
    lines += [
        "",
        verdict
        + "; the first unit estimates the whole exploration at the size in the last column (a rough,",
        "usually low, weighted-backtrack estimate), and `check` prints that estimate with the PCT command",
        "as soon as the first unit is in, when it exceeds `--max-executions` or `--time-budget`;",
        "a run it let pass gets one more warning once it is past twice the estimate or half of a bound"
        + (".  Here it is low: a run got past it without finishing." if low else "."),
        "",
        "Under a time budget the split runs count only the units merged in unit order when the budget",
        "ran out: work that faster workers finished beyond the first unfinished unit is dropped, so",
        "these counts understate what 2 workers did.",
        "",
        "The PCT profile (`hmmsim check bench/large.py --variant prepatch --strategy pct`): the pre-patch",
        f"variant's first violation in a median of {pct['median_executions']} executions and "
        f"{pct['median_seconds']} s ({pct['seeds_found']}/5 seeds found one: {', '.join(pct['kinds'])}); "
        f"exhaustive DPOR stopping at the first violation needs {dpor_first['executions']} executions "
        f"({dpor_first['seconds']} s).",
    ]
    if v53 is not None:
        lines.append(
            f"On v5.3, {v53['executions']} PCT executions ({v53['seconds']} s) find "
            + (", ".join(v53["kinds"]) if v53["kinds"] else "no violation")
            + " (sampling: no proof)."
        )
    lines += [
        "",
        "One long run, measured outside the bench (it takes 10 minutes): on 2026-12-02,",
        "`hmmsim check bench/large.py --variant v5.3 --jobs 1 --time-budget 600 --max-executions 5000000`",
        "explored 551,417 executions (104,658,042 steps; 457.8 s of CPU, the machine shared with other",
        "work at load 2.6, 188 MiB peak RSS) and stopped at the budget: `INCOMPLETE`, no violation.",
        "The large world does not finish in 10 minutes on one core, and its real size is more than",
        "20 times the first unit's estimate: a second worker doubles the rate at best (see the table),",
        "so on 2 workers or a LocalCluster of 2 it stays incomplete too; use PCT, or a cluster of many",
        "workers (docs/cluster.md) with a long budget.",
    ]
    lines += [
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
    parser.add_argument(
        "--large-only",
        action="store_true",
        help="run only the large world; keep every other result of the last run",
    )
    args = parser.parse_args()
    if args.large_only:
        kept = json.loads(RESULTS.read_text())
        kept["scale"]["large"] = large_world((args.budget or 10.0) * 4)
        RESULTS.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
        REPORT.write_text(report(kept["scale"], plots(kept["scale"])))
        return
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
    results["large"] = large_world(budget * 4)  # three runs: 1, 2 workers, LocalCluster
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
