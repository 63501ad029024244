"""Tests for the unbind and subscription teardown checks (notifier-after-unbind, ...)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest

from hmmsim import api
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExplorationResult, SimpleInstance, explore
from hmmsim.kernel.drivers.device import device_pte_clear
from hmmsim.kernel.fork import mm_alloc, mmput
from hmmsim.kernel.hmm import Hmm
from hmmsim.oracle import kinds
from hmmsim.oracle.teardown import _subscriptions_leak
from hmmsim.scenarios import Scenario
from hmmsim.scenarios._world import DRIVERS, MirrorDriver, World
from hmmsim.sync import kref_get

EXAMPLE: Final = (
    Path(__file__).resolve().parents[3]
    / "examples"
    / "mirror_frees_before_unregister.py"
)

NEW_KINDS: Final = (
    "notifier-after-unbind",
    "device-pte-after-unbind",
    "subscriptions-leak",
)

Actor = Callable[[World, MirrorDriver], Awaitable[object]]


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """The example module (its hmm_mirror drivers), loaded as the CLI loads it."""
    api.load_file(EXAMPLE)
    (module,) = [
        m
        for m in list(sys.modules.values())
        if getattr(m, "__file__", None) == str(EXAMPLE)
    ]
    return module


def _race(factory: Any, actors: dict[str, Actor], variant: str) -> ExplorationResult:
    """Explore ``actors`` over a world whose device maps BASE, with DPOR."""

    def build(chosen: str) -> api.WorldInstance:
        world = api.mirror_world(chosen, factory)
        driver = world.mirrors[0]

        async def setup() -> None:
            await world.setup(device_maps=[0])

        def bound(actor: Actor) -> Callable[[], Awaitable[object]]:
            async def run() -> object:
                return await actor(world, driver)

            return run

        return api.WorldInstance(
            world=world,
            setup=setup,
            actors=[(name, bound(actor)) for name, actor in actors.items()],
        )

    scenario = Scenario(
        name="unbind-teardown-test",
        title="An unbind teardown test race",
        description="",
        variants=(variant,),
        build=build,
        config={"max_steps": 4000},
    )
    return api.check(scenario, variant, strategy="dpor")


async def _unbind(world: World, driver: MirrorDriver) -> None:
    await world.unbind(driver)


async def _exit(world: World, driver: MirrorDriver) -> None:
    del driver
    await mmput(world.mm)


def test_every_new_kind_has_a_one_sentence_explanation() -> None:
    """Each new teardown kind is in the catalogue with a one-line sentence."""
    for kind in NEW_KINDS:
        assert kinds.is_known(kind)
        text = kinds.explain(kind)
        assert "\n" not in text
        assert text.endswith(".")


# -- hmm_mirror drivers (v5.3) --------------------------------------------------


def _mirror_driver(example: Any, unbind: str) -> Any:
    @dataclass(kw_only=True, eq=False)
    class Buggy(example.UnregistersFirst):  # type: ignore[misc]
        async def unbind(self) -> None:
            if unbind == "keeps-mirror":
                await self.stop_device()  # BUG: no hmm_mirror_unregister
            elif unbind == "keeps-ptes":
                await self.hmm.hmm_mirror_unregister(self.mirror)  # BUG: no stop
                await api.kfree(self.state)  # type: ignore[has-type]
                self.state = None
            else:  # "grabs-hmm"
                await self.stop_device()
                # BUG: a reference on mirror->hmm that nothing ever drops
                await kref_get(self.mirror.hmm.kref)
                await self.hmm.hmm_mirror_unregister(self.mirror)
                await api.kfree(self.state)
                self.state = None

    def make(hmm: ModuleType, name: str, device: api.Device) -> Any:
        return Buggy(hmm=hmm, name=name, device=device)

    return make


@pytest.mark.parametrize(
    ("bug", "kind"),
    [
        ("keeps-mirror", "notifier-after-unbind"),
        ("keeps-ptes", "device-pte-after-unbind"),
        ("grabs-hmm", "subscriptions-leak"),
    ],
)
def test_an_hmm_mirror_driver_that_leaks_at_unbind_is_reported(
    example: ModuleType, bug: str, kind: str
) -> None:
    """Each unbind bug of an hmm_mirror driver is its own kind, naming the device."""
    result = _race(_mirror_driver(example, bug), {"unbind": _unbind}, "v5.3")

    assert result.kinds == [kind]
    finding = result.counterexamples[0].finding
    assert ("gpu0" in finding.message) or ("hmm" in finding.message)
    if kind != "subscriptions-leak":
        assert finding.causes[0].note == "dmirror0 unbound (its unbind returned)"


def test_the_fixed_hmm_mirror_driver_unbinds_clean_also_after_exit(
    example: ModuleType,
) -> None:
    """Stop, unregister, free: verified whether or not the process exits meanwhile."""
    result = _race(
        example.make_fixed_driver, {"unbind": _unbind, "exit": _exit}, "v5.3"
    )

    assert result.exit_reason.name == "EXHAUSTED"
    assert result.kinds == []


# -- mmu_interval_notifier drivers (v5.5, current) -------------------------------


@dataclass(slots=True, kw_only=True, eq=False)
class _IntervalBug:
    """The reference lib/test_hmm.c driver with one unbind bug."""

    inner: Any
    kernel: Any
    bug: str

    @property
    def name(self) -> str:
        """The driver's name."""
        return str(self.inner.name)

    @property
    def device(self) -> api.Device:
        """The device page table."""
        return self.inner.device  # type: ignore[no-any-return]

    @property
    def update(self) -> Any:
        """The driver lock."""
        return self.inner.update

    async def bind(self, mm: Any) -> int:
        """open(): insert the interval notifier."""
        return await self.inner.bind(mm)  # type: ignore[no-any-return]

    async def fault(
        self, addr: int, *, write: bool = False, max_retries: int = 1
    ) -> int:
        """The reference fault loop."""
        return await self.inner.fault(addr, write=write, max_retries=max_retries)  # type: ignore[no-any-return]

    async def unbind(self) -> None:
        """release() with the bug: skip the remove, or skip emptying the table."""
        if self.bug == "keeps-notifier":
            for addr, _ in self.device.mapped():
                await device_pte_clear(self.device, addr)
            return  # BUG: no mmu_interval_notifier_remove
        # BUG: the table is never emptied
        await self.kernel.mmu_interval_notifier_remove(self.inner.dmirror.notifier)


