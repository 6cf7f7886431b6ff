"""The matching engine behind the service's `Solver` port.

`services.matching.engine.solve` is a pure library; this adapter calls it and turns its
`RoundResult` into the service's plain `SolveResult`: the outcomes the round diff needs, the
figures, and (unless `RoundProblem.explain` is False: the v1 round bench/pipeline.py measures as
its baseline) every student's `StudentOutcome` with its explanation, `previous_placement_id`
being the placement of the student's standing match before the round. The engine is imported by
`warm_up`, which `running()` runs in a thread at start-up (`load_kernel`), or else on the first
round.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from services.matching.domain.model import Outcome, RoundProblem, SolveResult

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
    explained = result.student_outcomes(problem.previous) if problem.explain else ()
    return SolveResult(
        outcomes=outcomes, figures=result.summary.as_dict(), student_outcomes=explained
    )


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
    log.info("matching kernel loaded", seconds=round(time.perf_counter() - started, 2))
