"""Contracts between services over HTTP (not Kafka).

`NoticeContext` is what the placements service gives the notifications service, on its internal
route `GET /internal/v1/notice-context?placement_id=P&student_id=S` (bearer token from settings),
for one notice: the placement, its supervisor and channel, and the student. Personal details
(name, e-mail, phone) are present only once the student accepted the match (`contact_shared`);
they never enter Kafka and the notifications service keeps them no longer than delivery needs.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.profiles import Id, RegionCode, Supervisor
from shared.contracts.vocabulary import Channel, Language, Participant

NOTICE_CONTEXT_PATH = "/internal/v1/notice-context"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoticeChannel(_Model):
    kind: Channel = Field(
        default="email", description="How the supervisor is told.", examples=["email"]
    )
    webhook_url: str | None = Field(
        default=None,
        description="Where webhooks are posted (kind=webhook).",
        examples=["https://hr.example.se/apl-hook"],
    )


class NoticePlacement(_Model):
    placement_id: Id = Field(description="Placement id.", examples=["p-1"])
    company_id: Id = Field(description="Company id.", examples=["c-1"])
    region: RegionCode = Field(description="Region.", examples=["SE-AB"])
    title: str | None = Field(default=None, description="Title.", examples=["Electrician"])
    starts_on: date | None = Field(default=None, description="First day.")
    ends_on: date | None = Field(default=None, description="Last day.")
    kind: Participant = Field(
        default="student",
        description="`teacher`: a working-life period for teachers (a teacher's wording).",
    )


class NoticeStudent(_Model):
    student_id: Id = Field(description="Pseudonymous id.", examples=["s-000123"])
    programme: str | None = Field(default=None, description="Programme.", examples=["EE"])
    available_from: date | None = Field(default=None, description="Available from.")
    available_to: date | None = Field(default=None, description="Available to.")
    contact_shared: bool = Field(description="True once the student accepted the match.")
    name: str | None = Field(default=None, description="Only when contact_shared.")
    email: str | None = Field(default=None, description="Only when contact_shared.")
    phone: str | None = Field(default=None, description="Only when contact_shared.")
    participant: Participant = Field(
        default="student", description="`teacher`: the person proposed is a teacher."
    )
    subject: str | None = Field(default=None, description="A teacher's subject.")
    skills: tuple[str, ...] = Field(
        default=(), description="A teacher's skills to update (empty for a student)."
    )
    available_weeks: tuple[str, ...] = Field(
        default=(), description="A teacher's available ISO weeks (empty: no limit)."
    )


TrainingStatus = Literal["not_started", "valid", "expired"]
"""A supervisor's training for the region's supervisor course: none recorded, done and still
valid, or done longer ago than the region's validity."""


class NoticeReadiness(_Model):
    """The supervisor's readiness as the region judges it today: their training for the region's
    supervisor course, where the course is, and whether the region requires a valid training
    before a match is confirmed."""

    status: TrainingStatus = Field(
        description="not_started (no course recorded), valid, or expired.", examples=["expired"]
    )
    trained_on: date | None = Field(
        default=None, description="The day the supervisor completed the course, if recorded."
    )
    expires_on: date | None = Field(
        default=None,
        description="The first day the training is no longer valid (trained_on + validity).",
    )
    validity_years: int = Field(
        ge=1, description="How many years the region counts a course as valid.", examples=[3]
    )
    course_url: str | None = Field(
        default=None,
        description="The region's supervisor course (handledarutbildning), if it named one.",
        examples=["https://utbildning.example.se/handledare"],
    )
    required: bool = Field(
        default=False,
        description="The region confirms no match before the supervisor's training is valid.",
    )

    @property
    def ready(self) -> bool:
        return self.status == "valid"


class NoticeContext(_Model):
    placement: NoticePlacement
    supervisor: Supervisor | None = Field(description="Who is told; None if the offer has none.")
    channel: NoticeChannel
    student: NoticeStudent | None = Field(
        description="None when the student was withdrawn and erased."
    )
    readiness: NoticeReadiness | None = Field(
        default=None,
        description=(
            "The supervisor's training status and the region's course (None: the placement "
            "names no supervisor)."
        ),
    )


STUDENT_NOTICE_CONTEXT_PATH = "/internal/v1/student-notice-context"
"""`GET ...?student_id=S[&placement_id=P][&round_id=R]`: what a notice *to a student* needs
(same bearer token and scope as the notice context). With `placement_id` (a proposal or
confirmation) the placement is given; without it (unplaced, or a supplementary round opened) the
vacancies that fit the student, nearest first: with `round_id` as that round left them, the
answer `settled: false` until the placements service has applied the round in full (so an
unplaced student is never told of a slot the same round gave to another). 404 when the student
was withdrawn and erased."""

