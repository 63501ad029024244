"""Presentation only: timelines, the text, JSON and HTML reports.

With ``cli.py`` this is the only code that formats output.  Every renderer
takes plain data (:class:`ScenarioRun`, a captured Trace) and returns text or
writes files; none of them runs an exploration.
"""

from __future__ import annotations

from hmmsim.runs import ScenarioRun, token_context

__all__ = ["ScenarioRun", "token_context"]
