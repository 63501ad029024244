"""The catalogue of violation kinds: stable names with one-sentence meanings.

A *kind* is the stable name a finding carries (``Finding.kind``).  Reports,
JSON output and replay tokens use it, so a kind is never renamed once
published.  Each kind has one sentence that says what it means; reports print
it next to the finding.

Models written outside hmmsim may report kinds of their own; give them an
explanation with :func:`register_kind`, or :func:`explain` falls back to a
generic sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from hmmsim.errors import ScenarioError

__all__ = ["KINDS", "explain", "is_known", "register_kind"]

_KIND_RE: Final = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")

_BUILTIN: Final[dict[str, str]] = {
    "device-use-after-free": (
        "The device accessed a page through its page table after the CPU side "
        "had freed that page."
    ),
    "device-stale-mapping": (
        "The device reached, or still maps, a page at an address that the CPU "
        "page table no longer maps to that page."
    ),
    "notifier-contract": (
        "The CPU changed a page-table entry that a device still mapped: an "
        "invalidate_range_start covering it returned success before every "
        "secondary MMU had dropped the mapping."
    ),
    "notifier-leak": (
        "A failed or unbalanced invalidate_range_start left a notifier count or "
        "invalidation sequence raised, so later faults wait forever or retry."
    ),
    "range-stuck-invalid": (
        "An hmm_range stayed marked invalid after every invalidation ended, so "
        "its faults can never succeed."
    ),
    "sleep-in-nonblockable": (
        "A task may have slept inside a section that must not block, such as a "
        "non-blocking invalidation or a spinlock-held region."
    ),
    "deadlock": "Every live task is blocked, so none of them can ever make progress.",
    "hang": (
        "A task went round a loop back to exactly the state it started from while "
        "no other task could run, so it retries for ever without progress (a livelock)."
    ),
    "fault-livelock": (
        "Concurrent CPU faults on one page each returned without resolving it "
        "and left the world as it was before them, so the faulting threads "
        "retry the same schedule for ever (a livelock between tasks)."
    ),
    "stale-tlb": (
        "A CPU reached a page through a TLB entry that should have been "
        "flushed: a store made after the syscall that removed the mapping "
        "returned went to the old page and was lost."
    ),
    "lock-order": (
        "Two lock classes were taken in opposite orders by different code paths, "
        "which can deadlock under another interleaving (a lockdep inversion)."
    ),
    "warn": "A WARN_ON condition in the model was true: the kernel would print a warning.",
    "bug": "A BUG_ON condition in the model was true: the kernel would crash here.",
    "null-deref": (
        "Kernel code dereferenced a NULL pointer: the kernel would oops here and kill "
        "the task."
    ),
    "lock-leak": "A task finished while still holding a lock.",
    "bad-unlock": "A task released a lock that it did not hold.",
    "lockdep": (
        "A lockdep assertion failed: the code ran without holding the lock it requires."
    ),
    "kref": (
        "A reference count was misused: an object was used or put again after its "
        "last reference was dropped."
    ),
    "use-after-free": (
        "Kernel code touched a structure after it was freed (what KASAN reports), "
        "for example a notifier callback running on a freed subscription."
    ),
    "double-free": (
        "Driver code freed memory that was already freed, or that kmalloc never "
        "returned (KASAN's double-free or invalid-free)."
    ),
    "range-leak": (
        "An hmm_range was still registered after every task finished: a fault path "
        "returned without hmm_range_unregister, so the range pins the mm and its hmm."
    ),
    "mm-users-leak": (
        "A task finished holding an mm_users reference it took (mmget or "
        "mmget_not_zero) and never dropped with mmput, so the address space is "
        "never torn down."
    ),
    "mm-count-leak": (
        "The mm had no users and no subscriber left but mm_count stayed above the "
        "references that legitimately remain: an mmgrab was never dropped, so the "
        "mm_struct is never freed."
    ),
    "invalidation-open": (
        "An invalidate_range_start that returned success was never ended, so the "
        "notifier core still counts an invalidation as open after every task finished."
    ),
    "kmemleak": (
        "Memory a driver allocated with kmalloc was neither freed nor reachable from "
        "the live kernel state at the end, as kmemleak reports: nobody can free it."
    ),
    "notifier-after-unbind": (
        "A driver's mmu_interval_notifier or hmm_mirror was still registered after the "
        "driver unbound, so invalidations keep calling into a driver that is gone."
    ),
    "device-pte-after-unbind": (
        "A device page table still held an entry after its driver unbound, so the "
        "device can reach a page that no invalidation will ever take away."
    ),
    "subscriptions-leak": (
        "A struct hmm or the mm's notifier subscriptions outlived their holders: "
        "freed after the mm, or referenced with no mirror or range left to drop it."
    ),
    "exception": (
        "A task raised a Python exception, which the model treats as a crash of "
        "that code path."
    ),
    "hung-task": (
        "A task ran on without reaching an hmmsim operation (a loop with no await): "
        "in the kernel, a CPU stuck in a loop that no other thread can end."
    ),
}

_extra: dict[str, str] = {}

#: Every known kind and its explanation, built-in kinds first.  Read-only.
KINDS: Final[Mapping[str, str]] = MappingProxyType(_BUILTIN)


def register_kind(kind: str, explanation: str) -> None:
    """Give a kind defined by a user model its one-sentence explanation.

    Registering the same explanation twice is allowed; a different one for a
    known kind is an error, so the meaning of a kind never changes.

    Raises:
        ScenarioError: the name is not lower-case-with-dashes, the explanation
            is empty or spans several lines, or it conflicts with a known one.
    """
    if not _KIND_RE.match(kind):
        raise ScenarioError(
            f"violation kind {kind!r} must be lower-case words joined by '-'"
        )
    text = explanation.strip()
    if not text or "\n" in text:
        raise ScenarioError(f"violation kind {kind!r} needs a one-line explanation")
    known = _BUILTIN.get(kind, _extra.get(kind))
    if known is not None and known != text:
        raise ScenarioError(f"violation kind {kind!r} is already defined: {known}")
    _extra[kind] = text


def is_known(kind: str) -> bool:
    """Return whether ``kind`` is in the catalogue or was registered."""
    return kind in _BUILTIN or kind in _extra


def explain(kind: str) -> str:
    """Return the one-sentence explanation of ``kind``.

    A kind that is neither built in nor registered gets a generic sentence,
    so a report never fails on a kind it does not know.
    """
    text = _BUILTIN.get(kind) or _extra.get(kind)
    if text is not None:
        return text
    return f"A property of the model named {kind!r} was violated."
