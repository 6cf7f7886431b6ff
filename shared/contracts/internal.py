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
from shared.contracts.vocabulary import Channel

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
