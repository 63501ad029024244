"""Tests for `hmmsim.engine.schedule`."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmmsim.engine import Schedule
from hmmsim.engine.schedule import (
    MAX_TOKEN_PAYLOAD,
    DataChoice,
    TaskChoice,
    task_choice,
)
from hmmsim.errors import ReplayError

choices = st.lists(
    st.one_of(
        st.integers(0, 100).map(task_choice), st.integers(0, 3000).map(DataChoice)
    ),
    max_size=60,
)
schedules = st.builds(Schedule.of, choices, seed=st.integers(0, 2**64 - 1))


def _token_with_payload(raw: bytes, context: str = "c") -> str:
    payload = base64.b32encode(raw).decode().rstrip("=").lower()
    body = f"hs1.{context}.{payload}"
    return f"{body}.{zlib.crc32(body.encode()):08x}"


class TestChoices:
    def test_task_and_data_choices_are_told_apart(self) -> None:
        """A task choice and a data choice of the same number differ and render apart."""
        choices: list[object] = [TaskChoice(3), DataChoice(3)]
        assert choices[0] != choices[1]
        assert ("t3", "d3") == (str(TaskChoice(3)), str(DataChoice(3)))

    def test_task_choice_objects_are_shared_for_small_ids(self) -> None:
        """task_choice returns one shared object per small id, and new ones beyond."""
        assert task_choice(5) is task_choice(5)
        assert TaskChoice(500) == task_choice(500)

    def test_a_data_choice_keeps_its_range_and_label_out_of_equality(self) -> None:
        """Range and label are carried but two choices of one value are equal."""
        recorded = DataChoice(1, 2, "timeout")

        assert (2, "timeout") == (recorded.bound, recorded.label)
        assert DataChoice(1) == recorded
        assert hash(DataChoice(1)) == hash(recorded)

    def test_parse_reads_the_text_form(self) -> None:
        """Schedule.parse reads 't<N>'/'d<N>' words and rejects anything else."""
        schedule = Schedule.parse("t0 d2  t1", seed=3)

        assert (TaskChoice(0), DataChoice(2), TaskChoice(1)) == schedule.choices
        assert 3 == schedule.seed
        with pytest.raises(ReplayError, match="bad schedule choice 'x'"):
            Schedule.parse("t0 x")

    def test_tasks_leaves_data_choices_out(self) -> None:
        """Schedule.tasks lists only the task ids, in order."""
        schedule = Schedule.of([TaskChoice(1), DataChoice(1), TaskChoice(0)])

        assert (1, 0) == schedule.tasks
        assert 3 == len(schedule)

    def test_preemptions_counts_switches_to_a_task_that_runs_again(self) -> None:
        """preemptions() counts switches away from a task that appears later."""
        schedule = Schedule.of(task_choice(t) for t in [0, 1, 0, 0, 1, 2])

        # 0->1 (0 runs later), 1->0 (1 runs later); 0->1 and 1->2 do not count.
        assert 2 == schedule.preemptions()


class TestJson:
    @given(schedules)
    def test_json_round_trip(self, schedule: Schedule) -> None:
        """from_json(to_json(s)) == s, also through a JSON text."""
        text = json.dumps(schedule.to_json())

        assert schedule == Schedule.from_json(json.loads(text))

    def test_json_form_is_readable(self) -> None:
        """Choices render as 't<N>' and 'd<N>'."""
        schedule = Schedule.of([TaskChoice(0), DataChoice(1)], seed=5)

        assert {"seed": 5, "choices": ["t0", "d1"]} == schedule.to_json()

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ([], "schedule must be a JSON object"),
            ({"seed": -1, "choices": []}, "integer 'seed'"),
            ({"seed": 0, "choices": "t0"}, "a list 'choices'"),
            ({"seed": 0}, "a list 'choices'"),
            ({"seed": 0, "choices": ["x1"]}, "bad schedule choice 'x1'"),
            ({"seed": 0, "choices": ["t"]}, "bad schedule choice 't'"),
            ({"seed": 0, "choices": [3]}, "bad schedule choice 3"),
            ({"seed": 0, "choices": ["t-1"]}, "bad schedule choice 't-1'"),
        ],
    )
    def test_malformed_json_raises_replay_error(
        self, data: object, message: str
    ) -> None:
        """A malformed JSON schedule raises ReplayError saying what is wrong."""
        with pytest.raises(ReplayError, match=message):
            Schedule.from_json(data)


def _crafted(raw: bytes, context: str = "c/v") -> str:
    """Return a token with a valid CRC whose payload is zlib of ``raw``."""
    payload = base64.b32encode(zlib.compress(raw, 9)).decode().rstrip("=").lower()
    body = f"hs1.{context}.{payload}"
    return f"{body}.{zlib.crc32(body.encode()):08x}"


class TestToken:
    def test_a_zip_bomb_token_is_refused_without_inflating_it(self) -> None:
        """A crafted token that inflates past the cap is a ReplayError, not gigabytes (D16)."""
        token = _crafted(b"\x00" * (MAX_TOKEN_PAYLOAD + 1))

        assert len(token) < 20_000
        with pytest.raises(ReplayError, match="inflates to more than 4 MiB"):
            Schedule.from_token(token)

    def test_a_truncated_payload_is_refused(self) -> None:
        """A payload whose compressed stream stops early is corrupt."""
        payload = base64.b32encode(zlib.compress(b"\x00\x01\x00")[:-3]).decode()
        body = f"hs1.c.{payload.rstrip('=').lower()}"

        with pytest.raises(ReplayError, match="truncated"):
            Schedule.from_token(f"{body}.{zlib.crc32(body.encode()):08x}")

    @given(schedules, st.sampled_from(["", "scenario/variant", "a-b_c:d+e"]))
    def test_token_round_trip(self, schedule: Schedule, context: str) -> None:
        """from_token(to_token(s, ctx)) gives back ctx and s."""
        assert (context, schedule) == Schedule.from_token(schedule.to_token(context))

    def test_token_shape(self) -> None:
        """A token is hs1.<context>.<base32 payload>.<crc32 hex>, lower case."""
        token = Schedule.parse("t0 t1 d1").to_token("demo")
        version, context, payload, crc = token.split(".")

        assert ("hs1", "demo", 8) == (version, context, len(crc))
        assert payload == payload.lower()

    def test_surrounding_whitespace_is_ignored(self) -> None:
        """A pasted token with blanks around it still decodes."""
        schedule = Schedule.parse("t0 t1")

        assert ("", schedule) == Schedule.from_token(f"  {schedule.to_token()}\n")

    def test_a_context_with_blanks_is_refused(self) -> None:
        """to_token refuses a context it could not carry."""
        with pytest.raises(ValueError, match="characters a token cannot carry"):
            Schedule().to_token("a b")

    @pytest.mark.parametrize(
        "token",
        ["", "garbage", "hs2.c.abc.00000000", "hs1.c.abc", "hs1"],
    )
    def test_garbage_tokens_raise_replay_error(self, token: str) -> None:
        """Text that is not a token at all is refused with a clear message."""
        with pytest.raises(
            ReplayError, match=r"not an hmmsim replay token \(expected hs1"
        ):
            Schedule.from_token(token)

    def test_a_tampered_payload_fails_the_checksum(self) -> None:
        """Changing one payload character is caught by the CRC."""
        token = Schedule.parse("t0 t1 t2 d0", seed=7).to_token("ctx")
        version, context, payload, crc = token.split(".")
        flipped = payload[:-1] + ("a" if payload[-1] != "a" else "b")

        with pytest.raises(ReplayError, match="checksum mismatch"):
            Schedule.from_token(f"{version}.{context}.{flipped}.{crc}")

    def test_a_changed_context_fails_the_checksum(self) -> None:
        """The context is covered by the CRC too."""
        token = Schedule.parse("t0").to_token("one")

        with pytest.raises(ReplayError, match="checksum mismatch"):
            Schedule.from_token(token.replace(".one.", ".two."))

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            (b"not zlib", "payload is corrupt"),
            (zlib.compress(b"\x80"), "payload is corrupt: truncated varint"),
            (zlib.compress(b"\xff" * 11), "payload is corrupt: varint too long"),
            (zlib.compress(b"\x00\x05\x00"), "payload has the wrong length"),
            (zlib.compress(b"\x00"), "payload has the wrong length"),
        ],
    )
    def test_a_corrupt_payload_with_a_valid_checksum_is_refused(
        self, raw: bytes, message: str
    ) -> None:
        """A well-formed token around a bad payload raises ReplayError."""
        with pytest.raises(ReplayError, match=message):
            Schedule.from_token(_token_with_payload(raw))

    def test_bad_base32_is_refused(self) -> None:
        """A payload that is not base32 raises ReplayError."""
        body = "hs1.c.!!!!"
        token = f"{body}.{zlib.crc32(body.encode()):08x}"

        with pytest.raises(ReplayError, match="payload is corrupt"):
            Schedule.from_token(token)
