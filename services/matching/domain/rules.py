"""Read-model and round rules: capacity across regions, pins, and the diff of a round."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from services.matching.domain.model import (
    Cancellation,
    CancelReason,
    NewProposal,
    Outcome,
    Policy,
    RoundInput,
    RoundKind,
    RoundPlan,
    RoundProblem,
    Standing,
)
from shared.contracts.profiles import PinnedPair, PlacementOffer


def capacity_left(
    placements: Iterable[PlacementOffer], used_elsewhere: Mapping[str, int]
) -> tuple[PlacementOffer, ...]:
    """The placements with their capacity reduced by standing matches of other regions.

    A placement may be ranked by students of several regions; the slots other regions' standing
    (proposed or confirmed) matches hold are not offered again. Never below zero.
    """
    out: list[PlacementOffer] = []
    for p in placements:
        used = used_elsewhere.get(p.placement_id, 0)
        if used:
            p = p.model_copy(update={"capacity": max(0, p.capacity - used)})
        out.append(p)
    return tuple(out)


def pins_within_capacity(
    standing: Sequence[Standing], capacity: Mapping[str, int], *, every: bool = False
) -> tuple[list[Standing], list[Standing]]:
    """Split pinned matches into those that fit the capacity and those that no longer do.

    Confirmed matches go first, then overrides and accepted ones, then (with `every`, a
    supplementary round: every standing match is pinned) the other proposals, each group in the
    given (creation) order. A pin on an unknown or withdrawn placement (capacity absent) does
    not fit.
    """
    pins = [m for m in standing if every or m.pinned]
    pins.sort(key=lambda m: 0 if m.status == "confirmed" else 1 if m.pinned else 2)
    left = dict(capacity)
    kept: list[Standing] = []
    dropped: list[Standing] = []
    for m in pins:
        if left.get(m.placement_id, 0) > 0:
            left[m.placement_id] -= 1
            kept.append(m)
        else:
            dropped.append(m)
    return kept, dropped


def round_problem(
    problem: RoundInput,
    policy: Policy,
    *,
    kind: RoundKind = "ordinary",
    fill: bool = False,
    explain: bool = True,
) -> RoundProblem:
    """What the solver is given for a region's open problem: the pins that still fit (confirmed
    first; in a supplementary round every standing match is a pin), the standing placements as
    `previous`, and the declined pairs as `excluded` (but for a pinned pair: an override may
    assign a pair declined before)."""
    capacity = {p.placement_id: p.capacity for p in problem.placements}
    in_problem = {s.student_id for s in problem.students}
    mine = [m for m in problem.standing if m.student_id in in_problem]
    kept, _ = pins_within_capacity(mine, capacity, every=kind == "supplementary")
    pinned = {(m.student_id, m.placement_id) for m in kept}
    return RoundProblem(
        students=problem.students,
        placements=problem.placements,
        pinned=tuple(
            PinnedPair(student_id=m.student_id, placement_id=m.placement_id) for m in kept
        ),
        previous={m.student_id: m.placement_id for m in mine},
        policy=policy,
        excluded=problem.excluded - pinned if pinned & problem.excluded else problem.excluded,
        fill=fill,
        withdrawn=problem.withdrawn_placements,
        explain=explain,
    )


def _cancel_reason(
    m: Standing,
    problem: RoundInput,
    in_problem: set[str],
    capacity_reduced: set[str],
) -> CancelReason:
    if m.placement_id in problem.withdrawn_placements:
        return "placement_withdrawn"
    if m.student_id not in in_problem:
        return "student_withdrawn" if m.student_id in problem.withdrawn_students else "superseded"
    if m.placement_id in capacity_reduced:
        return "capacity_reduced"
    return "superseded"


def plan_round(problem: RoundInput, outcomes: Sequence[Outcome]) -> RoundPlan:
    """Which proposals a round makes new, which standing ones it cancels, which it keeps.

    A student whose outcome is the placement of their standing match keeps it (no event). A
    standing match whose student now gets another placement, or none, or who is no longer in the
    problem, is cancelled; a new placement is a new proposal. Same input, same plan.
    """
    by_student = {o.student_id: o for o in outcomes}
    in_problem = set(by_student)
    company = {p.placement_id: p.company_id for p in problem.placements}
    capacity = {p.placement_id: p.capacity for p in problem.placements}
    standing_per_placement = Counter(m.placement_id for m in problem.standing)
    capacity_reduced = {
        pid for pid, n in standing_per_placement.items() if n > capacity.get(pid, 0)
    }
    standing_of = {m.student_id: m for m in problem.standing}

    kept: list[Standing] = []
    cancellations: list[Cancellation] = []
    proposals: list[NewProposal] = []
    for m in problem.standing:
        outcome = by_student.get(m.student_id)
        if outcome is not None and outcome.placement_id == m.placement_id:
            kept.append(m)
        elif outcome is None and m.region != problem.region:
            continue  # another region's match on a shared placement: not this round's to judge
        else:
            reason = _cancel_reason(m, problem, in_problem, capacity_reduced)
            cancellations.append(Cancellation(m, reason))
    for o in outcomes:
        if o.placement_id is None:
            continue
        current = standing_of.get(o.student_id)
        if current is not None and current.placement_id == o.placement_id:
            continue
        proposals.append(
            NewProposal(
                o.student_id,
                o.placement_id,
                company[o.placement_id],
                None if o.filled else o.rank,
                filled=o.filled,
            )
        )
    unplaced = Counter(o.reason or "unknown" for o in outcomes if o.placement_id is None)
    return RoundPlan(
        proposals=tuple(proposals),
        cancellations=tuple(cancellations),
        kept=tuple(kept),
        unplaced_by_reason=dict(sorted(unplaced.items())),
    )
