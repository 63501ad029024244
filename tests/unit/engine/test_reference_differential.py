"""Differential test of DPOR and DFS against an independent reference enumerator.

Random programs (`tests.support.random_programs`) use every primitive:
mutex and spinlock with their trylocks, rwsem read/write and both trylocks,
wait queues with and without timeouts, kref with a release, SRCU read
sections and synchronize_srcu, spawned tasks, value-dependent branches,
WARN_ON / BUG_ON, and 2 to 4 tasks.  The reference
(`tests.support.reference`) enumerates their interleavings with its own
semantics, sharing no code with the engine.  DPOR must reach exactly the
reference's set of (outcome, final state, finding kinds) on every program,
and DFS too wherever it finishes within ``DFS_LIMIT`` executions.

The loop is seeded: ``HMMSIM_DIFF_PROGRAMS`` sets how many programs (default
2000), ``HMMSIM_DIFF_SEED`` the first seed (default 0); a failure names the
seed and the program.
"""

from __future__ import annotations

import os
import random

import pytest
from tests.support.differential import run_all
from tests.support.random_programs import RELEASED, Spec, generate, summary, to_hmmsim
from tests.support.reference import Behaviour, Reference

from hmmsim.engine import ExecutionResult, Outcome
from hmmsim.engine.strategies.dfs import DfsStrategy
from hmmsim.engine.strategies.dpor import DporStrategy

PROGRAMS = int(os.environ.get("HMMSIM_DIFF_PROGRAMS", "2000"))
FIRST_SEED = int(os.environ.get("HMMSIM_DIFF_SEED", "0"))
#: DFS is compared only on programs it exhausts within this many executions,
DFS_LIMIT = 150
#: and only tried when the reference's state space is this small (a larger one
#: almost never fits, and trying costs ``DFS_LIMIT`` executions).
DFS_STATES = 60


def _engine(results: list[ExecutionResult]) -> set[Behaviour]:
    out: set[Behaviour] = set()
    for r in results:
        if r.outcome in {Outcome.REDUNDANT, Outcome.PRUNED}:
            continue
        assert Outcome.STEP_LIMIT is not r.outcome
        kinds = frozenset(f.kind for f in r.findings)
        out.add((r.outcome.value, r.final_state, kinds))
    return out


def _compare(
    spec: Spec,
    seed: object,
    *,
    dfs_limit: int = DFS_LIMIT,
    kinds: set[str] | None = None,
) -> bool:
    """Compare the three on ``spec``; return whether DFS took part.

    ``kinds`` collects the finding kinds the reference reached.
    """
    enumerator = Reference(spec)
    reference = enumerator.behaviours()
    if kinds is not None:
        kinds.update(*(b[2] for b in reference))
    program = to_hmmsim(spec)
    dpor = run_all(program, DporStrategy(), limit=20_000)
    assert dpor is not None, f"seed {seed}: DPOR needs too many executions: {spec}"
    assert reference == _engine(dpor), (
        f"seed {seed}: DPOR differs from the reference on {spec}\n"
        f"  only reference: {reference - _engine(dpor)}\n"
        f"  only DPOR: {_engine(dpor) - reference}"
    )
    if dfs_limit == DFS_LIMIT and enumerator.states > DFS_STATES:
        return False
    dfs = run_all(program, DfsStrategy(), limit=dfs_limit)
    if dfs is None:
        return False
    assert reference == _engine(dfs), (
        f"seed {seed}: DFS differs from the reference on {spec}\n"
        f"  only reference: {reference - _engine(dfs)}\n"
        f"  only DFS: {_engine(dfs) - reference}"
    )
    return True


def _regs(**names: tuple[int, int]) -> dict[str, list[int]]:
    return {k: list(v) for k, v in names.items()}


