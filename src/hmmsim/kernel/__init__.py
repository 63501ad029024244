"""The executable model of Linux HMM (v5.3) and the mm code around it.

Modules mirror C files: ``hmm`` (mm/hmm.c at the seed patch), ``hmm_prepatch``
(the same file just before it), ``mmu_notifier`` (mm/mmu_notifier.c),
``oom_kill``, ``mmap``, ``mprotect``, ``memory``, ``fork``, ``page_alloc``.
Import the functions from their modules; this package re-exports nothing, so
that the two HMM variants never shadow each other.
"""

from __future__ import annotations

__all__: list[str] = []
