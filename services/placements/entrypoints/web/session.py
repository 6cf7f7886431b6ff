"""Who is signed in to the web application, and how they sign in and out.

Sign-in is the OIDC authorization code flow with PKCE (authlib's OAuth 2.0 client) against the
issuer the API trusts; the access and refresh tokens are kept in the session, a cookie signed
with `APL_SESSION_SECRET` (Starlette's SessionMiddleware: HttpOnly, SameSite=Lax, Secure where
the public address is https). Every page request verifies the session's access token with the
same verifier as the API, refreshes it when it has expired, and decides with the same rules
(`entrypoints/auth.authorise`); a session that cannot be refreshed signs in again.

Every form carries the session's CSRF token (`csrf` field, or the `X-CSRF-Token` header htmx
sends); `require_csrf` refuses a POST without it.
"""

from __future__ import annotations

import hmac
import secrets
import ssl
import time
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlencode, urlsplit

import httpx
import structlog
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import Depends, Request

from shared.auth import Forbidden, IssuerUnavailable, Principal, Unauthenticated

from .. import auth as api_auth
from ..auth import Access
from . import i18n

if TYPE_CHECKING:
    from ...bootstrap import Container
    from ...settings import PlacementsSettings

log = structlog.get_logger(__name__)

CALLBACK: Final = "/auth/callback"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
_TLS: Final = ssl.create_default_context()
"""One TLS context for the calls to the issuer (making one per client costs milliseconds)."""
REFRESH_MARGIN: Final = 15.0
"""Seconds before its expiry that an access token is refreshed."""


class SignInRequired(Exception):
    """The page needs a signed-in user, and the session has none (or it ended)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """A form came without the session's CSRF token."""


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def require_csrf(request: Request) -> None:
    """A form's POST carries the session's CSRF token, or it is refused (403 page)."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or sent is None or not hmac.compare_digest(expected, sent):
        raise CsrfRefused


def safe_next(value: str | None) -> str:
    """A path of this application to return to after signing in (never another site)."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    return value


def _base_url(request: Request, settings: PlacementsSettings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


def _redirect_uri(request: Request, settings: PlacementsSettings) -> str:
    return _base_url(request, settings) + CALLBACK


async def _token_request(request: Request, form: dict[str, str]) -> dict[str, Any]:
    """POST to the issuer's token endpoint as the web client; the token response, or
    `SignInRequired` (refused, or the issuer away)."""
    settings = _container(request).settings
    secret = settings.web_client_secret.get_secret_value()
    data = {**form, "client_id": settings.web_client_id}
    auth = httpx.BasicAuth(settings.web_client_id, secret) if secret else httpx.USE_CLIENT_DEFAULT
    async with httpx.AsyncClient(timeout=10.0, verify=_TLS) as http:
        try:
            response = await http.post(settings.token_url, data=data, auth=auth)
        except httpx.HTTPError as error:
            log.warning("token endpoint unreachable", error=str(error)[:200])
            raise SignInRequired("the identity provider did not answer") from error
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if response.status_code != 200 or "access_token" not in body:
        log.info("token request refused", status=response.status_code, error=body.get("error"))
        raise SignInRequired(
            f"the identity provider refused: {body.get('error', response.status_code)}"
        )
    token: dict[str, Any] = body
    return token


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def sign_in_url(request: Request, next_path: str) -> str:
    """The issuer's authorization address for a new sign-in; the state, nonce and PKCE verifier
    wait in the session for the callback."""
    settings = _container(request).settings
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(24)
    url = prepare_grant_uri(
        settings.authorization_url,
        client_id=settings.web_client_id,
        response_type="code",
        redirect_uri=_redirect_uri(request, settings),
        scope="openid",
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        ui_locales=i18n.of_request(request),
    )
    request.session["signin"] = {"state": state, "verifier": verifier, "next": next_path}
    return str(url)


async def finish_sign_in(request: Request) -> str:
    """Exchange the callback's code for tokens, keep them, and answer where to go next.
    `SignInRequired` for a callback that does not continue this session's sign-in."""
    pending = request.session.pop("signin", None)
    params = request.query_params
    if params.get("error"):
        raise SignInRequired(f"the identity provider answered {params.get('error')}")
    if not isinstance(pending, dict) or not params.get("code"):
        raise SignInRequired("the sign-in was not started here, or has been used")
    if not hmac.compare_digest(str(pending.get("state")), params.get("state", "")):
        raise SignInRequired("the sign-in's state does not match")
    container = _container(request)
    token = await _token_request(
        request,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "code_verifier": str(pending.get("verifier")),
            "redirect_uri": _redirect_uri(request, container.settings),
        },
    )
    principal = await container.verifier.verify(str(token["access_token"]))
    _keep(request, token)
    log.info("signed in", subject=principal.subject, role=principal.role)
    return safe_next(pending.get("next"))


