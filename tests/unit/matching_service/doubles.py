"""A trivial deterministic solver for handler tests (never used by integration tests)."""

from __future__ import annotations

from services.matching.domain.model import Outcome, RoundProblem, SolveResult


def greedy_solver(problem: RoundProblem) -> SolveResult:
    """Pins first, then previous placements that still fit, then first free choice by id order.

    Eligibility is only: ranked, known, not excluded (enough to test the service around it).
    """
    students, placements, pinned = problem.students, problem.placements, problem.pinned
    previous, excluded = problem.previous, problem.excluded
    left = {p.placement_id: p.capacity for p in placements}
    got: dict[str, str] = {}
    for pin in pinned:
        got[pin.student_id] = pin.placement_id
        left[pin.placement_id] -= 1
    ordered = sorted(students, key=lambda s: s.student_id)
    for s in ordered:
        prev = previous.get(s.student_id)
        free = s.student_id not in got and prev and left.get(prev, 0) > 0
        if free and prev and prev in s.preferences and (s.student_id, prev) not in excluded:
            got[s.student_id] = prev
            left[prev] -= 1
    outcomes: list[Outcome] = []
    for s in ordered:
        eligible = [p for p in s.preferences if p in left and (s.student_id, p) not in excluded]
        if s.student_id not in got:
            for p in eligible:
                if left[p] > 0:
                    got[s.student_id] = p
                    left[p] -= 1
                    break
        pid = got.get(s.student_id)
        if pid is None:
            reason = "choices_full" if eligible else "no_eligible_choice"
            outcomes.append(Outcome(s.student_id, None, None, reason))
        else:
            rank = s.preferences.index(pid) + 1 if pid in s.preferences else None
            outcomes.append(Outcome(s.student_id, pid, rank, None))
    placed = [o for o in outcomes if o.placement_id]
    ranks = [o.rank or 0 for o in placed]
    figures = {
        "students": len(outcomes),
        "placed": len(placed),
        "placed_weight": len(placed),
        "total_rank_cost": sum(r * r for r in ranks),
        "first_choice": sum(r == 1 for r in ranks),
        "top3": sum(1 <= r <= 3 for r in ranks),
        "unknown_preferences": sum(p not in left for s in students for p in s.preferences),
        "blocking_pairs": 0,
        "solve_seconds": 0.0,
        "solver": "greedy-test-double",
    }
    return SolveResult(tuple(outcomes), figures)
