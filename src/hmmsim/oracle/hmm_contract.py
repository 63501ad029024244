"""The HMM mirror contract as checks: probes on tracepoints and end properties.

What "correct" means for a world of one mm, its secondary MMUs (devices,
shadow page tables) and the HMM or notifier state that keeps them in sync:

* ``device-use-after-free`` (checked at every device access): the page the
  device reaches through its page table is free, or was freed and handed out
  again since the device mapped it;
* ``device-stale-mapping`` (at every device access, and at the end): the CPU
  page table does not map that address to that page (any more), or maps it
  read-only while the device writes;
* ``notifier-contract`` (at every CPU page-table change): a device still maps
  the address whose CPU entry changes — the invalidate_range_start that
  announced the change returned success too early (Documentation: the
  secondary MMU must have dropped its mapping before start returns); after
  exit_mmap's ``mmu_notifier_release`` the message blames the release
  callback instead, which had to stop the device.  A CPU entry that maps
  a device-private page covers that page and the page its driver keeps
  the data in (``zone_device_data``, lib/test_hmm.c's backing page); a
  migration entry maps nothing.  The change of a page under migration
  (an MMU_NOTIFY_MIGRATE invalidation is open and the page is locked) is
  not checked here: the migrating driver skips its own MIGRATE range and
  updates its device mapping as part of the migration, and a device that
  still reaches the old page is caught at that access;
* ``notifier-leak`` (at the end): with no invalidation open (the ghost count
  of starts that returned success minus ends, kept by the notifier core), a
  subscriber's own count of open invalidations is not zero;
* ``range-stuck-invalid`` (when a wait for a valid range times out, and at
  the end): a registered range is invalid although no invalidation is open
  or in flight;
* the leak and teardown checks of :mod:`hmmsim.oracle.teardown` (at the
  end): ``range-leak``, ``mm-users-leak``, ``mm-count-leak``,
  ``invalidation-open`` and ``kmemleak``.

Every finding names its *causes* when the oracle can tell (the steps that
created the bad state, not the one that detected it), from what the probes
saw earlier in the execution (:class:`CauseLog`):

* a device PTE set to a page that was already free, or while an
  invalidation was open (the page is about to be freed);
* an error (``-EAGAIN``) a callback returned that its caller dropped: the
  enclosing ``*invalidate_range_start`` returned 0 after it;
* an ``*invalidate_range_start`` that returned 0 while a device still
  mapped an address of its range (a callback claimed a success it did not
  achieve, e.g. a driver whose trylock failed returned 0);
* an increment of ``hmm->notifiers`` (or a KVM ``mmu_notifier_count``)
  never undone;
* the free of a page a device still mapped.

The checks only read model state (and the kernel's ghost counters); they
report through the running execution.  Every check is tied to an Op the
explorer orders against the writers it depends on (device entries name the
CPU PTE cell of their address; page frees and device accesses both touch the
allocator), so the reduction in DPOR does not hide a violation.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hmmsim.engine import Cause, Finding, current_execution
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.mm_types import MmStruct, Page, PageState, PteVal, SwapPte, SwpType
from hmmsim.kernel.page_alloc import pfn_to_page
from hmmsim.kernel.trace import register_probe
from hmmsim.oracle.teardown import TeardownLog, attach_teardown_probes, check_teardown

__all__ = [
    "CauseLog",
    "HmmWorldView",
    "attach_contract_probes",
    "check_end",
    "snapshot",
]

#: Tracepoints that carry a subscriber's count of open invalidations:
#: event name -> (field naming the object, field holding the count, suffix).
_COUNTER_EVENTS: Final = {
    "hmm_notifiers": ("hmm", "value", "notifiers"),
    "kvm_invalidate_range_start": ("kvm", "mmu_notifier_count", "mmu_notifier_count"),
    "kvm_invalidate_range_end": ("kvm", "mmu_notifier_count", "mmu_notifier_count"),
}
#: Tracepoints by which an invalidation start reports its return value.
_STARTS: Final = ("invalidate_range_start", "invalidate_range_start_ret")
#: The tracepoint by which the notifier core announces an invalidation.
_ANNOUNCE: Final = "mmu_notifier_invalidate_range_start"


def _errno_name(ret: int) -> str:
    return "-" + errno.errorcode.get(-ret, str(-ret))


def _here(note: str) -> Cause:
    execution = current_execution()
    task = execution.current
    return Cause(step=execution.step, task=task.name if task else "", note=note)


@dataclass(slots=True, kw_only=True, eq=False)
class CauseLog:
    """What the probes remember to name the causes of a later finding.

    Attributes:
        mapped: the last ``device_pte_set`` of each (device, address), with
            a note when the page was already bad at that moment.
        freed: the step that freed each page (by pfn).
        errors: per task, errors returned since its invalidation started.
        dropped: errors some caller dropped, in the order seen.
        raised: per counter, the increments not yet undone (a stack).
        claimed: per (device, address), the start that returned 0 while the
            device still mapped the address (until the device unmaps it).
    """

    mapped: dict[tuple[object, object], tuple[Cause, bool]] = field(
        default_factory=dict
    )
    freed: dict[object, Cause] = field(default_factory=dict)
    errors: dict[str, list[Cause]] = field(default_factory=dict)
    dropped: list[Cause] = field(default_factory=list)
    raised: dict[str, list[Cause]] = field(default_factory=dict)
    claimed: dict[tuple[object, object], Cause] = field(default_factory=dict)

    def on_event(self, name: str, f: Mapping[str, object]) -> None:
        """Remember what ``name`` tells about errors and counters."""
        counter = _COUNTER_EVENTS.get(name)
        if counter is not None:
            self._count(f"{f.get(counter[0])}->{counter[2]}", f.get(counter[1]))
        running = current_execution().current  # no Cause built for every event
        task = running.name if running else ""
        if name == _ANNOUNCE:
            self.errors.pop(task, None)
            return
        ret = f.get("ret")
        if not isinstance(ret, int) or isinstance(ret, bool):
            return
        if ret < 0:
            pending = self.errors.setdefault(task, [])
            if name.endswith("invalidate_range_start"):
                pending.clear()  # the error was passed on, as it should be
            else:
                pending.append(_here(f"{name} returned {_errno_name(ret)}"))
        elif ret == 0 and name.endswith("invalidate_range_start"):
            for error in self.errors.pop(task, ()):
                self.dropped.append(
                    Cause(
                        step=error.step,
                        task=error.task,
                        note=f"{error.note}, but {name} returned 0 at step "
                        f"{_here('').step}: the error was dropped",
                    )
                )

    def _count(self, key: str, value: object) -> None:
        if not isinstance(value, int):
            return
        stack = self.raised.setdefault(key, [])
        if value > len(stack):
            stack.append(_here(f"raised {key} to {value}; not lowered since"))
        while value < len(stack):
            stack.pop()

    def device_causes(self, device: object, addr: object, pfn: object) -> list[Cause]:
        """The causes of a device reaching (or keeping) a bad page at ``addr``."""
        causes: list[Cause] = []
        mapped = self.mapped.get((device, addr))
        if mapped is not None and mapped[1]:
            causes.append(mapped[0])
        causes.extend(reversed(self.dropped))
        claimed = self.claimed.get((device, addr))
        if claimed is not None:
            causes.append(claimed)
        freed = self.freed.get(pfn)
        if freed is not None and (mapped is None or freed.step >= mapped[0].step):
            causes.append(freed)
        return causes

    def leak_causes(self, key: str) -> list[Cause]:
        """The increments of counter ``key`` never undone, and dropped errors."""
        return [*self.raised.get(key, ()), *reversed(self.dropped)]


@dataclass(slots=True, kw_only=True, eq=False)
class HmmWorldView:
    """What the oracle watches: one mm, its devices and its counters.

    Attributes:
        mm: the address space.
        devices: every device/shadow page table mirroring ``mm``.
        hmm_of: returns the mm's struct hmm (or None) — the model decides.
        counters: named subscriber counts of open invalidations, e.g.
            ``{"kvm->mmu_notifier_count": lambda: kvm.mmu_notifier_count}``.
        ranges: returns the registered ranges (name, valid) to watch.
        causes: what the probes saw, to name the causes of findings.
        teardown: what the teardown probes saw (references, registrations).
    """

    mm: MmStruct
    devices: list[Device] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    hmm_of: Any = None
    causes: CauseLog = field(default_factory=CauseLog)
    teardown: TeardownLog = field(default_factory=TeardownLog)


def _report(
    kind: str, message: str, *, fatal: bool, causes: Iterable[Cause] = ()
) -> None:
    current_execution().report(
        kind, message, fatal=fatal, causes=_unique(causes, current_execution().step)
    )


def _unique(causes: Iterable[Cause], detected: int) -> tuple[Cause, ...]:
    """Causes by step, first note kept, without the detecting step itself."""
    seen: dict[int, Cause] = {}
    for cause in causes:
        if cause.step != detected:
            seen.setdefault(cause.step, cause)
    return tuple(seen.values())


def _open_invalidations(mm: MmStruct) -> int:
    return mm.ghost_open_invalidations + mm.ghost_starts_in_flight


def _attach_cause_probes(view: HmmWorldView) -> None:
    """Register the probes that only feed the CauseLog."""
    mm = view.mm
    log = view.causes

    def on_device_pte_set(_: str, f: Mapping[str, object]) -> None:
        device, addr = f["device"], f["addr"]
        assert isinstance(addr, int)
        page_text = f"page#{f['page']}"
        note = f"{device} mapped {addr:#x} to {page_text}"
        bad = False
        for dev in view.devices:
            slot = dev.entries.get(addr) if dev.name == device else None
            if slot is None or slot.pte is None:
                continue
            page = slot.pte.page
            cell = mm.ptes.get(addr)
            cpu = cpu_mapping(cell.value if cell is not None else None)
            if page.state is PageState.FREE:
                note += ", which was already free"
            elif not cpu_maps(cpu, page):
                note += ", which the CPU page table no longer maps there"
            elif _open_invalidations(mm):
                note += " while an invalidation was open: the page was about to go"
            else:
                continue
            bad = True
        log.mapped[(device, addr)] = (_here(note), bad)

    def on_start_returned(name: str, f: Mapping[str, object]) -> None:
        if not name.endswith(_STARTS) or f.get("ret") != 0:
            return
        start, end = f.get("start"), f.get("end")
        if not isinstance(start, int) or not isinstance(end, int):
            return
        for dev in view.devices:
            for addr, _pte in dev.mapped():
                if start <= addr < end and (dev.name, addr) not in log.claimed:
                    log.claimed[(dev.name, addr)] = _here(
                        f"{name} returned 0 while {dev.name} still mapped "
                        f"{addr:#x}: a callback claimed a success it did not achieve"
                    )

    def on_device_pte_clear(_: str, f: Mapping[str, object]) -> None:
        log.claimed.pop((f["device"], f["addr"]), None)

    def on_page_free(_: str, f: Mapping[str, object]) -> None:
        log.freed[f["page"]] = _here(
            f"freed page#{f['page']} while a device page table still pointed at it"
        )

    register_probe("*", log.on_event)
    register_probe("*", on_start_returned)
    register_probe("device_pte_clear", on_device_pte_clear)
    register_probe("device_pte_set", on_device_pte_set)
    register_probe("page_free", on_page_free)


def _culprit(mm: MmStruct, released: bool) -> str:
    """The callback whose success the CPU relied on when it changed a PTE.

    Before exit_mmap's mmu_notifier_release, a PTE changes inside an
    invalidation, so the start callbacks answered for the device; after it,
    the subscribers are gone and the teardown relies on what their release
    did: an empty release is the culprit, not the later, empty start.
    """
    if not released:
        return "invalidate_range_start returned success"
    if mm.notifier_core is None:
        return (
            "the mm's notifiers were released (exit_mmap's mmu_notifier_release) "
            "and the subscriber had not dropped the mapping: its release callback "
            "(hmm_release -> hmm_mirror_ops.release for a mirror, or an hlist "
            "subscriber's own) returned without it, or had not run when the "
            "subscriber was unhooked"
        )
    return (
        "the mm was released (exit_mmap) and the subscriber's release callback "
        "(an interval notifier's invalidate for the MMU_NOTIFY_RELEASE range, "
        "from mn_itree_release, or an hlist subscriber's release) returned"
    )


def _attach_migration_probes(mm: MmStruct) -> Callable[[object], bool]:
    """Track the MMU_NOTIFY_MIGRATE brackets open on ``mm``; return the test.

    The test says whether the page of a pfn is being migrated: a MIGRATE
    bracket is open and the page is locked.  The migrating driver's own
    invalidation callback skips an MMU_NOTIFY_MIGRATE range it owns
    (Documentation/mm/hmm.rst) and updates its device mapping as part of the
    migration; a device that still reaches the old page afterwards is caught
    at that access.
    """
    # (start, end) of each open bracket.
    migrating: list[tuple[object, object]] = []

    def on_migrate_start(_: str, f: Mapping[str, object]) -> None:
        if f.get("mm") == mm.name and f.get("event") == "MMU_NOTIFY_MIGRATE":
            migrating.append((f.get("start"), f.get("end")))

    def on_range_end(_: str, f: Mapping[str, object]) -> None:
        key = (f.get("start"), f.get("end"))
        if f.get("mm") == mm.name and key in migrating:
            migrating.remove(key)

    def under_migration(pfn: object) -> bool:
        if not migrating or not isinstance(pfn, int):
            return False
        try:
            page = pfn_to_page(pfn)
        except (IndexError, KeyError):  # pragma: no cover - a pfn of no page
            return False
        return page.pg_locked.is_locked()

    register_probe("mmu_notifier_invalidate_range_start", on_migrate_start)
    register_probe("mmu_notifier_invalidate_range_end", on_range_end)
    return under_migration


def attach_contract_probes(view: HmmWorldView) -> None:
    """Register the per-event checks in the running execution."""
    mm = view.mm
    log = view.causes
    released = [False]
    _attach_cause_probes(view)
    attach_teardown_probes(view)

    def on_device_access(_: str, f: Mapping[str, object]) -> None:
        addr = f["addr"]
        assert isinstance(addr, int)
        if f["free"] or f["generation"] != f["mapped_generation"]:
            state = (
                "free" if f["free"] else f"reallocated (generation {f['generation']})"
            )
            _report(
                "device-use-after-free",
                f"{f['device']} {'wrote' if f['write'] else 'read'} {addr:#x} "
                f"through its page table and reached page#{f['page']}, which is "
                f"{state} since the device mapped it",
                fatal=True,
                causes=log.device_causes(f["device"], addr, f["page"]),
            )
            return
        cell = mm.ptes.get(addr)
        pte = cpu_mapping(cell.value if cell is not None else None)
        reached = next(
            (
                slot.pte.page
                for dev in view.devices
                if dev.name == f["device"]
                and (slot := dev.entries.get(addr)) is not None
                and slot.pte is not None
            ),
            None,
        )
        if (
            pte is None
            or reached is None
            or reached.pfn != f["page"]
            or not cpu_maps(pte, reached)
            or (f["write"] and not pte[1])
        ):
            now = "nothing" if pte is None else f"page#{pte[0].pfn}"
            _report(
                "device-stale-mapping",
                f"{f['device']} reached page#{f['page']} at {addr:#x}, but the CPU "
                f"page table maps {addr:#x} to {now}"
                + (" read-only" if pte is not None and not pte[1] else ""),
                fatal=True,
                causes=log.device_causes(f["device"], addr, f["page"]),
            )

    under_migration = _attach_migration_probes(mm)

    def on_cpu_pte_change(name: str, f: Mapping[str, object]) -> None:
        if f.get("mm") != mm.name:
            return
        addr = f["addr"]
        assert isinstance(addr, int)
        if under_migration(f.get("page")):
            return
        for dev in view.devices:
            slot = dev.entries.get(addr)
            if slot is None or slot.pte is None:
                continue
            dpte = slot.pte
            if name == "set_pte":
                # The probe runs after the store: read what the CPU maps now
                # (a migration entry maps nothing).
                cell = mm.ptes.get(addr)
                now = cpu_mapping(cell.value if cell is not None else None)
                if cpu_maps(now, dpte.page) and (
                    now is not None and (now[1] or not dpte.write)
                ):
                    continue
            _report(
                "notifier-contract",
                f"the CPU {'clears' if name == 'pte_clear' else 'changes'} the PTE of "
                f"{addr:#x} (page#{f['page']}) while {dev.name} still maps it to "
                f"page#{dpte.page.pfn}: {_culprit(mm, released[0])} before the "
                "device dropped its mapping",
                fatal=False,
                causes=log.device_causes(dev.name, addr, dpte.page.pfn),
            )

    def on_release(_: str, f: Mapping[str, object]) -> None:
        if f.get("mm") == mm.name:
            released[0] = True

    def on_wait_result(_: str, f: Mapping[str, object]) -> None:
        if f["ret"] or _open_invalidations(mm):
            return
        _report(
            "range-stuck-invalid",
            f"hmm_range_wait_until_valid({f['range']}) timed out although no "
            "invalidation is open or in flight: the range can never become valid",
            fatal=False,
            causes=[c for key in sorted(log.raised) for c in log.leak_causes(key)],
        )

    register_probe("device_access", on_device_access)
    register_probe("pte_clear", on_cpu_pte_change)
    register_probe("set_pte", on_cpu_pte_change)
    register_probe("hmm_range_wait_until_valid", on_wait_result)
    register_probe("mmu_notifier_release", on_release)


def check_end(view: HmmWorldView) -> Iterable[Finding]:
    """Return the end-of-execution findings (every task has finished)."""
    mm = view.mm
    open_now = _open_invalidations(mm)
    step = current_execution().step
    hmm = view.hmm_of() if view.hmm_of is not None else None
    counters = dict(view.counters)
    if hmm is not None:
        counters[f"{hmm.name}->notifiers"] = lambda: hmm.notifiers
    for name, read in sorted(counters.items()):
        value = read()
        if value != open_now:
            yield Finding(
                kind="notifier-leak",
                message=(
                    f"{name} is {value} at the end, but {open_now} invalidations are "
                    "open: a start that failed (or was never ended) left it raised"
                ),
                step=step,
                causes=_unique(view.causes.leak_causes(name), step),
            )
    if hmm is not None and not open_now and not hmm.notifiers:
        for rng in hmm.ranges:
            if not rng.valid.value:
                yield Finding(
                    kind="range-stuck-invalid",
                    message=f"{rng.name} is still registered and invalid at the end",
                    step=step,
                    causes=_unique(
                        (
                            c
                            for key in sorted(view.causes.raised)
                            for c in view.causes.leak_causes(key)
                        ),
                        step,
                    ),
                )
    for dev in view.devices:
        for addr, dpte in dev.mapped():
            cell = mm.ptes.get(addr)
            pte = cpu_mapping(cell.value if cell is not None else None)
            page = dpte.page
            if page.state is PageState.FREE or page.generation != dpte.generation:
                yield Finding(
                    kind="device-stale-mapping",
                    message=(
                        f"at the end {dev.name} still maps {addr:#x} to page#{page.pfn}, "
                        "which was freed since"
                    ),
                    step=step,
                    causes=_unique(
                        view.causes.device_causes(dev.name, addr, page.pfn), step
                    ),
                )
            elif not cpu_maps(pte, page):
                yield Finding(
                    kind="device-stale-mapping",
                    message=(
                        f"at the end {dev.name} maps {addr:#x} to page#{page.pfn} but "
                        "the CPU no longer does"
                    ),
                    step=step,
                    causes=_unique(
                        view.causes.device_causes(dev.name, addr, page.pfn), step
                    ),
                )
    yield from check_teardown(view)


def snapshot(view: HmmWorldView) -> dict[str, object]:
    """Return the state excerpt shown next to each step of a timeline."""
    mm = view.mm
    state: dict[str, object] = {}
    hmm = view.hmm_of() if view.hmm_of is not None else None
    if hmm is not None:
        state["hmm->notifiers"] = hmm.notifiers
        if hmm.ranges:
            # Named, so the step that puts a range on the list shows it; its
            # valid flag is watched from then on.
            state["hmm->ranges"] = [rng.name for rng in hmm.ranges]
        for rng in hmm.ranges:
            state[f"{rng.name}->valid"] = rng.valid.value
    for name, read in sorted(view.counters.items()):
        state[name] = read()
    state["open invalidations"] = _open_invalidations(mm)
    for addr, cell in sorted(mm.ptes.items()):
        pte = cell.value
        if isinstance(pte, SwapPte):
            state[f"cpu pte {addr:#x}"] = (
                f"{pte.entry.type.value} entry of page#{pte.entry.page.pfn}"
            )
            continue
        state[f"cpu pte {addr:#x}"] = (
            "-" if pte is None else _page_text(pte.page, pte.write)
        )
    for dev in view.devices:
        for addr, slot in sorted(dev.entries.items()):
            dpte = slot.pte
            state[f"{dev.name} pte {addr:#x}"] = (
                "-" if dpte is None else _page_text(dpte.page, dpte.write)
            )
    return state


def cpu_mapping(pte: PteVal) -> tuple[Page, bool] | None:
    """The page a CPU PTE lets a device mirror, and whether writable.

    A present PTE maps its page; a device-private entry maps its device page
    (the owning device may mirror it: hmm_range_fault reports it to the
    page map's owner); an empty PTE or a migration entry maps nothing (a
    migration invalidates the mirrors before it installs its entries).
    """
    if pte is None:
        return None
    if isinstance(pte, SwapPte):
        kind = pte.entry.type
        if kind is SwpType.SWP_DEVICE_WRITE:
            return (pte.entry.page, True)
        if kind is SwpType.SWP_DEVICE_READ:
            return (pte.entry.page, False)
        return None
    return (pte.page, pte.write)


def cpu_maps(cpu: tuple[Page, bool] | None, page: Page) -> bool:
    """Whether the CPU mapping ``cpu`` (from :func:`cpu_mapping`) covers ``page``.

    A device may map the page the CPU maps, or, for a device-private page,
    the page its driver keeps the data in and names in ``zone_device_data``
    (lib/test_hmm.c's backing page: its device table never holds
    ZONE_DEVICE pages).
    """
    if cpu is None:
        return False
    mapped = cpu[0]
    return mapped is page or (
        mapped.pgmap is not None and mapped.zone_device_data is page
    )


def _page_text(page: Any, write: bool) -> str:
    state = "FREE" if page.state is PageState.FREE else f"g{page.generation}"
    return f"page#{page.pfn}({state},{'rw' if write else 'ro'})"
