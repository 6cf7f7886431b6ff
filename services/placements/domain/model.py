"""What the placements service stores and answers, as plain values.

The repositories return these; the handlers decide with `rules` and return them; the HTTP
entrypoints render them. `OfferDraft` and `StudentDraft` are the contract's models as submitted,
before the cross-field rules ran, so that a handler can name every bad field at once
(`preferences[3]`, `ends_on`) instead of failing on the first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from shared.contracts.events import RoundFigures, RoundKind
from shared.contracts.outcomes import RuleCode, StudentOutcome
from shared.contracts.profiles import Id, PlacementOffer, StudentProfile
from shared.contracts.vocabulary import Language, Participant

from .rules import Channel, Match, MatchStateName, Party

RoundStatus = Literal["requested", "completed", "failed"]
"""`failed`: the matching service completed the round without running it (`Round.failure`)."""
MAX_SUBMITTED_PREFERENCES = 100
"""Preferences a request may list (the rules allow 10; up to this many, each bad one is
named at its index; beyond it, the list alone is refused)."""


# ------------------------------------------------------------------------------ drafts


class OfferDraft(PlacementOffer):
    """A placement offer as submitted: field by field valid, the period and ranking rules not
    checked yet (`rules.offer_errors` names what breaks them; then `checked()`)."""

    @model_validator(mode="after")
    def _check(self) -> OfferDraft:  # replaces PlacementOffer._check
        return self

    def checked(self) -> PlacementOffer:
        return PlacementOffer.model_validate(self.model_dump(), strict=False)


class StudentDraft(StudentProfile):
    """A student profile as submitted: field by field valid, the preference and period rules
    not checked yet (they need the open placements; then `checked()`)."""

    preferences: tuple[Id, ...] = Field(
        default=(),
        max_length=MAX_SUBMITTED_PREFERENCES,
        description="Ranked placement ids, best first; at most 10, no repeats.",
    )

    @model_validator(mode="after")
    def _check(self) -> StudentDraft:  # replaces StudentProfile._check
        return self

    def checked(self) -> StudentProfile:
        return StudentProfile.model_validate(self.model_dump(), strict=False)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Placement:
    """A stored placement: the offer as published, its own channel, whether it was withdrawn."""

    offer: PlacementOffer
    channel: Channel | None = None
    withdrawn: bool = False

    @property
    def placement_id(self) -> str:
        return self.offer.placement_id


@dataclass(frozen=True)
class PlacementView:
    """A placement with the number of matches confirmed at it."""

    placement: Placement
    confirmed: int = 0


@dataclass(frozen=True)
class Contact:
    """A student's personal details: they never leave this service."""

    name: str
    email: str
    phone: str | None = None
    language: Language | None = None
    """The language of the student's notices; None: the region's (`outcomes.language_of`)."""


@dataclass(frozen=True)
class Student:
    """A registered student: the pseudonymous profile (as published) and the contact details."""

    profile: StudentProfile
    contact: Contact

    @property
    def student_id(self) -> str:
        return self.profile.student_id


@dataclass(frozen=True)
class Withdrawn:
    """The tombstone a withdrawn student leaves: every personal detail is gone."""

    student_id: str
    region: str
    programme: str | None = None
    participant: Participant = "student"


@dataclass(frozen=True)
class MatchRecord:
    """What this service knows of one proposal: where it came from and the answers to it."""

    match_id: uuid.UUID
    round_id: uuid.UUID | None
    region: str
    student_id: str
    placement_id: str
    company_id: str | None
    rank: int | None
    state: MatchStateName
    accepted_by_student: bool
    accepted_by_company: bool
    declined_by: Party | None
    reason: str | None
    updated_at: datetime
    filled: bool = False
    """Proposed by fill, at a vacancy the student did not rank (rank None)."""
    override: bool = False
    """Assigned by hand by a coordinator (pinned by every later round)."""

    def machine(self) -> Match:
        """The state machine's value of this match (`rules.accept`, `rules.decline`, ...)."""
        return Match(
            match_id=str(self.match_id),
            state=self.state,
            accepted_by_student=self.accepted_by_student,
            accepted_by_company=self.accepted_by_company,
            declined_by=self.declined_by,
            reason=self.reason,
        )


@dataclass(frozen=True)
class Round:
    """A matching round asked for here (or reported by matching), with its figures once done."""

    round_id: uuid.UUID
    region: str
    policy: str
    status: RoundStatus
    requested_at: datetime | None = None
    completed_at: datetime | None = None
    figures: RoundFigures | None = None
    unplaced_by_reason: dict[str, int] | None = None
    proposed: int | None = None
    cancelled: int | None = None
    kind: RoundKind = "ordinary"
    fill: bool = False
    dry_run: bool = False
    outcome_parts: int = 0
    """How many outcome parts the round published (known once it completed)."""
    parts_received: int = 0
    """How many outcome parts arrived here."""
    requested_by: str | None = None
    participant: Participant = "student"
    """Whom the round places: students, or teachers at working-life periods."""
    failure: str | None = None
    """Why a `failed` round did not run (the matching service's words)."""


@dataclass(frozen=True)
class OutcomeRecord:
    """One student's outcome of one round, as kept here (the programme is the student's now, or
    their tombstone's; None when unknown)."""

    round_id: uuid.UUID
    region: str
    dry_run: bool
    outcome: StudentOutcome
    programme: str | None = None

    @property
    def student_id(self) -> str:
        return self.outcome.student_id

    @property
    def moved(self) -> bool:
        """The student had a standing match before the round and the round placed them
        elsewhere (or nowhere)."""
        previous = self.outcome.previous_placement_id
        return previous is not None and previous != self.outcome.placement_id


@dataclass(frozen=True)
class Assignment:
    """A coordinator's assignment of a student by hand, as requested
    (`MatchAssignmentRequested`)."""

    match_id: uuid.UUID
    region: str
    student_id: str
    placement_id: str
    company_id: str
    reason: str
    override_hard_constraints: bool
    constraints_overridden: tuple[RuleCode, ...] = ()


# ------------------------------------------------------------------------- idempotency


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's key for repeating a request safely, with the hash of the request's body."""

    key: str
    method: str
    path: str
    request_hash: str


@dataclass(frozen=True)
class StoredResponse:
    """The first answer given under a key; `request_hash` is None once erasure scrubbed it."""

    status: int
    body: Any
    request_hash: str | None


# ----------------------------------------------------------------------- account links


@dataclass(frozen=True)
class AccountLinks:
    """The records a signed-in account acts for, as the service linked them (None: not linked)."""

    student_id: str | None = None
    company_id: str | None = None
