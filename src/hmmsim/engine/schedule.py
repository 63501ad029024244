"""Schedule: the single source of truth of an execution.

A schedule is the sequence of choices made during one execution, in order:
which task performed each step (a *task choice*) and the value of every data
choice with more than one possible value (a timeout fires or not, a retry
happens or not).  Re-running a program with the same schedule reproduces the
same execution; exploration, replay, shrinking and reports all work on it.

Choices are typed: a :class:`TaskChoice` names the task that performed a
step; a :class:`DataChoice` holds the value of a data choice together with
its range (``bound``) and ``label`` when the execution recorded them (a
schedule read back from JSON or a token knows only the value; range and
label never take part in comparisons).  Choices are packed into integers
only inside the token (a task choice ``t`` as ``2*t``, a data choice ``v`` as
``2*v + 1``); the JSON form writes them as ``t<N>`` and ``d<N>``.

The compact *token* form is ``hs1.<context>.<payload>.<crc>``, where
``context`` (which may contain dots) names what to run (for example ``scenario/variant``), ``payload``
is the base32 of the zlib-compressed varint encoding of seed and choices, and
``crc`` is the CRC-32 of everything before it, so a damaged or tampered token
is rejected rather than replayed wrongly.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from hmmsim.errors import ReplayError

__all__ = [
    "MAX_TOKEN_PAYLOAD",
    "Choice",
    "DataChoice",
    "Schedule",
    "TaskChoice",
    "task_choice",
]

_TOKEN_VERSION = "hs1"
_CONTEXT_RE = re.compile(r"^[A-Za-z0-9_\-/:+.]*$")


@dataclass(frozen=True, slots=True)
class TaskChoice:
    """The task that performed a step."""

    task: int

    def __str__(self) -> str:
        return f"t{self.task}"


@dataclass(frozen=True, slots=True)
class DataChoice:
    """The value of a data choice, with its range and label when known.

    ``bound`` is 0 and ``label`` empty when the schedule was read back from
    JSON or a token; neither takes part in equality or hashing.
    """

    value: int
    bound: int = field(default=0, compare=False)
    label: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"d{self.value}"


Choice: TypeAlias = TaskChoice | DataChoice

#: Shared TaskChoice objects for small task ids (one allocation per id, not
#: per step); ``task_choice`` hands them out.
TASK_CHOICES: Final[tuple[TaskChoice, ...]] = tuple(TaskChoice(t) for t in range(64))


def task_choice(tid: int) -> TaskChoice:
    """Return the (shared) TaskChoice of task ``tid``."""
    if tid < len(TASK_CHOICES):
        return TASK_CHOICES[tid]
    return TaskChoice(tid)


def _pack(choice: Choice) -> int:
    if isinstance(choice, TaskChoice):
        return choice.task << 1
    return (choice.value << 1) | 1


def _unpack(code: int) -> Choice:
    if code & 1:
        return DataChoice(code >> 1)
    return task_choice(code >> 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """Seed plus the typed choices of one execution."""

    seed: int = 0
    choices: tuple[Choice, ...] = ()

    @classmethod
    def of(cls, choices: Iterable[Choice], *, seed: int = 0) -> Schedule:
        """Build a schedule from typed choices."""
        return cls(seed=seed, choices=tuple(choices))

    @classmethod
    def parse(cls, text: str, *, seed: int = 0) -> Schedule:
        """Build a schedule from its text form, e.g. ``"t0 t1 d1 t0"``.

        Raises:
            ReplayError: a word is not ``t<N>`` or ``d<N>``.
        """
        return cls(seed=seed, choices=tuple(_parse(word) for word in text.split()))

    @property
    def tasks(self) -> tuple[int, ...]:
        """The task ids of the steps, in order (data choices left out)."""
        return tuple(c.task for c in self.choices if isinstance(c, TaskChoice))

    def __len__(self) -> int:
        return len(self.choices)

    def preemptions(self) -> int:
        """Count context switches away from a task that then runs again later.

        This is an upper bound of the preemption count: the engine-level count
        (which knows whether the previous task was still enabled) is exact.
        """
        tasks = self.tasks
        count = 0
        for i in range(1, len(tasks)):
            if tasks[i] != tasks[i - 1] and tasks[i - 1] in tasks[i:]:
                count += 1
        return count

    def to_json(self) -> dict[str, object]:
        """Return the canonical JSON form."""
        return {"seed": self.seed, "choices": _render(self.choices)}

    @classmethod
    def from_json(cls, data: object) -> Schedule:
        """Parse the JSON form; raise ReplayError when it is malformed."""
        if not isinstance(data, dict):
            raise ReplayError("schedule must be a JSON object")
        seed = data.get("seed", 0)
        raw = data.get("choices")
        if not isinstance(seed, int) or seed < 0 or not isinstance(raw, list):
            raise ReplayError("schedule needs an integer 'seed' and a list 'choices'")
        return cls(seed=seed, choices=tuple(_parse(item) for item in raw))

    def to_token(self, context: str = "") -> str:
        """Return the compact, pasteable token for this schedule."""
        if not _CONTEXT_RE.match(context):
            raise ValueError(f"context {context!r} has characters a token cannot carry")
        raw = bytearray()
        _put_varint(raw, self.seed)
        _put_varint(raw, len(self.choices))
        for choice in self.choices:
            _put_varint(raw, _pack(choice))
        payload = base64.b32encode(zlib.compress(bytes(raw), 9)).decode().rstrip("=")
        body = f"{_TOKEN_VERSION}.{context}.{payload.lower()}"
        return f"{body}.{zlib.crc32(body.encode()):08x}"

    @classmethod
    def from_token(cls, token: str) -> tuple[str, Schedule]:
        """Decode a token into (context, schedule); raise ReplayError if bad."""
        token = token.strip()
        parts = token.split(".")
        if len(parts) < 4 or parts[0] != _TOKEN_VERSION:
            raise ReplayError(
                f"not an hmmsim replay token (expected {_TOKEN_VERSION}.…)"
            )
        body, _, crc = token.rpartition(".")
        if f"{zlib.crc32(body.encode()):08x}" != crc.lower():
            raise ReplayError(
                "replay token checksum mismatch (token damaged or edited)"
            )
        # The context may itself contain dots (e.g. a variant named v5.3).
        context, payload = ".".join(parts[1:-2]), parts[-2]
        try:
            padded = payload.upper() + "=" * (-len(payload) % 8)
            raw = _inflate(base64.b32decode(padded))
            values = _get_varints(raw)
        except (binascii.Error, zlib.error, ValueError) as exc:
            raise ReplayError(f"replay token payload is corrupt: {exc}") from None
        if len(values) < 2 or values[1] != len(values) - 2:
            raise ReplayError("replay token payload has the wrong length")
        return context, cls(
            seed=values[0], choices=tuple(_unpack(v) for v in values[2:])
        )


#: The most bytes a token's payload may inflate to: 4 MiB holds over two
#: million choices, more than any schedule within the step limit needs; a
#: crafted token (a "zip bomb") is refused instead of filling memory.
MAX_TOKEN_PAYLOAD: Final = 4 * 1024 * 1024


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    raw = inflater.decompress(data, MAX_TOKEN_PAYLOAD)
    if inflater.unconsumed_tail:
        raise ValueError(f"it inflates to more than {MAX_TOKEN_PAYLOAD // 2**20} MiB")
    if not inflater.eof:
        raise ValueError("the compressed data is truncated")
    return raw


def _render(choices: Sequence[Choice]) -> list[str]:
    return [str(c) for c in choices]


def _parse(item: object) -> Choice:
    if (
        isinstance(item, str)
        and len(item) > 1
        and item[0] in "td"
        and item[1:].isdigit()
    ):
        value = int(item[1:])
        return task_choice(value) if item[0] == "t" else DataChoice(value)
    raise ReplayError(f"bad schedule choice {item!r} (expected 't<N>' or 'd<N>')")


def _put_varint(out: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _get_varints(raw: bytes) -> list[int]:
    values: list[int] = []
    value = shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")
        else:
            values.append(value)
            value = shift = 0
    if shift:
        raise ValueError("truncated varint")
    return values
