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
  secondary MMU must have dropped its mapping before start returns);
* ``notifier-leak`` (at the end): with no invalidation open (the ghost count
  of starts that returned success minus ends, kept by the notifier core), a
  subscriber's own count of open invalidations is not zero;
* ``range-stuck-invalid`` (when a wait for a valid range times out, and at
  the end): a registered range is invalid although no invalidation is open
  or in flight.

The checks only read model state (and the kernel's ghost counters); they
report through the running execution.  Every check is tied to an Op the
explorer orders against the writers it depends on (device entries name the
CPU PTE cell of their address; page frees and device accesses both touch the
allocator), so the reduction in DPOR does not hide a violation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hmmsim.engine import Finding, current_execution
from hmmsim.kernel.drivers.device import Device
from hmmsim.kernel.mm_types import MmStruct, PageState
from hmmsim.kernel.trace import register_probe

__all__ = ["HmmWorldView", "attach_contract_probes", "check_end", "snapshot"]


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
    """

    mm: MmStruct
    devices: list[Device] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)
    hmm_of: Any = None


def _report(kind: str, message: str, *, fatal: bool) -> None:
    current_execution().report(kind, message, fatal=fatal)


def _open_invalidations(mm: MmStruct) -> int:
    return mm.ghost_open_invalidations + mm.ghost_starts_in_flight


def attach_contract_probes(view: HmmWorldView) -> None:
    """Register the per-event checks in the running execution."""
    mm = view.mm

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
            )
            return
        cell = mm.ptes.get(addr)
        pte = cell.value if cell is not None else None
        if pte is None or pte.page.pfn != f["page"] or (f["write"] and not pte.write):
            now = "nothing" if pte is None else f"page#{pte.page.pfn}"
            _report(
                "device-stale-mapping",
                f"{f['device']} reached page#{f['page']} at {addr:#x}, but the CPU "
                f"page table maps {addr:#x} to {now}"
                + (" read-only" if pte is not None and not pte.write else ""),
                fatal=True,
            )

    def on_cpu_pte_change(name: str, f: Mapping[str, object]) -> None:
        if f.get("mm") != mm.name:
            return
        addr = f["addr"]
        assert isinstance(addr, int)
        for dev in view.devices:
            slot = dev.entries.get(addr)
            if slot is None or slot.pte is None:
                continue
            dpte = slot.pte
            if name == "set_pte":
                same = dpte.page.pfn == f["page"] and (f["write"] or not dpte.write)
                if same:
                    continue
            _report(
                "notifier-contract",
                f"the CPU {'clears' if name == 'pte_clear' else 'changes'} the PTE of "
                f"{addr:#x} (page#{f['page']}) while {dev.name} still maps it to "
                f"page#{dpte.page.pfn}: invalidate_range_start returned success "
                "before the device dropped its mapping",
                fatal=False,
            )

    def on_wait_result(_: str, f: Mapping[str, object]) -> None:
        if f["ret"] or _open_invalidations(mm):
            return
        _report(
            "range-stuck-invalid",
            f"hmm_range_wait_until_valid({f['range']}) timed out although no "
            "invalidation is open or in flight: the range can never become valid",
            fatal=False,
        )

    register_probe("device_access", on_device_access)
    register_probe("pte_clear", on_cpu_pte_change)
    register_probe("set_pte", on_cpu_pte_change)
    register_probe("hmm_range_wait_until_valid", on_wait_result)


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
            )
    if hmm is not None and not open_now and not hmm.notifiers:
        for rng in hmm.ranges:
            if not rng.valid.value:
                yield Finding(
                    kind="range-stuck-invalid",
                    message=f"{rng.name} is still registered and invalid at the end",
                    step=step,
                )
    for dev in view.devices:
        for addr, dpte in dev.mapped():
            cell = mm.ptes.get(addr)
            pte = cell.value if cell is not None else None
            page = dpte.page
            if page.state is PageState.FREE or page.generation != dpte.generation:
                yield Finding(
                    kind="device-stale-mapping",
                    message=(
                        f"at the end {dev.name} still maps {addr:#x} to page#{page.pfn}, "
                        "which was freed since"
                    ),
                    step=step,
                )
            elif pte is None or pte.page is not page:
                yield Finding(
                    kind="device-stale-mapping",
                    message=(
                        f"at the end {dev.name} maps {addr:#x} to page#{page.pfn} but "
                        "the CPU no longer does"
                    ),
                    step=step,
                )


def snapshot(view: HmmWorldView) -> dict[str, object]:
    """Return the state excerpt shown next to each step of a timeline."""
    mm = view.mm
    state: dict[str, object] = {}
    hmm = view.hmm_of() if view.hmm_of is not None else None
    if hmm is not None:
        state["hmm->notifiers"] = hmm.notifiers
        for rng in hmm.ranges:
            state[f"{rng.name}->valid"] = rng.valid.value
    for name, read in sorted(view.counters.items()):
        state[name] = read()
    state["open invalidations"] = _open_invalidations(mm)
    for addr, cell in sorted(mm.ptes.items()):
        pte = cell.value
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


def _page_text(page: Any, write: bool) -> str:
    state = "FREE" if page.state is PageState.FREE else f"g{page.generation}"
    return f"page#{page.pfn}({state},{'rw' if write else 'ro'})"
