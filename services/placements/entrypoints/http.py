"""HTTP routes: parse, call one handler, return. Errors become problem details (problems.py)."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, SecretStr

from shared.contracts.internal import NOTICE_CONTEXT_PATH, NoticeContext

from .. import schemas
from ..handlers import IdempotencyKey, PlacementsService, Result, request_hash

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "content": {"application/problem+json": {}}}
    for status in (404, 409, 413, 422)
}

IdemHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a request safely: the same key returns the first response.",
    ),
]


def service(request: Request) -> PlacementsService:
    svc: PlacementsService = request.app.state.service
    return svc


Service = Annotated[PlacementsService, Depends(service)]


def _key(header: str | None, request: Request, body: BaseModel) -> IdempotencyKey | None:
    """The request's Idempotency-Key with the hash of its parsed body, or None without one."""
    if header is None:
        return None
    body_hash = request_hash(body.model_dump(mode="json"))
    return IdempotencyKey(header, request.method, request.url.path, body_hash)


def _respond(result: Result) -> Response:
    if result.body is None:
        return Response(status_code=result.status)
    return JSONResponse(result.body, status_code=result.status)


router = APIRouter(prefix="/v1", responses=PROBLEMS)


# ------------------------------------------------------------------------------ placements


@router.post(
    "/placements", status_code=201, response_model=schemas.PlacementOut, tags=["placements"]
)
async def post_placement(
    body: schemas.PlacementIn, request: Request, svc: Service, idempotency_key: IdemHeader = None
) -> Response:
    """A company posts a placement offer (PlacementPosted)."""
    key = _key(idempotency_key, request, body)
    return _respond(await svc.post_placement(body, key))


@router.post(
    "/placements/batch", status_code=201, response_model=schemas.BatchCreated, tags=["placements"]
)
async def post_placements(
    body: schemas.PlacementBatchIn,
    request: Request,
    svc: Service,
    idempotency_key: IdemHeader = None,
) -> Response:
    """Post up to 500 placements at once (a PlacementPosted each); all or none.

    A bad item makes the whole request a 422 naming `items[i].field`; an id that exists makes it
    a 409. Meant for imports (a region's list of offers, a spreadsheet)."""
    key = _key(idempotency_key, request, body)
    return _respond(await svc.post_placements(body, key))


