"""The placements service in-process (`running`, the same composition root as `apl serve`) on
the real Kafka and PostgreSQL, with an HTTP client on its app. The app trusts the test issuer
(tests/support/tokens.py); the client signs in as a coordinator of SE-AB and of every region a
test names with `p.coordinate(region)`, unless a request sets its own Authorization."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from services.placements.bootstrap import create_app, running
from services.placements.settings import PlacementsSettings
from shared.contracts.topics import Topics
from shared.kafka_client import KafkaConnection
from tests.support.infra import Infra
from tests.support.kafka import read_records
from tests.support.tokens import TestIssuer

MAX_BODY = 20_000


TOKEN_REFRESH_SECONDS = 120.0
"""How old a minted token may grow before the next request mints one again (they live 300 s)."""


@dataclass
class Coordinator(httpx.Auth):
    """Signs each request as a coordinator of `regions` (a token minted again when they grow,
    and before it expires: the session outlives a token's five minutes); a request with its own
    Authorization header keeps it (empty: anonymous)."""

    issuer: TestIssuer
    regions: set[str] = field(default_factory=lambda: {"SE-AB"})
    _token: str | None = None
    _for: frozenset[str] = frozenset()
    _minted: float = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            stale = time.monotonic() - self._minted > TOKEN_REFRESH_SECONDS
            if self._token is None or stale or self._for != frozenset(self.regions):
                self._for, self._minted = frozenset(self.regions), time.monotonic()
                self._token = self.issuer.mint("coordinator", regions=sorted(self._for))
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


@dataclass
class Placements:
    client: httpx.AsyncClient
    settings: PlacementsSettings
    topics: Topics
    db: asyncpg.Pool
    kafka: KafkaConnection
    """The admin principal, to read the service's topics back."""
    issuer: TestIssuer
    auth: Coordinator

    def coordinate(self, *regions: str) -> None:
        """The client's coordinator acts in these regions too."""
        self.auth.regions.update(regions)

    async def outbox_count(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM placements.outbox"))


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
async def placements(
    infra: Infra, database_url: str, make_topics: Callable[[], Awaitable[Topics]]
) -> AsyncIterator[Placements]:
    topics = await make_topics()
    settings = PlacementsSettings(
        **infra.kafka_settings("placements"),
        database_url=database_url,
        topic_prefix=topics.prefix,
        max_body_bytes=MAX_BODY,
        outbox_poll_seconds=0.05,
        kafka_session_timeout_ms=6000,
        environment="test",
    )
    issuer = TestIssuer()
    auth = Coordinator(issuer)
    async with running(settings, verifier=issuer.verifier()) as container:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://placements", auth=auth
        ) as client:
            yield Placements(client, settings, topics, container.pool, infra.kafka, issuer, auth)


def _values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


async def consume(
    kafka: KafkaConnection,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    wait: float = 60.0,
) -> list[dict[str, Any]]:
    """The decoded values of `topic` from the start, read until `until(values)` holds (or the
    wait runs out: the caller's assertions say what is missing)."""
    records = await read_records(kafka, topic, until=lambda rs: until(_values(rs)), wait=wait)
    return _values(records)
