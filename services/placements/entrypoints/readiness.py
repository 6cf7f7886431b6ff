"""Supervisor readiness over HTTP: a region's settings, a supervisor's course recorded by a
coordinator, the region's placements whose supervisor is not ready (all `coordinator-region`),
and, for the notifications service, the confirmed matches whose placement starts soon (internal,
`notice-context`). The bodies are here too: nothing of them is shared with other routes.

Routes parse, call one handler (`handlers.py`, "supervisor readiness") and render; bad input is
a 422 problem naming the field (`trained_on` in the future, `email` no placement names,
`course_url`, `validity_years`), with nothing written.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from shared.contracts.internal import (
    MAX_DUE_REMINDERS,
    REMINDERS_DUE_PATH,
    DueReminders,
    TrainingStatus,
)
from shared.contracts.profiles import Supervisor

from .. import handlers
from ..domain import supervisors
from ..domain.commands import NotReadyQuery, RecordTraining, SetReadinessSettings
from .auth import access, rule
from .http import PROBLEMS, UoW
from .inputs import clean_parameters, strict_input

_LENIENT = ConfigDict(extra="forbid", frozen=True, strict=False)


class ReadinessSettingsIn(BaseModel):
    """A region's supervisor readiness settings (a PUT replaces them all)."""

    model_config = _LENIENT

    course_url: str | None = Field(
        default=None,
        max_length=supervisors.MAX_COURSE_URL,
        description="The region's supervisor course (an http(s) address); null: none named.",
        examples=["https://utbildning.example.se/handledare"],
    )
    validity_years: int = Field(
        default=supervisors.DEFAULT_VALIDITY_YEARS,
        ge=supervisors.MIN_VALIDITY_YEARS,
        le=supervisors.MAX_VALIDITY_YEARS,
        description="How many years a completed course counts.",
        examples=[3],
    )
    require_readiness: bool = Field(
        default=False,
        description=(
            "Confirm a match only once the placement's supervisor has a valid training: the "
            "company side's accept (API, page, the supervisor's link) is refused until then."
        ),
    )

    def command(self, region: str) -> SetReadinessSettings:
        return SetReadinessSettings(
            region, self.course_url, self.validity_years, self.require_readiness
        )


class ReadinessSettingsOut(BaseModel):
    region: str
    course_url: str | None
    validity_years: int
    require_readiness: bool
    updated_at: datetime | None = Field(description="Last change (null: the defaults).")

    @classmethod
    def of(cls, s: supervisors.ReadinessSettings) -> ReadinessSettingsOut:
        return cls(
            region=s.region,
            course_url=s.course_url,
            validity_years=s.validity_years,
            require_readiness=s.require_readiness,
            updated_at=s.updated_at,
        )


class TrainingIn(BaseModel):
    """A supervisor's course, as a coordinator records it."""

    model_config = _LENIENT

    company_id: str = Field(
        min_length=1, max_length=200, description="The supervisor's company.", examples=["c-1"]
    )
    email: EmailStr = Field(
        description="The supervisor's e-mail (a placement of the company in the region names it).",
        examples=["anna@example.se"],
    )
    trained_on: date | None = Field(
        description="The day they completed the course (not in the future); null clears it.",
        examples=["2026-09-14"],
    )

    def command(self, region: str) -> RecordTraining:
        return RecordTraining(region, self.company_id, str(self.email), self.trained_on)


class SupervisorOut(BaseModel):
    company_id: str
    email: str = Field(description="In lower case.")
    trained_on: date | None
    status: TrainingStatus = Field(description="As the region judges it today.")
    expires_on: date | None = Field(description="The first day the training no longer counts.")
    recorded_at: datetime | None
    recorded_by: str | None = Field(
        description="The role that recorded it.", examples=["coordinator"]
    )

    @classmethod
    def of(cls, found: supervisors.SupervisorStatus) -> SupervisorOut:
        record = found.record
        return cls(
            company_id=record.key.company_id,
            email=record.key.email,
            trained_on=record.trained_on,
            status=found.training.status,
            expires_on=found.training.expires_on,
            recorded_at=record.recorded_at,
            recorded_by=record.recorded_by,
        )


