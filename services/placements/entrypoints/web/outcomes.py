"""The coordinator's pages after a round: the region's rounds (newest first), a round's outcomes
(every student's, filtered, each with its explanation), its report as CSV and XLSX, two dry runs
of both policies side by side (polled until both are completed), and the region's vacancies
with the unplaced students they fit, where a student is assigned by hand and a supplementary
round is opened.

The rules are the API's: `coordinator-region` for the region's pages and the opening of a
supplementary round, `round-read` for a round's, `round-request` for the two dry runs (decided
with the region the form posts to), `round-compare` with the two rounds' regions, and
`match-assign` with the student's and the placement's regions (and the page's own region, whose
vacancies a refusal shows again). The handlers decide everything else: this module renders their
answers and their refusals, each next to the field it names.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared import explain
from shared.contracts.events import Policy
from shared.contracts.outcomes import OutcomeReason, RuleFailure
from shared.contracts.vocabulary import Participant

from ... import handlers
from ...domain import outcomes
from ...domain.commands import (
    AssignMatch,
    CompareRounds,
    ListOutcomes,
    ListRounds,
    OpenSupplementary,
    RegionVacancies,
    RequestRound,
)
from ...domain.errors import Conflict, DomainError, FieldError, Invalid, NotFound
from ...domain.model import OutcomeRecord, Round
from ...ports import PlacementsUnitOfWork
from .. import reports
from ..auth import Access, rule
from . import i18n
from .i18n import N_
from .render import page
from .session import Page, require_csrf

if TYPE_CHECKING:
    from ...bootstrap import Container

router = APIRouter(tags=["web"], include_in_schema=False)
Offset = Annotated[int, Query(ge=0, le=10_000_000)]

ROUNDS_PAGE: Final = 20
OUTCOMES_PAGE: Final = 50
STUDENTS_PAGE: Final = 25
PER_STUDENT: Final = 10
COMPARED: Final = 50
"""Students listed per list of the comparison."""
POLL_SECONDS: Final = 2
COMPARED_POLICIES: Final[tuple[Policy, Policy]] = ("optimal", "stable")
"""The two dry runs of "Compare optimal and stable", in the comparison's order (a, b)."""
PARTICIPANT_NAMES: Final[dict[str, str]] = {
    "student": N_("Students, at placements for students"),
    "teacher": N_("Teachers, at working-life periods for teachers"),
}
"""Whom a round places (the region page's round form) or an opening invites."""
REASON_NAMES: Final[dict[str, str]] = {
    "no_eligible_choice": N_("None of their choices fits them"),
    "choices_full": N_("Every choice that fits them was full"),
    "no_eligible_vacancy": N_("No choice and no vacancy of the region fits them"),
    "unknown": N_("Reason not known"),
}
KIND_NAMES: Final[dict[str, str]] = {
    "ordinary": N_("Ordinary"),
    "supplementary": N_("Supplementary"),
}
POLICY_SHORT: Final[dict[str, str]] = {"optimal": N_("Optimal"), "stable": N_("Stable")}
STATUS_NAMES: Final[dict[str, str]] = {
    "requested": N_("Requested"),
    "completed": N_("Completed"),
    "failed": N_("Not run"),
}
ASSIGNED: Final = N_(
    "The assignment of %(student)s to %(placement)s was sent to matching: it is proposed "
    "(pinned) in a moment, or cancelled if the slot is gone by then."
)
OPENED: Final = N_(
    "A supplementary round was opened: %(n)s unplaced students are told by e-mail which "
    "vacancies fit them. Run it as a supplementary round once they have ranked."
)


def _uow(request: Request, access: Access) -> PlacementsUnitOfWork:
    container: Container = request.app.state.container
    return container.uow(actor=access.actor)


def _words(request: Request) -> i18n.Words:
    return i18n.Words(i18n.of_request(request))


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _pages(offset: int, limit: int, total: int) -> tuple[int | None, int | None]:
    previous = max(offset - limit, 0) if offset > 0 else None
    following = offset + limit if offset + limit < total else None
    return previous, following


# ---------------------------------------------------------------------------------- rounds


