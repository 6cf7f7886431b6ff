"""Contracts between services over HTTP (not Kafka).

`NoticeContext` is what the placements service gives the notifications service, on its internal
route `GET /internal/v1/notice-context?placement_id=P&student_id=S` (bearer token from settings),
for one notice: the placement, its supervisor and channel, and the student. Personal details
(name, e-mail, phone) are present only once the student accepted the match (`contact_shared`);
they never enter Kafka and the notifications service keeps them no longer than delivery needs.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.profiles import Id, RegionCode, Supervisor
from shared.contracts.vocabulary import Channel, Language

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


class NoticeStudent(_Model):
    student_id: Id = Field(description="Pseudonymous id.", examples=["s-000123"])
    programme: str | None = Field(default=None, description="Programme.", examples=["EE"])
    available_from: date | None = Field(default=None, description="Available from.")
    available_to: date | None = Field(default=None, description="Available to.")
    contact_shared: bool = Field(description="True once the student accepted the match.")
    name: str | None = Field(default=None, description="Only when contact_shared.")
    email: str | None = Field(default=None, description="Only when contact_shared.")
    phone: str | None = Field(default=None, description="Only when contact_shared.")


class NoticeContext(_Model):
    placement: NoticePlacement
    supervisor: Supervisor | None = Field(description="Who is told; None if the offer has none.")
    channel: NoticeChannel
    student: NoticeStudent | None = Field(
        description="None when the student was withdrawn and erased."
    )


STUDENT_NOTICE_CONTEXT_PATH = "/internal/v1/student-notice-context"
"""`GET ...?student_id=S[&placement_id=P]`: what a notice *to a student* needs (same bearer
token and scope as the notice context). With `placement_id` (a proposal or confirmation) the
placement is given; without it (unplaced, or a supplementary round opened) the vacancies that
fit the student, nearest first. 404 when the student was withdrawn and erased."""

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
