"""RFC 9457 problem details for every error the API returns, and the request body size limit.

Authentication and authorisation (`shared.auth`): `Unauthenticated` is a 401 with an RFC 6750
challenge, `WWW-Authenticate: Bearer realm="apl"` for a request without a token and
`Bearer realm="apl", error="invalid_token", error_description="..."` for a bad one;
`Forbidden` a 403; `IssuerUnavailable` a 503 with `Retry-After` (the issuer's keys cannot be had:
not the caller's fault, so never a 401 that would make a client drop a good token).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Forbidden, IssuerUnavailable, Unauthenticated

from ..domain.errors import Conflict, DomainError, FieldError, Invalid, NotFound

PROBLEM_JSON = "application/problem+json"
MAX_ERRORS = 50
"""Errors a problem names at most; `errors_total` counts them all."""
MAX_DETAIL = 2000
"""Characters of a problem's `detail` at most."""
REALM = "apl"
TYPE_BASE = "https://apl-match.example/problems/"

_STATUS = {Invalid: 422, NotFound: 404, Conflict: 409}
_TYPES = {
    422: "invalid-request",
    404: "not-found",
    409: "conflict",
    413: "body-too-large",
    401: "unauthorized",
    403: "forbidden",
    503: "issuer-unavailable",
}


def problem(
    status: int, title: str, detail: str, errors: Iterable[FieldError] = ()
) -> JSONResponse:
    """The problem details: the first MAX_ERRORS errors and their count (`errors_total`), a
    detail of at most MAX_DETAIL characters (so 10,000 bad items answer in a few kilobytes)."""
    every = list(errors)
    shown = every[:MAX_ERRORS]
    more = f"; and {len(every) - MAX_ERRORS} more" if len(every) > MAX_ERRORS else ""
    if more:
        detail = "; ".join(f"{e.field}: {e.message}" for e in shown)
    if len(detail) + len(more) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - len(more) - 1] + "…"
    detail += more
    body: dict[str, Any] = {
        "type": TYPE_BASE + _TYPES[status] if status in _TYPES else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": [{"field": e.field, "message": e.message} for e in shown],
        "errors_total": len(every),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def field_name(loc: Sequence[int | str]) -> str:
    """`('body', 'preferences', 3)` -> `preferences[3]`; `('query', 'limit')` -> `limit`."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "(body)"


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors():
        name = field_name(err.get("loc", ()))
        message = str(err.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        elif err.get("type") == "json_invalid":
            name, message = "(body)", f"not valid JSON: {err.get('ctx', {}).get('error', message)}"
        errors.append(FieldError(name, message))
    return errors


def body_error(cause: BaseException) -> FieldError:
    """What was wrong with a body FastAPI could not parse (it answers those with a bare 400):
    not UTF-8 text, or JSON nested too deep."""
    if isinstance(cause, UnicodeDecodeError):
        return FieldError("(body)", f"not UTF-8 text (byte {cause.start})")
    if isinstance(cause, RecursionError):
        return FieldError("(body)", "not valid JSON: nested too deep")
    return FieldError("(body)", "could not be parsed")


def status_of(error: DomainError) -> int:
    """The HTTP status of a domain error."""
    return next((s for cls, s in _STATUS.items() if isinstance(error, cls)), 400)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem details."""

    # Starlette calls each handler only with the exception class it was registered for.
    async def on_domain(_: Request, error: Exception) -> Response:
        exc = cast(DomainError, error)
        status = status_of(exc)
        errors = exc.errors
        return problem(status, exc.title, exc.detail, errors)

    async def on_validation(_: Request, error: Exception) -> Response:
        errors = validation_errors(cast(RequestValidationError, error))
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return problem(422, "Invalid request", detail, errors)

    async def on_http(_: Request, error: Exception) -> Response:
        exc = cast(StarletteHTTPException, error)
        if isinstance(exc.__cause__, _TooLarge):  # FastAPI wraps errors of reading the body
            return problem(413, "Request body too large", str(exc.__cause__))
        if exc.status_code == 400 and exc.__cause__ is not None:  # the body could not be parsed
            unparsed = body_error(exc.__cause__)
            return problem(422, "Invalid request", f"(body): {unparsed.message}", [unparsed])
        response = problem(exc.status_code, _title(exc.status_code), str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def on_unauthenticated(_: Request, error: Exception) -> Response:
        exc = cast(Unauthenticated, error)
        response = problem(401, "Unauthorized", exc.reason)
        response.headers["WWW-Authenticate"] = challenge(exc)
        return response

    async def on_forbidden(_: Request, error: Exception) -> Response:
        return problem(403, "Forbidden", cast(Forbidden, error).reason)

    async def on_issuer(_: Request, error: Exception) -> Response:
        exc = cast(IssuerUnavailable, error)
        response = problem(503, "Identity provider unavailable", exc.reason)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    app.add_exception_handler(Unauthenticated, on_unauthenticated)
    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(IssuerUnavailable, on_issuer)
    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


def challenge(error: Unauthenticated) -> str:
    """The RFC 6750 `WWW-Authenticate` value for a refused token (none given: no error code)."""
    if error.missing:
        return f'Bearer realm="{REALM}"'
    # a quoted-string of printable ASCII without quotes or backslashes
    described = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in error.reason)
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{described}"'


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413 problem details, whether
    announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._announces_too_much(scope):
            await self._too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(f"the request body exceeds {self.max_bytes} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._too_large(scope, receive, send)

    def _announces_too_much(self, scope: Scope) -> bool:
        """Whether a Content-Length header announces more than `max_bytes` (one that is not a
        number announces nothing)."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = 0
                if length > self.max_bytes:
                    return True
        return False

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, "Request body too large", f"the request body exceeds {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
