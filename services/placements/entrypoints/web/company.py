"""The company staff's pages: their placements and notification channel, the form that posts a
placement, a placement's page (edit, withdraw) and the students proposed and confirmed at it,
with the company's accept and decline.

Every page calls the API's handlers and decides with the API's rules: the company page lists
placements with the `placement-list` decision a `GET /v1/placements?company_id=...` would get; a
new placement is decided by `placement-create` with the company and region of the form, as the
API's POST is; the students of a match are shown as `links.at_placement` shows them to the
company side (name and contact once the match is confirmed).

Forms are parsed into the API's request models (`schemas.PlacementIn`, `PlacementPatch`,
`CompanyChannelIn`); their validation errors and the handlers' `Invalid` field errors are shown
next to the form's fields (`supervisor.email` is the field `supervisor_email`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from shared.auth import Forbidden
from shared.contracts.vocabulary import Language
from shared.netguard import WebhookGuard

from ... import handlers
from ...domain import policy
from ...domain.commands import AnswerMatch, ListPlacements, WithdrawPlacement
from ...domain.errors import Conflict, FieldError, Invalid
from ...domain.links import MatchAtPlacement
from ...domain.model import PlacementView
from ...ports import PlacementsUnitOfWork
from .. import schemas
from ..auth import Access, rule
from ..problems import field_name
from . import i18n
from .i18n import N_
from .render import page
from .session import Page, require_csrf

router = APIRouter(tags=["web"], include_in_schema=False)
CSRF: Final = [Depends(require_csrf)]
LIST_LIMIT: Final = 500
"""Placements listed per decision (the API's largest page)."""
MAX_REASON: Final = 1000

LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)
LANGUAGE_NAMES: Final[dict[str, str]] = {
    "sv": N_("Swedish"),
    "fi": N_("Finnish"),
    "en": N_("English"),
}
DECLINE_REASONS: Final[dict[str, str]] = {
    "no_capacity": N_("We no longer have room"),
    "skills_missing": N_("The student lacks a skill the work needs"),
    "period_mismatch": N_("The student's period does not fit ours"),
    "no_supervisor": N_("No supervisor is available"),
    "other": N_("Another reason"),
}
"""The reasons the company side declines with (`MatchDeclined.data.reason`)."""

STATES: Final[dict[str, str]] = {
    "proposed": N_("Proposed"),
    "accepted": N_("Accepted"),
    "confirmed": N_("Confirmed"),
    "declined": N_("Declined"),
    "cancelled": N_("Cancelled"),
}
OFFER_LABELS: Final[dict[str, str]] = {
    "title": N_("Title"),
    "region": N_("Region"),
    "capacity": N_("Number of students"),
    "required_skills": N_("Skills required"),
    "programmes": N_("Programmes accepted"),
    "starts_on": N_("First day"),
    "ends_on": N_("Last day"),
    "site_lat": N_("Latitude"),
    "site_lon": N_("Longitude"),
    "supervisor_name": N_("Supervisor's name"),
    "supervisor_email": N_("Supervisor's e-mail"),
    "supervisor_language": N_("Language of the supervisor's notices"),
}
CHANNEL_LABELS: Final[dict[str, str]] = {
    "channel": N_("How supervisors are told"),
    "webhook_url": N_("Webhook address"),
}
WITHDRAW_LABELS: Final[dict[str, str]] = {
    "confirm": N_("Yes, withdraw this placement"),
    "reason": N_("Why (optional)"),
}
MESSAGES: Final[dict[str, str]] = {
    "missing": N_("Fill in this field."),
    "int_parsing": N_("Enter a whole number."),
    "int_type": N_("Enter a whole number."),
    "float_parsing": N_("Enter a number."),
    "float_type": N_("Enter a number, such as 63.8258."),
    "date_from_datetime_parsing": N_("Enter a date."),
    "date_parsing": N_("Enter a date."),
    "greater_than_equal": N_("The number is too small."),
    "less_than_equal": N_("The number is too large."),
    "string_too_long": N_("This is too long."),
    "literal_error": N_("Choose one of the options."),
}
"""Validation errors by their pydantic type, in words the catalogues translate."""


