"""Run the command-line interface as ``python -m hmmsim``."""

from __future__ import annotations

from hmmsim.cli import main

if __name__ == "__main__":  # Dask's spawned workers import this module
    raise SystemExit(main())
