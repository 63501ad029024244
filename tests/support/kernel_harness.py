"""Helpers to run kernel-model code in an engine execution (kernel unit tests).

``run_tasks(setup)`` builds the world inside a fresh execution (``setup`` is
called by the program factory and returns the tasks) and runs it with a
sequential strategy: the lowest-numbered enabled task always runs, so one
task runs to completion (or until it blocks) before the next starts.  Data
choices are taken from ``data`` in order, then 0 ("the timeout does not fire").
Every tracepoint is recorded through the ``"*"`` probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hmmsim.engine import Execution, ExecutionResult, Instance, SimpleInstance
from hmmsim.engine.execution import strict_coroutines
from hmmsim.engine.view import ExecutionView
from hmmsim.kernel.fork import mm_alloc
from hmmsim.kernel.mm_types import MmStruct
from hmmsim.kernel.mmap import vm_mmap
from hmmsim.kernel.trace import register_probe
from hmmsim.kernel.types import PAGE_SIZE, VM_READ, VM_WRITE, VmFlags
from hmmsim.sync import down_write, up_write

TaskBody = Coroutine[Any, Any, Any]


class SequentialStrategy:
    """Run the lowest enabled task; answer data choices from a script."""

    name = "sequential"
    exhaustive = False

    def __init__(self, data: Sequence[int] = ()) -> None:
        self.complete = False
        self.data = list(data)
        self.labels: list[str] = []

    def begin_execution(self) -> bool:
        return True

    def next_task(self, execution: ExecutionView, enabled: list[int]) -> int:
        return enabled[0]

    def next_int(self, execution: ExecutionView, bound: int, label: str) -> int:
        self.labels.append(label)
        return self.data.pop(0) if self.data else 0

    def end_execution(self, result: ExecutionResult) -> None:
        pass


@dataclass
class Run:
    """What one sequential execution did."""

    result: ExecutionResult
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self.result.findings]

    def named(self, name: str) -> list[dict[str, object]]:
        return [fields for event, fields in self.events if event == name]


def run_tasks(
    setup: Callable[[], Sequence[tuple[str, TaskBody]]],
    *,
    data: Sequence[int] = (),
    max_steps: int = 50_000,
) -> Run:
    """Run the tasks ``setup`` returns, sequentially, and report what happened."""
    events: list[tuple[str, dict[str, object]]] = []

    def record(name: str, fields: Mapping[str, object]) -> None:
        events.append((name, dict(fields)))

    def program() -> Instance:
        register_probe("*", record)
        return SimpleInstance(task_list=list(setup()))

    with strict_coroutines():
        execution = Execution(program, SequentialStrategy(data), max_steps=max_steps)
        result = execution.run()
    return Run(result=result, events=events)


def run_one(body: Callable[[], TaskBody], **kwargs: Any) -> Run:
    """Run one task whose body builds its own world."""
    return run_tasks(lambda: [("task", body())], **kwargs)


# -- a small world: an mm with one anonymous VMA, a stub driver ----------------

BASE = 0x100000
NPAGES = 4


async def make_mm(
    npages: int = NPAGES, vm_flags: VmFlags = VM_READ | VM_WRITE, name: str = "mm"
) -> MmStruct:
    """Return a fresh mm with one anonymous VMA of ``npages`` at BASE."""
    mm = mm_alloc(name)
    assert BASE == await vm_mmap(mm, BASE, npages * PAGE_SIZE, vm_flags)
    return mm


class StubMirrorOps:
    """A driver stub: returns ``ret`` from sync_cpu_device_pagetables, records calls."""

    def __init__(self, ret: int = 0, *, blocking_ret: int | None = None) -> None:
        self.ret = ret
        self.blocking_ret = blocking_ret
        self.updates: list[tuple[int, int, bool]] = []
        self.released: list[str] = []

    async def _release(self, mirror: Any) -> None:
        self.released.append(mirror.name)

    @property
    def release(self) -> Callable[[Any], Awaitable[None]] | None:
        return self._release

    async def sync_cpu_device_pagetables(self, mirror: Any, update: Any) -> int:
        self.updates.append((update.start, update.end, update.blockable))
        if update.blockable and self.blocking_ret is not None:
            return self.blocking_ret
        return self.ret


async def register_mirror(
    module: Any, mm: MmStruct, ops: Any, name: str = "mirror"
) -> Any:
    """Register a mirror of ``module`` (hmm or hmm_prepatch) on ``mm``."""
    mirror = module.HmmMirror(ops=ops, name=name)
    await down_write(mm.mmap_sem)
    ret = await module.hmm_mirror_register(mirror, mm)
    await up_write(mm.mmap_sem)
    assert 0 == ret
    return mirror
