"""Run the command-line interface as ``python -m hmmsim``."""

from __future__ import annotations

# TEMPORARY: cli.py is not written yet. Once it is, mypy reports this ignore as
# unused (warn_unused_ignores), and the comment must go.
from hmmsim.cli import main  # type: ignore[import-not-found]

raise SystemExit(main())
