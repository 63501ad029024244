"""Re-export of :class:`hmmsim.runs.ScenarioRun` (its old home, kept for imports)."""

from __future__ import annotations

from hmmsim.runs import ScenarioRun, token_context

__all__ = ["ScenarioRun", "token_context"]
