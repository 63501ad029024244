"""Run the command-line interface as ``python -m hmmsim``."""

from __future__ import annotations

from hmmsim.cli import main

raise SystemExit(main())
