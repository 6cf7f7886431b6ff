"""What a teacher may do through the API, and what a student may not do to a teacher's record
(the in-memory app, tokens of the test issuer): a teacher acts on their own record only, sees
working-life periods for teachers only, answers their own match; a student's token never opens
a teacher's record, nor a teacher's a student's. Bad input names its field (422 problem)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.placements.bootstrap import build, create_app
from services.placements.domain.model import Contact, MatchRecord, Placement, Student
from services.placements.settings import PlacementsSettings
from shared.contracts.profiles import PlacementOffer, StudentProfile
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

MATCH = uuid.UUID("00000000-0000-4000-8000-0000000000e1")


def world() -> InMemoryPlacementsUnitOfWork:
    """Region SE-AB: the student placement p-1, the period w-1 (weeks 10 to 12), the student
    s-1, the teachers t-1 (own) and t-2 (other), and t-1's proposal at w-1."""
    fake = InMemoryPlacementsUnitOfWork()
    base = {"company_id": "c-1", "region": "SE-AB", "capacity": 2}
    supervisor = {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"}
    fake.placement_rows["p-1"] = Placement(
        PlacementOffer.model_validate({"placement_id": "p-1", **base, "supervisor": supervisor})
    )
    fake.placement_rows["w-1"] = Placement(
        PlacementOffer.model_validate(
            {
                "placement_id": "w-1",
                "kind": "teacher",
                **base,
                "starts_on": "2027-03-08",
                "ends_on": "2027-03-26",
                "supervisor": supervisor,
            },
            strict=False,
        )
    )
    people = [
        StudentProfile(student_id="s-1", region="SE-AB", programme="EE"),
        StudentProfile(
            student_id="t-1", region="SE-AB", participant="teacher", subject="Electrical work"
        ),
        StudentProfile(student_id="t-2", region="SE-AB", participant="teacher", subject="Maths"),
    ]
    for profile in people:
        contact = Contact("Name", f"{profile.student_id}@school.example.se")
        fake.student_rows[profile.student_id] = Student(profile, contact)
    fake.match_rows[MATCH] = MatchRecord(
        match_id=MATCH,
        round_id=None,
        region="SE-AB",
        student_id="t-1",
        placement_id="w-1",
        company_id="c-1",
        rank=1,
        state="proposed",
        accepted_by_student=False,
        accepted_by_company=False,
        declined_by=None,
        reason=None,
        updated_at=datetime.now(UTC),
    )
    fake.match_order[MATCH] = next(fake.sequence)
    return fake


@dataclass
class Api:
    client: httpx.AsyncClient
    issuer: TestIssuer
    holder: dict[str, InMemoryPlacementsUnitOfWork]

    async def call(self, who: str, method: str, path: str, body: Any = None) -> httpx.Response:
        role, _, sid = who.partition(":")
        claims: dict[str, Any] = {"student_id": sid} if sid else {}
        if role == "coordinator":
            claims = {"regions": ["SE-AB"]}
        headers = self.issuer.headers(role, **claims)
        return await self.client.request(method, f"/v1{path}", json=body, headers=headers)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    issuer = TestIssuer()
    holder = {"fake": world()}
    container = build(
        PlacementsSettings(environment="test"),
        unit_of_work=lambda: holder["fake"],
        verifier=issuer.verifier(),
    )
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://placements") as client:
        yield Api(client, issuer, holder)


ME = "teacher:t-1"


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status"),
    [
        (ME, "GET", "/teachers/t-1", None, 200),
        (ME, "PUT", "/teachers/t-1", {"subject": "Automation", "skills": ["plc"]}, 200),
        (ME, "GET", "/students/t-1", None, 200),
        (ME, "PUT", "/students/t-1/preferences", {"preferences": ["w-1"]}, 200),
        (ME, "GET", "/students/t-1/match", None, 200),
        (ME, "GET", "/placements/w-1", None, 200),
        (ME, "POST", f"/matches/{MATCH}/accept", {"by": "student"}, 200),
        # not theirs, not a teacher's, not a teacher's to do
        (ME, "GET", "/teachers/t-2", None, 403),
        (ME, "PUT", "/students/t-2/preferences", {"preferences": ["w-1"]}, 403),
        (ME, "GET", "/students/s-1", None, 403),
        (ME, "GET", "/placements/p-1", None, 403),
        (ME, "POST", f"/matches/{MATCH}/accept", {"by": "company"}, 403),
        (ME, "POST", "/rounds", {"region": "SE-AB", "participant": "teacher"}, 403),
        (ME, "POST", "/students", {"student_id": "t-9"}, 403),
        # a student's token opens no teacher's record, even one naming the student's id
        ("student:t-1", "GET", "/students/t-1", None, 403),
        ("student:t-1", "GET", "/teachers/t-1", None, 403),
        ("student:s-1", "GET", "/placements/w-1", None, 403),
        ("student:s-1", "GET", "/placements/p-1", None, 200),
        # the region's coordinator keeps a teacher's profile too
        ("coordinator", "PUT", "/teachers/t-2", {"subject": "Maths", "skills": []}, 200),
        ("coordinator", "GET", "/teachers/s-1", None, 404),
    ],
)
async def test_a_teacher_may_do_what_a_teacher_may(
    api: Api, who: str, method: str, path: str, body: Any, status: int
) -> None:
    response = await api.call(who, method, path, body)
    assert response.status_code == status, response.text


