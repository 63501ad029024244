"""Tests for `hmmsim.engine.program`."""

from __future__ import annotations

from hmmsim.engine import SimpleInstance


class TestSimpleInstance:
    def test_defaults_have_no_findings_state_or_snapshot(self) -> None:
        """A SimpleInstance without callables has no end findings, no state, empty snapshot."""
        instance = SimpleInstance(task_list=[])

        assert ([], [], None, {}) == (
            list(instance.tasks()),
            list(instance.check_end()),
            instance.final_state(),
            dict(instance.snapshot()),
        )

    def test_callables_are_used(self) -> None:
        """The given callables answer state and snapshot."""
        instance = SimpleInstance(task_list=[], state=lambda: 7, snap=lambda: {"x": 1})

        assert (7, {"x": 1}) == (instance.final_state(), dict(instance.snapshot()))
