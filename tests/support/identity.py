"""Real access tokens of the dev realm's users, from the local Keycloak (`infra.auth_issuer`).

The grant is devtools/auth.py's (`password_token`, the dev client `apl-cli`); this adds a cache
per user that fetches again shortly before a token expires (Keycloak's last 5 minutes), and an
`httpx.Auth` that signs each request as one user.

    tokens = DevTokens(infra.auth_issuer)
    client.get("/v1/students/s-000001", auth=tokens.auth("student"))
    client.get(..., headers=tokens.headers("coordinator-se-ab"))
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import httpx

from devtools import auth

MARGIN = 30.0
"""Seconds before its expiry a cached token is replaced."""


def expiry(token: str) -> float:
    """The token's `exp` (its payload read without checking the signature: the service does)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


@dataclass
class DevTokens:
    issuer: str
    password: str = auth.DEV_PASSWORD
    _cache: dict[str, tuple[str, float]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def token(self, user: str) -> str:
        """A valid access token of `user` (cached until MARGIN seconds before it expires)."""
        with self._lock:
            cached = self._cache.get(user)
            if cached is not None and cached[1] - MARGIN > time.time():
                return cached[0]
            token = auth.password_token(self.issuer, user, self.password)
            self._cache[user] = (token, expiry(token))
            return token

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def auth(self, user: str) -> SignedIn:
        return SignedIn(self, user)


@dataclass
class SignedIn(httpx.Auth):
    """Signs each request as `user` with a current token."""

    tokens: DevTokens
    user: str

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.tokens.token(self.user)}"
        yield request
