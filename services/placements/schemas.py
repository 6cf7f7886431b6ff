"""Request and response bodies of the HTTP API.

They reuse the contract models of `shared/contracts/profiles.py` (the same fields, so nothing is
defined twice) and add what only this service knows: personal details, notification channels,
states. Request bodies parse JSON leniently (dates as strings, lists for tuples); the business
rules that need the database or name an index (`preferences[3]`) run in the handlers.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from shared.contracts.events import RoundFigures
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

_LENIENT = ConfigDict(extra="forbid", frozen=True, strict=False)

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=r"^[0-9+()\- ]+$")]


class NotificationSetting(BaseModel):
    """How the supervisor of a placement (or a company's placements) is told."""

    model_config = _LENIENT

    channel: Literal["email", "webhook"] = Field(
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


class PlacementIn(PlacementOffer):
    """A new placement offer: the contract's PlacementOffer plus an optional channel."""

    model_config = _LENIENT

    notification: NotificationSetting | None = Field(
        default=None, description="Overrides the company's default channel for this placement."
    )

    @model_validator(mode="after")
    def _check(self) -> PlacementIn:
        # Replaces PlacementOffer._check: the handler checks dates and ranking, naming each field.
        return self

    def offer(self) -> PlacementOffer:
        return PlacementOffer.model_validate(self.model_dump(exclude={"notification"}))


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


class PlacementOut(PlacementOffer):
    model_config = _LENIENT

    notification: NotificationSetting | None = Field(default=None, description="Own channel.")
    status: Literal["open", "withdrawn"] = Field(description="Withdrawn placements take no one.")
    confirmed: int = Field(ge=0, description="Matches confirmed at this placement.")


class StudentIn(StudentProfile):
    """A student's registration: the contract's StudentProfile plus the personal details, which
    stay in this service."""

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
    preferences: tuple[Id, ...] = Field(
        default=(),
        description=f"Ranked placement ids, best first; at most {MAX_PREFERENCES}, no repeats.",
    )

    @model_validator(mode="after")
    def _check(self) -> StudentIn:
        # Replaces StudentProfile._check: the handler checks preferences and dates, naming
        # each field.
        return self

    def profile(self) -> StudentProfile:
        return StudentProfile.model_validate(
            self.model_dump(exclude={"name", "email", "phone"}), strict=False
        )


class StudentOut(StudentProfile):
    model_config = _LENIENT

    name: str = Field(description="Full name.")
    email: str = Field(description="E-mail.")
    phone: str | None = Field(default=None, description="Phone number.")


class PreferencesIn(BaseModel):
    model_config = _LENIENT

    preferences: tuple[Id, ...] = Field(
        description=f"Ranked placement ids, best first; at most {MAX_PREFERENCES}, no repeats.",
        examples=[["p-1", "p-7"]],
    )


class CompanyChannelIn(NotificationSetting):
    """A company's default channel for all its placements."""


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
    declined_by: Literal["student", "company"] | None
    reason: str | None
    updated_at: datetime


class AcceptIn(BaseModel):
    model_config = _LENIENT

    by: Literal["student", "company"] = Field(description="Who accepts.", examples=["student"])


class DeclineIn(BaseModel):
    model_config = _LENIENT

    by: Literal["student", "company"] = Field(description="Who declines.", examples=["student"])
    reason: str | None = Field(
        default=None, max_length=1000, description="Why.", examples=["too far"]
    )


class RoundIn(BaseModel):
    model_config = _LENIENT

    region: RegionCode = Field(description="Region to match.", examples=["SE-AB"])
    policy: Literal["optimal", "stable"] = Field(default="optimal", description="Matching policy.")
    requested_by: str | None = Field(default=None, max_length=200, description="Who asks.")


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


class StudentBatchIn(BaseModel):
    """Many students in one request: all are registered, or none (one transaction)."""

    model_config = _LENIENT

    items: list[StudentIn] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} students."
    )


class BatchCreated(BaseModel):
    created: int = Field(ge=0, description="How many were created.", examples=[500])
    ids: list[str] = Field(description="Their ids, in request order.")
