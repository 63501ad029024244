"""hmmsim: an executable model of the Linux HMM mmu-notifier mirror protocol.

The package pairs a transliteration of the kernel's ``mm/hmm.c`` and
``mm/mmu_notifier.c`` (around Linux v5.3) with a deterministic concurrency
explorer that runs the model under chosen interleavings and checks its
invariants.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