def _interval_driver(bug: str) -> Any:
    def make(kernel: Any, name: str, device: api.Device) -> Any:
        inner = DRIVERS[kernel.version](kernel, name, device)
        return _IntervalBug(inner=inner, kernel=kernel, bug=bug)

    return make


@pytest.mark.parametrize("variant", ["v5.5", "current"])
@pytest.mark.parametrize(
    ("bug", "kind"),
    [
        ("keeps-notifier", "notifier-after-unbind"),
        ("keeps-ptes", "device-pte-after-unbind"),
    ],
)
def test_an_interval_driver_that_leaks_at_unbind_is_reported(
    variant: str, bug: str, kind: str
) -> None:
    """A release that skips the remove, or leaves the table, is reported after unbind."""
    result = _race(_interval_driver(bug), {"unbind": _unbind}, variant)

    assert result.kinds == [kind]
    finding = result.counterexamples[0].finding
    assert "gpu0" in finding.message
    if kind == "notifier-after-unbind":
        assert "mmu_interval_notifier" in finding.message


def test_the_reference_interval_driver_unbinds_clean_also_after_exit() -> None:
    """dmirror_fops_release leaves nothing behind on current, whether or not the process exits."""
    result = _race(DRIVERS["current"], {"unbind": _unbind, "exit": _exit}, "current")

    assert result.exit_reason.name == "EXHAUSTED"
    assert result.kinds == []


def test_on_v55_unbind_against_exit_finds_the_remove_race_not_a_leak() -> None:
    """On v5.5 the only finding is the known remove race (fixed by 319561669a59)."""
    result = _race(DRIVERS["v5.5"], {"unbind": _unbind, "exit": _exit}, "v5.5")

    assert result.kinds == ["use-after-free"]
    assert "mn_itree_inv_end" in result.counterexamples[0].finding.message


def test_a_notifier_left_after_exit_alone_is_not_reported() -> None:
    """Exit without the file release is the state before exit_files, not a leak."""
    result = _race(_interval_driver("keeps-notifier"), {"exit": _exit}, "v5.5")

    assert result.kinds == []


# -- the mm freed before its subscribers -----------------------------------------


def test_an_hmm_or_subscriptions_outliving_their_freed_mm_is_reported() -> None:
    """A freed mm whose hmm or subscriptions structure is still alive is subscriptions-leak."""
    seen: list[list[str]] = []

    async def body() -> None:
        mm = mm_alloc("mm")
        hmm = Hmm(name="hmm", mm=mm)
        hmm.mirrors.append(object())  # type: ignore[arg-type]  # a holder
        seen.append([f.kind for f in _subscriptions_leak(mm, hmm)])
        mm.freed = True
        seen.append([f.kind for f in _subscriptions_leak(mm, hmm)])
        hmm.freed = True
        seen.append([f.kind for f in _subscriptions_leak(mm, hmm)])
        mm.mmu_notifier_mm = object()  # type: ignore[assignment]  # never destroyed
        seen.append([f.kind for f in _subscriptions_leak(mm, None)])

    explore(
        lambda: SimpleInstance(task_list=[("t", body())]),
        ExploreConfig(strategy="dfs", max_executions=1),
    )

    assert seen[:4] == [[], ["subscriptions-leak"], [], ["subscriptions-leak"]]
