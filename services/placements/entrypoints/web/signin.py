"""The start page, signing in and out.

`/` shows a signed-in person their first page (a student their placement, company staff their
placements, a coordinator their first region, an operator the operations overview) and anyone
else the sign-in button. `/login` starts the authorization code flow with PKCE, `/auth/callback`
finishes it, `POST /logout` ends the session here and at the issuer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from ...domain import policy
from .. import auth as api_auth
from .render import nav, page
from .session import (
    CALLBACK,
    SignInRequired,
    finish_sign_in,
    principal,
    require_csrf,
    safe_next,
    sign_in_url,
    sign_out,
)

router = APIRouter(tags=["web"], include_in_schema=False)
PUBLIC = {"x-apl-access": "public"}


@router.get("/", openapi_extra=PUBLIC)
async def home(request: Request, signed_out: Annotated[str | None, Query()] = None) -> Response:
    """The start page: a signed-in person goes on to their first page."""
    who = await principal(request)
    if who is None:
        return page(request, "web/home.html.j2", who=None, signed_out=signed_out is not None)
    # The start page decides the `signed-in` rule itself: anonymous callers see it too.
    decided = await api_auth.authorise(request, policy.rule("signed-in"), who)
    request.state.who = decided.principal
    first = nav(decided.principal)
    if first:
        return RedirectResponse(first[0][0], status_code=303)
    return page(request, "web/unlinked.html.j2", who=decided.principal)


@router.get("/login", openapi_extra=PUBLIC)
async def login(
    request: Request, next: Annotated[str | None, Query()] = None
) -> Response:  # the parameter's public name
    """Send the browser to the identity provider to sign in."""
    return RedirectResponse(sign_in_url(request, safe_next(next)), status_code=303)


@router.get(CALLBACK, openapi_extra=PUBLIC)
async def callback(request: Request) -> Response:
    """The identity provider's answer: keep the tokens, go on to the page asked for."""
    try:
        target = await finish_sign_in(request)
    except SignInRequired as error:
        return page(request, "web/signin-failed.html.j2", who=None, status=400, reason=error.reason)
    return RedirectResponse(target, status_code=303)


@router.post("/logout", openapi_extra=PUBLIC, dependencies=[Depends(require_csrf)])
async def logout(request: Request) -> Response:
    """Sign out here and at the identity provider."""
    return RedirectResponse(await sign_out(request), status_code=303)
