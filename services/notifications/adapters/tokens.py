"""Access tokens of this service's own account (OAuth 2.0 client credentials, RFC 6749 §4.4).

`ClientCredentials` finds the issuer's token endpoint in its discovery document
(`<issuer>/.well-known/openid-configuration`), asks it for a token with the client's id and
secret (HTTP Basic, `client_secret_basic`), and keeps the token until `margin` seconds before it
expires; concurrent callers wait for one request. `invalidate(token)` drops a token the resource
server refused (a 401), so the next call fetches a new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog

from services.notifications.domain.notices import TransientError, UpstreamUnavailable

log = structlog.get_logger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"


class TokenSource(Protocol):
    async def token(self) -> str | None:
        """A bearer token to send, or None to send none (no issuer configured)."""
        ...

    def invalidate(self, token: str) -> None:
        """The resource server refused `token`: do not hand it out again."""
        ...


class NoToken:
    """No issuer configured (local development without one): requests carry no token."""

    async def token(self) -> str | None:
        return None

    def invalidate(self, token: str) -> None:
        return None


@dataclass
class _Cached:
    value: str
    renew_at: float


class ClientCredentials:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        margin: float = 30.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.margin = margin
        self.timeout = timeout
        self.clock = clock
        self._endpoint: str | None = None
        self._cached: _Cached | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str | None:
        cached = self._cached
        if cached is not None and self.clock() < cached.renew_at:
            return cached.value
        async with self._lock:
            cached = self._cached  # another caller may have fetched it meanwhile
            if cached is None or self.clock() >= cached.renew_at:
                cached = self._cached = await self._fetch()
            return cached.value

    def invalidate(self, token: str) -> None:
        if self._cached is not None and self._cached.value == token:
            self._cached = None

    async def _call(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        try:
            return await self.http.request(
                method, url, data=data, auth=auth or httpx.USE_CLIENT_DEFAULT, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"identity provider unreachable: {type(exc).__name__}"
            ) from exc

    async def token_endpoint(self) -> str:
        """The issuer's token endpoint, from its discovery document (asked once)."""
        if self._endpoint is None:
            response = await self._call("GET", self.issuer + DISCOVERY_PATH)
            if response.status_code != 200:
                raise UpstreamUnavailable(
                    f"identity provider's discovery document answered {response.status_code}"
                )
            try:
                endpoint = response.json()["token_endpoint"]
            except (ValueError, KeyError, TypeError) as exc:
                raise TransientError("identity provider's discovery document is unusable") from exc
            if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
                raise TransientError("identity provider's discovery document names no endpoint")
            self._endpoint = endpoint
        return self._endpoint

    async def _fetch(self) -> _Cached:
        started = self.clock()
        response = await self._call(
            "POST",
            await self.token_endpoint(),
            data={"grant_type": "client_credentials"},
            auth=httpx.BasicAuth(self.client_id, self._secret),
        )
        status = response.status_code
        if status >= 500 or status == 429:
            raise UpstreamUnavailable(f"identity provider's token endpoint answered {status}")
        if status != 200:
            log.error(
                "the identity provider refused this service's client credentials: check "
                "APL_NOTIFICATIONS_CLIENT_ID and APL_NOTIFICATIONS_CLIENT_SECRET",
                status=status,
                client_id=self.client_id,
            )
            raise TransientError(f"identity provider refused the client credentials ({status})")
        try:
            body = response.json()
            value, expires_in = body["access_token"], float(body.get("expires_in", 60))
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError("identity provider answered an unusable token response") from exc
        if not isinstance(value, str) or not value:
            raise TransientError("identity provider answered an empty access token")
        # Renew `margin` s before expiry, but never before half its lifetime (short-lived tokens).
        renew_in = max(expires_in - self.margin, expires_in / 2)
        return _Cached(value, started + renew_in)