def _uow(request: Request, access: Access) -> PlacementsUnitOfWork:
    """A unit of work of the app's container for the signed-in user (their actor)."""
    uow: PlacementsUnitOfWork = request.app.state.container.uow(actor=access.actor)
    return uow


def _webhooks(request: Request) -> WebhookGuard:
    """The app's SSRF guard of webhook URLs (`shared/netguard.py`)."""
    guard: WebhookGuard = request.app.state.container.webhooks
    return guard


def _see(path: str, **query: str) -> RedirectResponse:
    """Post/Redirect/Get: on to `path`, with a status message in the query."""
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    return RedirectResponse(path + suffix, status_code=303)


# ----------------------------------------------------------------------------------- forms


@dataclass
class Form:
    """A form's values as typed, and its errors: per field (shown next to it) and the others
    (shown in the summary only). `labels` name the fields in the summary."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)
    labels: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def add(self, errors: Iterable[FieldError]) -> Form:
        for error in errors:
            name = form_field(error.field)
            if name in self.labels:
                self.errors.setdefault(name, error.message)
            else:
                self.other.append(f"{error.field}: {error.message}")
        return self

    @property
    def invalid(self) -> bool:
        return bool(self.errors or self.other)


def form_field(name: str) -> str:
    """A field of the API's body (`supervisor.email`, `required_skills[2]`) as the form's
    input (`supervisor_email`, `required_skills`)."""
    return re.sub(r"\[\d+\]", "", name).replace(".", "_")


def pydantic_errors(error: ValidationError) -> list[FieldError]:
    """The validation errors of a form's model, named as `problems.validation_errors` names
    them, in the page's words where there are some."""
    errors = []
    for err in error.errors():
        message = MESSAGES.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "value_error" and err["loc"][-1:] == ("email",):
            message = N_("Enter an e-mail address, such as anna@example.se.")
        errors.append(FieldError(field_name(err["loc"]), message))
    return errors


def _values(form: FormData, names: Iterable[str]) -> dict[str, str]:
    values = {}
    for name in names:
        value = form.get(name)
        values[name] = value.strip() if isinstance(value, str) else ""
    return values


def _text(values: Mapping[str, str], name: str) -> str | None:
    return values.get(name) or None


def _number(value: str) -> float | str:
    """A coordinate as a number (a comma as the decimal sign too); what does not parse stays a
    string, for the model to refuse."""
    try:
        return float(value.replace(",", "."))
    except ValueError:
        return value


def _words(value: str) -> list[str]:
    """Skills or programmes, separated by commas or lines."""
    return [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]


def _offer_fields(values: Mapping[str, str]) -> dict[str, Any]:
    """The offer's fields of the form (no ids, no region), every one named: an empty input
    clears the field."""
    lat, lon = values.get("site_lat", ""), values.get("site_lon", "")
    site: dict[str, Any] | None = None
    if lat or lon:
        site = {k: _number(v) for k, v in (("lat", lat), ("lon", lon)) if v}
    supervisor: dict[str, Any] | None = None
    name, email = values.get("supervisor_name", ""), values.get("supervisor_email", "")
    if name or email:
        supervisor = {k: v for k, v in (("name", name), ("email", email)) if v}
        supervisor["language"] = values.get("supervisor_language") or "sv"
    return {
        "title": _text(values, "title"),
        "capacity": _text(values, "capacity"),
        "required_skills": _words(values.get("required_skills", "")),
        "programmes": _words(values.get("programmes", "")),
        "starts_on": _text(values, "starts_on"),
        "ends_on": _text(values, "ends_on"),
        "site": site,
        "supervisor": supervisor,
    }


def offer_values(view: PlacementView) -> dict[str, str]:
    """A stored placement as the edit form's values."""
    offer = view.placement.offer
    site, supervisor = offer.site, offer.supervisor
    return {
        "title": offer.title or "",
        "region": offer.region,
        "capacity": str(offer.capacity),
        "required_skills": ", ".join(offer.required_skills),
        "programmes": ", ".join(offer.programmes),
        "starts_on": offer.starts_on.isoformat() if offer.starts_on else "",
        "ends_on": offer.ends_on.isoformat() if offer.ends_on else "",
        "site_lat": f"{site.lat:g}" if site else "",
        "site_lon": f"{site.lon:g}" if site else "",
        "supervisor_name": supervisor.name if supervisor else "",
        "supervisor_email": str(supervisor.email) if supervisor else "",
        "supervisor_language": supervisor.language if supervisor else "sv",
    }


