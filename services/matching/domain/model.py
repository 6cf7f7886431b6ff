"""What a round works with: standing matches, the solver port, outcomes, and the round's plan."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from shared.contracts.profiles import PinnedPair, PlacementOffer, StudentProfile

Policy = Literal["optimal", "stable"]
CancelReason = Literal[
    "superseded", "declined", "student_withdrawn", "placement_withdrawn", "capacity_reduced"
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

    @property
    def pinned(self) -> bool:
        """Confirmed, or accepted by either side: a round keeps it (PRODUCT.md, pinned pairs)."""
        return self.status == "confirmed" or self.student_accepted or self.company_accepted


@dataclass(frozen=True, slots=True)
class Outcome:
    """One student's result of a round."""

    student_id: str
    placement_id: str | None
    rank: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class SolveResult:
    outcomes: tuple[Outcome, ...]
    figures: Mapping[str, Any]  # the RoundFigures fields of PRODUCT.md


class Solver(Protocol):
    """The port the service runs a round through (the engine's `solve`, adapted)."""

    def __call__(
        self,
        students: Sequence[StudentProfile],
        placements: Sequence[PlacementOffer],
        pinned: Sequence[PinnedPair],
        *,
        previous: Mapping[str, str],
        policy: Policy,
        excluded: Collection[tuple[str, str]],
    ) -> SolveResult: ...


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
