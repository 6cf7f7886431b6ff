"""Errors on pages: the API's exception handlers answer problem JSON; on a page route (tagged
`web`), or a browser's request for an unknown address, the same errors render a page in the
request's language instead. A page that needs a signed-in user sends the browser to sign in
(htmx requests get `HX-Redirect`); a form without its CSRF token gets 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import Forbidden, IssuerUnavailable, Unauthenticated

from ...domain.errors import DomainError, Invalid
from ...domain.supervisors import NotReady
from ..problems import status_of, validation_errors
from .i18n import N_
from .render import page
from .session import CsrfRefused, SignInRequired, principal_of_state

Handler = Callable[[Request, Exception], Awaitable[Response]]

TITLES: Final[dict[int, str]] = {
    400: N_("The request could not be used"),
    403: N_("You may not do this"),
    404: N_("Not found"),
    409: N_("This has changed in the meantime"),
    410: N_("No longer available"),
    413: N_("Too much at once"),
    422: N_("Please check what you entered"),
    503: N_("Try again in a moment"),
}
TEXTS: Final[dict[int, str]] = {
    400: N_("Something in the request was not as expected. Go back and try again."),
    403: N_("Your account does not give you the right to this page or action."),
    404: N_("There is nothing at this address, or it is not yours to see."),
    409: N_("Someone changed this before you. Reload the page to see how it stands now."),
    410: N_("This has expired or was used already."),
    413: N_("The form sent more than the service takes in one go."),
    422: N_("Some fields need your attention."),
    503: N_("A service we depend on does not answer right now. Nothing was lost."),
}


def is_page(request: Request) -> bool:
    route = request.scope.get("route")
    if route is not None:
        return "web" in (getattr(route, "tags", None) or [])
    wants_html = "text/html" in request.headers.get("accept", "")
    return wants_html and not request.url.path.startswith(("/v1/", "/internal/", "/assets/"))


NOT_READY: Final = (
    N_("The placement's supervisor is not ready yet"),
    N_(
        "The region confirms a match only once the placement's supervisor has a valid supervisor "
        "training. The supervisor records their course from the link in their notice, or the "
        "coordinator records it; then the match can be confirmed."
    ),
)
"""The title and text of a confirmation the region refuses (`supervisors.NotReady`)."""


def error_page(
    request: Request,
    status: int,
    detail: str,
    fields: list[Any] | None = None,
    *,
    words: tuple[str, str] | None = None,
) -> Response:
    title, text = words or (TITLES.get(status, N_("Something went wrong")), TEXTS.get(status, ""))
    return page(
        request,
        "web/error.html.j2",
        who=principal_of_state(request),
        status=status,
        title=title,
        text=text,
        detail=detail,
        fields=fields or [],
    )


def _status_of(error: Exception) -> tuple[int, str, list[Any]]:
    if isinstance(error, Forbidden):
        return 403, error.reason, []
    if isinstance(error, Unauthenticated):
        return 403, error.reason, []
    if isinstance(error, IssuerUnavailable):
        return 503, error.reason, []
    if isinstance(error, Invalid):
        return 422, error.detail, list(error.errors)
    if isinstance(error, DomainError):
        return status_of(error), error.detail, []
    if isinstance(error, RequestValidationError):
        return 422, "", validation_errors(error)
    if isinstance(error, StarletteHTTPException):
        return error.status_code, str(error.detail), []
    return 500, "", []


def install(app: FastAPI) -> None:
    """Wrap the API's handlers (`problems.install` first) so that page routes render pages."""
    for cls, handler in list(app.exception_handlers.items()):
        if isinstance(cls, type):
            app.add_exception_handler(cls, _wrap(handler))

    async def on_sign_in(request: Request, error: Exception) -> Response:
        target = "/login?" + urlencode({"next": request.url.path})
        if request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def on_csrf(request: Request, _: Exception) -> Response:
        return error_page(request, 403, "The form has expired. Reload the page and try again.")

    app.add_exception_handler(SignInRequired, on_sign_in)
    app.add_exception_handler(CsrfRefused, on_csrf)


def _wrap(handler: Any) -> Handler:
    async def wrapped(request: Request, error: Exception) -> Response:
        if is_page(request):
            status, detail, fields = _status_of(error)
            words = NOT_READY if isinstance(error, NotReady) else None
            return error_page(request, status, detail, fields, words=words)
        response: Response = await handler(request, error)
        return response

    return wrapped