OFFER_INPUTS: Final = ("placement_id", *OFFER_LABELS)


# --------------------------------------------------------------------------- company page


def _listings(access: Access, company_id: str) -> list[policy.Decision]:
    """The `placement-list` decisions for the company's placements, as the API decides
    `GET /v1/placements?company_id=...` (and, for a coordinator of several regions, with
    `region=...` for each region of the company's they coordinate)."""
    rule, who = policy.rule("placement-list"), access.principal
    try:
        return [policy.decide(rule, who, policy.Target(company_id=company_id))]
    except Forbidden:
        pass
    decisions = []
    for region in sorted(access.target.regions):
        try:
            target = policy.Target(region=region, company_id=company_id)
            decisions.append(policy.decide(rule, who, target))
        except Forbidden:
            continue
    return decisions


async def _company_page(
    request: Request,
    access: Access,
    company_id: str,
    channel_form: Form | None = None,
    status: int = 200,
) -> HTMLResponse:
    uow = _uow(request, access)
    rows: list[schemas.PlacementOut] = []
    full = False
    for decision in _listings(access, company_id):
        query = ListPlacements(
            region=decision.region,
            company_id=decision.company_id or company_id,
            include_withdrawn=not decision.open_only,
            limit=LIST_LIMIT,
        )
        views = await handlers.list_placements(query, uow)
        full = full or len(views) == LIST_LIMIT
        rows += [schemas.PlacementOut.of(v, redact=decision.redact) for v in views]
    rows.sort(key=lambda p: p.placement_id)
    if channel_form is None:
        current = await handlers.company_channel(company_id, uow)
        channel_form = Form(
            values={
                "channel": current.kind if current else "email",
                "webhook_url": (current.webhook_url or "") if current else "",
            },
            labels=CHANNEL_LABELS,
        )
    return page(
        request,
        "web/company/company.html.j2",
        who=access.principal,
        status=status,
        company_id=company_id,
        placements=rows,
        full=full,
        limit=LIST_LIMIT,
        channel=channel_form,
        saved=request.query_params.get("saved"),
    )


@router.get("/companies/{company_id}", openapi_extra=rule("company-channel"))
async def company(request: Request, company_id: str, access: Page) -> HTMLResponse:
    """The company's placements (capacity, confirmed, period, status) and its channel."""
    return await _company_page(request, access, company_id)


@router.post(
    "/companies/{company_id}/channel",
    openapi_extra=rule("company-channel"),
    dependencies=CSRF,
)
async def set_channel(request: Request, company_id: str, access: Page) -> Response:
    """The company's default notification channel (`handlers.set_company_channel`)."""
    form = Form(_values(await request.form(), CHANNEL_LABELS), labels=CHANNEL_LABELS)
    kind = form.get("channel") or "email"
    # The address belongs to the webhook: choosing e-mail drops what the input still holds.
    url = form.get("webhook_url") if kind == "webhook" else ""
    try:
        body = schemas.CompanyChannelIn.model_validate(
            {"channel": kind, "webhook_url": url or None}
        )
        await handlers.set_company_channel(
            body.command(company_id), _uow(request, access), webhooks=_webhooks(request)
        )
    except ValidationError as error:
        form.add(pydantic_errors(error))
    except Invalid as error:
        form.add(error.errors)
    if form.invalid:
        return await _company_page(request, access, company_id, form, status=422)
    return _see(f"/companies/{company_id}", saved="channel")


# ----------------------------------------------------------------------- a new placement


