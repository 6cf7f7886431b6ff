"""The matching engine behind the service's `Solver` port.

`services.matching.engine.solve` is a pure library; this adapter calls it and turns its
`RoundResult` into the service's plain `SolveResult`. The engine is imported by `warm_up`, which
the service runs in a thread at start-up, or else on the first round.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from services.matching.domain.model import Outcome, Policy, SolveResult
from shared.contracts.profiles import PinnedPair, PlacementOffer, StudentProfile


def engine_solver(
    students: Sequence[StudentProfile],
    placements: Sequence[PlacementOffer],
    pinned: Sequence[PinnedPair],
    *,
    previous: Mapping[str, str],
    policy: Policy,
    excluded: Collection[tuple[str, str]],
) -> SolveResult:
    """The `Solver` port, served by the matching engine."""
    from services.matching.engine import solve

    result = solve(
        students, placements, pinned, previous=previous, policy=policy, excluded=excluded
    )
    outcomes = tuple(
        Outcome(o.student_id, o.placement_id, o.rank, o.reason) for o in result.outcomes
    )
    return SolveResult(outcomes=outcomes, figures=result.summary.as_dict())


def warm_up() -> None:
    """Import the engine and load its compiled kernel (engine/ssp.py: about half a second
    from numba's cache, a few seconds the first time on a machine), so rounds need not."""
    from services.matching.engine import ssp

    ssp.load_compiled()
