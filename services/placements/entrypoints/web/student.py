"""The student's pages: their placement (the current proposal and the answer to it, or why there
is none) with their profile, and their choices (the open placements of their region, checked
against the profile, and the ranking of up to 10 of them).

The pages call the API's handlers under the API's rules: `student-self` for the student's own
record (a coordinator of the region may open it too), `match-answer` decided as the student
(`access.permit(by="student")`), and the open placements listed with the decision the
`placement-list` rule gives the caller (a student's: open only, redacted; the page shows no
supervisor, ranking or channel to anyone).

Whether a placement is open to the student is checked against the hard rules of the matching
policy (docs/product.md, "The matching policy", rules 2 to 5: skills, programme, period,
distance) with the domain's `outcomes.hard_failures`, the check vacancies and assignments use; the
matching service decides them again when it runs a round. A check that lacks a fact (no home or
site, a date missing) is not made, as there.

Without JavaScript every button of the ranking is a plain submit of one form: adding, removing
and moving a choice post the whole list with the change and save it. With JavaScript
(static/app.js) moving, dragging (SortableJS) and removing happen in the page, and the list is
saved with the one "Save" button.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from time import monotonic
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared import explain
from shared.contracts.outcomes import RuleFailure
from shared.contracts.profiles import MAX_PREFERENCES, PlacementOffer, StudentProfile

from ... import handlers
from ...domain import outcomes, policy
from ...domain.commands import AnswerMatch, ListPlacements, SetPreferences
from ...domain.errors import FieldError, Invalid, NotFound
from ...domain.model import MatchRecord, PlacementView, Student
from ..auth import Access, rule
from . import i18n
from .i18n import N_
from .render import page
from .session import Page, require_csrf

router = APIRouter(tags=["web"], include_in_schema=False)

"""The radius of docs/product.md's haversine distance (rule 5)."""
PAGE_SIZE: Final = 25
"""Placements shown per page of the choices page."""
FETCH: Final = 500
"""Placements asked of the handler at a time."""
MAX_SENT: Final = 5 * MAX_PREFERENCES
"""Choices of a posted ranking that are read at all (the handler refuses more than 10)."""

RANK_WORDS: Final[dict[int, str]] = {
    1: N_("your 1st choice"),
    2: N_("your 2nd choice"),
    3: N_("your 3rd choice"),
    4: N_("your 4th choice"),
    5: N_("your 5th choice"),
    6: N_("your 6th choice"),
    7: N_("your 7th choice"),
    8: N_("your 8th choice"),
    9: N_("your 9th choice"),
    10: N_("your 10th choice"),
}
DECLINE_REASONS: Final[dict[str, str]] = {
    "too_far": N_("It is too far to travel"),
    "period": N_("The period does not suit me"),
    "not_my_field": N_("It does not fit my programme or interests"),
    "own_placement": N_("I have found a placement myself"),
    "personal": N_("Personal reasons"),
    "other": N_("Another reason"),
}
"""The reason codes a student declines with (sent as the decline's `reason`)."""
ANSWERED: Final[dict[str, str]] = {
    "accepted": N_("You accepted the proposal. It is confirmed once the company has accepted too."),
    "declined": N_(
        "You declined the proposal. Later rounds do not propose this placement to you again."
    ),
}
NEXT_STEPS: Final[dict[str, str]] = {
    "choices_full": N_(
        "Every placement you ranked that fits you was taken. Add vacancies that fit you to your "
        "ranking: they still have free slots."
    ),
    "no_eligible_choice": N_(
        "None of the placements you ranked fits your profile. Add vacancies that fit you to "
        "your ranking: they still have free slots."
    ),
    "no_eligible_vacancy": N_(
        "No placement of your region with a free slot fits your profile now. Talk to your "
        "coordinator: they can help you find a placement."
    ),
}
"""What an unplaced student can do next, by the reason of their outcome."""
VACANCIES: Final = 10
"""Vacancies shown on the placement page of an unplaced student (nearest first)."""
SAVED: Final[dict[str, str]] = {
    "saved": N_("Your ranking is saved."),
    "added": N_("The placement was added to your ranking, and the ranking is saved."),
    "removed": N_("The placement was removed from your ranking, and the ranking is saved."),
    "moved": N_("The placement was moved, and the ranking is saved."),
}


