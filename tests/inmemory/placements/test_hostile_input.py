"""Bounds and strict types of the API over the in-memory unit of work (bodies up to 2 MB):
every list, string and number of a body has an upper bound, each refused at its field; a body
with thousands of bad items answers its first 50 errors and their count, in a few kilobytes;
the SSRF guard refuses webhooks to private addresses at save time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.placements.bootstrap import build, create_app
from services.placements.settings import PlacementsSettings
from shared.contracts.profiles import MAX_PRIORITY, MAX_RANKING, MAX_SKILLS
from tests.inmemory.placements.test_http import offer, problem_fields, registration
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer


@dataclass
class Api:
    client: httpx.AsyncClient
    fake: InMemoryPlacementsUnitOfWork


def _app(fake: InMemoryPlacementsUnitOfWork, issuer: TestIssuer, **settings: Any) -> Any:
    values: dict[str, Any] = {"environment": "test", "max_body_bytes": 2_000_000, **settings}
    container = build(
        PlacementsSettings(**values), unit_of_work=lambda: fake, verifier=issuer.verifier()
    )
    return create_app(container)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    transport = httpx.ASGITransport(app=_app(fake, issuer))
    headers = issuer.headers("coordinator", regions=["SE-AB"])
    async with httpx.AsyncClient(
        transport=transport, base_url="http://placements", headers=headers
    ) as client:
        yield Api(client, fake)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (offer("p-1", ranking=[f"s-{i}" for i in range(100_000)]), "ranking"),
        (offer("p-1", required_skills=[f"k{i}" for i in range(50_000)]), "required_skills"),
        (offer("p-1", programmes=[f"P{i}" for i in range(MAX_SKILLS + 1)]), "programmes"),
        (offer("p-1", title="t" * 201), "title"),
        (offer("p-1", capacity=10_001), "capacity"),
    ],
)
async def test_a_placement_beyond_a_bound_is_refused_at_its_field(
    api: Api, body: dict[str, Any], named: str
) -> None:
    r = await api.client.post("/v1/placements", json=body)
    assert r.status_code == 422
    assert problem_fields(r) == {named}
    assert len(r.content) < 5_000
    assert api.fake.placement_rows == {}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"skills": [f"k{i}" for i in range(50_000)]}, "skills"),
        ({"priority": 10**23}, "priority"),
        ({"priority": MAX_PRIORITY + 1}, "priority"),
        ({"max_travel_km": 1e9}, "max_travel_km"),
        ({"priority": "3"}, "priority"),
        ({"priority": True}, "priority"),
        ({"available_from": 0}, "available_from"),
    ],
)
async def test_a_student_beyond_a_bound_or_of_the_wrong_type_is_refused_at_its_field(
    api: Api, extra: dict[str, Any], named: str
) -> None:
    r = await api.client.post("/v1/students", json=registration("s-1", [], **extra))
    assert r.status_code == 422
    assert problem_fields(r) == {named}
    assert api.fake.student_rows == {}


async def test_bounds_admit_what_they_bound(api: Api) -> None:
    ranking = [f"s-{i}" for i in range(MAX_RANKING)]
    r = await api.client.post("/v1/placements", json=offer("p-1", ranking=ranking))
    assert r.status_code == 201, r.text
    r = await api.client.post(
        "/v1/students", json=registration("s-1", ["p-1"], priority=MAX_PRIORITY, skills=["a"] * 3)
    )
    assert r.status_code == 201, r.text


async def test_ten_thousand_bad_preferences_answer_in_a_few_kilobytes(api: Api) -> None:
    prefs = [f"p-{i}" for i in range(10_000)]
    r = await api.client.post("/v1/students", json=registration("s-1", prefs))
    assert r.status_code == 422
    assert problem_fields(r) == {"preferences"}
    assert len(r.content) < 2_000  # not 1.4 MB
    r = await api.client.put("/v1/students/s-1/preferences", json={"preferences": prefs})
    assert r.status_code == 422
    assert problem_fields(r) == {"preferences"}


async def test_a_batch_of_bad_items_names_the_first_50_and_counts_them_all(api: Api) -> None:
    items = [offer(f"p-{i}", capacity="2", title=f"t\x00{i}") for i in range(400)]
    r = await api.client.post("/v1/placements/batch", json={"items": items})
    assert r.status_code == 422
    problem = r.json()
    assert len(problem["errors"]) == 50
    assert problem["errors_total"] == 800  # each item's title and capacity
    assert problem["detail"].endswith("; and 750 more")
    assert len(r.content) < 10_000
    assert api.fake.placement_rows == {}


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:15432/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://[::ffff:192.168.1.5]/hook", "private"),
        ("http://2130706433/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("https://user:secret@hr.example.se/hook", "user name"),
    ],
)
async def test_a_webhook_to_a_private_address_is_refused_at_save_time(
    api: Api, url: str, words: str
) -> None:
    assert (await api.client.post("/v1/placements", json=offer("p-0"))).status_code == 201
    channel = {"channel": "webhook", "webhook_url": url}
    r = await api.client.put("/v1/companies/c-1/notification-channel", json=channel)
    assert r.status_code == 422
    assert problem_fields(r) == {"webhook_url"}
    assert words in r.json()["errors"][0]["message"]
    r = await api.client.post("/v1/placements", json=offer("p-1", notification=channel))
    assert problem_fields(r) == {"notification.webhook_url"}
    r = await api.client.patch("/v1/placements/p-0", json={"notification": channel})
    assert problem_fields(r) == {"notification.webhook_url"}
    assert api.fake.company_channels == {}
    assert set(api.fake.placement_rows) == {"p-0"}
    assert api.fake.placement_rows["p-0"].channel is None


async def test_the_operators_allow_list_admits_a_private_address() -> None:
    fake, issuer = InMemoryPlacementsUnitOfWork(), TestIssuer()
    app = _app(fake, issuer, webhook_allowlist="127.0.0.1, 10.20.0.0/16")
    headers = issuer.headers("coordinator", regions=["SE-AB"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://placements", headers=headers
    ) as client:
        assert (await client.post("/v1/placements", json=offer("p-0"))).status_code == 201
        for url in ("http://127.0.0.1:9000/hook", "http://10.20.3.4/hook"):
            channel = {"channel": "webhook", "webhook_url": url}
            r = await client.put("/v1/companies/c-1/notification-channel", json=channel)
            assert r.status_code == 200, r.text
        channel = {"channel": "webhook", "webhook_url": "http://10.21.0.1/hook"}
        r = await client.put("/v1/companies/c-1/notification-channel", json=channel)
        assert r.status_code == 422


async def test_production_takes_only_https_webhooks() -> None:
    fake, issuer = InMemoryPlacementsUnitOfWork(), TestIssuer()
    app = _app(
        fake,
        issuer,
        environment="production",
        auth_issuer=issuer.url,
        action_link_secret="a-real-link-secret",
        session_secret="a-real-session-secret",
        kafka_password="a-real-kafka-password",
    )
    headers = issuer.headers("coordinator", regions=["SE-AB"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://placements", headers=headers
    ) as client:
        assert (await client.post("/v1/placements", json=offer("p-0"))).status_code == 201
        channel = {"channel": "webhook", "webhook_url": "http://hr.example.se/hook"}
        r = await client.put("/v1/companies/c-1/notification-channel", json=channel)
        assert r.status_code == 422
        assert "https://" in r.json()["errors"][0]["message"]
        channel = {"channel": "webhook", "webhook_url": "https://hr.example.se/hook"}
        r = await client.put("/v1/companies/c-1/notification-channel", json=channel)
        assert r.status_code == 200, r.text
