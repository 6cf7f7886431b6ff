"""Who a signed-in person acts for, over HTTP: a student's first sign-in with the verified school
e-mail the coordinator registered links the account; company staff are linked by an invitation;
a student sees placements without the supervisor; events carry the caller's actor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

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

    def as_(self, role: str, **claims: object) -> dict[str, str]:
        return self.issuer.headers(role, **claims)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    app = create_app(
        build(
            PlacementsSettings(environment="test"),
            unit_of_work=lambda: fake,
            verifier=issuer.verifier(),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://placements") as client:
        yield Api(client, fake, issuer)


OFFER = {
    "placement_id": "p-1",
    "company_id": "c-1",
    "region": "SE-AB",
    "capacity": 1,
    "ranking": ["s-9"],
    "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    "notification": {"channel": "webhook", "webhook_url": "https://hr.example.se/h"},
}
STUDENT = {
    "student_id": "s-1",
    "region": "SE-AB",
    "programme": "EE",
    "name": "Sara Nieminen",
    "email": "sara@school.example.se",
}


async def test_a_student_is_linked_by_the_verified_school_email(api: Api) -> None:
    c = api.client
    coordinator = api.as_("coordinator", sub="coord-1", regions=["SE-AB"])
    assert (await c.post("/v1/placements", json=OFFER, headers=coordinator)).status_code == 201
    assert (await c.post("/v1/students", json=STUDENT, headers=coordinator)).status_code == 201

    unverified = api.as_("student", sub="u-1", email=STUDENT["email"], email_verified=False)
    r = await c.get("/v1/students/s-1", headers=unverified)
    assert (r.status_code, "not linked" in r.json()["detail"]) == (403, True)
    verified = api.as_("student", sub="u-1", email="Sara@School.example.se", email_verified=True)
    r = await c.get("/v1/students/s-1", headers=verified)
    assert (r.status_code, r.json()["name"]) == (200, "Sara Nieminen")
    later = api.as_("student", sub="u-1")  # no e-mail claim at all: the link is kept
    r = await c.put("/v1/students/s-1/preferences", json={"preferences": ["p-1"]}, headers=later)
    assert r.status_code == 200, r.text
    someone = api.as_("student", sub="u-2", email=STUDENT["email"], email_verified=True)
    assert (await c.get("/v1/students/s-1", headers=someone)).status_code == 403

    # a student's view of a placement: no supervisor, no ranking, no channel
    seen = (await c.get("/v1/placements/p-1", headers=later)).json()
    assert (seen["supervisor"], seen["ranking"], seen["notification"]) == (None, None, None)
    listed = (await c.get("/v1/placements", headers=later)).json()
    assert [p["supervisor"] for p in listed] == [None]
    full = (await c.get("/v1/placements/p-1", headers=coordinator)).json()
    assert full["supervisor"]["email"] == "anna@example.se"

    actors = {(e.type, e.actor.subject, e.actor.role) for e in api.fake.published if e.actor}
    assert actors == {
        ("PlacementPosted", "coord-1", "coordinator"),
        ("StudentRegistered", "coord-1", "coordinator"),
        ("StudentPreferencesUpdated", "u-1", "student"),
    }
    assert all(e.actor and e.actor.client == "apl-web" for e in api.fake.published)
    assert api.fake.published_of(ev.StudentPreferencesUpdated)


async def test_company_staff_act_for_the_company_of_their_claim_or_invitation(api: Api) -> None:
    c = api.client
    coordinator = api.as_("coordinator", regions=["SE-AB"])
    elsewhere = api.as_("coordinator", regions=["SE-O"])
    assert (await c.post("/v1/placements", json=OFFER, headers=coordinator)).status_code == 201
    invite = {"email": "hr@c1.example.se"}
    r = await c.post("/v1/companies/c-1/invitations", json=invite, headers=elsewhere)
    assert r.status_code == 403  # c-1 has no placement in SE-O
    r = await c.post("/v1/companies/c-9/invitations", json=invite, headers=coordinator)
    assert r.status_code == 403  # c-9 has none in SE-AB
    r = await c.post("/v1/companies/c-1/invitations", json=invite, headers=coordinator)
    assert (r.status_code, r.json()) == (201, {"company_id": "c-1", "email": "hr@c1.example.se"})

    staff = api.as_("company", sub="hr-1", email="HR@c1.example.se", email_verified=True)
    r = await c.patch("/v1/placements/p-1", json={"capacity": 2}, headers=staff)
    assert r.status_code == 200, r.text
    mine = await c.get("/v1/placements", headers=api.as_("company", sub="hr-1"))
    assert [p["placement_id"] for p in mine.json()] == ["p-1"]
    r = await c.patch("/v1/placements/p-1", json={"company_id": "c-2"}, headers=staff)
    assert r.status_code == 403  # only a coordinator moves a placement to another company
    claimed = api.as_("company", company_id="c-1")
    assert (await c.delete("/v1/placements/p-1", headers=claimed)).status_code == 204
    stranger = api.as_("company", sub="x", email="hr@c1.example.se", email_verified=True)
    assert (await c.get("/v1/placements/p-1", headers=stranger)).status_code == 403  # used up
    r = await c.get("/v1/placements", params={"company_id": "c-1"}, headers=stranger)
    assert "not linked to a company" in r.json()["detail"]
