"""Rendering pages: one Jinja2 environment (autoescaped, strict), the `i18n` extension bound to
the request's language, and the context every page has (who is signed in, the CSRF token, the
languages, the navigation of their role).

A request from htmx (`HX-Request`) gets the template's `content` block alone when the template
is rendered with `partial=True`; every other request gets the whole page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.assets import vendor_url
from shared.auth import Principal

from . import i18n
from .i18n import N_
from .session import CSRF_FIELD, CSRF_HEADER, csrf_token

TEMPLATES: Final = Path(__file__).resolve().parents[2] / "templates"
HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self' {issuer}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
}

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
    auto_reload=False,  # templates are part of the release: no file checks per page
)
environment.globals["vendor"] = vendor_url


def nav(who: Principal | None) -> list[tuple[str, str]]:
    """(path, English label) of the pages of the signed-in person's roles."""
    if who is None:
        return []
    items: list[tuple[str, str]] = []
    if who.has("student") and who.student_id:
        items += [
            (f"/students/{who.student_id}", N_("My placement")),
            (f"/students/{who.student_id}/choices", N_("My choices")),
        ]
    if who.has("teacher") and who.student_id:
        items += [
            (f"/students/{who.student_id}", N_("My working-life period")),
            (f"/students/{who.student_id}/choices", N_("My choices")),
            (f"/teachers/{who.student_id}/profile", N_("My teacher profile")),
        ]
    if who.has("company") and who.company_id:
        items.append((f"/companies/{who.company_id}", N_("Our placements")))
    if who.has("coordinator"):
        items += [(f"/regions/{region}", region) for region in sorted(who.regions)]
    if who.has("operator"):
        items.append(("/operations", N_("Operations")))
    return items


def page(
    request: Request,
    template: str,
    *,
    who: Principal | None,
    status: int = 200,
    partial: bool = False,
    **context: Any,
) -> HTMLResponse:
    """The page `template` in the request's language."""
    lang = i18n.of_request(request)
    words = i18n.Words(lang)
    tpl = environment.get_template(template)
    values = {
        "request": request,
        "path": request.url.path,
        "lang": lang,
        "langs": i18n.NAMES,
        "w": words,
        "_": words.gettext,
        "gettext": words.gettext,
        "ngettext": words.ngettext,
        "who": who,
        "nav": nav(who),
        "csrf": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "csrf_header": CSRF_HEADER,
        **context,
    }
    if partial and request.headers.get("hx-request") == "true":
        html = "".join(tpl.blocks["content"](tpl.new_context(values)))
    else:
        html = tpl.render(values)
    response = HTMLResponse(html, status_code=status, headers=headers(request))
    if request.query_params.get("lang") == lang:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


def headers(request: Request) -> dict[str, str]:
    settings = request.app.state.container.settings
    parts = urlsplit(settings.authorization_url) if settings.auth_issuer else None
    issuer = f"{parts.scheme}://{parts.netloc}" if parts else ""
    values = dict(HEADERS)
    values["Content-Security-Policy"] = values["Content-Security-Policy"].format(issuer=issuer)
    return values
