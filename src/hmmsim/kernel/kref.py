"""A kref embedded in a structure, so a release function can find its container.

Kernel: include/linux/kref.h plus the ``container_of`` idiom.

Deviations:
    * MODEL: ``container_of(kref, struct X, kref)`` is the ``container``
      back-pointer of ``EmbeddedKref``.
"""

from __future__ import annotations

from hmmsim.sync import Kref

__all__ = ["EmbeddedKref"]


class EmbeddedKref(Kref):
    """A ``struct kref`` that knows the structure embedding it."""

    __slots__ = ("container",)

    def __init__(self, name: str, container: object) -> None:
        """Create a kref with count 1 inside ``container``."""
        super().__init__(name)
        self.container = container
