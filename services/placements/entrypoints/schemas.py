"""Request and response bodies of the HTTP API, and how they become commands and come back
from the handlers' values.

They reuse the contract models of `shared/contracts/profiles.py` (the same fields, so nothing is
defined twice) and add what only this service knows: personal details, notification channels,
states. Request bodies parse JSON leniently (dates as strings, lists for tuples); the business
rules that need the database or name an index (`preferences[3]`) run in the handlers.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from shared.contracts.events import Policy, RoundFigures
from shared.contracts.profiles import (
    MAX_PREFERENCES,
    GeoPoint,
    Id,
    PlacementOffer,
    RegionCode,
    Skill,
    StudentProfile,
    Supervisor,
)
from shared.contracts.vocabulary import Channel as ChannelKind
from shared.contracts.vocabulary import Party

from ..domain import commands
from ..domain.model import (
    Contact,
    MatchRecord,
    OfferDraft,
    PlacementView,
    Round,
    Student,
    StudentDraft,
)
from ..domain.rules import Channel

_LENIENT = ConfigDict(extra="forbid", frozen=True, strict=False)

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=r"^[0-9+()\- ]+$")]


class NotificationSetting(BaseModel):
    """How the supervisor of a placement (or a company's placements) is told."""

    model_config = _LENIENT

    channel: ChannelKind = Field(
        default="email",
        description="E-mail to the supervisor, or a signed webhook.",
        examples=["webhook"],
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        description="Target of the webhook (channel=webhook).",
        examples=["https://hr.example.se/apl-hook"],
    )

    def value(self) -> Channel:
        return Channel(self.channel, self.webhook_url)

    @classmethod
    def of(cls, channel: Channel | None) -> NotificationSetting | None:
        return cls(channel=channel.kind, webhook_url=channel.webhook_url) if channel else None


class PlacementIn(OfferDraft):
    """A new placement offer: the contract's PlacementOffer plus an optional channel."""

    # An OfferDraft: the handler checks dates and ranking, naming each field.

    model_config = _LENIENT

    notification: NotificationSetting | None = Field(
        default=None, description="Overrides the company's default channel for this placement."
    )

    def command(self) -> commands.PostPlacement:
        offer = OfferDraft.model_validate(self.model_dump(exclude={"notification"}))
        return commands.PostPlacement(
            offer, self.notification.value() if self.notification else None
        )


class PlacementPatch(BaseModel):
    """Changes to a placement; fields left out stay as they are. Region and id cannot change."""

    model_config = _LENIENT

    company_id: Id | None = Field(default=None, description="Company id.")
    capacity: int | None = Field(default=None, ge=0, le=10_000, description="Student slots.")
    title: str | None = Field(default=None, max_length=200, description="Title.")
    required_skills: tuple[Skill, ...] | None = Field(default=None, description="Skills required.")
    programmes: tuple[str, ...] | None = Field(default=None, description="Accepted programmes.")
    starts_on: date | None = Field(default=None, description="First day.")
    ends_on: date | None = Field(default=None, description="Last day.")
    site: GeoPoint | None = Field(default=None, description="Where the work is done.")
    supervisor: Supervisor | None = Field(default=None, description="Who receives notices.")
    ranking: tuple[Id, ...] | None = Field(default=None, description="Company's student order.")
    notification: NotificationSetting | None = Field(default=None, description="Channel.")

    def command(self, placement_id: str) -> commands.PatchPlacement:
        """Fields left out stay; `notification` sent (even null) replaces the own channel."""
        return commands.PatchPlacement(
            placement_id,
            changes=self.model_dump(exclude_unset=True, exclude={"notification"}),
            channel=self.notification.value() if self.notification else None,
            set_channel="notification" in self.model_fields_set,
        )


class PlacementOut(PlacementOffer):
    model_config = _LENIENT

    notification: NotificationSetting | None = Field(default=None, description="Own channel.")
    status: Literal["open", "withdrawn"] = Field(description="Withdrawn placements take no one.")
    confirmed: int = Field(ge=0, description="Matches confirmed at this placement.")

    @classmethod
    def of(cls, view: PlacementView, *, redact: bool = False) -> PlacementOut:
        """The placement; `redact` (a student's view, `domain/policy.py`) leaves out the
        supervisor, the company's ranking of students and its own channel."""
        placement = view.placement
        hidden = {"supervisor": None, "ranking": None} if redact else {}
        channel = None if redact else placement.channel
        return cls.model_validate(
            {
                **placement.offer.model_dump(),
                **hidden,
                "notification": NotificationSetting.of(channel),
                "status": "withdrawn" if placement.withdrawn else "open",
                "confirmed": view.confirmed,
            }
        )


class InvitationIn(BaseModel):
    """An invitation of a company's staff member."""

    model_config = _LENIENT

    email: EmailStr = Field(
        description="Their work e-mail: the first sign-in with it (verified) links the account.",
        examples=["hr@volvo.example.se"],
    )


class InvitationOut(BaseModel):
    company_id: str
    email: str


class StudentIn(StudentDraft):
    """A student's registration: the contract's StudentProfile plus the personal details, which
    stay in this service."""

    # A StudentDraft: the handler checks preferences and dates, naming each field.

    model_config = _LENIENT

    name: Name = Field(
        description="Full name; never leaves this service.", examples=["Sara Nieminen"]
    )
    email: EmailStr = Field(
        description="E-mail; never leaves this service.", examples=["sara@example.fi"]
    )
    phone: Phone | None = Field(
        default=None, description="Phone number.", examples=["+358 40 123 4567"]
    )

    def command(self) -> commands.RegisterStudent:
        profile = StudentDraft.model_validate(
            self.model_dump(exclude={"name", "email", "phone"}), strict=False
        )
        return commands.RegisterStudent(profile, Contact(self.name, str(self.email), self.phone))


class StudentOut(StudentProfile):
    model_config = _LENIENT

    name: str = Field(description="Full name.")
    email: str = Field(description="E-mail.")
    phone: str | None = Field(default=None, description="Phone number.")

    @classmethod
    def of(cls, student: Student) -> StudentOut:
        contact = student.contact
        return cls.model_validate(
            {
                **student.profile.model_dump(),
                "name": contact.name,
                "email": contact.email,
                "phone": contact.phone,
            }
        )


class PreferencesIn(BaseModel):
    model_config = _LENIENT

    preferences: tuple[Id, ...] = Field(
        description=f"Ranked placement ids, best first; at most {MAX_PREFERENCES}, no repeats.",
        examples=[["p-1", "p-7"]],
    )

    def command(self, student_id: str) -> commands.SetPreferences:
        return commands.SetPreferences(student_id, self.preferences)


class CompanyChannelIn(NotificationSetting):
    """A company's default channel for all its placements."""

    def command(self, company_id: str) -> commands.SetCompanyChannel:
        return commands.SetCompanyChannel(company_id, self.value())


class MatchOut(BaseModel):
    match_id: uuid.UUID
    round_id: uuid.UUID | None
    region: str
    student_id: str
    placement_id: str
    company_id: str | None
    rank: int | None
    state: Literal["proposed", "accepted", "confirmed", "declined", "cancelled"]
    accepted_by_student: bool
    accepted_by_company: bool
    declined_by: Party | None
    reason: str | None
    updated_at: datetime

    @classmethod
    def of(cls, match: MatchRecord) -> MatchOut:
        return cls(
            match_id=match.match_id,
            round_id=match.round_id,
            region=match.region,
            student_id=match.student_id,
            placement_id=match.placement_id,
            company_id=match.company_id,
            rank=match.rank,
            state=match.state,
            accepted_by_student=match.accepted_by_student,
            accepted_by_company=match.accepted_by_company,
            declined_by=match.declined_by,
            reason=match.reason,
            updated_at=match.updated_at,
        )


class AcceptIn(BaseModel):
    model_config = _LENIENT

    by: Party = Field(description="Who accepts.", examples=["student"])

    def command(self, match_id: uuid.UUID) -> commands.AnswerMatch:
        return commands.AnswerMatch(match_id, self.by, "accept")


class DeclineIn(BaseModel):
    model_config = _LENIENT

    by: Party = Field(description="Who declines.", examples=["student"])
    reason: str | None = Field(
        default=None, max_length=1000, description="Why.", examples=["too far"]
    )

    def command(self, match_id: uuid.UUID) -> commands.AnswerMatch:
        return commands.AnswerMatch(match_id, self.by, "decline", self.reason)


class RoundIn(BaseModel):
    model_config = _LENIENT

    region: RegionCode = Field(description="Region to match.", examples=["SE-AB"])
    policy: Policy = Field(default="optimal", description="Matching policy.")
    requested_by: str | None = Field(default=None, max_length=200, description="Who asks.")

    def command(self) -> commands.RequestRound:
        return commands.RequestRound(self.region, self.policy, self.requested_by)


class RoundAccepted(BaseModel):
    round_id: uuid.UUID
    status: Literal["requested"]


class RoundOut(BaseModel):
    round_id: uuid.UUID
    region: str
    policy: str
    status: Literal["requested", "completed"]
    requested_at: datetime | None
    completed_at: datetime | None
    figures: RoundFigures | None
    unplaced_by_reason: dict[str, int] | None
    proposed: int | None
    cancelled: int | None

    @classmethod
    def of(cls, found: Round) -> RoundOut:
        return cls(
            round_id=found.round_id,
            region=found.region,
            policy=found.policy,
            status=found.status,
            requested_at=found.requested_at,
            completed_at=found.completed_at,
            figures=found.figures,
            unplaced_by_reason=found.unplaced_by_reason,
            proposed=found.proposed,
            cancelled=found.cancelled,
        )


class ProblemField(BaseModel):
    field: str = Field(examples=["preferences[3]"])
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str
    errors: list[ProblemField] = Field(default_factory=list)


MAX_BATCH = 500


class PlacementBatchIn(BaseModel):
    """Many placements in one request: all are posted, or none (one transaction)."""

    model_config = _LENIENT

    items: list[PlacementIn] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} placements."
    )

    def command(self) -> commands.PostPlacements:
        return commands.PostPlacements(tuple(item.command() for item in self.items))


class StudentBatchIn(BaseModel):
    """Many students in one request: all are registered, or none (one transaction)."""

    model_config = _LENIENT

    items: list[StudentIn] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} students."
    )

    def command(self) -> commands.RegisterStudents:
        return commands.RegisterStudents(tuple(item.command() for item in self.items))


class BatchCreated(BaseModel):
    created: int = Field(ge=0, description="How many were created.", examples=[500])
    ids: list[str] = Field(description="Their ids, in request order.")
