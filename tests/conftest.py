"""Shared test configuration: Hypothesis profiles.

``dev`` (the default) draws fresh examples on every run, to find new failures.
``ci`` is derandomized, so a CI run is reproducible, and prints the blob that
replays a failure. ``HMMSIM_HYPOTHESIS_PROFILE`` selects a profile; without it,
``ci`` is used when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import os

from hypothesis import settings

# Tests always run under coverage tracing (scripts/test), which makes
# per-example timings meaningless, so neither profile has a deadline.
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, max_examples=100
)

settings.load_profile(
    os.environ.get("HMMSIM_HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI") else "dev")
)
