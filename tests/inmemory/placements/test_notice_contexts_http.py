"""The internal batch route of notice contexts (`POST /internal/v1/notice-contexts`) over the
in-memory unit of work: each key answered as its single route answers it, in the order asked,
None where that route answers 404; bad bodies refused at their field; only a service's token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.placements.bootstrap import build, create_app
from services.placements.settings import PlacementsSettings
from shared.contracts.internal import MAX_NOTICE_CONTEXTS
from tests.handlers.placements.test_outcomes import FIRST, run_round, world
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

PUBLIC = "https://apl.example.se"
BATCH = "/internal/v1/notice-contexts"


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], TestIssuer]]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test", public_url=PUBLIC)
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://placements"
    ) as c:
        await world(fake)
        await run_round(fake, FIRST)
        yield c, {"Authorization": f"Bearer {issuer.service()}"}, issuer


async def _single(c: httpx.AsyncClient, path: str, params: dict[str, str], auth: Any) -> Any:
    r = await c.get(path, params=params, headers=auth)
    return r.json() if r.status_code == 200 else None


async def test_a_batch_answers_each_key_as_its_single_route_in_order(
    client: tuple[httpx.AsyncClient, dict[str, str], TestIssuer],
) -> None:
    c, service, _ = client
    supervisors = [
        {"placement_id": "p-1", "student_id": "s-1"},
        {"placement_id": "p-none", "student_id": "s-1"},  # no such placement: None
        {"placement_id": "p-1", "student_id": "s-2"},
    ]
    students = [
        {"student_id": "s-2"},  # the vacancies that fit
        {"student_id": "nobody"},  # unknown (or erased): None
        {"student_id": "s-1", "placement_id": "p-1"},
    ]
    r = await c.post(
        BATCH, json={"supervisors": supervisors, "students": students}, headers=service
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    expected_supervisors = [
        await _single(c, "/internal/v1/notice-context", key, service) for key in supervisors
    ]
    expected_students = [
        await _single(c, "/internal/v1/student-notice-context", key, service) for key in students
    ]
    assert answer["supervisors"] == expected_supervisors
    assert answer["students"] == expected_students
    assert [a is None for a in answer["supervisors"]] == [False, True, False]
    assert [a is None for a in answer["students"]] == [False, True, False]
    assert answer["students"][0]["page_url"] == f"{PUBLIC}/student/choices"


async def test_a_batch_is_only_for_a_service_and_refuses_bad_keys_at_their_field(
    client: tuple[httpx.AsyncClient, dict[str, str], TestIssuer],
) -> None:
    c, service, issuer = client
    body = {"supervisors": [{"placement_id": "p-1", "student_id": "s-1"}]}
    assert (await c.post(BATCH, json=body)).status_code == 401
    coordinator = issuer.headers("coordinator", regions=["SE-AB"])
    assert (await c.post(BATCH, json=body, headers=coordinator)).status_code == 403
    assert (await c.post(BATCH, json={}, headers=service)).json() == {
        "supervisors": [],
        "students": [],
    }
    too_many = {"students": [{"student_id": f"s-{i}"} for i in range(MAX_NOTICE_CONTEXTS + 1)]}
    bad = [
        ({"supervisors": [{"placement_id": "p-1"}]}, "student_id"),
        ({"students": [{"student_id": ""}]}, "student_id"),
        (too_many, "students"),
        ({"teachers": []}, "teachers"),
    ]
    for wrong, field in bad:
        r = await c.post(BATCH, json=wrong, headers=service)
        assert r.status_code == 422, (wrong, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert any(field in e["field"] for e in r.json()["errors"]), r.json()
