"""Leak and teardown checks, run once at the end of every execution.

When every task has finished, nothing in the world can still be in the
middle of a fault, an invalidation or an unbind; what is left then must be
owned by something still alive.  These checks look for what nobody owns any
more:

* ``range-leak``: an ``hmm_range`` is still on ``hmm->ranges`` (v5.3 and
  prepatch).  A range is registered and unregistered by one fault (it lives
  on the faulting function's stack in every driver of that API), so one left
  registered when all tasks are done was forgotten on some path; it keeps its
  ``mmget`` and its ``hmm`` reference, so the process's exit never tears the
  address space down.
* ``mm-users-leak``: a task finished holding more ``mm_users`` references
  than it dropped (``mmget``/``mmget_not_zero`` without ``mmput``), other
  than the one a leaked range holds (reported as ``range-leak``).  A task
  that drops a reference it did not take (the process's own, at exit) is
  normal.
* ``mm-count-leak``: the address space has no users left and no subscriber
  (no ``hmm``, no hlist notifier, no interval notifier) still holds it, yet
  ``mm_count`` is above the references that legitimately stay: the OOM
  victim's, which the kernel keeps in the victim's ``signal_struct``
  (``signal->oom_mm``) until the task is freed, which never happens in a
  world (the task outlives the execution).  So an ``mmgrab`` was never
  dropped and the ``mm_struct`` is never freed.
* ``invalidation-open``: an ``invalidate_range_start`` that returned success
  was never ended (the notifier core's ghost count is not zero).  The
  subscriber counts that such a start leaves raised are ``notifier-leak``.
* ``kmemleak``: an object a driver allocated with ``kmalloc`` is neither
  freed nor reachable any more from the world's live kernel state (the mm,
  its subscriptions, the device tables): after its driver unbound, or after
  a path that dropped its last pointer, nobody can free it.  Like kmemleak,
  memory still reachable is not reported.

* ``notifier-after-unbind``: a driver's subscription is still registered
  after the driver unbound: an ``mmu_interval_notifier`` still on the
  subscriptions' interval tree (v5.5, current), or an ``hmm_mirror`` still on
  ``hmm->mirrors`` (v5.3, prepatch).  "Unbound" is the harness's
  ``driver_unbind`` tracepoint (``World.unbind``, emitted when the driver's
  unbind returned, with the driver's device); a subscription belongs to
  that driver when it reaches the driver's device through its own fields
  (``container``, ``ops``, closures) without passing through the mm, the
  ``hmm``, the subscriptions structure or another subscription.  In the
  kernel the driver's file release (``dmirror_fops_release``,
  ``nouveau_svmm_fini``) is what removes it; one left behind keeps calling
  into a driver that is gone and keeps its ``mmgrab``.
* ``device-pte-after-unbind``: the device of an unbound driver still maps
  a page at the end, even one the CPU still maps (that case is no
  ``device-stale-mapping``): nothing invalidates that entry any more.
* ``subscriptions-leak``: the mm's ``struct hmm`` (v5.3, prepatch) or its
  notifier subscriptions outlive what holds them: the mm was freed
  (``__mmdrop`` ran) while its ``hmm`` was not freed or its subscriptions
  structure still exists, or an ``hmm`` with no mirror and no range
  registered still has a reference (``hmm->kref`` above zero: nobody is
  left to drop it, so ``hmm_free`` and the ``mmdrop`` of its
  ``hmm_free_rcu`` never run).

A device entry left after the process exited is already a finding of the
contract oracle (``device-stale-mapping`` at the end): ``exit_mmap`` runs
the release callbacks and then unmaps every page, so any entry left maps
what the CPU no longer maps.  The worlds model process exit as the last
``mmput`` (``exit_mm``); the file release that ``exit_files`` runs later is
not part of them, so a notifier still inserted after exit is the state
between the two, not a leak, and is not reported.  Nor does any built-in
world drop ``mm_count`` to zero while a subscriber is alive: every
subscriber holds an ``mmgrab`` (``hmm_get_or_create``,
``mmu_interval_notifier_insert``, ``mmu_notifier_register``), and an OOM
victim's ``signal->oom_mm`` keeps one too, so the "freed with its mm" half
of ``subscriptions-leak`` fires only on a reference-count bug elsewhere.

What the set-up task (``setup``, which runs alone before the actors)
leaves behind is the world's initial state, not a leak: a scenario may stop
a fault half-way on purpose (``concurrent-invalidations`` registers the range
its ``waiter`` waits on during set-up, and the waiter stands for the rest of
that fault only up to the wait).  So ``range-leak`` and ``mm-users-leak``
count only what the actors registered and took; ``mm-count-leak``,
``invalidation-open`` and ``kmemleak`` judge the end state as a whole.

The checks read state only: the engine runs them after every task finished
(``Execution.run`` calls ``Instance.check_end`` once the loop ends with no
fatal finding), so no other task can race with the reads and no Op is
needed.  The per-task reference balances and the range registrations come
from tracepoint probes attached before set-up, which only record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Final

from hmmsim.engine import Cause, Finding, current_execution
from hmmsim.kernel.slab import SlabObject
from hmmsim.kernel.trace import register_probe
from hmmsim.kernel.types import MMF_OOM_VICTIM

if TYPE_CHECKING:
    from hmmsim.kernel.mm_types import MmStruct
    from hmmsim.oracle.hmm_contract import HmmWorldView

__all__ = ["TeardownLog", "attach_teardown_probes", "check_teardown"]

#: Tracepoint functions that take an ``mm_users`` reference.
_GETS: Final = ("mmget", "mmget_not_zero")

#: The task that sets a world up before its actors run (``WorldInstance``).
SETUP_TASK: Final = "setup"


@dataclass(slots=True, kw_only=True, eq=False)
class TeardownLog:
    """What the teardown probes record during an execution.

    Attributes:
        users: per (task, mm), the ``mm_users`` references it took and has
            not dropped yet (a stack of the steps that took them).
        ranges: per range name, the registrations not yet unregistered.
        unbound: per device name, the step whose driver unbind returned.
    """

    users: dict[tuple[str, str], list[Cause]] = field(default_factory=dict)
    ranges: dict[str, list[Cause]] = field(default_factory=dict)
    unbound: dict[str, Cause] = field(default_factory=dict)


def _here(note: str) -> Cause:
    execution = current_execution()
    task = execution.current
    return Cause(step=execution.step, task=task.name if task else "", note=note)


def attach_teardown_probes(view: HmmWorldView) -> None:
    """Register the probes that record references and registrations."""
    log = view.teardown

    def on_mm_users(_: str, f: Mapping[str, object]) -> None:
        func = f.get("func")
        here = _here(f"{func} took an mm_users reference of {f.get('mm')}")
        if here.task == SETUP_TASK:
            return  # the world's initial state (see the module docstring)
        key = (here.task, str(f.get("mm")))
        held = log.users.setdefault(key, [])
        if func in _GETS and f.get("taken", True):
            held.append(here)
        elif func == "mmput":
            if held:
                held.pop()
            else:
                # A reference the task did not take (the process's, at exit).
                log.users.pop(key)

    def on_register(_: str, f: Mapping[str, object]) -> None:
        name = str(f.get("range"))
        here = _here(
            f"hmm_range_register({name}) with no hmm_range_unregister after it"
        )
        log.ranges.setdefault(name, []).append(here)

    def on_unregister(_: str, f: Mapping[str, object]) -> None:
        stack = log.ranges.get(str(f.get("range")))
        if stack:
            stack.pop()

    def on_unbind(_: str, f: Mapping[str, object]) -> None:
        here = _here(f"{f.get('driver')} unbound (its unbind returned)")
        log.unbound[str(f.get("device"))] = here

    register_probe("driver_unbind", on_unbind)
    register_probe("mm_users", on_mm_users)
    register_probe("hmm_range_register", on_register)
    register_probe("hmm_range_unregister", on_unregister)


def _finding(kind: str, message: str, causes: Iterable[Cause]) -> Finding:
    step = current_execution().step
    unique: dict[int, Cause] = {}
    for cause in causes:
        if cause.step != step:
            unique.setdefault(cause.step, cause)
    return Finding(kind=kind, message=message, step=step, causes=tuple(unique.values()))


def check_teardown(view: HmmWorldView) -> Iterator[Finding]:
    """Return the leak and teardown findings (every task has finished)."""
    mm = view.mm
    log = view.teardown
    hmm = view.hmm_of() if view.hmm_of is not None else None
    range_owners: list[Cause] = []
    for rng in getattr(hmm, "ranges", None) or ():
        stack = log.ranges.get(rng.name) or []
        cause = stack.pop(0) if stack else None
        if cause is None or cause.task == SETUP_TASK:
            continue  # registered by the set-up: part of the world's initial state
        range_owners.append(cause)
        yield _finding(
            "range-leak",
            f"{rng.name} [{rng.start:#x}, {rng.end:#x}) is still registered on "
            f"{getattr(hmm, 'name', 'hmm')}->ranges after every task finished: it still holds an "
            "mm_users reference and an hmm reference",
            [cause],
        )
    yield from _users_leaks(log, range_owners)
    yield from _count_leak(mm, hmm)
    open_now = mm.ghost_open_invalidations + mm.ghost_starts_in_flight
    if open_now:
        yield _finding(
            "invalidation-open",
            f"{open_now} invalidation(s) of {mm.name} started and never ended "
            "after every task finished",
            [],
        )
    yield from _kmemleak(view)
    yield from _after_unbind(view, hmm)
    yield from _subscriptions_leak(mm, hmm)


def _subscriptions(mm: MmStruct, hmm: object) -> list[tuple[str, object]]:
    """The driver subscriptions of ``mm``: interval notifiers and mirrors."""
    subs: list[tuple[str, object]] = []
    itree = getattr(mm.mmu_notifier_mm, "itree", None) or ()
    subs.extend(("mmu_interval_notifier", sub) for sub in itree)
    if hmm is not None and not getattr(hmm, "freed", False):
        mirrors = getattr(hmm, "mirrors", None) or ()
        subs.extend(("hmm_mirror", mirror) for mirror in mirrors)
    return subs


def _after_unbind(view: HmmWorldView, hmm: object) -> Iterator[Finding]:
    log = view.teardown
    if not log.unbound:
        return
    mm = view.mm
    subs = _subscriptions(mm, hmm)
    shared = {id(mm), id(hmm), id(mm.mmu_notifier_mm), *(id(s) for _, s in subs)}
    for device in view.devices:
        cause = log.unbound.get(device.name)
        if cause is None:
            continue
        for label, sub in subs:
            roots = _referents(sub)
            if _reachable(roots, {id(device)}, blocked=shared):
                name = getattr(sub, "name", label)
                yield _finding(
                    "notifier-after-unbind",
                    f"{label} {name} of {device.name}'s driver is still registered "
                    f"on {mm.name} after the driver unbound: invalidations still "
                    "call into it and it still holds its mmgrab",
                    [cause],
                )
        left = [addr for addr, _ in device.mapped()]
        if left:
            where = ", ".join(f"{addr:#x}" for addr in left)
            yield _finding(
                "device-pte-after-unbind",
                f"{device.name} still maps {where} after its driver unbound: "
                "nothing invalidates that entry any more",
                [cause],
            )


def _subscriptions_leak(mm: MmStruct, hmm: object) -> Iterator[Finding]:
    hmm_alive = hmm is not None and not getattr(hmm, "freed", False)
    if mm.freed and (hmm_alive or mm.mmu_notifier_mm is not None):
        what = (
            getattr(hmm, "name", "hmm") if hmm_alive else "its notifier subscriptions"
        )
        yield _finding(
            "subscriptions-leak",
            f"{mm.name} was freed (__mmdrop) but {what} was not: it outlives "
            "the mm it points to",
            [],
        )
        return
    kref = getattr(hmm, "kref", None)
    if not hmm_alive or kref is None:
        return
    holders = len(getattr(hmm, "mirrors", ())) + len(getattr(hmm, "ranges", ()))
    count = int(getattr(kref, "refcount", 0))
    if holders == 0 and count > 0:
        yield _finding(
            "subscriptions-leak",
            f"{getattr(hmm, 'name', 'hmm')} has no mirror and no range registered "
            f"but its kref is {count}: nobody is left to drop it, so hmm_free "
            f"never runs and its mmgrab of {mm.name} is never dropped",
            [],
        )


def _users_leaks(log: TeardownLog, range_owners: list[Cause]) -> Iterator[Finding]:
    for (task, mm_name), held in sorted(log.users.items()):
        left = list(held)
        for owner in range_owners:
            if owner.task == task and left:
                left.pop()  # the leaked range's own mmget (range-leak)
        if left:
            yield _finding(
                "mm-users-leak",
                f"task {task} finished holding {len(left)} mm_users reference(s) of "
                f"{mm_name} it took and never dropped (mmget without mmput)",
                left,
            )


def _subscribed(mm: MmStruct, hmm: object) -> bool:
    if hmm is not None and not getattr(hmm, "freed", False):
        return True
    mmn_mm = mm.mmu_notifier_mm
    if mmn_mm is None:
        return False
    return mmn_mm.first is not None or bool(getattr(mmn_mm, "itree", ()))


def _count_leak(mm: MmStruct, hmm: object) -> Iterator[Finding]:
    if mm.mm_users.value or mm.freed or _subscribed(mm, hmm):
        return
    # The OOM victim's signal_struct keeps its mmgrab until the task is freed.
    pinned = 1 if mm.flags.value & (1 << MMF_OOM_VICTIM) else 0
    count = mm.mm_count.value
    if count > pinned:
        held = " (besides the OOM victim's signal->oom_mm)" if pinned else ""
        yield _finding(
            "mm-count-leak",
            f"{mm.name} has no users and no subscriber left, but mm_count is "
            f"{count}{held}: an mmgrab was never dropped, so the mm_struct is "
            "never freed",
            [],
        )


def _kmemleak(view: HmmWorldView) -> Iterator[Finding]:
    heap = current_execution().context.get("slab")
    if not isinstance(heap, list):
        return
    live = [obj for obj in heap if not _header(obj).freed]
    if not live:
        return
    reachable = _reachable([view.mm, *view.devices], {id(obj) for obj in live})
    for obj in live:
        if id(obj) in reachable:
            continue
        header = _header(obj)
        step, task = header.allocated
        yield _finding(
            "kmemleak",
            f"kmemleak: {header.name} is neither freed nor reachable from the mm, "
            "its subscriptions or the device tables at the end (nobody can free it)",
            [Cause(step=step, task=task, note=f"kmalloc returned {header.name}")],
        )


def _header(obj: object) -> SlabObject:
    header = getattr(obj, "slab", None)
    assert isinstance(header, SlabObject), "[hmmsim internal bug] heap object"
    return header


def _reachable(
    roots: list[object], wanted: set[int], *, blocked: Iterable[int] = ()
) -> set[int]:
    """Return the ids in ``wanted`` reachable from ``roots``.

    Follows containers, object attributes, bound methods and closures; not
    modules, classes or a function's globals (static data is no root of a
    driver's memory here), nor the objects whose ids are ``blocked``.
    """
    found: set[int] = set()
    seen: set[int] = set(blocked)
    stack = list(roots)
    while stack and len(found) < len(wanted):
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, ModuleType, str, bytes, int)):
            continue
        seen.add(id(obj))
        if id(obj) in wanted:
            found.add(id(obj))
        stack.extend(_referents(obj))
    return found


def _referents(obj: object) -> list[object]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, MethodType):
        return [obj.__self__, obj.__func__]
    if isinstance(obj, FunctionType):
        cells = obj.__closure__ or ()
        return [c.cell_contents for c in cells if _filled(c)]
    out: list[object] = []
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        out.extend(attrs.values())
    for klass in type(obj).__mro__:
        slots = getattr(klass, "__slots__", ())
        out.extend(
            getattr(obj, slot)
            for slot in ((slots,) if isinstance(slots, str) else slots)
            if isinstance(slot, str) and hasattr(obj, slot)
        )
    return out


def _filled(cell: object) -> bool:
    try:
        cell.cell_contents  # type: ignore[attr-defined]  # noqa: B018
    except ValueError:
        return False
    return True
