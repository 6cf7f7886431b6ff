"""The web application over the in-memory unit of work: pages as a browser gets them, signed in
by a session cookie of the test issuer's token (tests/support/web.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.placements.bootstrap import build, create_app
from services.placements.settings import PlacementsSettings
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer
from tests.support.web import Browser, sign_in


@dataclass
class Site:
    """The app, its fake store, and a way to open a browser as someone."""

    fake: InMemoryPlacementsUnitOfWork
    issuer: TestIssuer
    settings: PlacementsSettings
    open: Callable[..., Browser]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test", auth_issuer=issuer.url)
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    clients: list[httpx.AsyncClient] = []

    def open_as(role: str | None = None, **claims: Any) -> Browser:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://placements"
        )
        clients.append(client)
        if role is None and not claims:
            return Browser(client)
        return sign_in(client, settings, issuer, role, **claims)

    yield Site(fake, issuer, settings, open_as)
    for client in clients:
        await client.aclose()