MAX_NOTICE_VACANCIES = 10
"""At most this many vacancies are listed in a student's notice."""


class NoticeVacancy(_Model):
    placement_id: Id = Field(description="Placement id.", examples=["p-1"])
    company_id: Id = Field(description="Company id.", examples=["c-1"])
    title: str | None = Field(default=None, description="Title.", examples=["Electrician"])
    free_slots: int = Field(ge=1, description="Slots still free.", examples=[2])
    starts_on: date | None = Field(default=None, description="First day.")
    ends_on: date | None = Field(default=None, description="Last day.")
    distance_km: float | None = Field(
        default=None, description="From the student's home, km (None without coordinates)."
    )


class StudentNoticeContext(_Model):
    student_id: Id = Field(description="Pseudonymous id.", examples=["s-000123"])
    region: RegionCode = Field(description="Region.", examples=["SE-AB"])
    name: str = Field(description="The student's name (the recipient).")
    email: str = Field(description="Where the notice goes.")
    language: Language = Field(description="The student's language.", examples=["sv"])
    participant: Participant = Field(
        default="student", description="`teacher`: the recipient is a teacher (their wording)."
    )
    placement: NoticePlacement | None = Field(
        default=None, description="The placement proposed or confirmed (with placement_id)."
    )
    vacancies: tuple[NoticeVacancy, ...] = Field(
        default=(), description="Without placement_id: vacancies that fit, nearest first."
    )
    vacancies_total: int = Field(
        default=0, ge=0, description="How many vacancies fit in all (the list is cut)."
    )
    page_url: str | None = Field(
        default=None,
        description="Where the student signs in to see the placement or rank the vacancies.",
    )
    settled: bool = Field(
        default=True,
        description="False: asked for the vacancies after a round (`round_id`) that the "
        "placements service has not applied in full yet (its outcomes, completion and "
        "proposals); no vacancies are given then (they could still show slots the round gave "
        "away): ask again.",
    )


REMINDERS_DUE_PATH = "/internal/v1/reminders-due"
"""`GET ...?starts_from=D&starts_until=D[&after=MATCH_ID][&limit=N]`: the confirmed matches whose
placement starts between the two days (inclusive), by match id after `after`; the notifications
service reminds each once before its placement starts (same bearer token and scope as the notice
context)."""

MAX_DUE_REMINDERS = 500
"""At most this many due reminders per answer (`limit`); `next_after` pages on."""


class DueReminder(_Model):
    match_id: uuid.UUID = Field(description="The confirmed match.")
    region: RegionCode = Field(description="Region.", examples=["SE-AB"])
    placement_id: Id = Field(description="Placement id.", examples=["p-1"])
    student_id: Id = Field(description="Pseudonymous id.", examples=["s-000123"])
    starts_on: date = Field(description="The placement's first day.")


class DueReminders(_Model):
    items: tuple[DueReminder, ...] = Field(default=(), description="By match id.")
    next_after: uuid.UUID | None = Field(
        default=None, description="Ask again with `after` = this for the next page (None: done)."
    )


NOTICE_CONTEXTS_PATH = "/internal/v1/notice-contexts"
"""`POST` a `NoticeContextsQuery`: the notice contexts and the student notice contexts a batch
of notices needs, in one call (same bearer token and scope as the single routes). `NoticeContexts`
answers each in the order asked, None where the single route answers 404."""

MAX_NOTICE_CONTEXTS = 500
"""At most this many of each kind in one `NoticeContextsQuery`."""


class NoticeContextKey(_Model):
    placement_id: Id = Field(description="Placement id.", examples=["p-1"])
    student_id: Id = Field(description="Pseudonymous id.", examples=["s-000123"])


class StudentNoticeContextKey(_Model):
    student_id: Id = Field(description="Pseudonymous id.", examples=["s-000123"])
    placement_id: Id | None = Field(
        default=None,
        description="The placement proposed or confirmed; None for the vacancies that fit.",
        examples=["p-1"],
    )
    round_id: uuid.UUID | None = Field(
        default=None,
        description="Without placement_id: the vacancies as this round left them (the "
        "answer is `settled` once the placements service has applied the round).",
    )


class NoticeContextsQuery(_Model):
    supervisors: tuple[NoticeContextKey, ...] = Field(
        default=(), max_length=MAX_NOTICE_CONTEXTS, description="Notice contexts wanted."
    )
    students: tuple[StudentNoticeContextKey, ...] = Field(
        default=(), max_length=MAX_NOTICE_CONTEXTS, description="Student notice contexts wanted."
    )


class NoticeContexts(_Model):
    supervisors: tuple[NoticeContext | None, ...] = Field(
        default=(), description="In the order asked; None: no such placement."
    )
    students: tuple[StudentNoticeContext | None, ...] = Field(
        default=(), description="In the order asked; None: withdrawn, erased or unknown."
    )
