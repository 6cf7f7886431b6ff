"""What a round returns: outcomes in input order, the round figures, and explanations."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from services.matching.engine.problem import (
    I64,
    RULE_DISTANCE,
    RULE_EXCLUDED,
    RULE_PERIOD,
    RULE_PROGRAMME,
    RULE_SKILLS,
    Problem,
)
from services.matching.engine.stable import placement_order_key

Reason = Literal["no_eligible_choice", "choices_full"]
Policy = Literal["optimal", "stable"]
ChoiceStatus = Literal["unknown", "ineligible", "full", "free"]

RULE_NAMES: tuple[tuple[int, str], ...] = (
    (RULE_SKILLS, "required_skills"),
    (RULE_PROGRAMME, "programmes"),
    (RULE_PERIOD, "period"),
    (RULE_DISTANCE, "max_travel_km"),
    (RULE_EXCLUDED, "declined"),
)
_RULE_TEXT = {
    "required_skills": "lacks a required skill",
    "programmes": "programme not accepted",
    "period": "period outside availability",
    "max_travel_km": "site beyond travel distance",
    "declined": "declined earlier",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One student's result: a placement with its rank, or unplaced with a reason."""

    student_id: str
    placement_id: str | None
    rank: int | None
    reason: Reason | None

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "student_id": self.student_id,
            "placement_id": self.placement_id,
            "rank": self.rank,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """The round figures of docs/product.md. `solve_seconds` times the assignment step (from
    eligible pairs to the assignment); building eligibility from profiles before it and
    these figures after it are not in it."""

    students: int
    placed: int
    placed_weight: int
    total_rank_cost: int
    first_choice: int
    top3: int
    unknown_preferences: int
    blocking_pairs: int
    solve_seconds: float
    solver: str

    def as_dict(self) -> dict[str, int | float | str]:
        return {
            "students": self.students,
            "placed": self.placed,
            "placed_weight": self.placed_weight,
            "total_rank_cost": self.total_rank_cost,
            "first_choice": self.first_choice,
            "top3": self.top3,
            "unknown_preferences": self.unknown_preferences,
            "blocking_pairs": self.blocking_pairs,
            "solve_seconds": round(self.solve_seconds, 6),
            "solver": self.solver,
        }


@dataclass(frozen=True, slots=True)
class Occupant:
    """A student holding a slot of a placement."""

    student_id: str
    rank: int | None  # the placement's position in this student's preferences
    priority: int
    pinned: bool


@dataclass(frozen=True, slots=True)
class ChoiceNote:
    """Why one better-ranked choice is not the student's placement."""

    rank: int
    placement_id: str
    status: ChoiceStatus
    rules: tuple[str, ...] = ()  # failed eligibility rules, for "ineligible"
    taken_by: tuple[Occupant, ...] = ()  # who holds the slots, for "full"

    def text(self) -> str:
        head = f"choice {self.rank} {self.placement_id}: "
        if self.status == "unknown":
            return head + "not a known placement (unknown or withdrawn)"
        if self.status == "ineligible":
            return head + "ineligible: " + ", ".join(_RULE_TEXT[r] for r in self.rules)
        if self.status == "free":
            return head + "has a free slot (this student is pinned)"
        if not self.taken_by:
            return head + "full: no slots"
        who = ", ".join(
            f"{o.student_id} ({'pinned, ' if o.pinned else ''}"
            f"{'choice ' + str(o.rank) if o.rank is not None else 'not in preferences'}, "
            f"priority {o.priority})"
            for o in self.taken_by
        )
        return head + f"full: taken by {who}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a student got its outcome: every better-ranked choice and what stood in the way."""

    student_id: str
    placement_id: str | None
    rank: int | None
    reason: Reason | None
    pinned: bool
    policy: Policy
    better_choices: tuple[ChoiceNote, ...]

    def text(self) -> str:
        if self.placement_id is None:
            head = f"{self.student_id}: unplaced ({self.reason})"
        else:
            where = f"choice {self.rank}" if self.rank is not None else "not in preferences"
            pin = "pinned at" if self.pinned else "placed at"
            head = f"{self.student_id}: {pin} {self.placement_id} ({where})"
        if not self.better_choices:
            tail = (
                "  no choices listed"
                if self.placement_id is None
                else "  this is the student's best choice"
                if self.rank == 1
                else "  no better choice"
            )
            return f"{head}\n{tail}"
        return "\n".join([head, *("  " + n.text() for n in self.better_choices)])


