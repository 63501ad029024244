"""Tests for `hmmsim.scenarios.races` and the one harness of `hmmsim.scenarios._world`."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest

from hmmsim import api
from hmmsim.config import ExploreConfig
from hmmsim.engine import Finding, explore, replay
from hmmsim.errors import ConfigError, ScenarioError
from hmmsim.kernel.fork import mm_alloc
from hmmsim.kernel.mm_types import Page, mk_pte
from hmmsim.kernel.swapops import make_writable_device_private_entry, swp_entry_to_pte
from hmmsim.scenarios import _world, get
from hmmsim.scenarios.base import MAIN_GROUP
from hmmsim.scenarios.races import all_races, battery, race
from hmmsim.sync import Cell, Mutex, RwSemaphore, SpinLock

EXAMPLES: Final = Path(__file__).resolve().parents[3] / "examples"


def _example(name: str) -> ModuleType:
    """Import examples/NAME.py as a module (the examples import each other)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    known = sys.modules.get(f"_example_{name}")
    if known is not None:
        return known
    spec = importlib.util.spec_from_file_location(
        f"_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _dfs() -> ExploreConfig:
    return ExploreConfig(strategy="dpor", shrink=False, max_steps=4000)


class TestOneHarness:
    """The built-in scenarios and the user's standard scenarios are one code path."""

    @pytest.mark.parametrize("variant", ["v5.3", "v5.5"])
    def test_builtin_and_standard_scenario_explore_the_same_schedules(
        self, variant: str
    ) -> None:
        """The reference driver through driverkit explores what the built-in does."""
        builtin = get("fault-vs-oom-reap")
        (standard,) = api.mirror_scenarios(
            _world.DRIVERS[variant], variants=(variant,), races=["fault-vs-oom-reap"]
        )

        ours = explore(builtin.program(variant), _dfs())
        theirs = explore(standard.program(variant), _dfs())

        assert (ours.executions, ours.steps, ours.kinds) == (
            theirs.executions,
            theirs.steps,
            theirs.kinds,
        )
        assert [c.schedule for c in ours.counterexamples] == [
            c.schedule for c in theirs.counterexamples
        ]

    def test_a_builtin_counterexample_replays_identically_through_driverkit(
        self,
    ) -> None:
        """A v5.3 counterexample's schedule gives the same trace on both paths."""
        builtin = get("fault-vs-oom-reap")
        (standard,) = api.mirror_scenarios(
            _world.DRIVERS["v5.3"], variants=("v5.3",), races=["fault-vs-oom-reap"]
        )
        found = explore(builtin.program("v5.3"), _dfs())
        schedule = found.counterexamples[0].schedule

        ours = replay(builtin.program("v5.3"), schedule, capture=True)
        theirs = replay(standard.program("v5.3"), schedule, capture=True)

        assert "device-use-after-free" in found.kinds
        assert ours.trace == theirs.trace
        assert [f.kind for f in ours.findings] == [f.kind for f in theirs.findings]

    def test_every_battery_race_is_a_builtin_scenario(self) -> None:
        """Each race of the battery is registered as a built-in of the same name."""
        names = [r.name for r in battery()]

        assert 13 == len(names)
        assert all(get(name).name == name for name in names)
        assert {
            "concurrent-invalidations",
            "oom-hmm-and-kvm",
            "fault-on-readonly-vma",
            "oom-vs-nouveau-fault",
        } == {
            r.name
            for r in all_races()
            if not r.battery and get(r.name).group == MAIN_GROUP
        }

    def test_a_race_name_is_defined_once(self) -> None:
        """Defining a second race with a taken name is a ScenarioError."""
        with pytest.raises(ScenarioError, match="defined twice"):
            race(name="fault-vs-reclaim", title="t", description="d")(
                lambda make_world, variant: get("fault-vs-reclaim").build(variant)
            )


class TestMuseumRaces:
    def test_museum_races_stay_out_of_the_battery_and_all_races(self) -> None:
        """A museum race is listed only when asked for, and never in the battery."""
        from hmmsim.scenarios import MUSEUM_GROUP, all_scenarios  # noqa: PLC0415

        museum = {s.name for s in all_scenarios(MUSEUM_GROUP)}
        everything = {r.name: r for r in all_races(None)}

        assert museum
        assert not museum & {r.name for r in all_races()}
        assert not museum & {r.name for r in battery()}
        assert all(
            MUSEUM_GROUP == everything[n].group for n in museum if n in everything
        )

    def test_a_museum_race_is_never_a_battery_race(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """race(group=museum) makes a non-battery race, listed only when asked for."""
        from hmmsim.scenarios import races  # noqa: PLC0415

        monkeypatch.setattr(races, "_RACES", dict(races._RACES))
        made = race(
            name="museum-race-test", title="t", description="d", group="museum"
        )(lambda make_world, variant: None)  # type: ignore[arg-type,return-value]

        assert not made.battery
        assert "museum" == made.group
        assert made not in all_races()
        assert made in all_races(None)

    def test_a_race_of_a_museum_module_is_a_museum_race(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A race defined in hmmsim.scenarios.museum gets the museum group by itself."""
        from hmmsim.scenarios import races  # noqa: PLC0415

        monkeypatch.setattr(races, "_RACES", dict(races._RACES))

        def build(make_world: Any, variant: str) -> Any:
            """Build nothing."""
            return None

        build.__module__ = "hmmsim.scenarios.museum.fake"
        made = race(name="museum-race-inferred", title="t", description="d")(build)

        assert "museum" == made.group
        assert not made.battery


class TestStandardScenarios:
    """mirror_scenarios: variants of one API, names, expectations."""

    def test_the_interval_variants_are_accepted(self) -> None:
        """An interval driver gets the whole battery on the interval variants."""
        scenarios = api.mirror_scenarios(
            _world.DRIVERS["v5.5"], variants=api.INTERVAL_VARIANTS
        )

        assert [r.name for r in battery()] == [s.name for s in scenarios]
        assert all(s.variants == api.INTERVAL_VARIANTS for s in scenarios)

    @pytest.mark.parametrize(
        ("variants", "message"),
        [
            ((), "no variant"),
            (("v9.9",), "unknown variant 'v9.9'"),
            (("v5.3", "v5.5"), "one API"),
        ],
    )
    def test_bad_variants_are_config_errors(
        self, variants: tuple[str, ...], message: str
    ) -> None:
        """Empty, unknown or mixed-API variants are refused with one line."""
        with pytest.raises(ConfigError, match=message):
            api.mirror_scenarios(_world.DRIVERS["v5.3"], variants=variants)

    def test_an_unknown_race_is_a_config_error(self) -> None:
        """A race name outside the battery is refused, listing the races."""
        with pytest.raises(ConfigError, match=r"unknown race 'nope'.*fault-vs-reclaim"):
            api.mirror_scenarios(_world.DRIVERS["v5.3"], races=["nope"])

    def test_default_expect_fills_what_expect_leaves_out(self) -> None:
        """default_expect applies to every unnamed race and variant; expect wins."""
        (scenario,) = api.mirror_scenarios(
            _world.DRIVERS["v5.3"],
            races=["fault-vs-reclaim"],
            expect={"fault-vs-reclaim": {"v5.3": ["device-use-after-free"]}},
            default_expect=(),
        )

        assert {"prepatch": (), "v5.3": ("device-use-after-free",)} == dict(
            scenario.expect
        )


class TestKernelApi:
    """kernel_api, interval_api and the version-dispatching C names."""

    def test_each_variant_has_its_api(self) -> None:
        """Mirror variants give their HMM module, interval variants an IntervalApi."""
        assert api.kernel_api("v5.3") is api.hmm_api("v5.3")
        assert api.kernel_api("v5.5") is api.interval_api("v5.5")
        assert "v5.5" == api.interval_api("v5.5").version

    def test_unknown_variants_are_config_errors(self) -> None:
        """No API for an unknown variant, no interval API for v5.3."""
        with pytest.raises(ConfigError, match="no driver API"):
            api.kernel_api("v9.9")
        with pytest.raises(ConfigError, match="no mmu_interval_notifier API"):
            api.interval_api("v5.3")

    def test_an_mm_without_interval_notifiers_is_a_config_error(self) -> None:
        """Inserting a notifier into a v5.3 mm names the variants that have them."""
        mm = mm_alloc("mm")
        sub = api.interval_api("v5.5").MmuIntervalNotifier(name="sub")
        ops = api.StaticMmuIntervalNotifierOps(invalidate=_never)

        with pytest.raises(ConfigError, match="without mmu_interval_notifier"):
            _run(api.mmu_interval_notifier_insert(sub, mm, 0, 4096, ops))

    def test_a_non_notifier_is_a_config_error(self) -> None:
        """The dispatching functions refuse what is not an interval notifier."""
        with pytest.raises(ConfigError, match="not a struct mmu_interval_notifier"):
            api.mmu_interval_read_retry(object(), 1)

    def test_hmm_api_refuses_an_interval_variant(self) -> None:
        """hmm_api names only the hmm_mirror variants."""
        with pytest.raises(ConfigError, match="no HMM model"):
            api.hmm_api("v5.5")

    def test_the_lockless_check_and_remove_dispatch_by_version(self) -> None:
        """check_retry reads the sub's sequence; remove of an inserted sub unlinks it."""
        world = api.mirror_world("current", _world.DRIVERS["current"], mirrors=0)
        sub = api.interval_api("current").MmuIntervalNotifier(name="sub")
        ops = api.StaticMmuIntervalNotifierOps(invalidate=_never)
        seen: list[object] = []

        async def body() -> None:
            seen.append(
                await api.mmu_interval_notifier_insert(sub, world.mm, 0, 4096, ops)
            )
            seen.append(await api.mmu_interval_check_retry(sub, 1))
            await api.mmu_interval_notifier_remove(sub)
            seen.append(sub.mm is world.mm)

        result = explore(
            lambda: api.SimpleInstance(task_list=[("t", body())]),
            ExploreConfig(strategy="dfs", shrink=False, max_executions=1),
        )

        assert [] == result.kinds
        assert [0, False, True] == seen  # insert starts the sequence at 1

    def test_a_notifier_not_inserted_is_dispatched_by_its_class(self) -> None:
        """Before insert, the version is the one whose struct it is."""
        sub = api.interval_api("v5.5").MmuIntervalNotifier(name="sub")

        assert api.mmu_interval_read_retry(sub, 1)
        assert not api.mmu_interval_read_retry(sub, 0)


async def _never(sub: Any, rng: Any, cur_seq: int) -> bool:
    return True


def _run(coro: Any) -> Any:
    """Drive a coroutine that never reaches a scheduling point."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        coro.close()
    raise AssertionError("reached a scheduling point")


class TestDriverLocks:
    """The driver lock may be any lock primitive."""

    @pytest.mark.parametrize(
        "lock",
        [Mutex("l"), SpinLock("l"), RwSemaphore("l")],
        ids=["mutex", "spinlock", "rwsem"],
    )
    def test_busy_with_takes_and_releases_every_kind(self, lock: Any) -> None:
        """busy_with holds the lock and releases it, whatever its kind."""
        done = Cell("done", 0)

        async def body() -> None:
            await _world.busy_with(lock)
            done.value = 1

        result = explore(
            lambda: api.SimpleInstance(task_list=[("t", body())]),
            ExploreConfig(strategy="dfs", shrink=False),
        )

        assert [] == result.kinds
        assert 1 == done.value
        if isinstance(lock, Mutex):
            assert lock.owner is None

    @pytest.mark.parametrize("race_name", ["oom-vs-driver-lock", "fault-vs-reclaim"])
    def test_a_spinlock_driver_goes_through_the_battery(self, race_name: str) -> None:
        """A driver whose lock is a spinlock runs the standard races, verified."""
        make = _spin_driver()
        (scenario,) = api.mirror_scenarios(make, variants=("v5.5",), races=[race_name])

        result = api.check(scenario, "v5.5", strategy="dpor", shrink=False)

        assert [] == result.kinds
        assert api.ExitReason.EXHAUSTED is result.exit_reason


def _spin_driver() -> Any:
    """The example's correct interval driver, with a spinlock as its driver lock."""
    correct = _example("interval_correct")

    class SpinDevice(correct.MyDevice):  # type: ignore[misc,name-defined]
        """Never sleeps under its lock: spin_lock, or spin_trylock when not blockable."""

        def __post_init__(self) -> None:
            super().__post_init__()
            self.update = SpinLock(f"{self.name}->update")

        async def invalidate(self, mni: Any, rng: Any, cur_seq: int) -> bool:
            if api.mmu_notifier_range_blockable(rng):
                await api.spin_lock(self.update)
            elif not await api.spin_trylock(self.update):
                return False
            await api.mmu_interval_set_seq(mni, cur_seq)
            await self.zap(rng.start, rng.end)
            await api.spin_unlock(self.update)
            return True

        async def populate(
            self, mm: Any, start: int, end: int, *, write: bool, max_retries: int
        ) -> int:
            rng = self.new_range(start, end, write)
            for _ in range(max_retries + 1):
                rng.notifier_seq = await api.mmu_interval_read_begin(self.notifier)
                ret = await self.walk(mm, rng)
                if ret:
                    continue
                await api.spin_lock(self.update)
                if not api.mmu_interval_read_retry(self.notifier, rng.notifier_seq):
                    await self.program_device(rng)
                    await api.spin_unlock(self.update)
                    return 0
                await api.spin_unlock(self.update)
            return -16

    def make(kernel: Any, name: str, device: Any) -> Any:
        return SpinDevice(kernel=kernel, name=name, device=device)

    return make


class TestUserCheck:
    """WorldInstance(check=...), the read-only WorldState, and END_CHECKS."""

    def _instance(
        self, check: Any, *, variant: str = "v5.5"
    ) -> Iterator[_world.WorldInstance]:
        world = api.mirror_world(variant, _world.DRIVERS[variant])

        async def setup() -> None:
            await world.setup(device_maps=[0])

        async def idle() -> int:
            return 7

        yield _world.WorldInstance(
            world=world, setup=setup, actors=[("idle", idle)], check=check
        )

    def _states(self, variant: str) -> list[api.WorldState]:
        seen: list[api.WorldState] = []

        def check(state: api.WorldState) -> Iterable[Finding]:
            seen.append(state)
            return []

        result = explore(
            lambda: next(self._instance(check, variant=variant)),
            ExploreConfig(strategy="dfs", shrink=False),
        )
        assert [] == result.kinds
        return seen

    def test_the_check_reads_the_views_of_an_interval_world(self) -> None:
        """At the end the check sees the mm, the notifier, the device and the PTE."""
        state = self._states("v5.5")[0]

        assert ("v5.5", 1, False, 0) == (
            state.variant,
            state.mm_users,
            state.mm_freed,
            state.open_invalidations,
        )
        assert [("dmirror0->notifier", "interval")] == [
            (n.name, n.kind) for n in state.notifiers
        ]
        assert () == state.ranges
        (entry,) = state.device("gpu0")
        (page,) = state.pages
        assert (entry.addr, entry.pfn) == (page.addr, page.pfn)
        assert not entry.page_free
        assert "in-use" == page.state
        assert {"idle": "7"} == dict(state.results)

    def test_the_check_reads_the_views_of_a_mirror_world(self) -> None:
        """On v5.3 the registered mirror and HMM's own hlist subscriber show."""
        state = self._states("v5.3")[0]

        assert {"mirror", "hlist"} == {n.kind for n in state.notifiers}

    def test_a_user_finding_is_a_violation(self) -> None:
        """What the user's check returns is reported as a violation of its kind."""

        def check(state: api.WorldState) -> Iterable[Finding]:
            if state.device("gpu0"):
                yield Finding(kind="still-mapped", message="gpu0 maps a page", step=-1)

        result = explore(
            lambda: next(self._instance(check)),
            ExploreConfig(strategy="dfs", shrink=False),
        )

        assert ["still-mapped"] == result.kinds

    def test_end_checks_run_on_every_world(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A check appended to END_CHECKS runs at the end of a built-in scenario."""

        def leak(state: api.WorldState) -> Iterable[Finding]:
            return [Finding(kind="harness-check", message=f"{state.mm_users}", step=-1)]

        monkeypatch.setattr(_world, "END_CHECKS", [leak])

        result = explore(get("exit-vs-fault").program("v5.5"), _dfs())

        assert ["harness-check"] == result.kinds


class TestCulprits:
    """Reports name the culprit: the driver's lock, the callback that failed."""

    def test_a_lock_order_finding_names_the_drivers_lock(self) -> None:
        """A fault path taking mmap_sem under its lock: the cycle names that lock."""
        correct = _example("interval_correct")

        class Inverted(correct.MyDevice):  # type: ignore[misc,name-defined]
            async def walk(self, mm: Any, rng: Any) -> int:
                await api.mutex_lock(self.update)
                await api.down_read(mm.mmap_sem)
                ret: int = await api.hmm_range_fault(rng, 0)
                await api.up_read(mm.mmap_sem)
                await api.mutex_unlock(self.update)
                return min(ret, 0)

        def make(kernel: Any, name: str, device: Any) -> Any:
            return Inverted(kernel=kernel, name=name, device=device)

        (scenario,) = api.mirror_scenarios(
            make, variants=("v5.5",), races=["fault-vs-munmap"]
        )

        result = api.check(scenario, "v5.5", shrink=False)

        assert ["lock-order"] == result.kinds
        message = result.counterexamples[0].finding.message
        assert "driver->update" in message
        assert "mmap_sem" in message

    def test_an_empty_release_is_blamed_not_invalidate_range_start(self) -> None:
        """A mirror whose release does nothing: the contract finding names release."""
        correct = _example("mirror_correct")

        class Forgetful(correct.MyMirror):  # type: ignore[misc,name-defined]
            async def release(self, mirror: Any) -> None:
                del mirror

        def make(kernel: Any, name: str, device: Any) -> Any:
            return Forgetful(hmm=kernel, name=name, device=device)

        (scenario,) = api.mirror_scenarios(
            make, variants=("v5.3",), races=["exit-vs-device-access"]
        )

        result = api.check(scenario, "v5.3", shrink=False)

        assert "notifier-contract" in result.kinds
        (contract,) = [
            c for c in result.counterexamples if c.kind == "notifier-contract"
        ]
        assert "release callback" in contract.finding.message
        assert "invalidate_range_start" not in contract.finding.message


class TestSwapEntryViews:
    """World.state() and final_state name a swap entry and the page it holds."""

    def test_a_device_private_entry_is_a_writable_swap_view_of_its_page(self) -> None:
        """PageView of a writable device-private entry: its page, writable, the kind."""
        page = Page(pfn=9, refcount=1, mapcount=1)
        pte = swp_entry_to_pte(make_writable_device_private_entry(page))

        view = _world._page_view(0x1000, pte)

        assert (view.pfn, view.writable, view.swap, view.refcount) == (
            9,
            True,
            "device-private-write",
            1,
        )
        assert ("device-private-write", 9) == _world._pte_summary(pte)

    def test_a_present_pte_has_no_swap_kind(self) -> None:
        """A present PTE's view keeps swap empty and its summary is the pfn."""
        page = Page(pfn=4)

        assert "" == _world._page_view(0, mk_pte(page, False)).swap
        assert 4 == _world._pte_summary(mk_pte(page, False))
        assert _world._pte_summary(None) is None
