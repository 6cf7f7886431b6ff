"""The batch route of notice contexts (`POST /internal/v1/notice-contexts`) against the real
PostgreSQL (the app runs in-process): each key answered as its single route answers it, in the
order asked, None where that route answers 404, with the student's contact only where they
accepted the match; the batch reads each kind of row once for all its keys."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.placements.conftest import Placements, uid
from tests.integration.placements.test_api import placement_body, propose, student_body

pytestmark = pytest.mark.infra


async def _single(c: httpx.AsyncClient, path: str, params: dict[str, str], auth: Any) -> Any:
    r = await c.get(path, params=params, headers=auth)
    assert r.status_code in (200, 404), r.text
    return r.json() if r.status_code == 200 else None


async def test_a_batch_answers_each_key_as_its_single_route(placements: Placements) -> None:
    p = placements
    region = uid("R")
    p.coordinate(region)
    p1, p2 = uid("p"), uid("p")
    s1, s2, s3 = uid("s"), uid("s"), uid("s")
    for pid in (p1, p2):
        supervisor = {"name": "Anna Berg", "email": f"{pid}@company.example", "language": "sv"}
        body = placement_body(pid, region=region, capacity=2, supervisor=supervisor)
        assert (await p.client.post("/v1/placements", json=body)).status_code == 201
    for sid, prefs in ((s1, [p1]), (s2, [p2, p1]), (s3, [p1])):
        body = student_body(sid, prefs, region=region)
        assert (await p.client.post("/v1/students", json=body)).status_code == 201
    accepted = await propose(p, s1, p1, region=region)
    await propose(p, s2, p2, region=region)
    r = await p.client.post(f"/v1/matches/{accepted}/accept", json={"by": "student"})
    assert r.status_code == 200, r.text

    supervisors = [
        {"placement_id": p1, "student_id": s1},  # accepted: the contact is shared
        {"placement_id": "p-none", "student_id": s1},  # no such placement: None
        {"placement_id": p2, "student_id": s2},  # proposed only: no contact
        {"placement_id": p1, "student_id": s3},  # no match at all
    ]
    students = [
        {"student_id": s1, "placement_id": p1},
        {"student_id": "nobody"},  # unknown: None
        {"student_id": s3},  # the vacancies that fit
        {"student_id": s2, "placement_id": p2},
    ]
    service = {"Authorization": f"Bearer {p.issuer.service()}"}
    r = await p.client.post(
        "/internal/v1/notice-contexts",
        json={"supervisors": supervisors, "students": students},
        headers=service,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["supervisors"] == [
        await _single(p.client, "/internal/v1/notice-context", k, service) for k in supervisors
    ]
    assert answer["students"] == [
        await _single(p.client, "/internal/v1/student-notice-context", k, service) for k in students
    ]
    first, none, second, unmatched = answer["supervisors"]
    assert none is None
    assert (first["placement"]["placement_id"], first["student"]["student_id"]) == (p1, s1)
    assert first["student"]["contact_shared"] is True
    assert first["student"]["name"] is not None
    assert (second["student"]["contact_shared"], second["student"]["name"]) == (False, None)
    assert unmatched["student"]["contact_shared"] is False
    assert first["readiness"]["status"] == second["readiness"]["status"] == "not_started"
    assert [a is None for a in answer["students"]] == [False, True, False, False]
    assert answer["students"][0]["placement"]["placement_id"] == p1
    assert answer["students"][2]["placement"] is None
    assert answer["students"][2]["vacancies_total"] >= 1
