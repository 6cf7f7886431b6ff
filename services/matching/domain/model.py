"""What a round works with: standing matches, the solver port, outcomes, and the round's plan."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.contracts.events import CancelReason, Policy, RoundFigures, RoundKind
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.profiles import PinnedPair, PlacementOffer, StudentProfile
from shared.contracts.vocabulary import Participant

__all__ = [
    "CancelReason",
    "Cancellation",
    "MatchRow",
    "NewProposal",
    "Outcome",
    "Policy",
    "RoundInput",
    "RoundKind",
    "RoundOptions",
    "RoundPlan",
    "RoundProblem",
    "RoundRecord",
    "SolveResult",
    "Solver",
    "Standing",
]


@dataclass(frozen=True, slots=True)
class Standing:
    """A match that still stands: proposed (maybe accepted by one side) or confirmed."""

    match_id: str
    student_id: str
    placement_id: str
    company_id: str
    region: str
    rank: int | None
    status: Literal["proposed", "confirmed"]
    student_accepted: bool = False
    company_accepted: bool = False
    override: bool = False
    """Assigned by hand by a coordinator (MatchAssignmentRequested)."""
    filled: bool = False
    """Placed by a round's fill phase at a placement the student did not rank."""

    @property
    def pinned(self) -> bool:
        """Confirmed, accepted by either side, or an override: a round keeps it
        (docs/product.md: pins)."""
        return (
            self.status == "confirmed"
            or self.student_accepted
            or self.company_accepted
            or self.override
        )


@dataclass(frozen=True, slots=True)
class MatchRow:
    """A match as a response to it finds it (locked for the response's transaction)."""

    match: Standing | None  # None when it no longer stands
    student_id: str
    placement_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One student's result of a round."""

    student_id: str
    placement_id: str | None
    rank: int | None
    reason: str | None
    filled: bool = False


@dataclass(frozen=True, slots=True)
class SolveResult:
    outcomes: tuple[Outcome, ...]
    figures: Mapping[str, Any]  # the RoundFigures fields of docs/product.md
    student_outcomes: Sequence[StudentOutcome] = ()
    """Every student's outcome with its explanation, in input order (empty when the problem
    did not ask for them: `RoundProblem.explain`). The engine's adapter gives a sequence that
    explains on first use."""
    outcome_texts: Callable[[], Sequence[str]] | None = None
    """The same outcomes as JSON, made on call: each `StudentOutcome`'s `outcome_json`
    text, in input order, made without the models (the engine's adapter gives it whenever it
    explains; a solver without it leaves None and the round serialises `student_outcomes`).
    The round calls it in a worker thread while it writes its matches."""


@dataclass(frozen=True, slots=True)
class RoundProblem:
    """Everything a solver is given for one round of one region."""

    students: tuple[StudentProfile, ...]
    placements: tuple[PlacementOffer, ...]
    pinned: tuple[PinnedPair, ...] = ()
    """Confirmed and accepted pairs the round must keep (within capacity)."""
    previous: Mapping[str, str] = field(default_factory=dict)
    """student id -> placement id of its standing match (an optimal round keeps most of them)."""
    policy: Policy = "optimal"
    excluded: frozenset[tuple[str, str]] = frozenset()
    """(student id, placement id) pairs never to match (declined)."""
    fill: bool = False
    """Run the engine's fill phase after the round (docs/product.md, fill option)."""
    withdrawn: frozenset[str] = frozenset()
    """Withdrawn placements the students rank (their explanations say "withdrawn")."""
    explain: bool = True
    """Compute every student's `StudentOutcome` with its explanation (`SolveResult.
    student_outcomes`). False only for the v1 round bench/pipeline.py measures as baseline."""


@dataclass(frozen=True, slots=True)
class RoundOptions:
    """What a round request asks for beyond region and policy (MatchingRoundRequestedData)."""

    kind: RoundKind = "ordinary"
    fill: bool = False
    dry_run: bool = False
    participant: Participant = "student"
    """Students, or teachers at working-life periods: the round loads only these."""


Solver = Callable[[RoundProblem], SolveResult]
"""The port a round runs through (the engine's `solve`, adapted in `adapters/engine.py`)."""


@dataclass(frozen=True, slots=True)
class RoundInput:
    """A region's open problem, as loaded under the region's lock."""

    region: str
    students: tuple[StudentProfile, ...]
    placements: tuple[PlacementOffer, ...]  # capacity already reduced by other regions' use
    standing: tuple[Standing, ...]  # the region's, and any other standing match of its students
    excluded: frozenset[tuple[str, str]]
    withdrawn_students: frozenset[str] = frozenset()
    withdrawn_placements: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NewProposal:
    student_id: str
    placement_id: str
    company_id: str
    rank: int | None
    filled: bool = False


@dataclass(frozen=True, slots=True)
class Cancellation:
    match: Standing
    reason: CancelReason


@dataclass(frozen=True, slots=True)
class RoundPlan:
    proposals: tuple[NewProposal, ...]
    cancellations: tuple[Cancellation, ...]
    kept: tuple[Standing, ...]
    unplaced_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """What the `rounds` table keeps of a round, and the input version the round saw."""

    round_id: uuid.UUID
    region: str
    policy: Policy
    trigger: Literal["requested", "automatic"]
    figures: RoundFigures
    unplaced_by_reason: dict[str, int]
    proposed: int
    cancelled: int
    seen_version: int
    kind: RoundKind = "ordinary"
    fill: bool = False
    dry_run: bool = False
    """A dry run is recorded (its round id is taken) but leaves the input version it saw
    unrecorded: automatic mode still sees the region as changed."""
    outcome_parts: int = 0
    participant: Participant = "student"
