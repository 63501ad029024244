"""Tests for the leak and teardown checks (oracle.teardown) and driver-owned memory."""

from __future__ import annotations

import errno
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest

from hmmsim import api
from hmmsim.config import ExploreConfig
from hmmsim.engine import ExplorationResult, SimpleInstance, explore
from hmmsim.errors import ScenarioError
from hmmsim.kernel.fork import mmget_not_zero, mmgrab, mmput
from hmmsim.kernel.mmu_notifier import (
    MmuNotifierRange,
    mmu_notifier_invalidate_range_start,
    mmu_notifier_range_init,
)
from hmmsim.kernel.slab import kfree, kfree_checked, kmalloc, slab_objects
from hmmsim.kernel.types import MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_CLEAR
from hmmsim.oracle import kinds
from hmmsim.scenarios import Scenario
from hmmsim.scenarios._world import World
from hmmsim.sync import current_execution

EXAMPLE: Final = (
    Path(__file__).resolve().parents[3]
    / "examples"
    / "mirror_frees_before_unregister.py"
)
#: An address no VMA covers: a fault there fails with -EFAULT.
UNMAPPED: Final = api.BASE + 64 * api.PAGE_SIZE

NEW_KINDS: Final = (
    "double-free",
    "range-leak",
    "mm-users-leak",
    "mm-count-leak",
    "invalidation-open",
    "kmemleak",
)


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """The example module (its drivers and its race), loaded as the CLI loads it."""
    api.load_file(EXAMPLE)
    (module,) = [
        m
        for m in list(sys.modules.values())
        if getattr(m, "__file__", None) == str(EXAMPLE)
    ]
    return module


Actor = Callable[[Any, Any], Awaitable[object]]


def _race(
    factory: Any,
    actors: dict[str, Actor],
    *,
    variant: str = "v5.3",
    oom_victim: bool = False,
) -> ExplorationResult:
    """Explore ``actors`` (each gets the world and its driver) with DPOR."""

    def build(chosen: str) -> api.WorldInstance:
        world = (
            World.create(chosen)
            if factory is None
            else api.mirror_world(chosen, factory)
        )
        driver = world.mirrors[0]

        async def setup() -> None:
            await world.setup(oom_victim=oom_victim)

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
        name="teardown-test",
        title="A teardown test race",
        description="",
        variants=(variant,),
        build=build,
        config={"max_steps": 4000},
    )
    return api.check(scenario, variant, strategy="dpor")


async def _exit(world: Any, driver: Any) -> None:
    del driver
    await mmput(world.mm)


async def _unbind(world: Any, driver: Any) -> None:
    await world.unbind(driver)


def test_every_new_kind_has_a_one_sentence_explanation() -> None:
    """Each teardown kind is in the catalogue with a one-line sentence."""
    for kind in NEW_KINDS:
        assert kinds.is_known(kind)
        text = kinds.explain(kind)
        assert "\n" not in text
        assert text.endswith(".")


def test_frees_before_unregister_is_a_use_after_free(example: Any) -> None:
    """The example's teardown-order bug is found as KASAN's use-after-free, and only that."""
    (chosen,) = [
        s for s in api.load_file(EXAMPLE) if s.name == "oom-vs-mirror-unregister"
    ]
    result = api.check(chosen, "v5.3", strategy="dpor")

    assert result.exit_reason.name == "EXHAUSTED"
    assert result.kinds == ["use-after-free"]
    finding = result.counterexamples[0].finding
    assert "sync_cpu_device_pagetables" in finding.message
    assert "MirrorState#" in finding.message
    assert "freed at step" in finding.message


@pytest.mark.parametrize("race", ["oom-vs-mirror-unregister", "unbind-vs-reclaim"])
def test_unregister_then_free_is_verified(example: Any, race: str) -> None:
    """The fixed order (stop, unregister, free) passes the races the bug fails."""
    if race == "unbind-vs-reclaim":
        result = _race(
            example.make_fixed_driver, {"unbind": _unbind, "reclaim": _reclaim}
        )
        buggy = _race(example.make_driver, {"unbind": _unbind, "reclaim": _reclaim})
        assert buggy.kinds == ["use-after-free"]
    else:
        (chosen,) = api.mirror_scenarios(example.make_fixed_driver, races=[race])
        result = api.check(chosen, "v5.3", strategy="dpor")

    assert result.kinds == []
    assert result.exit_reason.name == "EXHAUSTED"


async def _reclaim(world: Any, driver: Any) -> bool:
    del driver
    pte = world.mm.ptes[api.BASE].value
    assert pte is not None
    return await api.try_to_unmap_one(pte.page, world.mm.mmap[0], api.BASE)


