"""Exception hierarchy of hmmsim.

Findings about the model (violations, deadlocks, ``BUG_ON``) are never
exceptions: they are returned as data.  Exceptions are for the tool's own
error paths::

    HmmsimError
      ConfigError(ValueError)      user error in options or bounds
      ScenarioError(TypeError)     ill-formed scenario or program definition
        ModelError                 the model's own code failed outside a task
                                   (build, end check, snapshot, sys.exit, a hang)
      ReplayError                  a replay token or file cannot be used
        ReplayDiverged             replay did not follow the recorded schedule
      InternalError                tool bug; message carries the internal-bug tag
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INTERNAL_BUG_TAG",
    "ConfigError",
    "HmmsimError",
    "InternalError",
    "ModelError",
    "ReplayDiverged",
    "ReplayError",
    "ScenarioError",
]

INTERNAL_BUG_TAG: Final = "[hmmsim internal bug]"


class HmmsimError(Exception):
    """Base class of every error hmmsim raises on purpose."""


class ConfigError(HmmsimError, ValueError):
    """A user-supplied option or bound is invalid; the message names it."""


class ScenarioError(HmmsimError, TypeError):
    """A scenario or program is ill-formed (for example a forgotten ``await``)."""


class ModelError(ScenarioError):
    """The model's own code failed where no finding can stand for it.

    Building the world, the end-of-execution check or the state snapshot
    raised, the model called ``sys.exit``, or it ran too long without
    yielding outside a task.  The message names the model's file and line.
    The exploration that met it is kept in ``partial`` (set by the engine),
    so a front end can still report how far it got.
    """

    partial: object = None


class ReplayError(HmmsimError):
    """A replay token or counterexample file cannot be decoded or used."""


class ReplayDiverged(ReplayError):
    """Replay did not follow the recorded schedule: the model is not deterministic."""


class InternalError(HmmsimError):
    """A bug in hmmsim itself."""

    def __init__(self, message: str) -> None:
        """Prefix the message with the internal-bug tag."""
        super().__init__(f"{INTERNAL_BUG_TAG} {message}")
