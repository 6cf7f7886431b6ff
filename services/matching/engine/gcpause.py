"""Pause Python's cyclic garbage collector while a round is built and solved.

Building a round creates hundreds of thousands of small tuples and lists next to the
caller's profiles. Each burst of allocations makes the collector walk every tracked object
in the process, profiles included (measured at 100,000 students: see docs/engine.md). The
engine creates no reference cycles (reference counting frees everything it drops), so
nothing accumulates while the collector is paused. It is restored on exit, also on
exceptions, and left alone when the caller had already disabled it.

The switch is process-wide, not per thread: while the matching service solves a round in a
worker thread, the event loop and every other thread run without cyclic collection too
(their cycles are collected once the round ends). Two overlapping solves in one process
lose part of the speed-up (the first to finish re-enables the collector while the other
still runs) but leak nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector for the block, then restore its previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
