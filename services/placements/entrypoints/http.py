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

from shared import explain
from shared.contracts.internal import (
    NOTICE_CONTEXT_PATH,
    NOTICE_CONTEXTS_PATH,
    STUDENT_NOTICE_CONTEXT_PATH,
    NoticeContext,
    NoticeContexts,
    NoticeContextsQuery,
    StudentNoticeContext,
)
from shared.contracts.outcomes import OutcomeReason
from shared.contracts.vocabulary import Participant
from shared.netguard import WebhookGuard

from .. import handlers
from ..domain.commands import (
    CompareRounds,
    InviteStaff,
    ListOutcomes,
    ListPlacements,
    ListRounds,
    RegionVacancies,
    WithdrawPlacement,
    WithdrawStudent,
)
from ..domain.errors import FieldError, Invalid
from ..domain.model import IdempotencyKey
from ..ports import PlacementsUnitOfWork
from . import reports, schemas
from .auth import Access, access, rule
from .inputs import clean_parameters, strict_input
from .web import i18n

if TYPE_CHECKING:
    from ..bootstrap import Container

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "content": {"application/problem+json": {}}}
    for status in (401, 403, 404, 409, 413, 422, 503)
}

LangQuery = Annotated[
    str | None,
    Query(
        max_length=35,
        description="Language of the words (sv, fi, en); left out: the Accept-Language header's.",
    ),
]


MAX_OFFSET = 10_000_000
Offset = Annotated[
    int,
    Query(ge=0, le=MAX_OFFSET, description=f"Items to skip, 0 to {MAX_OFFSET:,}."),
]
"""The `offset` of every paged list: bounded, so no number reaches the database as one it
cannot hold."""


def words(request: Request, lang: str | None) -> i18n.Words:
    """The words of `?lang=`, else of the request's Accept-Language, else English."""
    return i18n.Words(i18n.parse(lang) or i18n.negotiate(request.headers.get("accept-language")))


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


def webhook_guard(request: Request) -> WebhookGuard:
    """The running app's SSRF guard of webhook URLs (`shared/netguard.py`)."""
    container: Container = request.app.state.container
    return container.webhooks


Webhooks = Annotated[WebhookGuard, Depends(webhook_guard)]


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
    the response holds (erasure scrubs them); a response naming a `student_id` is theirs too."""
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
        # A response about one student (a match and its decline's words) is erased with them.
        about = body.get("student_id")
        await uow.idempotency.store(
            key, status, body, student_id or (about if isinstance(about, str) else None)
        )
    return JSONResponse(body, status_code=status)


router = APIRouter(
    prefix="/v1",
    responses=PROBLEMS,
    dependencies=[Depends(clean_parameters), Depends(access), Depends(strict_input)],
)


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
    webhooks: Webhooks,
    idempotency_key: IdemHeader = None,
) -> Response:
    """A company posts a placement offer (PlacementPosted): company staff for their company, a
    coordinator in their regions."""
    allowed.permit(region=body.region, company_id=body.company_id)
    command = body.command()

    async def write() -> schemas.PlacementOut:
        return schemas.PlacementOut.of(
            await handlers.post_placement(command, uow, webhooks=webhooks)
        )

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
    webhooks: Webhooks,
    idempotency_key: IdemHeader = None,
) -> Response:
    """Post up to 500 placements at once (a PlacementPosted each); all or none.

    A bad item makes the whole request a 422 naming `items[i].field`; an id that exists makes it
    a 409. Meant for imports (a region's list of offers, a spreadsheet): a coordinator of every
    item's region."""
    allowed.permit(regions=frozenset(item.region for item in body.items))
    command = body.command()

    async def write() -> schemas.BatchCreated:
        ids = await handlers.post_placements(command, uow, webhooks=webhooks)
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
    offset: Offset = 0,
    kind: Participant | None = None,
) -> list[schemas.PlacementOut]:
    """Placements, filtered by region, company and kind (`student`: placements for students,
    `teacher`: working-life periods for teachers), ordered by id. Company staff see their
    company's, a coordinator one of their regions (`region` may be left out by a coordinator of
    one region), a student the open placements for students and a teacher the open periods for
    teachers, both without the supervisor, ranking and channel."""
    decision = allowed.permit(region=region, company_id=company_id)
    query = ListPlacements(
        region=decision.region or region,
        company_id=decision.company_id or company_id,
        include_withdrawn=include_withdrawn and not decision.open_only,
        limit=limit,
        offset=offset,
        kind=decision.kind or kind,
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
    placement_id: str,
    body: schemas.PlacementPatch,
    allowed: Allowed,
    uow: UoW,
    webhooks: Webhooks,
) -> schemas.PlacementOut:
    """Change a placement (PlacementUpdated). Capacity may not drop below the confirmed matches;
    only a coordinator moves a placement to another company."""
    allowed.permit(moves_to=body.company_id)
    view = await handlers.patch_placement(body.command(placement_id), uow, webhooks=webhooks)
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
    company_id: str, body: schemas.CompanyChannelIn, uow: UoW, webhooks: Webhooks
) -> dict[str, Any]:
    """A company's default channel; a placement's own `notification` wins over it. A webhook
    URL must be https:// in production, and its host must not resolve to a loopback, private,
    link-local, multicast or reserved address unless the operator's allow-list
    (`APL_WEBHOOK_ALLOWLIST`) names it: else a 422 naming `webhook_url`."""
    await handlers.set_company_channel(body.command(company_id), uow, webhooks=webhooks)
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


