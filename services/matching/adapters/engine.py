"""The matching engine behind the service's `Solver` port.

`services.matching.engine.solve` is a pure library; this adapter calls it and turns its
`RoundResult` into the service's plain `SolveResult`. The engine is imported on the first round,
so the rest of the service never loads NumPy/SciPy until a round runs.
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
