"""atomic_t operations and the bit operations on ``mm->flags``.

Kernel: include/linux/atomic.h, include/asm-generic/bitops/atomic.h (Linux v5.3).

Each operation is one scheduling point (an Op that reads or writes the
counter), so the explorer sees every race on it.

Deviations:
    * MODEL: an ``atomic_t`` is a ``Cell[int]``; read-modify-write operations are
      a single write Op (fully ordered, as the value-returning kernel atomics).
    * MODEL: ``mm->flags`` is a ``Cell[int]`` bitmask; ``set_bit`` and
      ``test_bit`` take the bit number first, as in C.
"""

from __future__ import annotations

from hmmsim.sync import Cell
from hmmsim.sync.once import shared_access

__all__ = [
    "atomic_dec_and_test",
    "atomic_inc",
    "atomic_inc_not_zero",
    "atomic_read",
    "clear_bit",
    "set_bit",
    "test_bit",
]


async def atomic_read(v: Cell[int]) -> int:
    """Return the counter's value (a read Op)."""
    await shared_access(v, write=False, func="atomic_read")
    return v.value


async def atomic_inc(v: Cell[int]) -> int:
    """Increment the counter; return the new value (model convenience)."""
    await shared_access(v, write=True, func="atomic_inc")
    v.value += 1
    return v.value


async def atomic_inc_not_zero(v: Cell[int]) -> bool:
    """Increment the counter unless it is zero; return whether it did."""
    await shared_access(v, write=True, func="atomic_inc_not_zero")
    if v.value == 0:
        return False
    v.value += 1
    return True


async def atomic_dec_and_test(v: Cell[int]) -> bool:
    """Decrement the counter; return whether it reached zero."""
    await shared_access(v, write=True, func="atomic_dec_and_test")
    v.value -= 1
    return v.value == 0


async def set_bit(nr: int, addr: Cell[int]) -> None:
    """Atomically set bit ``nr`` of ``addr``."""
    await shared_access(addr, write=True, func="set_bit")
    addr.value |= 1 << nr


async def clear_bit(nr: int, addr: Cell[int]) -> None:
    """Atomically clear bit ``nr`` of ``addr``."""
    await shared_access(addr, write=True, func="clear_bit")
    addr.value &= ~(1 << nr)


async def test_bit(nr: int, addr: Cell[int]) -> bool:
    """Return whether bit ``nr`` of ``addr`` is set (a read Op)."""
    await shared_access(addr, write=False, func="test_bit")
    return bool(addr.value & (1 << nr))