@router.get("/regions/{region}/rounds", openapi_extra=rule("coordinator-region"))
async def rounds_page(
    request: Request, region: str, access: Page, offset: Offset = 0
) -> HTMLResponse:
    """The region's rounds, newest first, a page at a time: kind, policy, fill, dry run."""
    found = await handlers.list_rounds(
        ListRounds(region, limit=ROUNDS_PAGE, offset=offset), _uow(request, access)
    )
    previous, following = _pages(offset, ROUNDS_PAGE, found.total)
    return page(
        request,
        "web/coordinator/rounds.html.j2",
        who=access.principal,
        region=region,
        rounds=found.items,
        total=found.total,
        offset=offset,
        previous=previous,
        next=following,
        kinds=KIND_NAMES,
        policies=POLICY_SHORT,
        statuses=STATUS_NAMES,
    )


# -------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Filters:
    """The outcomes page's filters, as the query gives them."""

    reason: OutcomeReason | None = None
    programme: str | None = None
    placed: bool | None = None
    moved: bool | None = None

    def query(self, **more: str) -> str:
        values: dict[str, str] = {}
        if self.reason:
            values["reason"] = self.reason
        if self.programme:
            values["programme"] = self.programme
        if self.placed is not None:
            values["placed"] = "yes" if self.placed else "no"
        if self.moved:
            values["moved"] = "yes"
        values.update(more)
        return "?" + urlencode(values) if values else ""


