"""Engine benchmarks, run by ``make bench``: throughput and DPOR reduction.

Prints these and asserts nothing:

* **throughput**: scheduled steps per second of the execution loop on a
  lock-heavy toy program (3 tasks, each taking a mutex and a spinlock around
  once-accesses), explored with DFS for a fixed number of executions;
* **engine speed** (``bench/engine_speed.py``): DPOR steps/s on the
  lock-heavy toy and on concurrent-invalidations v5.3 against the issue-9
  targets, and the cost of the ways to restore a post-set-up world;
* **reduction**: for a few toy programs, how many executions DPOR needs to
  exhaust them compared with DFS;
* **scenarios**: DPOR's time to an exhaustive verdict on every built-in
  scenario and variant, as a ratio to the 1.3 s SPIN needs on comparable
  Promela models of the first two scenarios.

Wall-clock numbers vary between machines and runs; no test asserts on them.
Usage: ``python bench/run.py [--executions N] [--repeat R] [--profile]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.toy_programs

from tests.support import toy_programs  # noqa: E402

from hmmsim.config import ExploreConfig  # noqa: E402
from hmmsim.engine import Instance, SimpleInstance, explore  # noqa: E402
from hmmsim.engine.strategies.base import Strategy  # noqa: E402
from hmmsim.sync import (  # noqa: E402
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    Mutex,
    SpinLock,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
)


def lock_heavy(tasks: int = 3, rounds: int = 2) -> Instance:
    """Each task, ``rounds`` times: mutex-protected counter, spinlock-protected cell."""
    mutex = Mutex("m")
    spin = SpinLock("s")
    counter = Cell("counter", 0)
    flag = Cell("flag", 0)

    async def body(me: int) -> None:
        for _ in range(rounds):
            await mutex_lock(mutex)
            value = await READ_ONCE(counter)
            await WRITE_ONCE(counter, value + 1)
            await mutex_unlock(mutex)
            await spin_lock(spin)
            await WRITE_ONCE(flag, me)
            await spin_unlock(spin)

    return SimpleInstance(
        task_list=[(f"t{i}", body(i)) for i in range(tasks)],
        state=lambda: (counter.value, flag.value),
    )


def throughput(executions: int, repeat: int) -> float:
    """Return the best steps/s of ``repeat`` DFS runs of ``executions`` each."""
    config = ExploreConfig(strategy="dfs", max_executions=executions, shrink=False)
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        result = explore(lock_heavy, config)
        elapsed = time.perf_counter() - start
        rate = result.steps / elapsed
        best = max(best, rate)
        print(
            f"  {result.executions} executions, {result.steps} steps, "
            f"{elapsed:.3f} s: {rate:,.0f} steps/s"
        )
    return best


PROGRAMS: dict[str, Callable[[], Instance]] = {
    "counter_race(3 tasks)": lambda: toy_programs.counter_race(tasks=3),
    "counter_race(locked)": lambda: toy_programs.counter_race(locked=True),
    "ab_ba": toy_programs.ab_ba,
    "message_passing": toy_programs.message_passing,
    "independent(3,3)": lambda: toy_programs.independent(3, 3),
    "lock_heavy(2 tasks, 1 round)": lambda: lock_heavy(2, 1),
}


def _count(program: Callable[[], Instance], strategy: Strategy) -> tuple[int, str]:
    config = ExploreConfig(strategy="dfs", max_executions=1_000_000, shrink=False)
    result = explore(program, config, strategy=strategy)
    return result.executions, result.exit_reason.value


def reduction() -> None:
    """Print DPOR/DFS execution counts on the toy programs."""
    from hmmsim.engine.strategies.dfs import DfsStrategy  # noqa: PLC0415

    try:
        from hmmsim.engine.strategies.dpor import DporStrategy  # noqa: PLC0415
    except ImportError:
        print("dpor: not available")
        return
    for name, program in PROGRAMS.items():
        dfs, dfs_exit = _count(program, DfsStrategy())
        dpor, dpor_exit = _count(program, DporStrategy())
        print(
            f"  {name:32} dfs {dfs:7} ({dfs_exit}), dpor {dpor:6} ({dpor_exit}): "
            f"ratio {dpor / dfs:.4f}"
        )


#: SPIN 6.5.2 on comparable Promela models of the first two scenarios,
#: end to end with compilation (issue text; not measured here).
SPIN_REFERENCE_S = 1.3


def scenarios() -> None:
    """Print DPOR's time to a verdict on every built-in scenario and variant."""
    from hmmsim.scenarios import all_scenarios  # noqa: PLC0415

    total = 0.0
    for scenario in all_scenarios():
        for variant in scenario.variants:
            config = scenario.explore_config(ExploreConfig(shrink=False))
            start = time.perf_counter()
            result = explore(scenario.program(variant), config)
            seconds = time.perf_counter() - start
            total += seconds
            print(
                f"  {scenario.name:26} {variant:9} {result.status.value:10} "
                f"{result.executions:6} executions {result.steps:8} steps "
                f"{seconds:6.2f} s  ({seconds / SPIN_REFERENCE_S:5.2f} x SPIN's 1.3 s)"
            )
    print(f"  total {total:.2f} s for the matrix (one core, serial)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="profile one run with pyinstrument"
    )
    parser.add_argument(
        "--no-scenarios", action="store_true", help="skip the built-in scenarios"
    )
    args = parser.parse_args(argv)
    if args.profile:
        from pyinstrument import Profiler  # noqa: PLC0415

        profiler = Profiler(interval=0.0005)
        with profiler:
            throughput(args.executions, 1)
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        return 0
    print(
        f"throughput: lock_heavy (3 tasks x 2 rounds), dfs, {args.executions} executions"
    )
    best = throughput(args.executions, args.repeat)
    print(f"throughput: {best:,.0f} scheduled steps/s (best of {args.repeat})")
    import engine_speed  # noqa: PLC0415 - bench/engine_speed.py imports this module

    engine_speed.targets(args.repeat)
    engine_speed.snapshot_options()
    print("reduction: executions to exhaust, dpor vs dfs")
    reduction()
    if not args.no_scenarios:
        print("scenarios: dpor time to a verdict (exhaustive), ratio to SPIN's 1.3 s")
        scenarios()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
