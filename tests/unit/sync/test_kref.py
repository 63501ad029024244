"""Tests for `hmmsim.sync.kref`."""

from __future__ import annotations

from tests.support.harness import kinds, sequential, tasks

from hmmsim.engine import Instance
from hmmsim.sync import (
    Kref,
    kref_check_live,
    kref_get,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    kref_read,
)


async def _no_release(kref: Kref) -> None:
    del kref


class TestKref:
    def test_get_and_put_count_and_the_last_put_releases(self) -> None:
        """kref_get adds one, kref_put drops one and calls release at zero, once."""
        log: list[object] = []

        def program() -> Instance:
            kref = Kref("obj")

            async def release(k: Kref) -> None:
                log.append(("released", await kref_read(k)))

            async def body() -> None:
                await kref_get(kref)
                log.append(await kref_read(kref))
                log.append(await kref_put(kref, release))
                log.append(await kref_put(kref, release))
                log.append(kref.released)

            return tasks(body())

        assert [] == kinds(sequential(program))
        assert [2, 0, ("released", 0), 1, True] == log

    def test_get_on_zero_is_an_addition_on_zero(self) -> None:
        """kref_get of a released kref is a fatal kref finding (use-after-free)."""

        def program() -> Instance:
            kref = Kref("obj")

            async def body() -> None:
                await kref_put(kref, _no_release)
                await kref_get(kref)

            return tasks(body())

        result = sequential(program)

        assert ["kref"] == kinds(result)
        assert "addition on 0" in result.findings[0].message
        assert result.findings[0].fatal

    def test_put_on_zero_is_an_underflow(self) -> None:
        """A second kref_put after the count reached zero is an underflow."""

        def program() -> Instance:
            kref = Kref("obj")

            async def body() -> None:
                await kref_put(kref, _no_release)
                await kref_put(kref, _no_release)

            return tasks(body())

        result = sequential(program)

        assert ["kref"] == kinds(result)
        assert "underflow" in result.findings[0].message

    def test_get_unless_zero_fails_on_zero(self) -> None:
        """kref_get_unless_zero takes a reference only while the count is positive."""
        got: list[bool] = []

        def program() -> Instance:
            kref = Kref("obj")

            async def body() -> None:
                got.append(await kref_get_unless_zero(kref))
                await kref_put(kref, _no_release)
                await kref_put(kref, _no_release)
                got.append(await kref_get_unless_zero(kref))

            return tasks(body())

        assert [] == kinds(sequential(program))
        assert [True, False] == got

    def test_check_live_reports_use_after_the_last_put(self) -> None:
        """kref_check_live is silent before the last put and reports after it."""

        def program() -> Instance:
            kref = Kref("obj")

            async def body() -> None:
                await kref_check_live(kref, "before")
                await kref_put(kref, _no_release)
                await kref_check_live(kref, "device fault")

            return tasks(body())

        result = sequential(program)

        assert ["kref"] == kinds(result)
        assert "device fault: use of obj after its last kref_put" == (
            result.findings[0].message
        )

    def test_kref_init_resets_the_count(self) -> None:
        """kref_init sets the count to one and clears released."""
        kref = Kref("obj")
        kref.refcount = 0
        kref.released = True

        kref_init(kref)

        assert (1, False, (), "Kref('obj', 1)") == (
            kref.refcount,
            kref.released,
            kref.holders(),
            repr(kref),
        )
