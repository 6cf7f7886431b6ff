"""The matching engine behind the service's `Solver` port.

`services.matching.engine.solve` is a pure library; this adapter calls it and turns its
`RoundResult` into the service's plain `SolveResult`: the outcomes the round diff needs, the
figures, and (unless `RoundProblem.explain` is False: the v1 round bench/pipeline.py measures as
its baseline) every student's `StudentOutcome` with its explanation, `previous_placement_id`
being the placement of the student's standing match before the round: made on call, as models
(`Explained`) or as their JSON texts (`outcome_texts`, no models: what the round publishes,
made in a worker thread while it writes its matches).
The engine is imported by `warm_up`, which `running()` runs in a thread at start-up
(`load_kernel`), or else on the first round.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import overload

import structlog

from services.matching.domain.model import Outcome, RoundProblem, SolveResult
from shared.contracts.outcomes import StudentOutcome

log = structlog.get_logger(__name__)


def engine_solver(problem: RoundProblem) -> SolveResult:
    """The `Solver` port, served by the matching engine."""
    from services.matching.engine import solve

    result = solve(
        problem.students,
        problem.placements,
        problem.pinned,
        previous=problem.previous,
        policy=problem.policy,
        excluded=problem.excluded,
        fill=problem.fill,
        withdrawn=problem.withdrawn,
    )
    outcomes = tuple(
        Outcome(o.student_id, o.placement_id, o.rank, o.reason, o.filled) for o in result.outcomes
    )
    previous = problem.previous
    if not problem.explain:
        return SolveResult(outcomes=outcomes, figures=result.summary.as_dict())
    return SolveResult(
        outcomes=outcomes,
        figures=result.summary.as_dict(),
        student_outcomes=Explained(lambda: result.student_outcomes(previous)),
        outcome_texts=lambda: result.student_outcome_texts(previous),
    )


class Explained(Sequence[StudentOutcome]):
    """Every student's outcome, explained on first use (once, whichever thread asks first)."""

    def __init__(self, make: Callable[[], tuple[StudentOutcome, ...]]) -> None:
        self._make: Callable[[], tuple[StudentOutcome, ...]] | None = make
        self._made: tuple[StudentOutcome, ...] = ()
        self._lock = threading.Lock()

    def _all(self) -> tuple[StudentOutcome, ...]:
        with self._lock:
            if self._make is not None:
                self._made, self._make = self._make(), None
            return self._made

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> StudentOutcome: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[StudentOutcome, ...]: ...
    def __getitem__(self, index: int | slice) -> StudentOutcome | tuple[StudentOutcome, ...]:
        return self._all()[index]

    def __iter__(self) -> Iterator[StudentOutcome]:
        return iter(self._all())


def warm_up() -> None:
    """Import the engine and load its compiled kernel (engine/ssp.py: about half a second
    from numba's cache, a few seconds the first time on a machine), so rounds need not."""
    from services.matching.engine import ssp

    ssp.load_compiled()


async def load_kernel() -> None:
    """`warm_up` beside the event loop. A round that starts first runs the interpreted kernel
    (same result, slower), or, if it is large enough to want the compiled one (engine/ssp.py,
    JIT_MIN_ARCS), waits for this load to finish."""
    started = time.perf_counter()
    try:
        await asyncio.to_thread(warm_up)
    except Exception:
        log.exception("matching kernel not loaded; rounds use the interpreted kernel")
        return
    # What the service has made so far (imports, pydantic's schemas, the compiled kernel) lives
    # as long as the process: out of the cyclic collector's reach, a full collection after a
    # round walks only the objects made since.
    gc.collect()
    gc.freeze()
    log.info(
        "matching kernel loaded",
        seconds=round(time.perf_counter() - started, 2),
        frozen=gc.get_freeze_count(),
    )