def _keep(request: Request, token: dict[str, Any]) -> None:
    csrf = request.session.get("csrf")
    request.session.clear()  # a new session for a new sign-in (no fixation)
    request.session.update(
        {
            "at": token["access_token"],
            "rt": token.get("refresh_token"),
            "exp": time.time() + float(token.get("expires_in", 60)),
            "csrf": csrf if isinstance(csrf, str) else secrets.token_urlsafe(32),
        }
    )


async def _fresh_token(request: Request) -> str:
    session = request.session
    access, expires = session.get("at"), session.get("exp")
    if not isinstance(access, str):
        raise SignInRequired("not signed in")
    if isinstance(expires, float | int) and expires - REFRESH_MARGIN > time.time():
        return access
    refresh = session.get("rt")
    if not isinstance(refresh, str):
        raise SignInRequired("the session has expired")
    token = await _token_request(request, {"grant_type": "refresh_token", "refresh_token": refresh})
    _keep(request, token)
    return str(token["access_token"])


async def principal(request: Request) -> Principal | None:
    """The signed-in user of this request, or None (no session, or one that ended)."""
    try:
        token = await _fresh_token(request)
        return await _container(request).verifier.verify(token)
    except (SignInRequired, Unauthenticated):
        return None


async def page_access(request: Request) -> Access:
    """The `access` of a page: its route's rule, decided for the session's user."""
    rule = api_auth.rule_of(request.scope.get("route"))
    if rule is None:
        raise Forbidden("this page declares no access rule")
    if rule.anonymous:
        return await api_auth.authorise(request, rule, None)
    try:
        token = await _fresh_token(request)
        who = await _container(request).verifier.verify(token)
    except Unauthenticated as error:
        request.session.clear()
        raise SignInRequired(error.reason) from error
    except IssuerUnavailable:
        raise
    decided = await api_auth.authorise(request, rule, who)
    request.state.who = decided.principal
    return decided


Page = Annotated[Access, Depends(page_access)]
"""A page route's decided access: `access: Page`."""


def principal_of_state(request: Request) -> Principal | None:
    """The user `page_access` decided this request for (None before, or anonymous)."""
    who = getattr(request.state, "who", None)
    return who if isinstance(who, Principal) else None


async def sign_out(request: Request) -> str:
    """End the session here and at the issuer (its refresh token); where to go next."""
    refresh = request.session.get("rt")
    request.session.clear()
    settings = _container(request).settings
    secret = settings.web_client_secret.get_secret_value()
    if isinstance(refresh, str):
        async with httpx.AsyncClient(timeout=10.0, verify=_TLS) as http:
            try:
                await http.post(
                    settings.logout_url,
                    data={"client_id": settings.web_client_id, "refresh_token": refresh},
                    auth=httpx.BasicAuth(settings.web_client_id, secret)
                    if secret
                    else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.HTTPError as error:  # the local session is gone either way
                log.info("sign-out at the issuer failed", error=str(error)[:200])
    return "/?" + urlencode({"signed_out": "1"})
