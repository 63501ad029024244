"""Tests for `hmmsim.engine.trace`."""

from __future__ import annotations

from hmmsim.engine import Cause, Event, Finding


class TestFinding:
    def test_to_json_has_a_stable_key_order(self) -> None:
        """Finding.to_json lists kind, message, step, task, fatal, detail, causes."""
        cause = Cause(step=1, task="u", note="n")
        finding = Finding(
            kind="k", message="m", step=3, task="t", detail=("a",), causes=(cause,)
        )

        assert [
            ("kind", "k"),
            ("message", "m"),
            ("step", 3),
            ("task", "t"),
            ("fatal", True),
            ("detail", ["a"]),
            ("causes", [{"step": 1, "task": "u", "note": "n"}]),
        ] == list(finding.to_json().items())


class TestEvent:
    def test_describe_joins_the_fields(self) -> None:
        """Event.describe is the name then key=value pairs; no fields, just the name."""
        assert ("seq start=1 end=4", "bare") == (
            Event(name="seq", fields={"start": 1, "end": 4}).describe(),
            Event(name="bare").describe(),
        )