def _skips_unregister(example: Any) -> Any:
    """A driver whose fault path returns on an error without hmm_range_unregister."""

    @dataclass(kw_only=True, eq=False)
    class SkipsUnregister(example.UnregistersFirst):  # type: ignore[misc]
        async def fault(
            self, addr: int, *, write: bool = False, max_retries: int = 1
        ) -> int:
            del write, max_retries
            mm = self.device.mm
            if not await mmget_not_zero(mm):
                return -errno.EFAULT
            hmm = self.hmm
            rng = hmm.HmmRange(name=f"{self.name}->range", pfns=[0])
            ret: int = await hmm.hmm_range_register(
                rng, self.mirror, addr, addr + api.PAGE_SIZE, api.PAGE_SHIFT
            )
            if ret == 0:
                await api.down_read(mm.mmap_sem)
                ret = await hmm.hmm_range_fault(rng, True)
                await api.up_read(mm.mmap_sem)
                if ret < 0:
                    await mmput(mm)
                    return ret  # BUG: the range stays registered
                await hmm.hmm_range_unregister(rng)
            await mmput(mm)
            return ret

    def make(hmm: ModuleType, name: str, device: api.Device) -> Any:
        return SkipsUnregister(hmm=hmm, name=name, device=device)

    return make


async def _fault_unmapped(world: Any, driver: Any) -> int:
    del world
    ret: int = await driver.fault(UNMAPPED)
    return ret


def test_skipping_hmm_range_unregister_on_an_error_path_is_a_range_leak(
    example: Any,
) -> None:
    """A fault that returns -EFAULT without unregistering its range is range-leak (only)."""
    result = _race(
        _skips_unregister(example), {"device": _fault_unmapped, "exit": _exit}
    )

    assert result.kinds == ["range-leak"]
    finding = result.counterexamples[0].finding
    assert "dmirror0->range" in finding.message
    assert any("hmm_range_register" in c.note for c in finding.causes)


def test_the_same_race_with_unregister_on_every_path_is_verified(example: Any) -> None:
    """The example's fault path unregisters on error: no leak is reported."""
    result = _race(
        example.make_fixed_driver, {"device": _fault_unmapped, "exit": _exit}
    )

    assert result.kinds == []


def _forgets_mmput(example: Any) -> Any:
    """A driver whose fault path returns on an error without mmput."""

    @dataclass(kw_only=True, eq=False)
    class ForgetsMmput(example.UnregistersFirst):  # type: ignore[misc]
        async def fault(
            self, addr: int, *, write: bool = False, max_retries: int = 1
        ) -> int:
            del write, max_retries
            if not await mmget_not_zero(self.device.mm):
                return -errno.EFAULT
            if addr >= UNMAPPED:
                return -errno.EFAULT  # BUG: no mmput
            await mmput(self.device.mm)
            return 0

    def make(hmm: ModuleType, name: str, device: api.Device) -> Any:
        return ForgetsMmput(hmm=hmm, name=name, device=device)

    return make


@pytest.mark.parametrize("variant", ["v5.3", "v5.5", "current"])
def test_mmget_without_mmput_is_an_mm_users_leak(example: Any, variant: str) -> None:
    """A task that takes mm_users and never drops it is mm-users-leak, naming the step."""
    if variant != "v5.3":

        async def leak(world: Any, driver: Any) -> bool:
            del driver
            return await mmget_not_zero(world.mm)  # and never mmput

        result = _race(None, {"leaky": leak}, variant=variant)
    else:
        result = _race(_forgets_mmput(example), {"device": _fault_unmapped})

    assert result.kinds == ["mm-users-leak"]
    finding = result.counterexamples[0].finding
    assert "mmget_not_zero" in finding.causes[0].note


async def _grab_then_exit(world: Any, driver: Any) -> None:
    del driver
    await mmgrab(world.mm)  # never dropped
    await mmput(world.mm)


@pytest.mark.parametrize("oom_victim", [False, True])
def test_a_full_teardown_leaves_only_the_oom_victims_mm_count(
    example: Any, oom_victim: bool
) -> None:
    """Exit plus unbind frees everything; the OOM victim's signal->oom_mm pin is not a leak."""
    result = _race(
        example.make_fixed_driver,
        {"exit": _exit, "unbind": _unbind},
        oom_victim=oom_victim,
    )

    assert result.kinds == []


@pytest.mark.parametrize("oom_victim", [False, True])
def test_mmgrab_without_mmdrop_is_an_mm_count_leak(
    example: Any, oom_victim: bool
) -> None:
    """An mmgrab never dropped keeps mm_count up after exit and unbind: mm-count-leak."""
    result = _race(
        example.make_fixed_driver,
        {"exit": _grab_then_exit, "unbind": _unbind},
        oom_victim=oom_victim,
    )

    assert result.kinds == ["mm-count-leak"]
    assert ("OOM victim" in result.counterexamples[0].finding.message) is oom_victim


def test_a_start_never_ended_is_an_open_invalidation() -> None:
    """An invalidate_range_start with no end is invalidation-open at the end."""

    async def start_only(world: Any, driver: Any) -> None:
        del driver
        rng = MmuNotifierRange(mm=world.mm)
        mmu_notifier_range_init(
            rng,
            MMU_NOTIFY_CLEAR,
            MMU_NOTIFIER_RANGE_BLOCKABLE,
            None,
            world.mm,
            api.BASE,
            api.BASE + api.PAGE_SIZE,
        )
        await mmu_notifier_invalidate_range_start(rng)

    result = _race(None, {"start": start_only})

    assert "invalidation-open" in result.kinds