def _post_regions(access: Access, company_id: str) -> tuple[str, ...] | None:
    """Whether the caller may post placements of the company at all (`Forbidden` if not):
    None for any region (the company's staff), else the regions they may post in (a
    coordinator's, each decided by `placement-create`)."""
    try:
        access.permit(company_id=company_id)
        return None
    except Forbidden:
        who = access.principal
        regions = tuple(sorted(who.regions)) if who is not None else ()
        permitted = tuple(r for r in regions if _permits(access, company_id, r))
        if not permitted:
            raise
        return permitted


def _permits(access: Access, company_id: str, region: str) -> bool:
    try:
        access.permit(company_id=company_id, region=region)
    except Forbidden:
        return False
    return True


def _new_form(request: Request, access: Access, company_id: str, form: Form) -> HTMLResponse:
    regions = _post_regions(access, company_id)
    return page(
        request,
        "web/company/placement-new.html.j2",
        who=access.principal,
        status=422 if form.invalid else 200,
        company_id=company_id,
        form=form,
        regions={r: r for r in regions} if regions is not None else None,
        languages=LANGUAGE_NAMES,
    )


@router.get("/companies/{company_id}/placements/new", openapi_extra=rule("placement-create"))
async def new_placement(request: Request, company_id: str, access: Page) -> HTMLResponse:
    """The form of a new placement; its id is chosen here, so that sending it twice posts it
    once."""
    lang = i18n.of_request(request)
    values = {
        "placement_id": f"p-{uuid.uuid4().hex[:12]}",
        "capacity": "1",
        "supervisor_language": lang,
    }
    return _new_form(request, access, company_id, Form(values, labels=OFFER_LABELS))


@router.post(
    "/companies/{company_id}/placements/new",
    openapi_extra=rule("placement-create"),
    dependencies=CSRF,
)
async def post_placement(request: Request, company_id: str, access: Page) -> Response:
    """Post the placement (`handlers.post_placement`), decided with the form's region."""
    _post_regions(access, company_id)
    form = Form(_values(await request.form(), OFFER_INPUTS), labels=OFFER_LABELS)
    placement_id = form.get("placement_id") or f"p-{uuid.uuid4().hex[:12]}"
    form.values["placement_id"] = placement_id
    data = {
        "placement_id": placement_id,
        "company_id": company_id,
        **({"region": form.get("region")} if form.get("region") else {}),
        **{k: v for k, v in _offer_fields(form.values).items() if v not in (None, [])},
    }
    try:
        body = schemas.PlacementIn.model_validate(data)
    except ValidationError as error:
        return _new_form(request, access, company_id, form.add(pydantic_errors(error)))
    access.permit(company_id=company_id, region=body.region)
    try:
        await handlers.post_placement(
            body.command(), _uow(request, access), webhooks=_webhooks(request)
        )
    except Invalid as error:
        return _new_form(request, access, company_id, form.add(error.errors))
    except Conflict:
        # The same form sent again: its placement was posted the first time.
        existing = await handlers.get_placement(placement_id, _uow(request, access))
        if existing.placement.offer.company_id != company_id:
            raise
    return _see(f"/placements/{placement_id}", posted="1")


# ------------------------------------------------------------------------ one placement


async def _matches(
    request: Request, access: Access, placement_id: str
) -> list[MatchAtPlacement] | None:
    """The matches at the placement, if `placement-matches` allows the caller (decided on
    the same placement's facts); None if not."""
    try:
        policy.decide(policy.rule("placement-matches"), access.principal, access.target)
    except Forbidden:
        return None
    return await handlers.placement_match_students(placement_id, _uow(request, access))


async def _placement_page(
    request: Request,
    access: Access,
    placement_id: str,
    *,
    edit: Form | None = None,
    withdraw: Form | None = None,
) -> HTMLResponse:
    view = await handlers.get_placement(placement_id, _uow(request, access))
    if edit is None:
        edit = Form(offer_values(view), labels=OFFER_LABELS)
    edit.values["region"] = view.placement.offer.region  # it cannot change
    withdraw = withdraw or Form(labels=WITHDRAW_LABELS)
    return page(
        request,
        "web/company/placement.html.j2",
        who=access.principal,
        status=422 if edit.invalid or withdraw.invalid else 200,
        placement=schemas.PlacementOut.of(view),
        form=edit,
        withdraw=withdraw,
        matches=await _matches(request, access, placement_id),
        languages=LANGUAGE_NAMES,
        reasons=DECLINE_REASONS,
        states=STATES,
        done=request.query_params,
    )