async def test_a_teacher_lists_working_life_periods_only(api: Api) -> None:
    found = await api.call(ME, "GET", "/placements?region=SE-AB")
    assert [p["placement_id"] for p in found.json()] == ["w-1"]
    assert all(p["supervisor"] is None for p in found.json())  # redacted, as for a student
    found = await api.call("student:s-1", "GET", "/placements?region=SE-AB")
    assert [p["placement_id"] for p in found.json()] == ["p-1"]
    found = await api.call("coordinator", "GET", "/placements?region=SE-AB&kind=teacher")
    assert [p["placement_id"] for p in found.json()] == ["w-1"]


async def test_a_teacher_keeps_their_profile_and_bad_input_names_the_field(api: Api) -> None:
    response = await api.call(
        ME,
        "PUT",
        "/teachers/t-1",
        {"subject": "Automation", "skills": ["plc"], "available_weeks": ["2027-W10", "2027-W11"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["participant"], body["subject"], body["available_weeks"]) == (
        "teacher",
        "Automation",
        ["2027-W10", "2027-W11"],
    )
    before = list(api.holder["fake"].published)
    for bad, field in (
        ({"subject": "X", "available_weeks": ["2027-10"]}, "available_weeks[0]"),
        ({"subject": "X", "available_weeks": ["2027-W53"]}, "available_weeks[0]"),
        ({"subject": ""}, "subject"),
        ({"skills": ["plc"]}, "subject"),
    ):
        response = await api.call(ME, "PUT", "/teachers/t-1", bad)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert api.holder["fake"].published == before  # nothing written on bad input


async def test_rankings_and_rounds_name_the_field(api: Api) -> None:
    response = await api.call(ME, "PUT", "/students/t-1/preferences", {"preferences": ["p-1"]})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "preferences[0]"
    assert "a teacher ranks working-life periods" in error["message"]
    response = await api.call(
        "student:s-1", "PUT", "/students/s-1/preferences", {"preferences": ["w-1"]}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "preferences[0]"
    # a teacher period without its days
    period = {
        "placement_id": "w-9",
        "kind": "teacher",
        "company_id": "c-1",
        "region": "SE-AB",
        "capacity": 1,
    }
    response = await api.call("coordinator", "POST", "/placements", period)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"starts_on", "ends_on"}
    # a teacher round in a region without periods
    api.holder["fake"].placement_rows.pop("w-1")
    response = await api.call(
        "coordinator", "POST", "/rounds", {"region": "SE-AB", "participant": "teacher"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "participant"


async def test_a_teacher_round_is_asked_for_and_read_back(api: Api) -> None:
    response = await api.call(
        "coordinator", "POST", "/rounds", {"region": "SE-AB", "participant": "teacher"}
    )
    assert response.status_code == 202, response.text
    round_id = response.json()["round_id"]
    found = await api.call("coordinator", "GET", f"/rounds/{round_id}")
    assert (found.json()["participant"], found.json()["status"]) == ("teacher", "requested")
