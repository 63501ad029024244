"""kmalloc / kfree with failure injection, and a KASAN-style use-after-free check.

Kernel: mm/slab_common.c, mm/failslab.c and mm/kasan (Linux v5.3), reduced to
what the model needs.

Deviations:
    * MODEL: there is no allocator behind kmalloc; ``kmalloc_fails()`` decides
      whether an allocation fails.  A scenario or test injects failures by
      setting ``current_execution().context["failslab"]`` to the number of
      upcoming kmalloc calls that fail (the kernel's fault injection,
      deterministic here).
    * MODEL: ``kfree`` marks the object freed (a ghost flag) and
      ``kasan_check`` reports a ``use-after-free`` finding when model code
      dereferences such an object, as KASAN would.
"""

from __future__ import annotations

from typing import Protocol

from hmmsim.sync import current_execution, report

__all__ = ["Freeable", "kasan_check", "kfree", "kmalloc_fails"]


class Freeable(Protocol):
    """An object with a ghost ``freed`` flag."""

    freed: bool


def kmalloc_fails() -> bool:
    """Return whether the next kmalloc fails (consumes one injected failure)."""
    context = current_execution().context
    pending = context.get("failslab", 0)
    if isinstance(pending, int) and pending > 0:
        context["failslab"] = pending - 1
        return True
    return False


def kfree(obj: Freeable) -> None:
    """Free ``obj`` (marks it freed; later dereferences are reported)."""
    obj.freed = True


def kasan_check(obj: Freeable, what: str) -> None:
    """Report ``use-after-free`` if ``obj`` was freed."""
    if obj.freed:
        report("use-after-free", f"KASAN: use-after-free in {what}")
