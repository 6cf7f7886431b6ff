"""The supervisors' action links: `GET /v1/actions/{token}` shows the match and asks once more,
`POST /v1/actions/{token}` (the page's form) confirms or declines it for the company, or, for a
training link, records the day the supervisor completed the region's supervisor course (form
field `trained_on`, also taken by a confirmation the region refuses until the supervisor is
ready).

Anonymous (access rule `supervisor-link`): the signed, expiring, single-use token is the
credential, so the form needs no CSRF token of its own. Every answer is a small HTML page in the
supervisor's language (the browser's when the link names no known match), without scripts; a
tampered, expired or used link gets a page that says so (400, 410), never a trace. Its words are
English message ids translated by the web application's catalogues (`web/i18n.py`), its dates
formatted in its language.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from shared.contracts.links import (
    ACTIONS_PATH,
    LINK_DAYS,
    ActionLink,
    LinkExpired,
    LinkTampered,
    verify,
)

from .. import handlers
from ..domain import links
from ..domain.rules import MatchStateName
from .auth import access
from .web import i18n
from .web.i18n import N_
from .web.render import environment

if TYPE_CHECKING:
    from ..bootstrap import Container

ACCESS: dict[str, Any] = {"x-apl-access": "supervisor-link"}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
PAGES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {"text/html": {}}}
    for status, description in (
        (400, "The link is incomplete or was altered."),
        (404, "The match the link names does not exist."),
        (
            409,
            "The match can no longer be answered so (already answered, or closed), or the "
            "region confirms it only once the supervisor's training is valid.",
        ),
        (410, "The link expired or was used already."),
        (422, "The day of the supervisor's course is missing, unreadable or in the future."),
    )
}

TITLES: Final[dict[str, str]] = {
    "ask_confirm": N_("Confirm the proposal?"),
    "ask_decline": N_("Decline the proposal?"),
    "done_confirm": N_("Thank you! The proposal is confirmed"),
    "done_decline": N_("The proposal is declined"),
    "tampered": N_("This link is not valid"),
    "expired": N_("This link has expired"),
    "used": N_("This link was already used"),
    "unknown": N_("The proposal does not exist"),
    "closed": N_("The proposal is no longer open"),
    "ask_training": N_("Record your supervisor training"),
    "done_training": N_("Thank you! Your supervisor training is recorded"),
    "done_training_expired": N_("Your supervisor training is recorded"),
    "not_ready": N_("The proposal cannot be confirmed yet"),
}
"""Each page's heading, by `ActionPage.key`."""
TEXTS: Final[dict[str, str]] = {
    "ask_confirm": N_(
        "You are about to confirm the proposal below for your company. Once the student has "
        "accepted too, the placement is confirmed and you receive the student's contact details."
    ),
    "ask_decline": N_(
        "You are about to decline the proposal below for your company. This cannot be undone here."
    ),
    "done_confirm": N_(
        "Your answer is recorded. Once the student has accepted too, you receive a message with "
        "the student's contact details."
    ),
    "done_decline": N_(
        "Your answer is recorded. The coordinator sees it, and the student may get a new proposal."
    ),
    "tampered": N_(
        "The link is incomplete or was changed. Open it directly from the e-mail, or contact your "
        "placement coordinator."
    ),
    "expired": N_(
        "The links in the notices are valid for %(days)s days. Contact your placement coordinator "
        "if the proposal still stands."
    ),
    "used": N_("Each link works once, and this one has been used. The match is %(state)s."),
    "unknown": N_(
        "The proposal this link is about does not exist. Contact your placement coordinator."
    ),
    "closed": N_(
        "The proposal was already answered for your company, or it is no longer open. The match "
        "is %(state)s."
    ),
    "ask_training": N_(
        "Your region asks workplace supervisors to complete its supervisor course. When you "
        "have completed it, give the day here: it is recorded for you as the supervisor of the "
        "placement below."
    ),
    "done_training": N_(
        "The course you completed on %(date)s is recorded. It counts until %(expires)s."
    ),
    "done_training_expired": N_(
        "The course you completed on %(date)s is recorded, but it no longer counts: it expired "
        "on %(expires)s. Take the course again to be ready for your student."
    ),
    "not_ready": N_(
        "Your region confirms a placement only once its supervisor has a valid supervisor "
        "training. Give the day you completed the course below, or take the course first."
    ),
}
"""Each page's text, by `ActionPage.key` (`%(state)s`: the match's state in words, `%(days)s`:
how long a link is valid, `%(date)s` and `%(expires)s`: the supervisor's course and when it
stops counting)."""
BUTTONS: Final[dict[str, str]] = {
    "confirm": N_("Confirm"),
    "decline": N_("Decline"),
    "training": N_("Record my course"),
    "confirm_training": N_("Record my course and confirm"),
}
TRAINING: Final[dict[str, str]] = {
    "not_started": N_("No supervisor training is recorded for you."),
    "valid": N_("Your supervisor training of %(date)s counts until %(expires)s."),
    "expired": N_("Your supervisor training of %(date)s expired on %(expires)s."),
}
"""What the page says of the supervisor's training, by its status."""
DAY_ERRORS: Final[dict[str, str]] = {
    "missing": N_("Give the day you completed the course."),
    "unreadable": N_("Give the day as year-month-day, for example 2026-09-14."),
    "future": N_("The day is in the future. Give the day you completed the course."),
    "too_old": N_("The day is before 1950. Check the year."),
}
"""What is wrong with the day a supervisor gave (`ActionPage.error`)."""
STATES: Final[dict[MatchStateName, str]] = {
    "proposed": N_("proposed"),
    "accepted": N_("accepted"),
    "confirmed": N_("confirmed"),
    "declined": N_("declined"),
    "cancelled": N_("cancelled"),
}