# ------------------------------------------------------------------------ what fits whom


@dataclass(frozen=True)
class Fit:
    """How a placement fits the student: the distance from their home (None: not known) and the
    hard rules it breaks, with their figures (none: it is open to them)."""

    distance_km: float | None
    problems: tuple[RuleFailure, ...] = ()

    @property
    def eligible(self) -> bool:
        return not self.problems


def fit(student: StudentProfile, offer: PlacementOffer) -> Fit:
    """Rules 2 to 5 of docs/product.md "The matching policy" for the student and the offer, as
    the placements domain checks them for vacancies and assignments (`domain/outcomes.py`): a
    rule whose facts are not all given is not checked."""
    return Fit(outcomes.pair_distance(student, offer), outcomes.hard_failures(student, offer))


# ---------------------------------------------------------------------------- page values


@dataclass(frozen=True)
class Message:
    """A text of the page (an English message id) with its values."""

    text: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def say(self, gettext: Callable[[str], str]) -> str:
        words = gettext(self.text)
        return words % dict(self.values) if self.values else words


@dataclass(frozen=True)
class Offer:
    """A placement as the student's pages show it (no supervisor, ranking or channel)."""

    placement_id: str
    title: str | None
    company_id: str
    region: str
    capacity: int
    starts_on: date | None
    ends_on: date | None
    required_skills: tuple[str, ...]
    programmes: tuple[str, ...]
    open: bool
    fit: Fit

    @property
    def name(self) -> str:
        return self.title or self.placement_id


def _offer(view: PlacementView, student: StudentProfile) -> Offer:
    o = view.placement.offer
    return Offer(
        placement_id=o.placement_id,
        title=o.title,
        company_id=o.company_id,
        region=o.region,
        capacity=o.capacity,
        starts_on=o.starts_on,
        ends_on=o.ends_on,
        required_skills=o.required_skills,
        programmes=o.programmes,
        open=not view.placement.withdrawn,
        fit=fit(student, o),
    )


@dataclass(frozen=True)
class Choice:
    """One place of the student's ranking: the placement (None: no such placement) and what
    the last save said of it."""

    placement_id: str
    offer: Offer | None
    error: Message | None = None

    @property
    def name(self) -> str:
        return self.offer.name if self.offer else self.placement_id

    @property
    def usable(self) -> bool:
        """Open and open to the student: a round may propose it."""
        return self.offer is not None and self.offer.open and self.offer.fit.eligible


@dataclass(frozen=True)
class Proposal:
    """The student's current match with its placement (None: the placement is not known)."""

    match: MatchRecord
    offer: Offer | None

    @property
    def rank_words(self) -> Message:
        rank = self.match.rank
        if rank is None:
            return Message(N_("not one you ranked"))
        words = RANK_WORDS.get(rank)
        return Message(words) if words else Message(N_("your choice number %(n)s"), {"n": rank})

    @property
    def open(self) -> bool:
        return self.match.state in {"proposed", "accepted"}

    @property
    def may_accept(self) -> bool:
        return self.open and not self.match.accepted_by_student


def _own(access: Access, student_id: str) -> bool:
    """The signed-in person is the student (or teacher) themselves (not a coordinator
    looking)."""
    who = access.principal
    person = who is not None and (who.has("student") or who.has("teacher"))
    return person and who is not None and who.student_id == student_id


