"""The supervisors' action links: `GET /v1/actions/{token}` shows the match and asks once more,
`POST /v1/actions/{token}` (the page's form) confirms or declines it for the company.

Anonymous (access rule `supervisor-link`): the signed, expiring, single-use token is the
credential, so the form needs no CSRF token of its own. Every answer is a small HTML page in the
supervisor's language (the browser's when the link names no known match), without scripts; a
tampered, expired or used link gets a page that says so (400, 410), never a trace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.contracts.links import ACTIONS_PATH, ActionLink, LinkExpired, LinkTampered, verify

from .. import handlers
from ..domain import links
from .auth import access

if TYPE_CHECKING:
    from ..bootstrap import Container

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
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
        (409, "The match can no longer be answered so (already answered, or closed)."),
        (410, "The link expired or was used already."),
    )
}


def _date(value: object) -> str:
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else ""


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["d"] = _date

# `access` admits anyone on this rule; it runs here as on every router, so that no route of the
# app is left out of the policy.
router = APIRouter(prefix=ACTIONS_PATH, tags=["supervisor links"], dependencies=[Depends(access)])


def render(page: links.ActionPage, language: links.Language) -> HTMLResponse:
    html = _env.get_template("action.html.j2").render(
        lang=language,
        t=links.TEXTS[language],
        words=page.words(language),
        summary=page.summary,
        ask=page.kind == "ask",
        action=page.action or "",
    )
    return HTMLResponse(html, status_code=page.status, headers=HEADERS)


def _fallback(request: Request) -> links.Language:
    """The browser's language, for pages whose match names no supervisor's."""
    return links.language_of(request.headers.get("accept-language"))


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
    up in the same transaction."""
    link = await _verified(token, request)
    if isinstance(link, HTMLResponse):
        return link
    container: Container = request.app.state.container
    page = await handlers.use_action_link(link, container.uow(actor=links.actor_of(link)))
    return render(page, page.language(_fallback(request)))
