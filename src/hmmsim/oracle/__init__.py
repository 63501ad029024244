"""What "correct" means: the catalogue of violation kinds and, later, the checks.

Only the catalogue lives here so far (:mod:`hmmsim.oracle.kinds`); HMM
invariants and end-of-execution properties join it in their own modules.
"""

from __future__ import annotations

from hmmsim.oracle.kinds import KINDS, explain, is_known, register_kind

__all__ = ["KINDS", "explain", "is_known", "register_kind"]