class RoundResult:
    """Outcomes in input order, the summary, and explanations on demand."""

    def __init__(
        self,
        problem: Problem,
        assignment: I64,
        policy: Policy,
        solve_seconds: float,
        solver: str,
    ) -> None:
        self.problem = problem
        self.assignment = assignment
        self.policy: Policy = policy
        pb = problem
        # Rank of each student's assignment (None when pinned outside its preferences).
        self._rank = np.zeros(pb.n_students, dtype=np.int64)
        hit = pb.edge_placement == assignment[pb.edge_student]
        self._rank[pb.edge_student[hit]] = pb.edge_rank[hit]
        has_eligible = np.zeros(pb.n_students, dtype=bool)
        has_eligible[pb.edge_student[pb.eligible]] = True
        outcomes: list[Outcome] = []
        sid, pid = pb.student_ids, pb.placement_ids
        for s, (p, r, el) in enumerate(
            zip(assignment.tolist(), self._rank.tolist(), has_eligible.tolist(), strict=True)
        ):
            if p >= 0:
                outcomes.append(Outcome(sid[s], pid[p], r or None, None))
            else:
                reason: Reason = "choices_full" if el else "no_eligible_choice"
                outcomes.append(Outcome(sid[s], None, None, reason))
        self.outcomes = tuple(outcomes)
        placed = assignment >= 0
        ranks = self._rank[placed]
        ranks = ranks[ranks > 0]
        self.summary = RoundSummary(
            students=pb.n_students,
            placed=int(np.count_nonzero(placed)),
            placed_weight=sum(1 + pb.priority[s] for s in np.flatnonzero(placed).tolist()),
            total_rank_cost=int((ranks * ranks).sum()),
            first_choice=int(np.count_nonzero(ranks == 1)),
            top3=int(np.count_nonzero(ranks <= 3)),
            unknown_preferences=pb.unknown_preferences,
            blocking_pairs=count_blocking_pairs(pb, assignment),
            solve_seconds=solve_seconds,
            solver=solver,
        )

    def outcome(self, student_id: str) -> Outcome:
        return self.outcomes[self.problem.student_index[student_id]]

    def explain(self, student_id: str) -> Explanation:
        """Why `student_id` got its outcome. Raises KeyError for an unknown student."""
        pb = self.problem
        s = pb.student_index[student_id]
        out = self.outcomes[s]
        lo = int(np.searchsorted(pb.edge_student, s))
        hi = int(np.searchsorted(pb.edge_student, s, side="right"))
        known = {
            int(r): e for e, r in zip(range(lo, hi), pb.edge_rank[lo:hi].tolist(), strict=True)
        }
        prefs = pb.preferences[s]
        # Choices better than the placement; all of them when unplaced or placed outside
        # the preferences (a pin).
        stop = out.rank if out.rank is not None else len(prefs) + 1
        occupants = self._occupants
        notes: list[ChoiceNote] = []
        for r in range(1, stop):
            e = known.get(r)
            if e is None:
                notes.append(ChoiceNote(r, prefs[r - 1], "unknown"))
                continue
            p = int(pb.edge_placement[e])
            f = int(pb.fails[e])
            if f:
                rules = tuple(name for bit, name in RULE_NAMES if f & bit)
                notes.append(ChoiceNote(r, pb.placement_ids[p], "ineligible", rules))
                continue
            holders = occupants.get(p, [])
            if len(holders) < int(pb.capacity[p]):
                notes.append(ChoiceNote(r, pb.placement_ids[p], "free"))
                continue
            taken = tuple(
                Occupant(
                    pb.student_ids[o],
                    int(self._rank[o]) or None,
                    pb.priority[o],
                    bool(pb.pinned[o] >= 0),
                )
                for o in holders
            )
            notes.append(ChoiceNote(r, pb.placement_ids[p], "full", taken_by=taken))
        return Explanation(
            student_id=student_id,
            placement_id=out.placement_id,
            rank=out.rank,
            reason=out.reason,
            pinned=bool(pb.pinned[s] >= 0),
            policy=self.policy,
            better_choices=tuple(notes),
        )

    @cached_property
    def _occupants(self) -> dict[int, list[int]]:
        """The students at each placement, built on the first explanation."""
        occ: dict[int, list[int]] = {}
        for s, p in enumerate(self.assignment.tolist()):
            if p >= 0:
                occ.setdefault(p, []).append(s)
        return occ


def count_blocking_pairs(problem: Problem, assignment: I64) -> int:
    """Blocking pairs of docs/product.md: (s, p) with p eligible for s, s unplaced or placed at a
    worse rank than p, and p with a free slot or, where p has a ranking, preferring s to one
    of its placed students (absent students rank below all in the ranking). Every placed
    student counts, pinned or not; a placement outside a pinned student's preferences counts
    as worse than any of its choices."""
    pb = problem
    n_p = pb.n_placements
    rank = np.full(pb.n_students, np.iinfo(np.int64).max, dtype=np.int64)
    hit = pb.edge_placement == assignment[pb.edge_student]
    rank[pb.edge_student[hit]] = pb.edge_rank[hit]
    rank[assignment < 0] = np.iinfo(np.int64).max
    el = pb.eligible
    cand = np.flatnonzero(el & (pb.edge_rank < rank[pb.edge_student]))
    placed = assignment >= 0
    used = np.bincount(assignment[placed], minlength=n_p)
    has_free = used < pb.capacity
    count = int(np.count_nonzero(has_free[pb.edge_placement[cand]]))
    if not pb.ranking_pos:
        return count
    worst: dict[int, int] = {}
    for s in np.flatnonzero(placed).tolist():
        p = int(assignment[s])
        if p in pb.ranking_pos:
            k = placement_order_key(pb, p, s)
            if k > worst.get(p, -1):
                worst[p] = k
    rest = cand[~has_free[pb.edge_placement[cand]]]
    for s, p in zip(pb.edge_student[rest].tolist(), pb.edge_placement[rest].tolist(), strict=True):
        if p in worst and placement_order_key(pb, p, s) < worst[p]:
            count += 1
    return count
