"""Pause Python's cyclic garbage collector while a round is built, solved and written.

Building a round creates hundreds of thousands of small tuples and lists next to the
caller's profiles. Each burst of allocations makes the collector walk every tracked object
in the process, profiles included (measured at 100,000 students: see docs/engine.md). The
engine creates no reference cycles (reference counting frees everything it drops), so
nothing accumulates while the collector is paused. It is restored on exit, also on
exceptions, and left alone when the caller had already disabled it.

The matching service pauses it for a whole round's transaction too (`handlers.run_round`):
making the models of a 30,000-student round's stored profiles took 0.59 s with the collector
and 0.12 s without, its 14,268 offers 0.29 s and 0.06 s (bench/pipeline.py's read model), each
full collection walking everything made since the service froze its start-up objects, the
round's own growing heap among them.

The switch is process-wide, not per thread: while the matching service runs a round, the
event loop and every other thread run without cyclic collection too (their cycles are
collected once the round ends). Pauses may overlap (rounds of several regions, a solve inside
its round): the collector comes back when the last of them ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_resume = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection while the block runs (nor while any overlapping pause does); the
    collector's state before the first pause comes back after the last."""
    global _pauses, _resume  # one collector per process
    with _lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
