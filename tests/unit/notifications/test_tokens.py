"""Client-credentials tokens: the endpoint from discovery, the client's id and secret, cached
until 30 s before expiry, one request for concurrent callers, dropped when refused; failures
classified."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import pytest

from services.notifications.adapters.tokens import ClientCredentials
from services.notifications.domain.notices import TransientError, UpstreamUnavailable

ISSUER = "http://idp.test/realms/apl"


@dataclass
class Idp:
    """A token endpoint behind a discovery document; `status` answers the token requests."""

    expires_in: int = 300
    status: int = 200
    discovery: int = 0
    requests: list[httpx.Request] = field(default_factory=list)

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            self.discovery += 1
            return httpx.Response(
                200, json={"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token-endpoint"}
            )
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        body = {
            "access_token": f"at-{len(self.requests)}",
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }
        return httpx.Response(200, json=body)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def source(idp: Idp, clock: Clock, http: httpx.AsyncClient) -> ClientCredentials:
    return ClientCredentials(
        http, issuer=ISSUER + "/", client_id="apl-notifications", client_secret="s3", clock=clock
    )


async def test_a_token_is_fetched_with_the_client_credentials_and_cached() -> None:
    idp, clock = Idp(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.answer)) as http:
        tokens = source(idp, clock, http)
        assert await tokens.token() == "at-1"
        clock.now += 300 - 31  # still more than 30 s left
        assert await tokens.token() == "at-1"
        clock.now += 2  # within 30 s of expiry: renewed
        assert await tokens.token() == "at-2"
    assert idp.discovery == 1
    request = idp.requests[0]
    assert (request.method, str(request.url)) == ("POST", f"{ISSUER}/token-endpoint")
    assert parse_qs(request.content.decode()) == {"grant_type": ["client_credentials"]}
    user, _, secret = base64.b64decode(request.headers["authorization"][6:]).decode().partition(":")
    assert (user, secret) == ("apl-notifications", "s3")


async def test_concurrent_callers_share_one_request() -> None:
    idp, clock = Idp(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.answer)) as http:
        tokens = source(idp, clock, http)
        got = await asyncio.gather(*(tokens.token() for _ in range(5)))
    assert got == ["at-1"] * 5
    assert len(idp.requests) == 1


async def test_a_refused_token_is_dropped_and_another_fetched() -> None:
    idp, clock = Idp(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.answer)) as http:
        tokens = source(idp, clock, http)
        first = await tokens.token()
        assert first is not None
        tokens.invalidate("someone-elses")  # not the cached one: kept
        assert await tokens.token() == first
        tokens.invalidate(first)
        assert await tokens.token() == "at-2"


async def test_a_short_lived_token_is_kept_for_half_its_life() -> None:
    idp, clock = Idp(expires_in=20), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.answer)) as http:
        tokens = source(idp, clock, http)
        assert await tokens.token() == "at-1"
        clock.now += 9
        assert await tokens.token() == "at-1"
        clock.now += 2
        assert await tokens.token() == "at-2"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, TransientError), (400, TransientError), (503, UpstreamUnavailable)],
)
async def test_a_refusal_or_an_outage_is_classified(
    status: int, kind: type[TransientError]
) -> None:
    idp, clock = Idp(status=status), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.answer)) as http:
        with pytest.raises(kind) as caught:
            await source(idp, clock, http).token()
    assert "s3" not in str(caught.value)


async def test_an_unreachable_issuer_waits_like_an_unavailable_placements_service() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(UpstreamUnavailable):
            await source(Idp(), Clock(), http).token()


async def test_a_discovery_document_without_a_token_endpoint_is_refused() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"issuer": ISSUER}))

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(TransientError, match="discovery"):
            await source(Idp(), Clock(), http).token()