class TestReferenceDifferential:
    @pytest.mark.slow
    def test_dpor_dfs_and_the_reference_agree_on_random_programs(self) -> None:
        """Thousands of random programs: identical behaviours; DFS joins on most of them."""
        with_dfs = 0
        kinds: set[str] = set()
        for seed in range(FIRST_SEED, FIRST_SEED + PROGRAMS):
            spec = generate(random.Random(seed))
            with_dfs += _compare(spec, seed, kinds=kinds)

        assert with_dfs >= PROGRAMS // 3
        if PROGRAMS >= 1000:
            assert {
                "bug",
                "deadlock",
                "kref",
                "lock-order",
                "sleep-in-nonblockable",
                "warn",
            } <= kinds

    @pytest.mark.parametrize(
        "spec",
        [
            # a released kref read back while another task gets it unless zero
            ((("kput",), ("read", 1, 0)), (("kget_nz", 1), ("bug", 1, 0))),
            # SRCU: synchronize waits for a section that spawned a writer
            (
                (("srcu", (("spawn", (("write", 0, 1),)),)),),
                (("sync_srcu",), ("read", 0, 0)),
            ),
            # rwsem trylocks against a writer, with a timed wait inside
            (
                (("wtry", (("twait", 0),)),),
                (("rtry", (("wake",),)),),
                (("rsem", (("read", 0, 1),)),),
            ),
            # spinlock + sleeping wait, mutex trylock, four tasks
            (
                (("spin", (("wait",),)),),
                (("wake",),),
                (("trymutex", (("write", 1, 2),)),),
                (("kget",),),
            ),
        ],
    )
    def test_fixed_programs_agree(self, spec: Spec) -> None:
        """Hand-picked programs mixing the primitives agree, with DFS taking part."""
        assert _compare(spec, "fixed", dfs_limit=20_000)


class TestReference:
    def test_two_racing_writers_give_two_final_states(self) -> None:
        """The reference finds both orders of two writes to one cell."""
        spec: Spec = ((("write", 0, 1),), (("write", 0, 2),))

        behaviours = Reference(spec).behaviours()

        regs = _regs(t0=(0, 0), t1=(0, 0))
        assert {
            ("passed", summary([1, 0], 0, 1, regs), frozenset()),
            ("passed", summary([2, 0], 0, 1, regs), frozenset()),
        } == behaviours

    def test_a_put_to_zero_runs_the_release_and_a_later_get_is_a_kref_finding(
        self,
    ) -> None:
        """A kget first keeps the object; after the last kput it is a kref finding."""
        spec: Spec = ((("kput",),), (("kget",),))

        behaviours = Reference(spec).behaviours()

        regs = _regs(t0=(0, 0), t1=(0, 0))
        assert {
            ("passed", summary([0, 0], 0, 1, regs), frozenset()),
            ("violation", summary([0, RELEASED], 0, 0, regs), frozenset({"kref"})),
            # the get comes between the last put and its release callback
            ("violation", summary([0, 0], 0, 0, regs), frozenset({"kref"})),
        } == behaviours

    def test_a_wait_nobody_ends_is_a_deadlock_and_a_timed_one_times_out(self) -> None:
        """wait without a waker deadlocks; twait returns 0 after its timeout."""
        plain = Reference(((("wait",),),)).behaviours()
        timed = Reference(((("twait", 0),),)).behaviours()

        regs = _regs(t0=(0, 0))
        assert {
            ("violation", summary([0, 0], 0, 1, regs), frozenset({"deadlock"}))
        } == plain
        assert {("passed", summary([0, 0], 0, 1, regs), frozenset())} == timed

    def test_opposite_lock_orders_are_a_lock_order_finding(self) -> None:
        """Mutex inside spinlock in one task and the reverse in another: lock-order."""
        spec: Spec = ((("spin", (("mutex", ()),)),), (("mutex", (("spin", ()),)),))

        kinds = set().union(*(b[2] for b in Reference(spec).behaviours()))

        assert {"lock-order", "sleep-in-nonblockable", "deadlock"} == kinds
