"""HTTP routes: parse the request into a command, call one handler, choose the status code.

Errors are `DomainError`s raised by the handlers, which `problems.py` turns into problem
details. Every route declares its access rule (`openapi_extra={"x-apl-access": ...}`, the names
of `domain/policy.py`); the routers' one dependency `auth.access` enforces it, and a rule that
needs facts of the request is decided by the route with them (`access.permit(...)`). The routes
get a unit of work of the app's container (`app.state.container`), carrying the caller's actor,
by a dependency. An Idempotency-Key is handled here, in `_idempotent`, for every POST that takes
one (after the access decision: a key never replays a response to a caller who may not see it).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.contracts.internal import NOTICE_CONTEXT_PATH, NoticeContext

from .. import handlers
from ..domain.commands import InviteStaff, ListPlacements, WithdrawPlacement, WithdrawStudent
from ..domain.errors import FieldError, Invalid
from ..domain.model import IdempotencyKey
from ..ports import PlacementsUnitOfWork
from . import schemas
from .auth import Access, access, rule

if TYPE_CHECKING:
    from ..bootstrap import Container

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 409, 413, 422, 503)
}

IdemHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a request safely: the same key returns the first response.",
    ),
]


Allowed = Annotated[Access, Depends(access)]


def unit_of_work(request: Request, allowed: Allowed) -> PlacementsUnitOfWork:
    """A unit of work of the running app's container, for the request's caller (its actor)."""
    container: Container = request.app.state.container
    return container.uow(actor=allowed.actor)


UoW = Annotated[PlacementsUnitOfWork, Depends(unit_of_work)]


def request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _key(header: str | None, request: Request, body: BaseModel) -> IdempotencyKey | None:
    """The request's Idempotency-Key with the hash of its parsed body, or None without one."""
    if header is None:
        return None
    body_hash = request_hash(body.model_dump(mode="json"))
    return IdempotencyKey(header, request.method, request.url.path, body_hash)


async def _idempotent(
    uow: PlacementsUnitOfWork,
    key: IdempotencyKey | None,
    status: int,
    write: Callable[[], Awaitable[BaseModel]],
    *,
    student_id: str | None = None,
) -> Response:
    """Run `write` (a handler over `uow`, rendered) and answer `status` with its body. With a
    key, the key, the write and the stored response commit in one transaction (the handler's
    block joins this one), and a repeat gets the first response and writes nothing. Errors are
    not stored: a corrected request may reuse the key. `student_id` names whose personal details
    the response holds (erasure scrubs them)."""
    if key is None:
        return JSONResponse((await write()).model_dump(mode="json"), status_code=status)
    async with uow:
        first = await uow.idempotency.reserve(key)
        if first is not None:
            if first.request_hash not in (None, key.request_hash):
                message = "this key was already used with a different request body"
                raise Invalid([FieldError("Idempotency-Key", message)])
            return JSONResponse(first.body, status_code=first.status)
        body = (await write()).model_dump(mode="json")
        await uow.idempotency.store(key, status, body, student_id)
    return JSONResponse(body, status_code=status)


router = APIRouter(prefix="/v1", responses=PROBLEMS, dependencies=[Depends(access)])


# ------------------------------------------------------------------------------ placements