def _forgets_kfree(example: Any) -> Any:
    @dataclass(kw_only=True, eq=False)
    class ForgetsKfree(example.UnregistersFirst):  # type: ignore[misc]
        async def unbind(self) -> None:
            await self.stop_device()
            await self.hmm.hmm_mirror_unregister(self.mirror)
            self.state = None  # BUG: dropped, never freed

    def make(hmm: ModuleType, name: str, device: api.Device) -> Any:
        return ForgetsKfree(hmm=hmm, name=name, device=device)

    return make


def test_state_never_freed_after_unbind_is_kmemleak(example: Any) -> None:
    """Driver memory neither freed nor reachable after unbind is kmemleak, naming its kmalloc."""
    result = _race(_forgets_kfree(example), {"unbind": _unbind})

    assert result.kinds == ["kmemleak"]
    finding = result.counterexamples[0].finding
    assert "MirrorState#" in finding.message
    assert finding.causes[0].note.startswith("kmalloc returned MirrorState#")


def test_state_of_a_bound_driver_is_reachable_not_leaked(example: Any) -> None:
    """While the mirror is registered its state is reachable: no kmemleak."""

    async def idle(world: Any, driver: Any) -> None:
        del world, driver

    result = _race(_forgets_kfree(example), {"idle": idle})

    assert result.kinds == []


def test_freeing_twice_is_a_double_free(example: Any) -> None:
    """A second kfree of the same object is KASAN's double-free."""

    async def twice(world: Any, driver: Any) -> None:
        del world
        state = driver.state
        await driver.unbind()
        await api.kfree(state)

    result = _race(example.make_fixed_driver, {"unbind": twice})

    assert result.kinds == ["double-free"]


def _run(body: Callable[[], Coroutine[Any, Any, None]]) -> ExplorationResult:
    return explore(
        lambda: SimpleInstance(task_list=[("t", body())]),
        ExploreConfig(strategy="dfs", max_executions=10),
    )


@dataclass(eq=False)
class _Obj:
    freed: bool = False


@dataclass(slots=True, eq=False)
class _Slotted:
    value: int = 0


def test_kmalloc_fails_by_injection_and_refuses_bad_objects() -> None:
    """kmalloc returns None under failslab, and refuses a re-allocation or a slotted object."""
    seen: list[object] = []

    async def body() -> None:
        current_execution().context["failslab"] = 1
        seen.append(kmalloc(_Obj()))
        obj = api.kzalloc(_Obj())
        seen.append(obj)
        seen.append(slab_objects() == [obj])
        for bad in (obj, _Slotted()):
            try:
                kmalloc(bad)
            except ScenarioError as exc:
                seen.append(str(exc).split(":")[0])

    result = _run(body)

    assert result.kinds == []
    assert seen[0] is None
    assert isinstance(seen[1], _Obj)
    assert seen[2:] == [True, "kmalloc", "kmalloc"]


def test_freeing_or_reading_memory_kmalloc_never_returned() -> None:
    """kfree of foreign memory is an invalid free; an accessor on it is a usage error."""
    errors: list[str] = []

    async def body() -> None:
        await kfree_checked(None)  # kfree(NULL) is a no-op
        try:
            await api.kasan_check_read(_Obj(), "reader")
        except ScenarioError as exc:
            errors.append(str(exc))
        await kfree_checked(_Obj())

    result = _run(body)

    assert result.kinds == ["double-free"]
    assert "invalid-free" in result.counterexamples[0].finding.message
    assert errors
    assert "kmalloc did not return" in errors[0]


def test_the_model_kfree_marks_a_heap_object_freed() -> None:
    """The model's Op-less kfree also marks the heap header, so accessors see the free."""

    async def body() -> None:
        obj = kmalloc(_Obj())
        assert obj is not None
        kfree(obj)
        await api.kasan_check_read(obj, "late_reader")

    result = _run(body)

    assert result.kinds == ["use-after-free"]
    assert "late_reader" in result.counterexamples[0].finding.message


def test_kfree_of_a_model_struct_sets_its_ghost_flag_too() -> None:
    """kfree of a heap object with a ``freed`` flag sets it; the header holds no lock."""
    objs: list[_Obj] = []

    async def body() -> None:
        obj = kmalloc(_Obj())
        assert obj is not None
        assert obj.slab.holders() == ()  # type: ignore[attr-defined]
        await kfree_checked(obj)
        objs.append(obj)

    result = _run(body)

    assert result.kinds == []
    assert objs[0].freed


def test_a_range_the_set_up_registered_is_initial_state_not_a_leak() -> None:
    """concurrent-invalidations leaves set-up's range registered: no range-leak."""
    result = api.check("concurrent-invalidations", "v5.3", max_executions=5)

    assert result.kinds == []
