"""A trivial deterministic solver for handler tests (never used by integration tests)."""

from __future__ import annotations

from services.matching.domain.model import Outcome, RoundProblem, SolveResult
from shared.contracts.outcomes import ChoiceNote, Explanation, StudentOutcome
from shared.contracts.profiles import StudentProfile


def _fill(
    problem: RoundProblem, ordered: list[StudentProfile], left: dict[str, int], got: dict[str, str]
) -> set[str]:
    """Each student still unplaced at the first free placement of their region (id order) they
    did not rank and did not decline; the students filled."""
    region_of = {p.placement_id: p.region for p in problem.placements}
    filled: set[str] = set()
    for s in ordered:
        if s.student_id in got:
            continue
        for pid in sorted(left):
            ok = region_of[pid] == s.region and pid not in s.preferences
            if ok and left[pid] > 0 and (s.student_id, pid) not in problem.excluded:
                got[s.student_id] = pid
                left[pid] -= 1
                filled.add(s.student_id)
                break
    return filled


def _explained(
    problem: RoundProblem, s: StudentProfile, o: Outcome, known: set[str]
) -> StudentOutcome:
    stop = o.rank or len(s.preferences) + 1
    notes = tuple(
        ChoiceNote(
            rank=r,
            placement_id=p,
            status="withdrawn" if p in problem.withdrawn else "full" if p in known else "unknown",
        )
        for r, p in enumerate(s.preferences[: stop - 1], start=1)
    )
    return StudentOutcome(
        student_id=s.student_id,
        placement_id=o.placement_id,
        rank=o.rank,
        filled=o.filled,
        pinned=any(pin.student_id == s.student_id for pin in problem.pinned),
        reason=o.reason,  # type: ignore[arg-type]  # the double's reasons are the contract's
        previous_placement_id=problem.previous.get(s.student_id),
        explanation=Explanation(better_choices=notes, choices=len(s.preferences)),
    )


def greedy_solver(problem: RoundProblem) -> SolveResult:
    """Pins first, then previous placements that still fit, then first free choice by id order;
    with `fill`, then the first free unranked placement of the student's region.

    Eligibility is only: ranked, known, not excluded (enough to test the service around it).
    Explanations are simple: every better choice is `unknown`, `withdrawn` or `full`.
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
    for s in ordered:
        for p in s.preferences:
            if s.student_id in got:
                break
            if p in left and (s.student_id, p) not in excluded and left[p] > 0:
                got[s.student_id] = p
                left[p] -= 1
    filled = _fill(problem, ordered, left, got) if problem.fill else set()
    outcomes: list[Outcome] = []
    for s in ordered:
        eligible = [p for p in s.preferences if p in left and (s.student_id, p) not in excluded]
        pid = got.get(s.student_id)
        if pid is None:
            reason = "choices_full" if eligible else "no_eligible_choice"
            reason = "no_eligible_vacancy" if problem.fill else reason
            outcomes.append(Outcome(s.student_id, None, None, reason))
        else:
            rank = s.preferences.index(pid) + 1 if pid in s.preferences else None
            outcomes.append(Outcome(s.student_id, pid, rank, None, s.student_id in filled))
    explained = (
        tuple(_explained(problem, s, o, set(left)) for s, o in zip(ordered, outcomes, strict=True))
        if problem.explain
        else ()
    )
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
        "filled": len(filled),
        "no_eligible_vacancy": len(outcomes) - len(placed) if problem.fill else 0,
    }
    return SolveResult(tuple(outcomes), figures, explained)