@router.post(
    "/placements",
    status_code=201,
    response_model=schemas.PlacementOut,
    tags=["placements"],
    openapi_extra=rule("placement-create"),
)
async def post_placement(
    body: schemas.PlacementIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """A company posts a placement offer (PlacementPosted): company staff for their company, a
    coordinator in their regions."""
    allowed.permit(region=body.region, company_id=body.company_id)
    command = body.command()

    async def write() -> schemas.PlacementOut:
        return schemas.PlacementOut.of(await handlers.post_placement(command, uow))

    return await _idempotent(uow, _key(idempotency_key, request, body), 201, write)


@router.post(
    "/placements/batch",
    status_code=201,
    response_model=schemas.BatchCreated,
    tags=["placements"],
    openapi_extra=rule("placement-import"),
)
async def post_placements(
    body: schemas.PlacementBatchIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """Post up to 500 placements at once (a PlacementPosted each); all or none.

    A bad item makes the whole request a 422 naming `items[i].field`; an id that exists makes it
    a 409. Meant for imports (a region's list of offers, a spreadsheet): a coordinator of every
    item's region."""
    allowed.permit(regions=frozenset(item.region for item in body.items))
    command = body.command()

    async def write() -> schemas.BatchCreated:
        ids = await handlers.post_placements(command, uow)
        return schemas.BatchCreated(created=len(ids), ids=ids)

    return await _idempotent(uow, _key(idempotency_key, request, body), 201, write)


@router.get(
    "/placements",
    response_model=list[schemas.PlacementOut],
    tags=["placements"],
    openapi_extra=rule("placement-list"),
)
async def list_placements(
    allowed: Allowed,
    uow: UoW,
    *,
    region: Annotated[str | None, Query(max_length=64)] = None,
    company_id: Annotated[str | None, Query(max_length=200)] = None,
    include_withdrawn: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[schemas.PlacementOut]:
    """Placements, filtered by region and company, ordered by id. Company staff see their
    company's, a coordinator one of their regions (`region` may be left out by a coordinator of
    one region), a student the open ones without the supervisor, ranking and channel."""
    decision = allowed.permit(region=region, company_id=company_id)
    query = ListPlacements(
        region=decision.region or region,
        company_id=decision.company_id or company_id,
        include_withdrawn=include_withdrawn and not decision.open_only,
        limit=limit,
        offset=offset,
    )
    views = await handlers.list_placements(query, uow)
    return [schemas.PlacementOut.of(v, redact=decision.redact) for v in views]


@router.get(
    "/placements/{placement_id}",
    response_model=schemas.PlacementOut,
    tags=["placements"],
    openapi_extra=rule("placement-read"),
)
async def get_placement(placement_id: str, allowed: Allowed, uow: UoW) -> schemas.PlacementOut:
    """One placement (a student's view without the supervisor, ranking and channel)."""
    view = await handlers.get_placement(placement_id, uow)
    return schemas.PlacementOut.of(view, redact=allowed.decided.redact)


@router.patch(
    "/placements/{placement_id}",
    response_model=schemas.PlacementOut,
    tags=["placements"],
    openapi_extra=rule("placement-manage"),
)
async def patch_placement(
    placement_id: str, body: schemas.PlacementPatch, allowed: Allowed, uow: UoW
) -> schemas.PlacementOut:
    """Change a placement (PlacementUpdated). Capacity may not drop below the confirmed matches;
    only a coordinator moves a placement to another company."""
    allowed.permit(moves_to=body.company_id)
    view = await handlers.patch_placement(body.command(placement_id), uow)
    return schemas.PlacementOut.of(view)


@router.delete(
    "/placements/{placement_id}",
    status_code=204,
    tags=["placements"],
    openapi_extra=rule("placement-manage"),
)
async def withdraw_placement(
    placement_id: str,
    uow: UoW,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Withdraw a placement (PlacementWithdrawn); repeating it changes nothing."""
    await handlers.withdraw_placement(WithdrawPlacement(placement_id, reason), uow)
    return Response(status_code=204)


@router.get(
    "/placements/{placement_id}/matches",
    response_model=list[schemas.MatchOut],
    tags=["matches"],
    openapi_extra=rule("placement-matches"),
)
async def placement_matches(placement_id: str, uow: UoW) -> list[schemas.MatchOut]:
    """The matches at a placement (pseudonymous: student ids, no names)."""
    return [schemas.MatchOut.of(m) for m in await handlers.placement_matches(placement_id, uow)]


@router.put(
    "/companies/{company_id}/notification-channel",
    tags=["placements"],
    openapi_extra=rule("company-channel"),
)
async def set_company_channel(
    company_id: str, body: schemas.CompanyChannelIn, uow: UoW
) -> dict[str, Any]:
    """A company's default channel; a placement's own `notification` wins over it."""
    await handlers.set_company_channel(body.command(company_id), uow)
    return {"company_id": company_id, "channel": body.channel, "webhook_url": body.webhook_url}


@router.post(
    "/companies/{company_id}/invitations",
    status_code=201,
    response_model=schemas.InvitationOut,
    tags=["placements"],
    openapi_extra=rule("company-invite"),
)
async def invite_staff(
    company_id: str, body: schemas.InvitationIn, uow: UoW
) -> schemas.InvitationOut:
    """A coordinator invites a company's staff member by e-mail (the company has a placement in
    their regions): the first sign-in with that verified e-mail acts for the company."""
    await handlers.invite_staff(InviteStaff(company_id, str(body.email)), uow)
    return schemas.InvitationOut(company_id=company_id, email=str(body.email).lower())


# -------------------------------------------------------------------------------- students


@router.post(
    "/students",
    status_code=201,
    response_model=schemas.StudentOut,
    tags=["students"],
    openapi_extra=rule("student-register"),
)
async def register_student(
    body: schemas.StudentIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """A coordinator registers a student (StudentRegistered; name, e-mail and phone stay here).
    The e-mail is the school's: the student's first sign-in with it links their account."""
    allowed.permit(region=body.region)
    command = body.command()

    async def write() -> schemas.StudentOut:
        return schemas.StudentOut.of(await handlers.register_student(command, uow))

    key = _key(idempotency_key, request, body)
    return await _idempotent(uow, key, 201, write, student_id=command.profile.student_id)


@router.post(
    "/students/batch",
    status_code=201,
    response_model=schemas.BatchCreated,
    tags=["students"],
    openapi_extra=rule("student-import"),
)
async def register_students(
    body: schemas.StudentBatchIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """Register up to 500 students at once (a StudentRegistered each); all or none.

    A bad item makes the whole request a 422 naming `items[i].field`; an id that exists makes it
    a 409. Meant for a school's import of its students, by a coordinator of every item's
    region."""
    allowed.permit(regions=frozenset(item.region for item in body.items))
    command = body.command()

    async def write() -> schemas.BatchCreated:
        ids = await handlers.register_students(command, uow)
        return schemas.BatchCreated(created=len(ids), ids=ids)

    return await _idempotent(uow, _key(idempotency_key, request, body), 201, write)


@router.put(
    "/students/{student_id}/preferences",
    response_model=schemas.StudentOut,
    tags=["students"],
    openapi_extra=rule("student-self"),
)
async def set_preferences(
    student_id: str, body: schemas.PreferencesIn, uow: UoW
) -> schemas.StudentOut:
    """Rank up to 10 open placements (StudentPreferencesUpdated)."""
    return schemas.StudentOut.of(await handlers.set_preferences(body.command(student_id), uow))


@router.delete(
    "/students/{student_id}",
    status_code=204,
    tags=["students"],
    openapi_extra=rule("student-self"),
)
async def withdraw_student(student_id: str, uow: UoW) -> Response:
    """Withdraw a student and erase their personal data (StudentWithdrawn)."""
    await handlers.withdraw_student(WithdrawStudent(student_id), uow)
    return Response(status_code=204)


@router.get(
    "/students/{student_id}",
    response_model=schemas.StudentOut,
    tags=["students"],
    openapi_extra=rule("student-self"),
)
async def get_student(student_id: str, uow: UoW) -> schemas.StudentOut:
    return schemas.StudentOut.of(await handlers.get_student(student_id, uow))


@router.get(
    "/students/{student_id}/match",
    response_model=schemas.MatchOut,
    tags=["matches"],
    openapi_extra=rule("student-self"),
)
async def student_match(student_id: str, uow: UoW) -> schemas.MatchOut:
    """The student's current match (proposed, accepted or confirmed)."""
    return schemas.MatchOut.of(await handlers.student_match(student_id, uow))


# --------------------------------------------------------------------------------- matches


@router.post(
    "/matches/{match_id}/accept",
    response_model=schemas.MatchOut,
    tags=["matches"],
    openapi_extra=rule("match-answer"),
)
async def accept_match(
    match_id: uuid.UUID,
    body: schemas.AcceptIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """The student or the company accepts a proposal (MatchAccepted): a student as `student`
    for their own match, company staff as `company` for a match at their company."""
    allowed.permit(by=body.by)
    command = body.command(match_id)

    async def write() -> schemas.MatchOut:
        return schemas.MatchOut.of(await handlers.answer_match(command, uow))

    return await _idempotent(uow, _key(idempotency_key, request, body), 200, write)


@router.post(
    "/matches/{match_id}/decline",
    response_model=schemas.MatchOut,
    tags=["matches"],
    openapi_extra=rule("match-answer"),
)
async def decline_match(
    match_id: uuid.UUID,
    body: schemas.DeclineIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """The student or the company declines a proposal, with a reason (MatchDeclined)."""
    allowed.permit(by=body.by)
    command = body.command(match_id)

    async def write() -> schemas.MatchOut:
        return schemas.MatchOut.of(await handlers.answer_match(command, uow))

    return await _idempotent(uow, _key(idempotency_key, request, body), 200, write)


# ---------------------------------------------------------------------------------- rounds


@router.post(
    "/rounds",
    status_code=202,
    response_model=schemas.RoundAccepted,
    tags=["rounds"],
    openapi_extra=rule("round-request"),
)
async def request_round(
    body: schemas.RoundIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """A coordinator asks for a matching round in one of their regions (MatchingRoundRequested)."""
    allowed.permit(region=body.region)
    command = body.command()

    async def write() -> schemas.RoundAccepted:
        round_id = await handlers.request_round(command, uow)
        return schemas.RoundAccepted(round_id=round_id, status="requested")

    return await _idempotent(uow, _key(idempotency_key, request, body), 202, write)


@router.get(
    "/rounds/{round_id}",
    response_model=schemas.RoundOut,
    tags=["rounds"],
    openapi_extra=rule("round-read"),
)
async def get_round(round_id: uuid.UUID, uow: UoW) -> schemas.RoundOut:
    """The round's status and, once matching reported them, its figures."""
    return schemas.RoundOut.of(await handlers.get_round(round_id, uow))


# -------------------------------------------------------------------------------- internal


def internal_router() -> APIRouter:
    """Routes for the other services only, for their service accounts' client-credentials
    tokens with the route's scope; not in the public OpenAPI document."""
    internal = APIRouter(include_in_schema=False, dependencies=[Depends(access)])

    @internal.get(NOTICE_CONTEXT_PATH, openapi_extra=rule("notice-context"))
    async def notice_context(
        uow: UoW,
        placement_id: Annotated[str, Query(min_length=1, max_length=200)],
        student_id: Annotated[str, Query(min_length=1, max_length=200)],
    ) -> NoticeContext:
        """What the notifications service needs for one notice (scope `notices:read`)."""
        return await handlers.notice_context(placement_id, student_id, uow)

    return internal
