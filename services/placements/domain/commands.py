"""The commands of the placements service: what a caller asks for, HTTP-agnostic and typed.

The HTTP entrypoints build them from request bodies (`entrypoints/schemas.py`); the handlers
(`handlers.py`) take one and a unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from shared.contracts.events import DeclineReason, Policy, RoundKind
from shared.contracts.outcomes import OutcomeReason
from shared.contracts.vocabulary import Participant

from .model import Contact, OfferDraft, StudentDraft
from .rules import Channel, Party


@dataclass(frozen=True)
class PostPlacement:
    """A company posts an offer, optionally with the placement's own notification channel."""

    offer: OfferDraft
    channel: Channel | None = None


@dataclass(frozen=True)
class PostPlacements:
    """Many offers at once: all posted, or none."""

    items: tuple[PostPlacement, ...]


@dataclass(frozen=True)
class PatchPlacement:
    """Change some fields of an offer. `changes` holds the offer fields to replace (None clears
    a field that may be empty); with `set_channel` the placement's own channel becomes
    `channel` (None: back to the company's default)."""

    placement_id: str
    changes: Mapping[str, Any]
    channel: Channel | None = None
    set_channel: bool = False


@dataclass(frozen=True)
class WithdrawPlacement:
    placement_id: str
    reason: str | None = None


@dataclass(frozen=True)
class SetCompanyChannel:
    """A company's default channel for all its placements."""

    company_id: str
    channel: Channel


@dataclass(frozen=True)
class RegisterStudent:
    profile: StudentDraft
    contact: Contact


@dataclass(frozen=True)
class RegisterStudents:
    """Many registrations at once: all registered, or none."""

    items: tuple[RegisterStudent, ...]


@dataclass(frozen=True)
class UpdateTeacher:
    """A teacher (or their coordinator) changes the teacher's profile: their subject, the skills
    they want to update and the ISO weeks they can spend at a company (empty: no week limit)."""

    teacher_id: str
    subject: str
    skills: tuple[str, ...]
    available_weeks: tuple[str, ...]


@dataclass(frozen=True)
class SetPreferences:
    student_id: str
    preferences: tuple[str, ...]


@dataclass(frozen=True)
class WithdrawStudent:
    """Withdraw a student and erase their personal data."""

    student_id: str


@dataclass(frozen=True)
class AnswerMatch:
    """The student or the company accepts or declines a proposal."""

    match_id: uuid.UUID
    by: Party
    answer: Literal["accept", "decline"]
    reason: str | None = None
    """The decline's reason: a code of `DeclineReason`, or words (kept here only)."""
    reason_code: DeclineReason | None = None
    """The decline's code, when `reason` holds words."""


@dataclass(frozen=True)
class RequestRound:
    """A coordinator asks for a matching round in a region."""

    region: str
    policy: Policy = "optimal"
    requested_by: str | None = None
    kind: RoundKind = "ordinary"
    """`supplementary`: pins every standing match, places only the unplaced (refused when the
    region has none)."""
    fill: bool = False
    dry_run: bool = False
    participant: Participant = "student"
    """`teacher`: a round of the region's teachers at its working-life periods (refused when
    the region has no open period or no teacher)."""


@dataclass(frozen=True)
class ListRounds:
    """A page of a region's rounds, newest first."""

    region: str
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class ListOutcomes:
    """A page of a round's outcomes (by student id), filtered: by reason (unplaced ones), by the
    student's programme, placed or not, moved (placed elsewhere than their standing match)."""

    round_id: uuid.UUID
    reason: OutcomeReason | None = None
    programme: str | None = None
    placed: bool | None = None
    moved: bool | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class RegionVacancies:
    """The free slots of a region and a page of its unplaced students with the vacancies each
    is eligible for (at most `per_student` each, nearest first)."""

    region: str
    limit: int = 50
    offset: int = 0
    per_student: int = 10


@dataclass(frozen=True)
class OpenSupplementary:
    """A coordinator opens a supplementary round for a region: the unplaced of its latest
    round of `participant`s (students, or teachers at working-life periods) are told to rank
    the vacancies of their kind that fit them (until `ranks_until`, if given)."""

    region: str
    ranks_until: date | None = None
    participant: Participant = "student"


@dataclass(frozen=True)
class AssignMatch:
    """A coordinator assigns a student to a placement by hand, with a reason; a pair failing a
    hard constraint only with `override_hard_constraints`."""

    student_id: str
    placement_id: str
    reason: str
    override_hard_constraints: bool = False


@dataclass(frozen=True)
class CompareRounds:
    """Two rounds of one region side by side (lists cut at `limit`)."""

    a: uuid.UUID
    b: uuid.UUID
    limit: int = 50


@dataclass(frozen=True)
class ListPlacements:
    """A page of placements, filtered, ordered by id."""

    region: str | None = None
    company_id: str | None = None
    include_withdrawn: bool = False
    limit: int = 100
    offset: int = 0
    kind: Participant | None = None
    """Only placements for students, or only working-life periods for teachers."""


@dataclass(frozen=True)
class LinkAccount:
    """Find (or make, on first use) the records a signed-in person acts for beyond their token's
    claims: as a student (`student`) and/or as company staff (`company`). `email` is the token's
    e-mail if the issuer verified it, else None (then nothing new is linked)."""

    subject: str
    email: str | None
    student: bool = False
    company: bool = False


@dataclass(frozen=True)
class InviteStaff:
    """A coordinator invites a company's staff member by e-mail: their first sign-in with that
    verified e-mail links their account to the company."""

    company_id: str
    email: str


# ---------------------------------------------------------------------- supervisor readiness


@dataclass(frozen=True)
class SetReadinessSettings:
    """A coordinator sets their region's supervisor readiness: the course's address, how many
    years a course counts, and whether a match is confirmed only once the supervisor is ready."""

    region: str
    course_url: str | None
    validity_years: int
    require_readiness: bool


@dataclass(frozen=True)
class RecordTraining:
    """A coordinator records the day a supervisor (by e-mail, of a company with a placement in
    the region naming them) completed the region's course; None clears it."""

    region: str
    company_id: str
    email: str
    trained_on: date | None


@dataclass(frozen=True)
class NotReadyQuery:
    """A page of the region's open placements whose supervisor is not ready."""

    region: str
    limit: int = 50
    offset: int = 0