class NotReadyOut(BaseModel):
    placement_id: str
    company_id: str
    title: str | None
    starts_on: date | None
    ends_on: date | None
    supervisor: Supervisor | None
    status: Literal["not_started", "expired", "no_supervisor"] = Field(
        description="No training recorded, the training expired, or no supervisor named."
    )
    trained_on: date | None
    expires_on: date | None
    standing_matches: int = Field(
        ge=0, description="Proposed, accepted and confirmed matches at the placement."
    )

    @classmethod
    def of(cls, r: supervisors.PlacementReadiness) -> NotReadyOut:
        offer, training = r.offer, r.training
        status = r.status
        if status == "ready":  # the page lists the others only
            raise ValueError(f"placement {offer.placement_id} is ready")
        return cls(
            placement_id=offer.placement_id,
            company_id=offer.company_id,
            title=offer.title,
            starts_on=offer.starts_on,
            ends_on=offer.ends_on,
            supervisor=offer.supervisor,
            status=status,
            trained_on=training.trained_on if training else None,
            expires_on=training.expires_on if training else None,
            standing_matches=r.standing,
        )


class NotReadyPageOut(BaseModel):
    """The region's open placements whose supervisor is not ready, soonest start first."""

    region: str
    settings: ReadinessSettingsOut
    placements: int = Field(ge=0, description="Open placements of the region.")
    ready: int = Field(ge=0, description="Of them, with a supervisor whose training is valid.")
    items: list[NotReadyOut]
    total: int = Field(ge=0, description="Placements not ready in all.")
    limit: int
    offset: int

    @classmethod
    def of(cls, page: supervisors.NotReadyPage) -> NotReadyPageOut:
        return cls(
            region=page.settings.region,
            settings=ReadinessSettingsOut.of(page.settings),
            placements=page.placements,
            ready=page.ready,
            items=[NotReadyOut.of(r) for r in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )


router = APIRouter(
    prefix="/v1/regions/{region}",
    responses=PROBLEMS,
    dependencies=[Depends(clean_parameters), Depends(access), Depends(strict_input)],
    tags=["supervisor readiness"],
)
COORDINATOR = rule("coordinator-region")


@router.get("/readiness-settings", response_model=ReadinessSettingsOut, openapi_extra=COORDINATOR)
async def get_settings(region: str, uow: UoW) -> ReadinessSettingsOut:
    """The region's supervisor readiness settings (the defaults until set: no course named, 3
    years, readiness not required)."""
    return ReadinessSettingsOut.of(await handlers.readiness_settings(region, uow))


@router.put("/readiness-settings", response_model=ReadinessSettingsOut, openapi_extra=COORDINATOR)
async def put_settings(region: str, body: ReadinessSettingsIn, uow: UoW) -> ReadinessSettingsOut:
    """Set the region's course address, how many years a course counts (1–50) and whether a
    match is confirmed only once its supervisor is ready (audited). 422 naming `course_url` or
    `validity_years`."""
    return ReadinessSettingsOut.of(await handlers.set_readiness_settings(body.command(region), uow))


@router.put("/supervisor-training", response_model=SupervisorOut, openapi_extra=COORDINATOR)
async def put_training(region: str, body: TrainingIn, uow: UoW) -> SupervisorOut:
    """Record the day a supervisor (by e-mail within their company) completed the region's
    course, or clear it with null (audited). 422 naming `trained_on` for a day in the future,
    `company_id` for a company without placements in the region, `email` for a supervisor no
    placement of the company in the region names."""
    return SupervisorOut.of(await handlers.record_training(body.command(region), uow))


@router.get("/supervisors/not-ready", response_model=NotReadyPageOut, openapi_extra=COORDINATOR)
async def not_ready(
    region: str,
    uow: UoW,
    *,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> NotReadyPageOut:
    """The region's open placements whose supervisor has no valid training (not started,
    expired) or that name no supervisor, soonest start first, with the standing matches at
    each."""
    query = NotReadyQuery(region, limit=limit, offset=offset)
    return NotReadyPageOut.of(await handlers.supervisors_not_ready(query, uow))


def internal_router() -> APIRouter:
    """The notifications service's due reminders (scope `notices:read`; not in the public
    OpenAPI document)."""
    internal = APIRouter(
        include_in_schema=False,
        dependencies=[Depends(clean_parameters), Depends(access), Depends(strict_input)],
    )

    @internal.get(REMINDERS_DUE_PATH, openapi_extra=rule("notice-context"))
    async def reminders_due(
        uow: UoW,
        starts_from: date,
        starts_until: date,
        after: uuid.UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_DUE_REMINDERS)] = MAX_DUE_REMINDERS,
    ) -> DueReminders:
        """Confirmed matches whose placement starts between the two days, by match id."""
        return await handlers.reminders_due(
            starts_from, starts_until, uow, after=after, limit=limit
        )

    return internal