def _yes_no(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


@router.get("/rounds/{round_id}/outcomes", openapi_extra=rule("round-read"))
async def outcomes_page(
    request: Request,
    round_id: uuid.UUID,
    access: Page,
    offset: Offset = 0,
    reason: Annotated[str | None, Query(max_length=40)] = None,
    programme: Annotated[str | None, Query(max_length=100)] = None,
    placed: Annotated[Literal["", "yes", "no"] | None, Query()] = None,
    moved: Annotated[Literal["", "yes"] | None, Query()] = None,
) -> HTMLResponse:
    """Every student's outcome of the round, by student id, a page at a time, filtered by
    reason, programme, placed or not, and moved; each with its explanation in words."""
    uow = _uow(request, access)
    found_round = await handlers.get_round(round_id, uow)
    known: tuple[OutcomeReason, ...] = get_args(OutcomeReason)
    chosen: OutcomeReason | None = next((r for r in known if r == reason), None)
    filters = Filters(chosen, (programme or "").strip() or None, _yes_no(placed), _yes_no(moved))
    query = ListOutcomes(
        round_id,
        filters.reason,
        filters.programme,
        filters.placed,
        filters.moved or None,
        OUTCOMES_PAGE,
        offset,
    )
    found = await handlers.round_outcomes(query, uow)
    t = _words(request)
    previous, following = _pages(offset, OUTCOMES_PAGE, found.total)
    return page(
        request,
        "web/coordinator/outcomes.html.j2",
        who=access.principal,
        round=found_round,
        region=found_round.region,
        rows=[(r, explain.describe(r.outcome, t)) for r in found.items],
        total=found.total,
        offset=offset,
        filters=filters,
        reasons=[(r, REASON_NAMES[r]) for r in known],
        reason_names=REASON_NAMES,
        previous=previous,
        next=following,
        base=f"/rounds/{round_id}/outcomes",
    )


# ------------------------------------------------------------------------------- downloads


async def _rendered(request: Request, access: Access, round_id: uuid.UUID) -> reports.ReportOut:
    found = await handlers.round_outcome_report(round_id, _uow(request, access))
    return reports.render(found, _words(request))


@router.get("/rounds/{round_id}/report.csv", openapi_extra=rule("round-read"))
async def report_csv(request: Request, round_id: uuid.UUID, access: Page) -> Response:
    """The round's report as CSV (the API's `report.csv`, in the page's language)."""
    out = await _rendered(request, access, round_id)
    return reports.download(reports.to_csv(out), reports.CSV_MEDIA, f"round-{round_id}.csv")


@router.get("/rounds/{round_id}/report.xlsx", openapi_extra=rule("round-read"))
async def report_xlsx(request: Request, round_id: uuid.UUID, access: Page) -> Response:
    """The round's report as an Excel workbook (the API's `report.xlsx`)."""
    out = await _rendered(request, access, round_id)
    return reports.download(reports.to_xlsx(out), reports.XLSX_MEDIA, f"round-{round_id}.xlsx")


# ---------------------------------------------------------------------------- side by side


@router.post(
    "/regions/{region}/compare",
    openapi_extra=rule("round-request"),
    dependencies=[Depends(require_csrf)],
)
async def compare_request(request: Request, region: str, access: Page) -> Response:
    """Two dry runs of the region, one per policy, with the same fill; on to their comparison."""
    access.permit(region=region)
    form = await request.form()
    fill = _text(form, "fill") == "1"
    ids = [
        await handlers.request_round(
            RequestRound(region, policy, fill=fill, dry_run=True), _uow(request, access)
        )
        for policy in COMPARED_POLICIES
    ]
    target = "/rounds/compare?" + urlencode({"a": str(ids[0]), "b": str(ids[1])})
    return RedirectResponse(target, status_code=303)


async def _comparison(
    request: Request, access: Access, a: uuid.UUID, b: uuid.UUID
) -> dict[str, Any]:
    uow = _uow(request, access)
    ta = await handlers.access_target("round", str(a), uow)
    tb = await handlers.access_target("round", str(b), uow)
    regions = frozenset(r for r in (ta.region, tb.region) if r is not None)
    access.permit(regions=regions, exists=ta.exists and tb.exists)
    round_a = await handlers.get_round(a, uow)
    round_b = await handlers.get_round(b, uow)
    done = round_a.status == "completed" and round_b.status == "completed"
    found = await handlers.compare_rounds(CompareRounds(a, b, COMPARED), uow) if done else None
    rank_keys = [str(r) for r in outcomes.RANKS] + ["unranked", "filled", "unplaced"]
    return {
        "a": round_a,
        "b": round_b,
        "region": round_a.region,
        "done": done,
        "comparison": found,
        "rank_keys": rank_keys,
        "policies": POLICY_SHORT,
        "poll": POLL_SECONDS,
        "status_url": f"/rounds/compare/status?{urlencode({'a': str(a), 'b': str(b)})}",
    }


@router.get("/rounds/compare", openapi_extra=rule("round-compare"))
async def compare_page(request: Request, access: Page, a: uuid.UUID, b: uuid.UUID) -> HTMLResponse:
    """Two rounds of one region side by side (polled until both are completed): placed, rank
    distribution, blocking pairs, movers against the standing matches, the students the two
    place differently."""
    context = await _comparison(request, access, a, b)
    return page(
        request,
        "web/coordinator/compare.html.j2",
        who=access.principal,
        fragment=False,
        **context,
    )


@router.get("/rounds/compare/status", openapi_extra=rule("round-compare"))
async def compare_status(
    request: Request, access: Page, a: uuid.UUID, b: uuid.UUID
) -> HTMLResponse:
    """The comparison alone, for the page's polling (it stops once both are completed)."""
    context = await _comparison(request, access, a, b)
    return page(
        request,
        "web/coordinator/_compare.html.j2",
        who=access.principal,
        fragment=True,
        **context,
    )


# ------------------------------------------------------------------------------ vacancies


@dataclass(frozen=True)
class Refusal:
    """What the handler refused of an assignment, in the page's words, by field."""

    student_id: str
    placement_id: str
    reason: str
    override: bool
    errors: Mapping[str, str]
    failures: tuple[str, ...] = ()
    """The failed hard constraints with their figures (`override` field)."""


async def _vacancies_page(
    request: Request,
    access: Access,
    region: str,
    offset: int,
    *,
    status: int = 200,
    notice: str | None = None,
    refusal: Refusal | None = None,
    opening: Mapping[str, str] | None = None,
    ranks_until: str = "",
    invite: str = "student",
) -> HTMLResponse:
    query = RegionVacancies(region, limit=STUDENTS_PAGE, offset=offset, per_student=PER_STUDENT)
    found = await handlers.region_vacancies(query, _uow(request, access))
    previous, following = _pages(offset, STUDENTS_PAGE, found.students_total)
    return page(
        request,
        "web/coordinator/vacancies.html.j2",
        who=access.principal,
        status=status,
        region=region,
        report=found,
        offset=offset,
        previous=previous,
        next=following,
        reason_names=REASON_NAMES,
        notice=notice,
        refusal=refusal,
        opening=opening or {},
        ranks_until=ranks_until,
        invite=invite,
        participants=PARTICIPANT_NAMES,
        today=datetime.now(UTC).date(),
    )


@router.get("/regions/{region}/vacancies", openapi_extra=rule("coordinator-region"))
async def vacancies_page(
    request: Request,
    region: str,
    access: Page,
    offset: Offset = 0,
    assigned: Annotated[str | None, Query(max_length=200)] = None,
    opened: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    """The region's free slots per placement, and its unplaced students (of the latest
    completed round, still without a match) with the vacancies that fit each, nearest first;
    per student a form to assign them by hand; the form to open a supplementary round."""
    t = _words(request)
    notice = None
    if assigned and ":" in assigned:
        sid, _, pid = assigned.partition(":")
        notice = t.gettext(ASSIGNED) % {"student": sid, "placement": pid}
    elif opened is not None:
        notice = t.gettext(OPENED) % {"n": t.number(opened)}
    return await _vacancies_page(request, access, region, offset, notice=notice)


async def _refusal(
    request: Request, access: Access, command: AssignMatch, error: DomainError
) -> Refusal:
    """The handler's refusal of `command`, each error next to the field it names, in words."""
    t = _words(request)
    _ = t.gettext
    errors: dict[str, str] = {}
    failures: tuple[str, ...] = ()
    named = [e.field for e in error.errors]
    uow = _uow(request, access)
    if "reason" in named:
        errors["reason"] = _("Say why the student is assigned by hand.")
    if "placement_id" in named:
        errors["placement"] = await _placement_refusal(uow, command, error, t)
    if "override_hard_constraints" in named:
        failures = await _failures(uow, command, named.count("override_hard_constraints"), t)
        errors["override"] = _(
            "The student does not meet the placement's hard constraints. Tick the box to "
            "assign them anyway."
        )
    if not errors:
        errors["placement"] = error.detail
    return Refusal(
        command.student_id,
        command.placement_id,
        command.reason,
        command.override_hard_constraints,
        errors,
        failures,
    )


async def _placement_refusal(
    uow: PlacementsUnitOfWork, command: AssignMatch, error: DomainError, t: i18n.Words
) -> str:
    _ = t.gettext
    if not command.placement_id:
        return _("Name the placement.")
    if isinstance(error, NotFound):
        return _("No placement has this id.")
    if isinstance(error, Invalid):
        return _("This placement is in another region than the student.")
    try:
        view = await handlers.get_placement(command.placement_id, uow)
    except NotFound:
        return _("No placement has this id.")
    if view.placement.withdrawn:
        return _("This placement was withdrawn.")
    try:
        current = await handlers.student_match(command.student_id, uow)
    except NotFound:
        current = None
    if current is not None and current.placement_id == command.placement_id:
        return _("The student's match is at this placement already.")
    capacity = view.placement.offer.capacity
    return t.ngettext(
        "This placement is full: its %(n)s slot is held.",
        "This placement is full: all its %(n)s slots are held.",
        capacity,
    ) % {"n": t.number(capacity)}


async def _failures(
    uow: PlacementsUnitOfWork, command: AssignMatch, count: int, t: i18n.Words
) -> tuple[str, ...]:
    """The hard constraints the pair fails, with their figures, in words (the handler names how
    many; a pair declined earlier is the one the profiles do not show)."""
    student = await handlers.get_student(command.student_id, uow)
    view = await handlers.get_placement(command.placement_id, uow)
    found: list[RuleFailure] = list(outcomes.hard_failures(student.profile, view.placement.offer))
    if count > len(found):
        found.append(RuleFailure(rule="declined"))
    return tuple(explain.rule_text(f, t) for f in found)


@router.post(
    "/regions/{region}/assignments",
    openapi_extra=rule("match-assign"),
    dependencies=[Depends(require_csrf)],
)
async def assign(request: Request, region: str, access: Page) -> Response:
    """Assign an unplaced student by hand (placement, reason, and the explicit override of
    failed hard constraints); a refusal comes back on the vacancies page, next to its field."""
    form = await request.form()
    command = AssignMatch(
        student_id=_text(form, "student_id"),
        placement_id=_text(form, "placement_id"),
        reason=_text(form, "reason"),
        override_hard_constraints=_text(form, "override") == "1",
    )
    digits = _text(form, "offset")
    offset = int(digits) if digits.isdigit() and len(digits) < 9 else 0
    uow = _uow(request, access)
    student = await handlers.access_target("student", command.student_id, uow)
    placement = await handlers.access_target("placement", command.placement_id, uow)
    regions = frozenset(r for r in (student.region, placement.region, region) if r is not None)
    access.permit(regions=regions, exists=student.exists)
    if not student.exists:
        raise NotFound(f"student {command.student_id} does not exist")
    try:
        if not command.placement_id:
            raise Invalid([FieldError("placement_id", "name the placement")])
        await handlers.assign_match(command, uow)
    except (Invalid, Conflict, NotFound) as error:
        if isinstance(error, NotFound) and not any(e.field for e in error.errors):
            raise
        refusal = await _refusal(request, access, command, error)
        status = 409 if isinstance(error, Conflict) else 422
        return await _vacancies_page(
            request, access, region, offset, status=status, refusal=refusal
        )
    done = urlencode({"assigned": f"{command.student_id}:{command.placement_id}"})
    return RedirectResponse(f"/regions/{region}/vacancies?{done}#notice", status_code=303)


@router.post(
    "/regions/{region}/supplementary",
    openapi_extra=rule("coordinator-region"),
    dependencies=[Depends(require_csrf)],
)
async def open_supplementary(request: Request, region: str, access: Page) -> Response:
    """Open a supplementary round: the unplaced of the region's latest round of students (or of
    teachers: the form's `participant`) are told which vacancies fit them (until the last day
    to rank, if given); "no unplaced students (teachers)" is the form's error."""
    form = await request.form()
    value = _text(form, "ranks_until")
    invite = _text(form, "participant") or "student"
    t = _words(request)
    _ = t.gettext
    errors: dict[str, str] = {}
    ranks_until: date | None = None
    if invite not in PARTICIPANT_NAMES:
        errors["participant"] = _("Choose students or teachers.")
        invite = "student"
    if value:
        try:
            ranks_until = date.fromisoformat(value)
        except ValueError:
            errors["ranks_until"] = _("Give the date as YYYY-MM-DD.")
    if not errors:
        whom: Participant = "teacher" if invite == "teacher" else "student"
        try:
            opened = await handlers.open_supplementary(
                OpenSupplementary(region, ranks_until, whom), _uow(request, access)
            )
        except Invalid as error:
            for e in error.errors:
                if e.field == "ranks_until":
                    errors["ranks_until"] = _("The last day to rank may not be in the past.")
                elif whom == "teacher":
                    errors["region"] = _(
                        "The region has no unplaced teachers: the latest completed round of "
                        "teachers left no one without a match, or none has been completed yet."
                    )
                else:
                    errors["region"] = _(
                        "The region has no unplaced students: the latest completed round left "
                        "no one without a match, or no round has been completed yet."
                    )
        else:
            done = urlencode({"opened": len(opened.student_ids)})
            return RedirectResponse(f"/regions/{region}/vacancies?{done}#notice", status_code=303)
    return await _vacancies_page(
        request, access, region, 0, status=422, opening=errors, ranks_until=value, invite=invite
    )


# -------------------------------------------------------------------------- for the pages


def rank_words(record: OutcomeRecord, t: i18n.Words) -> str:
    """Where the outcome placed the student, shortly (a table cell)."""
    o = record.outcome
    _ = t.gettext
    if o.placement_id is None:
        return _("Not placed")
    if o.filled:
        return _("Filled: a vacancy not among their choices")
    if o.rank is None:
        return _("Kept or assigned, not among their choices")
    return _("Choice {n}").format(n=t.number(o.rank))


def kind_line(found: Round, t: i18n.Words) -> list[str]:
    """The round's options in words (kind, fill, dry run)."""
    _ = t.gettext
    parts = [_(KIND_NAMES.get(found.kind, found.kind))]
    if found.participant == "teacher":
        parts.append(_("of teachers, at working-life periods"))
    if found.fill:
        parts.append(_("with fill"))
    if found.dry_run:
        parts.append(_("dry run"))
    return parts