@router.get("/placements", response_model=list[schemas.PlacementOut], tags=["placements"])
async def list_placements(
    svc: Service,
    region: Annotated[str | None, Query(max_length=64)] = None,
    company_id: Annotated[str | None, Query(max_length=200)] = None,
    include_withdrawn: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Placements, filtered by region and company, ordered by id."""
    return JSONResponse(
        await svc.list_placements(region, company_id, include_withdrawn, limit, offset)
    )


@router.get("/placements/{placement_id}", response_model=schemas.PlacementOut, tags=["placements"])
async def get_placement(placement_id: str, svc: Service) -> Response:
    return JSONResponse(await svc.get_placement(placement_id))


@router.patch(
    "/placements/{placement_id}", response_model=schemas.PlacementOut, tags=["placements"]
)
async def patch_placement(
    placement_id: str, body: schemas.PlacementPatch, svc: Service
) -> Response:
    """Change a placement (PlacementUpdated). Capacity may not drop below the confirmed matches."""
    return _respond(await svc.patch_placement(placement_id, body))


@router.delete("/placements/{placement_id}", status_code=204, tags=["placements"])
async def withdraw_placement(
    placement_id: str,
    svc: Service,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Withdraw a placement (PlacementWithdrawn); repeating it changes nothing."""
    return _respond(await svc.withdraw_placement(placement_id, reason))


@router.get(
    "/placements/{placement_id}/matches",
    response_model=list[schemas.MatchOut],
    tags=["matches"],
)
async def placement_matches(placement_id: str, svc: Service) -> Response:
    return JSONResponse(await svc.placement_matches(placement_id))


@router.put("/companies/{company_id}/notification-channel", tags=["placements"])
async def set_company_channel(
    company_id: str, body: schemas.CompanyChannelIn, svc: Service
) -> dict[str, Any]:
    """A company's default channel; a placement's own `notification` wins over it."""
    return await svc.set_company_channel(company_id, body)


# -------------------------------------------------------------------------------- students


@router.post("/students", status_code=201, response_model=schemas.StudentOut, tags=["students"])
async def register_student(
    body: schemas.StudentIn, request: Request, svc: Service, idempotency_key: IdemHeader = None
) -> Response:
    """A student registers (StudentRegistered; name, e-mail and phone stay here)."""
    key = _key(idempotency_key, request, body)
    return _respond(await svc.register_student(body, key))


@router.post(
    "/students/batch", status_code=201, response_model=schemas.BatchCreated, tags=["students"]
)
async def register_students(
    body: schemas.StudentBatchIn,
    request: Request,
    svc: Service,
    idempotency_key: IdemHeader = None,
) -> Response:
    """Register up to 500 students at once (a StudentRegistered each); all or none.

    A bad item makes the whole request a 422 naming `items[i].field`; an id that exists makes it
    a 409. Meant for a school's import of its students."""
    key = _key(idempotency_key, request, body)
    return _respond(await svc.register_students(body, key))


@router.put(
    "/students/{student_id}/preferences", response_model=schemas.StudentOut, tags=["students"]
)
async def set_preferences(student_id: str, body: schemas.PreferencesIn, svc: Service) -> Response:
    """Rank up to 10 open placements (StudentPreferencesUpdated)."""
    return _respond(await svc.set_preferences(student_id, body))


@router.delete("/students/{student_id}", status_code=204, tags=["students"])
async def withdraw_student(student_id: str, svc: Service) -> Response:
    """Withdraw a student and erase their personal data (StudentWithdrawn)."""
    return _respond(await svc.withdraw_student(student_id))


@router.get("/students/{student_id}", response_model=schemas.StudentOut, tags=["students"])
async def get_student(student_id: str, svc: Service) -> Response:
    return JSONResponse(await svc.get_student(student_id))


@router.get("/students/{student_id}/match", response_model=schemas.MatchOut, tags=["matches"])
async def student_match(student_id: str, svc: Service) -> Response:
    """The student's current match (proposed, accepted or confirmed)."""
    return JSONResponse(await svc.student_match(student_id))


# --------------------------------------------------------------------------------- matches


@router.post("/matches/{match_id}/accept", response_model=schemas.MatchOut, tags=["matches"])
async def accept_match(
    match_id: uuid.UUID,
    body: schemas.AcceptIn,
    request: Request,
    svc: Service,
    idempotency_key: IdemHeader = None,
) -> Response:
    """The student or the company accepts a proposal (MatchAccepted)."""
    key = _key(idempotency_key, request, body)
    return _respond(await svc.answer_match(match_id, body.by, False, None, key))


@router.post("/matches/{match_id}/decline", response_model=schemas.MatchOut, tags=["matches"])
async def decline_match(
    match_id: uuid.UUID,
    body: schemas.DeclineIn,
    request: Request,
    svc: Service,
    idempotency_key: IdemHeader = None,
) -> Response:
    """The student or the company declines a proposal, with a reason (MatchDeclined)."""
    key = _key(idempotency_key, request, body)
    return _respond(await svc.answer_match(match_id, body.by, True, body.reason, key))


# ---------------------------------------------------------------------------------- rounds


@router.post("/rounds", status_code=202, response_model=schemas.RoundAccepted, tags=["rounds"])
async def request_round(
    body: schemas.RoundIn, request: Request, svc: Service, idempotency_key: IdemHeader = None
) -> Response:
    """A coordinator asks for a matching round in a region (MatchingRoundRequested)."""
    key = _key(idempotency_key, request, body)
    return _respond(await svc.request_round(body, key))


@router.get("/rounds/{round_id}", response_model=schemas.RoundOut, tags=["rounds"])
async def get_round(round_id: uuid.UUID, svc: Service) -> Response:
    """The round's status and, once matching reported them, its figures."""
    return JSONResponse(await svc.get_round(round_id))


# -------------------------------------------------------------------------------- internal

_bearer = HTTPBearer(auto_error=False)


def internal_router(token: SecretStr) -> APIRouter:
    """Routes for the other services only, guarded by the service token; not in the public
    OpenAPI document."""
    internal = APIRouter(include_in_schema=False)

    def authorise(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if credentials is None:
            raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode("utf-8")
        if not secrets.compare_digest(given, token.get_secret_value().encode("utf-8")):
            raise HTTPException(403, "the token is not valid for this route")

    @internal.get(NOTICE_CONTEXT_PATH, dependencies=[Depends(authorise)])
    async def notice_context(
        svc: Service,
        placement_id: Annotated[str, Query(min_length=1, max_length=200)],
        student_id: Annotated[str, Query(min_length=1, max_length=200)],
    ) -> NoticeContext:
        return await svc.notice_context(placement_id, student_id)

    return internal