@router.get(
    "/students/{student_id}/outcome",
    response_model=schemas.StudentOutcomeOut,
    tags=["outcomes"],
    openapi_extra=rule("student-self"),
)
async def student_outcome(
    student_id: str, request: Request, uow: UoW, lang: LangQuery = None
) -> schemas.StudentOutcomeOut:
    """The student's outcome of the latest round (not a dry run) that covered them: placement,
    rank, `filled`, `pinned`, reason code, the structured explanation and the same explanation
    in words (`text`, in `?lang=` or the Accept-Language), and their match now. 404 when no
    round covered the student yet."""
    view = await handlers.student_outcome(student_id, uow)
    t = words(request, lang)
    text = explain.describe(view.record.outcome, t)
    return schemas.StudentOutcomeOut.render(view, t.lang, text)


@router.get(
    "/students/{student_id}/vacancies",
    response_model=schemas.StudentVacanciesOut,
    tags=["outcomes"],
    openapi_extra=rule("student-self"),
)
async def student_vacancies(
    student_id: str,
    uow: UoW,
    *,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> schemas.StudentVacanciesOut:
    """The open placements of the student's region with a free slot that the student is
    eligible for (skills, programme, period, travel limit; not a pair declined), nearest
    first."""
    found = await handlers.student_vacancies(student_id, uow, limit=limit, offset=offset)
    return schemas.StudentVacanciesOut.of(found)


# -------------------------------------------------------------------------------- teachers


@router.put(
    "/teachers/{teacher_id}",
    response_model=schemas.StudentOut,
    tags=["teachers"],
    openapi_extra=rule("teacher-self"),
)
async def update_teacher(teacher_id: str, body: schemas.TeacherIn, uow: UoW) -> schemas.StudentOut:
    """A teacher (or their region's coordinator) keeps the teacher's profile: their subject,
    the skills they want to update and the ISO weeks they can spend at a company
    (StudentRegistered with the whole profile; the ranking stays). A teacher is registered
    like a student, `POST /v1/students` with `participant: teacher` (docs/teachers.md); an id
    that is a student's is a 404. Their ranking, match, outcome and vacancies are the
    participant routes under `/v1/students/{id}`."""
    return schemas.StudentOut.of(await handlers.update_teacher(body.command(teacher_id), uow))


@router.get(
    "/teachers/{teacher_id}",
    response_model=schemas.StudentOut,
    tags=["teachers"],
    openapi_extra=rule("teacher-self"),
)
async def get_teacher(teacher_id: str, uow: UoW) -> schemas.StudentOut:
    """A teacher's record (404 for a student's id)."""
    return schemas.StudentOut.of(await handlers.get_teacher(teacher_id, uow))


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


@router.post(
    "/matches",
    status_code=202,
    response_model=schemas.AssignmentOut,
    tags=["matches"],
    openapi_extra=rule("match-assign"),
)
async def assign_match(
    body: schemas.AssignIn,
    request: Request,
    allowed: Allowed,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """A coordinator (of the student's and the placement's region) assigns a student by hand
    (MatchAssignmentRequested, with the actor; audited). The placement must be open with a free
    slot (else 409 naming `placement_id`); a pair that fails hard constraints (skills,
    programme, period, travel limit, declined before) is a 422 naming
    `override_hard_constraints` and listing them, unless that is true; `reason` is required.
    202: matching checks the capacity again, cancels the student's other standing match and
    proposes this one (pinned), or cancels it (MatchCancelled) if it no longer fits."""
    student = await handlers.access_target("student", body.student_id, uow)
    placement = await handlers.access_target("placement", body.placement_id, uow)
    regions = frozenset(r for r in (student.region, placement.region) if r is not None)
    allowed.permit(regions=regions, exists=student.exists and placement.exists)
    command = body.command()

    async def write() -> schemas.AssignmentOut:
        assignment, failures = await handlers.assign_match(command, uow)
        return schemas.AssignmentOut.of(assignment, failures)

    return await _idempotent(uow, _key(idempotency_key, request, body), 202, write)


# ---------------------------------------------------------------------------------- rounds


@router.get(
    "/rounds",
    response_model=schemas.RoundPage,
    tags=["rounds"],
    openapi_extra=rule("round-list"),
)
async def list_rounds(
    allowed: Allowed,
    uow: UoW,
    *,
    region: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Offset = 0,
) -> schemas.RoundPage:
    """A region's rounds, newest first (a coordinator of one region may leave `region` out)."""
    decision = allowed.permit(region=region)
    query = ListRounds(decision.region or region or "", limit=limit, offset=offset)
    return schemas.RoundPage.of(await handlers.list_rounds(query, uow))


@router.get(
    "/rounds/compare",
    response_model=schemas.ComparisonOut,
    tags=["rounds"],
    openapi_extra=rule("round-compare"),
)
async def compare_rounds(
    allowed: Allowed,
    uow: UoW,
    *,
    a: uuid.UUID,
    b: uuid.UUID,
    limit: Annotated[int, Query(ge=0, le=1000)] = 50,
) -> schemas.ComparisonOut:
    """Two rounds of one region side by side (say, a dry run of each policy): placed, rank
    distribution, blocking pairs, who would move against the standing matches, and the students
    the two place differently (lists cut at `limit`)."""
    ta = await handlers.access_target("round", str(a), uow)
    tb = await handlers.access_target("round", str(b), uow)
    regions = frozenset(r for r in (ta.region, tb.region) if r is not None)
    allowed.permit(regions=regions, exists=ta.exists and tb.exists)
    found = await handlers.compare_rounds(CompareRounds(a, b, limit), uow)
    return schemas.ComparisonOut.of(found)


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


@router.get(
    "/rounds/{round_id}/outcomes",
    response_model=schemas.OutcomePage,
    tags=["outcomes"],
    openapi_extra=rule("round-read"),
)
async def round_outcomes(
    round_id: uuid.UUID,
    uow: UoW,
    *,
    reason: OutcomeReason | None = None,
    programme: Annotated[str | None, Query(max_length=100)] = None,
    placed: bool | None = None,
    moved: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> schemas.OutcomePage:
    """Every student's outcome of the round, by student id, filtered by reason, programme,
    placed or not, and moved (placed elsewhere than their standing match)."""
    query = ListOutcomes(round_id, reason, programme, placed, moved, limit, offset)
    return schemas.OutcomePage.of(await handlers.round_outcomes(query, uow))


async def _report(
    request: Request, round_id: uuid.UUID, uow: PlacementsUnitOfWork, lang: str | None
) -> reports.ReportOut:
    found = await handlers.round_outcome_report(round_id, uow)
    return reports.render(found, words(request, lang))


@router.get(
    "/rounds/{round_id}/report",
    response_model=reports.ReportOut,
    tags=["reports"],
    openapi_extra=rule("round-read"),
)
async def round_report(
    round_id: uuid.UUID, request: Request, uow: UoW, lang: LangQuery = None
) -> reports.ReportOut:
    """The round's report: placement rate, rank distribution (1st…10th, unranked, filled,
    unplaced), unplaced by reason, vacancies, by programme and by priority group, distance
    travelled (median, p90), blocking pairs with what they mean in words. No group under 5
    people is shown: small ones are merged into "other" (or left out), as `small_groups` says."""
    return await _report(request, round_id, uow, lang)


_FILE_CSV: dict[str, Any] = {"responses": {"200": {"content": {"text/csv": {}}}}}
_FILE_XLSX: dict[str, Any] = {"responses": {"200": {"content": {reports.XLSX_MEDIA: {}}}}}
"""The OpenAPI answer of a download route."""


@router.get(
    "/rounds/{round_id}/report.csv",
    response_class=Response,
    tags=["reports"],
    openapi_extra=rule("round-read") | _FILE_CSV,
)
async def round_report_csv(
    round_id: uuid.UUID, request: Request, uow: UoW, lang: LangQuery = None
) -> Response:
    """The report as CSV: one `section,key,figure,value` row per figure."""
    out = await _report(request, round_id, uow, lang)
    return reports.download(reports.to_csv(out), reports.CSV_MEDIA, f"round-{round_id}.csv")


@router.get(
    "/rounds/{round_id}/report.xlsx",
    response_class=Response,
    tags=["reports"],
    openapi_extra=rule("round-read") | _FILE_XLSX,
)
async def round_report_xlsx(
    round_id: uuid.UUID, request: Request, uow: UoW, lang: LangQuery = None
) -> Response:
    """The report as an XLSX workbook: all figures, then the ranks, programmes and priorities."""
    out = await _report(request, round_id, uow, lang)
    return reports.download(reports.to_xlsx(out), reports.XLSX_MEDIA, f"round-{round_id}.xlsx")


# -------------------------------------------------------------------------------- regions


@router.get(
    "/regions/{region}/vacancies",
    response_model=schemas.RegionVacanciesOut,
    tags=["outcomes"],
    openapi_extra=rule("coordinator-region"),
)
async def region_vacancies(
    region: str,
    uow: UoW,
    *,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    per_student: Annotated[int, Query(ge=0, le=500)] = 10,
) -> schemas.RegionVacanciesOut:
    """The region's free slots per open placement (capacity less standing matches and waiting
    assignments), and a page of its unplaced students (of the latest completed round, not a dry
    run, still without a match) with the vacancies each is eligible for, nearest first."""
    query = RegionVacancies(region, limit=limit, offset=offset, per_student=per_student)
    return schemas.RegionVacanciesOut.of(await handlers.region_vacancies(query, uow))


@router.post(
    "/regions/{region}/supplementary",
    status_code=202,
    response_model=schemas.SupplementaryOut,
    tags=["rounds"],
    openapi_extra=rule("coordinator-region"),
)
async def open_supplementary(
    region: str,
    body: schemas.SupplementaryIn,
    request: Request,
    uow: UoW,
    idempotency_key: IdemHeader = None,
) -> Response:
    """Open a supplementary round (SupplementaryRoundOpened with the unplaced students' ids:
    each is told by e-mail, in their language, which vacancies fit them, and ranks them until
    `ranks_until`). 422 naming `region` when it has no unplaced students. Then
    `POST /v1/rounds {"region": ..., "kind": "supplementary"}` runs it."""
    command = body.command(region)

    async def write() -> schemas.SupplementaryOut:
        return schemas.SupplementaryOut.of(await handlers.open_supplementary(command, uow))

    return await _idempotent(uow, _key(idempotency_key, request, body), 202, write)


# ------------------------------------------------------------------------- competence gap

TermQuery = Annotated[
    str | None,
    Query(
        max_length=20,
        description=(
            "The term: a half year, `2027-spring` (January to June) or `2027-autumn` (July to "
            "December); `2027-VT`/`2027-HT` and `2027-kevät`/`2027-syksy` name the same. Left "
            "out: the region's newest term with a round."
        ),
        examples=["2027-spring"],
    ),
]
TopQuery = Annotated[int, Query(ge=1, le=50, description="How many gaps to say in words.")]


async def _gap(
    request: Request,
    region: str,
    uow: PlacementsUnitOfWork,
    term: str | None,
    top: int,
    lang: str | None,
) -> reports.GapOut:
    found = await handlers.competence_gap(region, term, uow, top=top)
    return reports.render_gap(found, words(request, lang))


def _gap_file(region: str, out: reports.GapOut, extension: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in region)
    return f"competence-gap-{safe}-{out.term}.{extension}"


@router.get(
    "/regions/{region}/competence-gap",
    response_model=reports.GapOut,
    tags=["reports"],
    openapi_extra=rule("coordinator-region"),
)
async def competence_gap(
    region: str,
    request: Request,
    uow: UoW,
    term: TermQuery = None,
    top: TopQuery = 5,
    lang: LangQuery = None,
) -> reports.GapOut:
    """The region's competence gap in a term: for each skill and programme, the demand (slots
    of the term's placements that require it, and those its latest round left empty for want
    of it) against the supply (students of the term's rounds who have it, and those left
    unplaced for want of it, from the outcomes' explanations); the biggest `top` gaps in words
    and every round's figures (the trend). No personal data: a count of students under 5 is
    null and named in `suppressed` (shown as "< 5"). 422 naming `term` for a term that is not
    one, or one the region has neither placements nor rounds in."""
    return await _gap(request, region, uow, term, top, lang)


@router.get(
    "/regions/{region}/competence-gap.csv",
    response_class=Response,
    tags=["reports"],
    openapi_extra=rule("coordinator-region") | _FILE_CSV,
)
async def competence_gap_csv(
    region: str,
    request: Request,
    uow: UoW,
    term: TermQuery = None,
    top: TopQuery = 5,
    lang: LangQuery = None,
) -> Response:
    """The competence gap as CSV: one `section,key,figure,value` row per figure (a hidden
    count reads `< 5`)."""
    out = await _gap(request, region, uow, term, top, lang)
    return reports.download(reports.gap_csv(out), reports.CSV_MEDIA, _gap_file(region, out, "csv"))


@router.get(
    "/regions/{region}/competence-gap.xlsx",
    response_class=Response,
    tags=["reports"],
    openapi_extra=rule("coordinator-region") | _FILE_XLSX,
)
async def competence_gap_xlsx(
    region: str,
    request: Request,
    uow: UoW,
    term: TermQuery = None,
    top: TopQuery = 5,
    lang: LangQuery = None,
) -> Response:
    """The competence gap as an XLSX workbook: the biggest gaps in words, a sheet of skills and
    one of programmes (with the empty slots after each round), the rounds, and every figure."""
    out = await _gap(request, region, uow, term, top, lang)
    return reports.download(
        reports.gap_xlsx(out), reports.XLSX_MEDIA, _gap_file(region, out, "xlsx")
    )


# -------------------------------------------------------------------------------- internal


def internal_router() -> APIRouter:
    """Routes for the other services only, for their service accounts' client-credentials
    tokens with the route's scope; not in the public OpenAPI document."""
    internal = APIRouter(
        include_in_schema=False,
        dependencies=[Depends(clean_parameters), Depends(access), Depends(strict_input)],
    )

    @internal.get(NOTICE_CONTEXT_PATH, openapi_extra=rule("notice-context"))
    async def notice_context(
        uow: UoW,
        placement_id: Annotated[str, Query(min_length=1, max_length=200)],
        student_id: Annotated[str, Query(min_length=1, max_length=200)],
    ) -> NoticeContext:
        """What the notifications service needs for one notice (scope `notices:read`)."""
        return await handlers.notice_context(placement_id, student_id, uow)

    @internal.get(STUDENT_NOTICE_CONTEXT_PATH, openapi_extra=rule("notice-context"))
    async def student_notice_context(
        request: Request,
        uow: UoW,
        student_id: Annotated[str, Query(min_length=1, max_length=200)],
        placement_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        round_id: uuid.UUID | None = None,
    ) -> StudentNoticeContext:
        """What a notice to a student needs (scope `notices:read`); 404 when the student was
        withdrawn or erased."""
        container: Container = request.app.state.container
        return await handlers.student_notice_context(
            student_id,
            placement_id,
            uow,
            round_id=round_id,
            public_url=container.settings.public_url,
        )

    @internal.post(NOTICE_CONTEXTS_PATH, openapi_extra=rule("notice-context"))
    async def notice_contexts(
        request: Request, uow: UoW, query: NoticeContextsQuery
    ) -> NoticeContexts:
        """A delivery batch's notice contexts and student notice contexts in one call (scope
        `notices:read`), in the order asked; None where the single route answers 404."""
        container: Container = request.app.state.container
        return await handlers.notice_contexts(query, uow, public_url=container.settings.public_url)

    return internal
