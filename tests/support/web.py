"""Pages without a browser: an httpx client over the app (in memory) whose session cookie is
signed in with a token of the test issuer, as the sign-in callback would leave it.

The cookie is made the way Starlette's SessionMiddleware makes it (itsdangerous' timestamp
signer over base64 JSON), with the settings' `session_secret`; `csrf` is the session's CSRF
token for the forms (`data={"csrf": ...}` or the `X-CSRF-Token` header).
"""

from __future__ import annotations

import json
import time
from base64 import b64encode
from dataclasses import dataclass
from typing import Any

import httpx
from itsdangerous import TimestampSigner

from services.placements.entrypoints.web import SESSION_COOKIE
from services.placements.settings import PlacementsSettings
from tests.support.tokens import TestIssuer

CSRF = "test-csrf-token"


def session_cookie(settings: PlacementsSettings, session: dict[str, Any]) -> str:
    signer = TimestampSigner(settings.session_secret.get_secret_value())
    data = b64encode(json.dumps(session).encode("utf-8"))
    return signer.sign(data).decode("utf-8")


@dataclass
class Browser:
    """A signed-in (or anonymous) page client."""

    client: httpx.AsyncClient
    csrf: str = CSRF

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers={"accept": "text/html"}, **kw)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        form = {"csrf": self.csrf, **(data or {})}
        return await self.client.post(path, data=form, headers={"accept": "text/html"}, **kw)


def sign_in(
    client: httpx.AsyncClient,
    settings: PlacementsSettings,
    issuer: TestIssuer,
    role: str | None,
    **claims: Any,
) -> Browser:
    """Put a signed-in session for `role` (with `claims`) into `client`'s cookies."""
    session = {
        "at": issuer.mint(role, **claims),
        "rt": None,
        "exp": time.time() + 300,
        "csrf": CSRF,
    }
    client.cookies.set(SESSION_COOKIE, session_cookie(settings, session))
    return Browser(client)