@router.get("/placements/{placement_id}", openapi_extra=rule("placement-manage"))
async def placement(request: Request, placement_id: str, access: Page) -> HTMLResponse:
    """A placement: its facts, the students at it, the edit and withdraw forms."""
    return await _placement_page(request, access, placement_id)


@router.post(
    "/placements/{placement_id}",
    openapi_extra=rule("placement-manage"),
    dependencies=CSRF,
)
async def edit_placement(request: Request, placement_id: str, access: Page) -> Response:
    """Change the placement (`handlers.patch_placement`); region and id stay."""
    form = Form(_values(await request.form(), OFFER_LABELS), labels=OFFER_LABELS)
    try:
        body = schemas.PlacementPatch.model_validate(_offer_fields(form.values))
        access.permit(moves_to=body.company_id)
        await handlers.patch_placement(
            body.command(placement_id), _uow(request, access), webhooks=_webhooks(request)
        )
    except ValidationError as error:
        form.add(pydantic_errors(error))
    except Invalid as error:
        form.add(error.errors)
    if form.invalid:
        return await _placement_page(request, access, placement_id, edit=form)
    return _see(f"/placements/{placement_id}", saved="1")


@router.post(
    "/placements/{placement_id}/withdraw",
    openapi_extra=rule("placement-manage"),
    dependencies=CSRF,
)
async def withdraw_placement(request: Request, placement_id: str, access: Page) -> Response:
    """Withdraw the placement (`handlers.withdraw_placement`) once the form confirms it."""
    form = Form(_values(await request.form(), WITHDRAW_LABELS), labels=WITHDRAW_LABELS)
    if form.get("confirm") != "yes":
        form.errors["confirm"] = N_("Tick the box to confirm that the placement is withdrawn.")
    if len(form.get("reason")) > MAX_REASON:
        form.errors["reason"] = N_("This is too long.")
    if form.invalid:
        return await _placement_page(request, access, placement_id, withdraw=form)
    command = WithdrawPlacement(placement_id, form.get("reason") or None)
    await handlers.withdraw_placement(command, _uow(request, access))
    return _see(f"/placements/{placement_id}", withdrawn="1")


@router.get("/placements/{placement_id}/matches", openapi_extra=rule("placement-matches"))
async def placement_matches(request: Request, placement_id: str, access: Page) -> HTMLResponse:
    """The students proposed and confirmed at the placement, with the company's answers (for
    htmx: the list alone)."""
    view = await handlers.get_placement(placement_id, _uow(request, access))
    found = await handlers.placement_match_students(placement_id, _uow(request, access))
    return page(
        request,
        "web/company/matches.html.j2",
        who=access.principal,
        partial=True,
        placement=schemas.PlacementOut.of(view),
        matches=found,
        reasons=DECLINE_REASONS,
        states=STATES,
    )


@router.post(
    "/matches/{match_id}/company-answer",
    openapi_extra=rule("match-answer"),
    dependencies=CSRF,
)
async def company_answer(request: Request, match_id: uuid.UUID, access: Page) -> Response:
    """The company side accepts or declines a proposal (`handlers.answer_match`, by the
    company), with a reason when it declines."""
    access.permit(by="company")
    values = _values(await request.form(), ("answer", "reason"))
    answer, reason = values["answer"], values["reason"] or None
    if answer == "accept":
        command = AnswerMatch(match_id, "company", "accept")
    elif answer == "decline" and reason in DECLINE_REASONS:
        command = AnswerMatch(match_id, "company", "decline", reason)
    elif answer == "decline":
        raise Invalid([FieldError("reason", "choose one of the reasons offered")])
    else:
        raise Invalid([FieldError("answer", "must be accept or decline")])
    updated = await handlers.answer_match(command, _uow(request, access))
    return RedirectResponse(
        f"/placements/{updated.placement_id}?answered={answer}#students", status_code=303
    )
