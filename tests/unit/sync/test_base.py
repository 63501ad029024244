"""Tests for `hmmsim.sync._base`: object ids and the engine API of the primitives."""

from __future__ import annotations

import pytest
from tests.support.harness import sequential, tasks

from hmmsim.engine import Instance, current_execution
from hmmsim.errors import ScenarioError
from hmmsim.sync import Cell, msleep, new_oid, report, tracepoint


class TestObjectIds:
    def test_ids_inside_an_execution_are_dense_and_repeatable(self) -> None:
        """Objects made by the program get ids 0, 1, ... in every execution."""
        ids: list[tuple[int, int]] = []

        def program() -> Instance:
            ids.append((Cell("a", 0).oid, Cell("b", 0).oid))

            async def body() -> None:
                await msleep(1)

            return tasks(body())

        sequential(program)
        sequential(program)

        assert [(0, 1), (0, 1)] == ids

    def test_ids_outside_an_execution_never_collide_with_inside_ones(self) -> None:
        """Objects made outside an execution get ids from a separate high range."""
        first = new_oid()

        assert first >= 1 << 40
        assert first < new_oid()


class TestOutsideAnExecution:
    def test_report_outside_an_execution_is_a_scenario_error(self) -> None:
        """Reporting a finding with no running execution raises ScenarioError."""
        with pytest.raises(ScenarioError, match="outside an hmmsim execution"):
            report("warn", "nowhere")

    def test_tracepoint_outside_an_execution_is_a_scenario_error(self) -> None:
        """A tracepoint with no running execution raises ScenarioError."""
        with pytest.raises(ScenarioError, match="outside an hmmsim execution"):
            tracepoint("x", {})

    def test_report_inside_a_task_is_recorded(self) -> None:
        """report() in a task records a finding for that task."""

        def program() -> Instance:
            async def body() -> None:
                report("custom", "something odd", fatal=False, detail=("line",))
                await msleep(1)

            return tasks(body())

        finding = sequential(program).findings[0]

        assert ("custom", "something odd", "t0", False, ("line",)) == (
            finding.kind,
            finding.message,
            finding.task,
            finding.fatal,
            finding.detail,
        )

    def test_tracepoint_inside_a_task_is_ignored_unless_capturing(self) -> None:
        """tracepoint() in a task without capture records nothing and does not fail."""
        seen: list[int] = []

        def program() -> Instance:
            async def body() -> None:
                tracepoint("hello", {"a": 1})
                seen.append(len(current_execution().findings))
                await msleep(1)

            return tasks(body())

        sequential(program)

        assert [0] == seen