# `access` admits anyone on this rule; it runs here as on every router, so that no route of the
# app is left out of the policy.
router = APIRouter(prefix=ACTIONS_PATH, tags=["supervisor links"], dependencies=[Depends(access)])


def _button(page: links.ActionPage) -> str:
    if page.action is None:
        return ""
    if page.action == "confirm" and page.asks_training:
        return BUTTONS["confirm_training"]
    return BUTTONS[page.action]


def render(page: links.ActionPage, language: links.Language) -> HTMLResponse:
    words = i18n.Words(language)
    _ = words.gettext
    state = _(STATES[page.summary.state]) if page.summary else ""
    readiness = page.readiness
    dates = {
        "date": words.date(readiness.trained_on) if readiness else "",
        "expires": words.date(readiness.expires_on) if readiness else "",
    }
    html = environment.get_template("action.html.j2").render(
        lang=language,
        w=words,
        _=_,
        gettext=_,
        ngettext=words.ngettext,
        title=_(TITLES[page.key]),
        text=_(TEXTS[page.key]) % {"state": state, "days": LINK_DAYS, **dates},
        button=_(_button(page)),
        summary=page.summary,
        state=state,
        ask=page.kind in {"ask", "not_ready"},
        action=page.action or "",
        readiness=readiness,
        training=_(TRAINING[readiness.status]) % dates if readiness else "",
        asks_training=page.asks_training,
        error=_(DAY_ERRORS[page.error]) if page.error else "",
        trained_on=page.trained_on,
        today=datetime.now(UTC).date().isoformat(),
    )
    return HTMLResponse(html, status_code=page.status, headers=HEADERS)


def _fallback(request: Request) -> links.Language:
    """The browser's language (as the web application chooses it from `Accept-Language`), for
    pages whose match names no supervisor's."""
    return i18n.negotiate(request.headers.get("accept-language"))


async def _verified(token: str, request: Request) -> ActionLink | HTMLResponse:
    """The link a token names, or the page that refuses it."""
    container: Container = request.app.state.container
    secret = container.settings.action_link_secret.get_secret_value().encode()
    try:
        return verify(secret, token, now=datetime.now(UTC))
    except LinkExpired as expired:
        known = await handlers.action_link_page(expired.link, container.uow())
        page = links.ActionPage("expired", expired.link.action)
        return render(page, known.language(_fallback(request)))
    except LinkTampered:
        return render(links.ActionPage("tampered"), _fallback(request))


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    responses=PAGES,
    openapi_extra=ACCESS,
    summary="A supervisor's link: show the match and ask once more",
)
async def open_link(token: str, request: Request) -> HTMLResponse:
    """The match the link names (placement, the student's programme and period; the student's
    name once confirmed) and a form that confirms or declines it. Opening it changes nothing
    (mail scanners open links too)."""
    link = await _verified(token, request)
    if isinstance(link, HTMLResponse):
        return link
    container: Container = request.app.state.container
    page = await handlers.action_link_page(link, container.uow())
    return render(page, page.language(_fallback(request)))


@router.post(
    "/{token}",
    response_class=HTMLResponse,
    responses=PAGES,
    openapi_extra=ACCESS,
    summary="A supervisor's link: confirm or decline the match, once",
)
async def use_link(token: str, request: Request) -> HTMLResponse:
    """Confirm (the company side's accept, MatchAccepted by=company) or decline (MatchDeclined,
    reason `supervisor_declined`), recorded with the actor role `supervisor`; the link is used
    up in the same transaction. A training link records the form's `trained_on` (the day the
    supervisor completed the region's course; not in the future), and so does a confirmation
    that carries it, before it confirms. A region that requires a ready supervisor refuses the
    confirmation until then (409, saying why, asking for the day)."""
    link = await _verified(token, request)
    if isinstance(link, HTMLResponse):
        return link
    container: Container = request.app.state.container
    form = await request.form()
    given = form.get("trained_on")
    page = await handlers.use_action_link(
        link,
        container.uow(actor=links.actor_of(link)),
        trained_on=given if isinstance(given, str) else None,
    )
    return render(page, page.language(_fallback(request)))
