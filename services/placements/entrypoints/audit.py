"""The audit trail over HTTP: `GET /v1/regions/{region}/audit`, for the region's coordinators
(access rule `coordinator-region`, enforced by `auth.access` as on every route): every event
this service published for the region, newest first, with who caused it (pseudonymous subject,
role, client; never a name)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.events import Actor

from .. import handlers
from ..domain.audit import AuditQuery, AuditRecord
from .auth import access
from .http import PROBLEMS, Offset, UoW
from .inputs import clean_parameters, strict_input

ACCESS: dict[str, Any] = {"x-apl-access": "coordinator-region"}


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(description="The published event.")
    event_type: str = Field(description="Its type.", examples=["MatchAccepted"])
    region: str = Field(description="Its region.", examples=["SE-AB"])
    actor: Actor | None = Field(description="Who caused it; null when it was made without one.")
    at: datetime = Field(description="When it was published (its transaction's time).")

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntryOut:
        return cls(
            event_id=record.event_id,
            event_type=record.event_type,
            region=record.region,
            actor=record.actor,
            at=record.at,
        )


router = APIRouter(
    prefix="/v1",
    responses=PROBLEMS,
    dependencies=[Depends(clean_parameters), Depends(access), Depends(strict_input)],
)


@router.get(
    "/regions/{region}/audit",
    response_model=list[AuditEntryOut],
    tags=["audit"],
    openapi_extra=ACCESS,
)
async def region_audit(
    region: Annotated[str, Path(max_length=64)],
    uow: UoW,
    *,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[AuditEntryOut]:
    """The region's audit trail, newest first: one entry per event published (placements,
    students, round requests, match answers), with its actor."""
    records = await handlers.audit_of_region(AuditQuery(region, limit, offset), uow)
    return [AuditEntryOut.of(r) for r in records]
