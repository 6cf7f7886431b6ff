"""Pausing Python's cyclic garbage collector while a block makes many short-lived objects.

A round of 30,000 students makes hundreds of thousands of objects (profiles, offers, outcomes,
events) and drops them all when it ends; none of them is in a reference cycle, so reference
counting frees them. But while they are made, the cyclic collector runs again and again, and
each full collection walks every object made since the service froze its start-up objects
(`adapters/engine.load_kernel`), the round's own growing heap among them: making the models of a
30,000-student round's stored profiles took 0.59 s with it and 0.12 s without, its 14,268
offers 0.29 s and 0.06 s (bench/pipeline.py's read model, `--students 30000`). `paused()`
turns it off for such a block and back on when the last overlapping pause ends (rounds of
several regions overlap); whatever garbage the block left is collected then. A pause that lasts
holds back only cyclic garbage, which these blocks do not make.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_pauses = 0
_resume = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection while the block runs (nor while any other pause does); the
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
