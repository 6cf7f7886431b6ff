"""Supervisor readiness through the HTTP API against the real PostgreSQL and Kafka (the app runs
in-process): a region requiring readiness refuses the company's confirmation, saying why, until
the supervisor's course is recorded (a day in the future refused naming the field); the
coordinator's list of placements not ready; the notice context's readiness; the confirmed
matches due for a reminder, for a service token only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.placements.domain.supervisors import expires_on
from shared.contracts import events as ev
from tests.integration.placements.conftest import Placements, uid
from tests.integration.placements.test_api import (
    fields,
    placement_body,
    propose,
    publish,
    student_body,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

COURSE = "https://kurs.example.se/handledare"


async def test_readiness_from_the_settings_to_the_confirmation(placements: Placements) -> None:
    p = placements
    region = uid("R")
    p.coordinate(region)
    today = datetime.now(UTC).date()
    starts = today + timedelta(days=5)
    pid, sid = uid("p"), uid("s")
    supervisor = {"name": "Anna Berg", "email": f"{pid}@company.example", "language": "sv"}
    body = placement_body(
        pid,
        region=region,
        supervisor=supervisor,
        starts_on=starts.isoformat(),
        ends_on=(starts + timedelta(days=40)).isoformat(),
    )
    assert (await p.client.post("/v1/placements", json=body)).status_code == 201
    student = student_body(sid, [pid], region=region, available_from=None, available_to=None)
    assert (await p.client.post("/v1/students", json=student)).status_code == 201
    r = await p.client.put(
        f"/v1/regions/{region}/readiness-settings",
        json={"course_url": COURSE, "validity_years": 3, "require_readiness": True},
    )
    assert r.status_code == 200, r.text
    match_id = await propose(p, sid, pid, region=region)

    r = await p.client.post(f"/v1/matches/{match_id}/accept", json={"by": "company"})
    assert r.status_code == 409, r.text
    assert fields(r) == {"supervisor.training"}
    assert r.json()["title"] == "Supervisor not ready"
    listed = (await p.client.get(f"/v1/regions/{region}/supervisors/not-ready")).json()
    assert [(i["placement_id"], i["status"]) for i in listed["items"]] == [(pid, "not_started")]

    training = {"company_id": "c-1", "email": supervisor["email"]}
    future = (today + timedelta(days=1)).isoformat()
    r = await p.client.put(
        f"/v1/regions/{region}/supervisor-training", json={**training, "trained_on": future}
    )
    assert r.status_code == 422
    assert fields(r) == {"trained_on"}
    count = await p.db.fetchval(
        "SELECT count(*) FROM placements.supervisors WHERE email = $1", supervisor["email"]
    )
    assert count == 0
    day = (today - timedelta(days=100)).isoformat()
    r = await p.client.put(
        f"/v1/regions/{region}/supervisor-training", json={**training, "trained_on": day}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "valid"
    listed = (await p.client.get(f"/v1/regions/{region}/supervisors/not-ready")).json()
    assert (listed["items"], listed["ready"]) == ([], 1)

    service = {"Authorization": f"Bearer {p.issuer.service()}"}
    context = await p.client.get(
        "/internal/v1/notice-context",
        params={"placement_id": pid, "student_id": sid},
        headers=service,
    )
    assert context.status_code == 200, context.text
    assert context.json()["readiness"] == {
        "status": "valid",
        "trained_on": day,
        "expires_on": expires_on(date.fromisoformat(day), 3).isoformat(),
        "validity_years": 3,
        "course_url": COURSE,
        "required": True,
    }

    for by in ("company", "student"):
        r = await p.client.post(f"/v1/matches/{match_id}/accept", json={"by": by})
        assert r.status_code == 200, r.text
    confirmed = ev.MatchConfirmed(
        producer="matching",
        data=ev.MatchConfirmedData(
            match_id=match_id, region=region, student_id=sid, placement_id=pid
        ),
    )
    await publish(p, confirmed)

    window = {"starts_from": today.isoformat(), "starts_until": starts.isoformat()}

    async def due() -> bool:
        r = await p.client.get("/internal/v1/reminders-due", params=window, headers=service)
        assert r.status_code == 200, r.text
        return str(match_id) in [i["match_id"] for i in r.json()["items"]]

    await eventually(due, what="the confirmed match due for a reminder")
    r = await p.client.get("/internal/v1/reminders-due", params=window)  # the coordinator's
    assert r.status_code == 403