def _text(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else None


# ------------------------------------------------------------------------------- loading


@dataclass
class _Listed:
    until: float
    views: list[PlacementView]
    fits: dict[StudentProfile, list[Offer]] = field(default_factory=dict)
    """The list as each student's profile sees it (checked once per list and profile)."""


FITS_KEPT: Final = 10_000
LISTED_SECONDS: Final = 15.0
"""How long a region's list of open placements is reused by the choices pages (each student's
page reads the whole region's list to check and sort it; saving a ranking checks against the
store, so a list at most this old can only show a change a little late)."""


async def _listed(request: Request, access: Access, region: str) -> _Listed:
    """The open placements of the student's region, listed as the API lists them for this caller
    (the `placement-list` rule's decision)."""
    decided = policy.decide(
        policy.rule("placement-list"), access.principal, policy.Target(region=region)
    )
    container = request.app.state.container
    key = (decided.region or region, decided.company_id, decided.kind)
    state = request.app.state
    cache: dict[tuple[str, str | None, str | None], _Listed] | None = getattr(state, "listed", None)
    if cache is None:
        cache = state.listed = {}
    now = monotonic()
    listed = cache.get(key)
    if listed is not None and listed.until > now:
        return listed
    found: list[PlacementView] = []
    offset = 0
    while True:
        query = ListPlacements(
            region=decided.region or region,
            company_id=decided.company_id,
            include_withdrawn=False,
            limit=FETCH,
            offset=offset,
            kind=decided.kind,  # a student's: placements for students; a teacher's: periods
        )
        batch = await handlers.list_placements(query, container.uow(actor=access.actor))
        found += [v for v in batch if not v.placement.withdrawn]
        offset += len(batch)
        if len(batch) < FETCH:
            break
    listed = cache[key] = _Listed(now + LISTED_SECONDS, found)
    return listed


async def _offers_of_region(
    request: Request, access: Access, profile: StudentProfile
) -> list[Offer]:
    """The region's open placements as `profile` sees them, each checked against it."""
    listed = await _listed(request, access, profile.region)
    found = listed.fits.get(profile)
    if found is not None:
        return found
    mine = [v for v in listed.views if v.placement.offer.kind == profile.participant]
    offers = [_offer(v, profile) for v in mine]
    if len(listed.fits) < FITS_KEPT:
        listed.fits[profile] = offers
    return offers


async def _placement(request: Request, access: Access, placement_id: str) -> PlacementView | None:
    try:
        return await handlers.get_placement(
            placement_id, request.app.state.container.uow(actor=access.actor)
        )
    except NotFound:
        return None


async def _student(request: Request, access: Access, student_id: str) -> Student:
    uow = request.app.state.container.uow(actor=access.actor)
    return await handlers.get_student(student_id, uow)


async def _ranking(
    request: Request,
    access: Access,
    student: StudentProfile,
    ids: Sequence[str],
    known: Mapping[str, Offer],
    errors: Sequence[FieldError] = (),
) -> list[Choice]:
    """The ranking `ids` as the page shows it, each with the error the handler named for it."""
    by_index: dict[int, Message] = {}
    for error in errors:
        index = _index_of(error.field)
        if index is not None and 0 <= index < len(ids):
            by_index[index] = _choice_message(ids, index)
    choices: list[Choice] = []
    for i, pid in enumerate(ids):
        offer = known.get(pid)
        if offer is None:
            view = await _placement(request, access, pid)
            offer = _offer(view, student) if view is not None else None
        choices.append(Choice(pid, offer, by_index.get(i)))
    return choices


def _index_of(name: str) -> int | None:
    if name.startswith("preferences[") and name.endswith("]"):
        digits = name[len("preferences[") : -1]
        return int(digits) if digits.isdigit() else None
    return None


def _choice_message(ids: Sequence[str], index: int) -> Message:
    if ids[index] in ids[:index]:
        return Message(N_("This placement is already higher on your list; remove it here."))
    return Message(N_("This placement is no longer open; remove it to save your ranking."))


def _list_messages(ids: Sequence[str], errors: Sequence[FieldError]) -> list[Message]:
    """The errors of the whole list (not of one choice)."""
    found: list[Message] = []
    for error in errors:
        if _index_of(error.field) is not None:
            continue
        if error.field == "preferences":
            found.append(
                Message(
                    N_(
                        "You can rank at most %(max)s placements, and this list has %(count)s. "
                        "Remove one to save it."
                    ),
                    {"max": MAX_PREFERENCES, "count": len(ids)},
                )
            )
        else:
            found.append(Message(f"{error.field}: {error.message}"))
    return found


# -------------------------------------------------------------------------- the placement


async def _placement_page(
    request: Request,
    access: Access,
    student_id: str,
    *,
    status: int = 200,
    notice: Message | None = None,
    reason: str | None = None,
    reason_error: Message | None = None,
) -> HTMLResponse:
    student = await _student(request, access, student_id)
    profile = student.profile
    uow = request.app.state.container.uow(actor=access.actor)
    try:
        match: MatchRecord | None = await handlers.student_match(student_id, uow)
    except NotFound:
        match = None
    proposal: Proposal | None = None
    ranked: list[Choice] = []
    if match is not None:
        view = await _placement(request, access, match.placement_id)
        proposal = Proposal(match, _offer(view, profile) if view is not None else None)
    else:
        ranked = await _ranking(request, access, profile, profile.preferences, {})
    outcome = await _outcome(request, access, student_id)
    vacancies: outcomes.StudentVacancies | None = None
    if match is None and outcome is not None and outcome.record.outcome.placement_id is None:
        vacancies = await handlers.student_vacancies(
            student_id, request.app.state.container.uow(actor=access.actor), limit=VACANCIES
        )
    words = i18n.Words(i18n.of_request(request))
    return page(
        request,
        "web/student/placement.html.j2",
        who=access.principal,
        status=status,
        student=student,
        profile=profile,
        own=_own(access, student_id),
        proposal=proposal,
        ranked=ranked,
        usable=[c for c in ranked if c.usable],
        notice=notice,
        reasons=DECLINE_REASONS,
        reason=reason,
        reason_error=reason_error,
        outcome=outcome,
        explained=explain.describe(outcome.record.outcome, words) if outcome else [],
        next_step=NEXT_STEPS.get(outcome.record.outcome.reason or "") if outcome else None,
        vacancies=vacancies,
    )


async def _outcome(
    request: Request, access: Access, student_id: str
) -> outcomes.StudentOutcomeView | None:
    """The student's outcome of the latest round that covered them (None: none yet)."""
    uow = request.app.state.container.uow(actor=access.actor)
    try:
        return await handlers.student_outcome(student_id, uow)
    except NotFound:
        return None


@router.get("/students/{student_id}", openapi_extra=rule("student-self"))
async def placement(
    request: Request,
    student_id: str,
    access: Page,
    answered: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """The student's placement: the current proposal (placement, company, period, rank) and the
    answer to it, or why there is none; and their profile as stored."""
    notice = Message(ANSWERED[answered]) if answered in ANSWERED else None
    return await _placement_page(request, access, student_id, notice=notice)


@router.post(
    "/matches/{match_id}/answer",
    openapi_extra=rule("match-answer"),
    dependencies=[Depends(require_csrf)],
)
async def answer(request: Request, match_id: uuid.UUID, access: Page) -> Response:
    """The student accepts or declines their proposal (a decline with a reason code); back to
    their placement page with a notice."""
    access.permit(by="student")
    form = await request.form()
    choice, reason = _text(form, "answer"), _text(form, "reason") or None
    student_id = access.target.student_id
    if choice not in ("accept", "decline"):
        raise Invalid([FieldError("answer", "must be accept or decline")])
    if choice == "decline" and reason not in DECLINE_REASONS:
        if student_id is None:  # no such match: the handler's 404
            raise NotFound(f"match {match_id} does not exist")
        return await _placement_page(
            request,
            access,
            student_id,
            status=422,
            reason=reason,
            reason_error=Message(N_("Choose why you decline.")),
        )
    command = (
        AnswerMatch(match_id, "student", "decline", reason)
        if choice == "decline"
        else AnswerMatch(match_id, "student", "accept")
    )
    done = await handlers.answer_match(command, request.app.state.container.uow(access.actor))
    word = "accepted" if choice == "accept" else "declined"
    target = f"/students/{done.student_id}?" + urlencode({"answered": word})
    return RedirectResponse(target, status_code=303)


# ---------------------------------------------------------------------------- the choices


async def _choices_page(
    request: Request,
    access: Access,
    student_id: str,
    *,
    ids: Sequence[str] | None = None,
    errors: Sequence[FieldError] = (),
    show_all: bool = False,
    number: int = 1,
    notice: Message | None = None,
    status: int = 200,
) -> HTMLResponse:
    student = await _student(request, access, student_id)
    profile = student.profile
    ranking_ids = list(profile.preferences if ids is None else ids)
    offers = await _offers_of_region(request, access, profile)
    known = {o.placement_id: o for o in offers}
    ranking = await _ranking(request, access, profile, ranking_ids, known, errors)
    eligible = [o for o in offers if o.fit.eligible]
    shown = sorted(
        offers if show_all else eligible,
        key=lambda o: (o.fit.distance_km is None, o.fit.distance_km or 0.0, o.placement_id),
    )
    pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
    number = min(max(number, 1), pages)
    place = {pid: i + 1 for i, pid in enumerate(ranking_ids)}
    return page(
        request,
        "web/student/choices.html.j2",
        who=access.principal,
        status=status,
        own=_own(access, student_id),
        student=student,
        profile=profile,
        ranking=ranking,
        place=place,
        list_errors=_list_messages(ranking_ids, errors),
        offers=shown[(number - 1) * PAGE_SIZE : number * PAGE_SIZE],
        total=len(offers),
        eligible=len(eligible),
        show_all=show_all,
        number=number,
        pages=pages,
        max_choices=MAX_PREFERENCES,
        notice=notice,
    )


def _query(*, show_all: bool, number: int, **more: str) -> str:
    values = {
        **({"show": "all"} if show_all else {}),
        **({"page": str(number)} if number > 1 else {}),
    }
    values.update(more)
    return "?" + urlencode(values) if values else ""


@router.get("/students/{student_id}/choices", openapi_extra=rule("student-self"))
async def choices(
    request: Request,
    student_id: str,
    access: Page,
    show: Annotated[Literal["eligible", "all"], Query()] = "eligible",
    page_number: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
    saved: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """The open placements of the student's region that fit their profile (all of them with
    `show=all`, each saying why it does not fit), nearest first, and their ranking."""
    notice = Message(SAVED[saved]) if saved in SAVED else None
    return await _choices_page(
        request, access, student_id, show_all=show == "all", number=page_number, notice=notice
    )


def edit(
    ids: Sequence[str], *, add: str | None, remove: str | None, move: str | None
) -> tuple[list[str], str]:
    """The ranking after a button's change (`move`: `<placement id>:<-1 or 1>`), and which
    change it was (`saved` for none)."""
    ranking = [pid for pid in ids if pid]
    if add:
        if add not in ranking:
            ranking.append(add)
        return ranking, "added"
    if remove:
        return [pid for pid in ranking if pid != remove], "removed"
    if move:
        pid, _, step = move.rpartition(":")
        if pid in ranking and step in ("-1", "1"):
            i = ranking.index(pid)
            j = i + int(step)
            if 0 <= j < len(ranking):
                ranking[i], ranking[j] = ranking[j], ranking[i]
        return ranking, "moved"
    return ranking, "saved"


@router.post(
    "/students/{student_id}/choices",
    openapi_extra=rule("student-self"),
    dependencies=[Depends(require_csrf)],
)
async def save_choices(request: Request, student_id: str, access: Page) -> Response:
    """Save the ranking as sent (`choice`, best first), after the change of the button that
    sent it (`add`, `remove`, `move`); a list the handler refuses comes back with its errors."""
    form = await request.form()
    sent = [v.strip() for v in form.getlist("choice") if isinstance(v, str)][:MAX_SENT]
    ids, change = edit(
        sent, add=_text(form, "add"), remove=_text(form, "remove"), move=_text(form, "move")
    )
    show_all = _text(form, "show") == "all"
    digits = _text(form, "page") or ""
    number = int(digits) if digits.isdigit() and len(digits) < 6 else 1
    command = SetPreferences(student_id, tuple(ids))
    try:
        await handlers.set_preferences(command, request.app.state.container.uow(access.actor))
    except Invalid as error:
        return await _choices_page(
            request,
            access,
            student_id,
            ids=ids,
            errors=error.errors,
            show_all=show_all,
            number=number,
            status=422,
        )
    target = f"/students/{student_id}/choices" + _query(
        show_all=show_all, number=number, saved=change
    )
    return RedirectResponse(target + "#ranking", status_code=303)
