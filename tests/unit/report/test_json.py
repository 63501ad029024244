"""Tests for `hmmsim.report.json`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hmmsim.errors import ReplayError
from hmmsim.report import ScenarioRun
from hmmsim.report.json import SCHEMA, dumps, parse, result_json


class TestDumps:
    def test_key_order_is_the_schema_order(self, locks: ScenarioRun) -> None:
        """Top-level, result and violation keys come in the documented order."""
        data = json.loads(dumps([locks], version="1.2"))

        assert ["schema", "hmmsim", "results"] == list(data)
        assert SCHEMA == data["schema"]
        assert "1.2" == data["hmmsim"]
        assert [
            "scenario",
            "variant",
            "file",
            "strategy",
            "seed",
            "outcome",
            "exit_reason",
            "executions",
            "steps",
            "outcomes",
            "complete",
            "expected",
            "violations",
        ] == list(data["results"][0])
        assert [
            "kind",
            "message",
            "task",
            "step",
            "causes",
            "steps",
            "preemptions",
            "original_steps",
            "replay",
            "schedule",
        ] == list(data["results"][0]["violations"][0])

    def test_values_of_a_failing_run(self, locks: ScenarioRun) -> None:
        """A failing run records outcome, kinds, tokens and schedules."""
        result = result_json(locks)

        assert "violation" == result["outcome"]
        assert "exhausted" == result["exit_reason"]
        assert result["expected"] is None
        violations: Any = result["violations"]
        assert ["lock-order", "deadlock"] == [v["kind"] for v in violations]
        assert violations[1]["replay"].startswith("hs1.locks/abba:deadlock.")
        assert {"seed": 0, "choices": ["t0", "t1"]} == violations[1]["schedule"]

    def test_outcomes_are_sorted_and_text_ends_with_newline(
        self, buggy: ScenarioRun
    ) -> None:
        """Outcome counts are sorted by name; the document ends with a newline."""
        text = dumps([buggy], version="1")

        assert text.endswith("}\n")
        assert ["passed", "violation"] == list(
            json.loads(text)["results"][0]["outcomes"]
        )

    def test_seconds_only_with_timings(self, fixed: ScenarioRun) -> None:
        """``seconds`` appears only when timings are asked for."""
        assert "seconds" not in result_json(fixed)
        assert isinstance(result_json(fixed, timings=True)["seconds"], float)

    def test_same_runs_give_the_same_bytes(
        self, buggy: ScenarioRun, fixed: ScenarioRun
    ) -> None:
        """Rendering is a pure function of the runs."""
        assert dumps([buggy, fixed], version="1") == dumps([buggy, fixed], version="1")


class TestParse:
    def test_parse_round_trips_the_violations(self, locks: ScenarioRun) -> None:
        """parse() recovers scenario, variant, kind and schedule of each violation."""
        items = parse(dumps([locks], version="1"))

        assert [("locks", "abba", "lock-order"), ("locks", "abba", "deadlock")] == [
            (i.scenario, i.variant, i.kind) for i in items
        ]
        assert locks.result.counterexamples[1].schedule == items[1].schedule
        assert items[0].file is None

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ({"schema": 1, "results": {}}, "'results' must be a list"),
            ({"schema": 1, "results": [3]}, r"results\[0\]: must be an object"),
            (
                {"schema": 1, "results": [{"variant": "v", "violations": []}]},
                "'scenario'",
            ),
            (
                {
                    "schema": 1,
                    "results": [
                        {"scenario": "s", "variant": "v", "file": 3, "violations": []}
                    ],
                },
                "'file' must be a string or null",
            ),
            (
                {
                    "schema": 1,
                    "results": [{"scenario": "s", "variant": "v", "violations": [1]}],
                },
                r"violations\[0\]: must be an object",
            ),
            (
                {
                    "schema": 1,
                    "results": [
                        {"scenario": "s", "variant": "v", "violations": [{"kind": "k"}]}
                    ],
                },
                "schedule must be a JSON object",
            ),
        ],
    )
    def test_malformed_reports_raise_replay_error(
        self, document: object, message: str
    ) -> None:
        """Every malformed part is a ReplayError saying where."""
        with pytest.raises(ReplayError, match=message):
            parse(json.dumps(document))
