"""The HTTP entrypoints over the in-memory unit of work: status codes, problem details and the
Idempotency-Key replay, without PostgreSQL or Kafka. The client signs in as a coordinator of
SE-AB (a token of the test issuer); who may do what is test_authorisation.py's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.placements import handlers
from services.placements.bootstrap import build, create_app
from services.placements.settings import PlacementsSettings
from shared.contracts import events as ev
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer


@dataclass
class Api:
    client: httpx.AsyncClient
    fake: InMemoryPlacementsUnitOfWork
    issuer: TestIssuer

    def published(self) -> list[str]:
        return [e.type for e in self.fake.published]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test", max_body_bytes=20_000)
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    transport = httpx.ASGITransport(app=app)
    coordinator = issuer.headers("coordinator", regions=["SE-AB"])
    async with httpx.AsyncClient(
        transport=transport, base_url="http://placements", headers=coordinator
    ) as client:
        yield Api(client, fake, issuer)


def offer(pid: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "placement_id": pid,
        "company_id": "c-1",
        "region": "SE-AB",
        "capacity": 2,
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    }
    return {**body, **kw}


def registration(sid: str, prefs: list[str], **kw: Any) -> dict[str, Any]:
    body = {
        "student_id": sid,
        "region": "SE-AB",
        "programme": "EE",
        "preferences": prefs,
        "name": "Sara Nieminen",
        "email": "sara@example.fi",
        "phone": "+358 40 123 4567",
    }
    return {**body, **kw}


def problem_fields(response: httpx.Response) -> set[str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == response.status_code
    return {e["field"] for e in response.json()["errors"]}


async def test_routes_choose_their_status_codes(api: Api) -> None:
    c = api.client
    r = await c.post("/v1/placements", json=offer("p-1"))
    assert (r.status_code, r.json()["status"], r.json()["confirmed"]) == (201, "open", 0)
    assert r.json()["notification"] is None
    r = await c.patch("/v1/placements/p-1", json={"capacity": 5})
    assert (r.status_code, r.json()["capacity"]) == (200, 5)
    r = await c.post("/v1/placements/batch", json={"items": [offer("p-2"), offer("p-3")]})
    assert (r.status_code, r.json()) == (201, {"created": 2, "ids": ["p-2", "p-3"]})
    r = await c.get("/v1/placements", params={"region": "SE-AB", "limit": 2})
    assert [p["placement_id"] for p in r.json()] == ["p-1", "p-2"]
    r = await c.put("/v1/companies/c-1/notification-channel", json={"channel": "email"})
    assert r.json() == {"company_id": "c-1", "channel": "email", "webhook_url": None}
    r = await c.post("/v1/rounds", json={"region": "SE-AB"})
    assert (r.status_code, r.json()["status"]) == (202, "requested")
    assert (await c.get(f"/v1/rounds/{r.json()['round_id']}")).json()["status"] == "requested"
    assert (await c.delete("/v1/placements/p-3")).status_code == 204
    assert (await c.delete("/v1/placements/p-3")).status_code == 204
    assert (await c.get("/v1/placements/nope")).status_code == 404
    r = await c.post("/v1/placements", json=offer("p-1"))
    assert (r.status_code, problem_fields(r)) == (409, set())
    r = await c.post("/v1/placements", json=offer("p-4", ends_on="2027-01-01", capacity=-1))
    assert (r.status_code, problem_fields(r)) == (422, {"capacity"})
    r = await c.post("/v1/placements", json=offer("p-4", ends_on="2027-01-01"))
    assert (r.status_code, problem_fields(r)) == (422, {"ends_on"})
    assert api.published() == [
        "PlacementPosted",
        "PlacementUpdated",
        "PlacementPosted",
        "PlacementPosted",
        "MatchingRoundRequested",
        "PlacementWithdrawn",
    ]


async def test_an_idempotency_key_replays_the_first_response(api: Api) -> None:
    c = api.client
    key = {"Idempotency-Key": "k-1"}
    first = await c.post("/v1/placements", json=offer("p-1"), headers=key)
    again = await c.post("/v1/placements", json=offer("p-1"), headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    r = await c.post("/v1/placements", json=offer("p-1", capacity=9), headers=key)
    assert (r.status_code, problem_fields(r)) == (422, {"Idempotency-Key"})
    rounds = [await c.post("/v1/rounds", json={"region": "SE-AB"}, headers=key) for _ in "ab"]
    assert [r.status_code for r in rounds] == [202, 202]  # the key is per method and path
    assert rounds[0].json() == rounds[1].json()
    assert api.published() == ["PlacementPosted", "MatchingRoundRequested"]
    k2 = {"Idempotency-Key": "k-2"}
    failed = await c.post("/v1/placements", json=offer("p-2", ends_on="2020-01-01"), headers=k2)
    assert failed.status_code == 422  # errors are not stored: the key may be used again
    assert api.fake.idempotency_rows.keys() == {
        ("k-1", "POST", "/v1/placements"),
        ("k-1", "POST", "/v1/rounds"),
    }


async def test_a_replayed_registration_loses_the_details_once_the_student_is_erased(
    api: Api,
) -> None:
    c = api.client
    await c.post("/v1/placements", json=offer("p-1"))
    key = {"Idempotency-Key": "k-s"}
    r = await c.post("/v1/students", json=registration("s-1", ["p-1"]), headers=key)
    assert (r.status_code, r.json()["email"]) == (201, "sara@example.fi")
    r = await c.post(
        "/v1/students", json=registration("s-2", ["p-1", "p-x", "p-1"], email="x@example.fi")
    )
    assert (r.status_code, problem_fields(r)) == (422, {"preferences[1]", "preferences[2]"})
    assert (await c.delete("/v1/students/s-1")).status_code == 204
    assert (await c.get("/v1/students/s-1")).status_code == 404
    again = await c.post("/v1/students", json=registration("s-1", ["p-1"]), headers=key)
    assert again.status_code == 201
    assert "sara@example.fi" not in again.text
    assert "Sara" not in again.text


async def test_answers_and_the_internal_route(api: Api) -> None:
    c = api.client
    await c.post("/v1/placements", json=offer("p-1"))
    await c.post("/v1/students", json=registration("s-1", ["p-1"]))
    data = ev.MatchProposedData(
        match_id=uuid.uuid4(),
        region="SE-AB",
        student_id="s-1",
        placement_id="p-1",
        round_id=uuid.uuid4(),
        company_id="c-1",
        rank=1,
    )
    await handlers.apply_match_proposed(ev.MatchProposed(producer="matching", data=data), api.fake)
    path = f"/v1/matches/{data.match_id}"
    r = await c.post(f"{path}/accept", json={"by": "student"})
    assert (r.status_code, r.json()["state"]) == (200, "accepted")
    assert (await c.post(f"{path}/accept", json={"by": "student"})).status_code == 409
    r = await c.post(f"{path}/decline", json={"by": "coordinator"})
    assert (r.status_code, problem_fields(r)) == (422, {"by"})
    assert (await c.get("/v1/students/s-1/match")).json()["match_id"] == str(data.match_id)

    internal = "/internal/v1/notice-context"
    params = {"placement_id": "p-1", "student_id": "s-1"}
    anonymous = {"Authorization": ""}
    assert (await c.get(internal, params=params, headers=anonymous)).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert (await c.get(internal, params=params, headers=wrong)).status_code == 401
    assert (await c.get(internal, params=params)).status_code == 403  # a coordinator's token
    unscoped = {"Authorization": f"Bearer {api.issuer.service(scope='')}"}
    assert (await c.get(internal, params=params, headers=unscoped)).status_code == 403
    auth = {"Authorization": f"Bearer {api.issuer.service()}"}
    context = (await c.get(internal, params=params, headers=auth)).json()
    assert (context["student"]["contact_shared"], context["student"]["email"]) == (
        True,
        "sara@example.fi",
    )
    assert (await c.get("/healthz", headers=anonymous)).json() == {"status": "ok"}
    big = offer("p-big", programmes=["EE"] * 10_000)
    assert (await c.post("/v1/placements", json=big)).status_code == 413
