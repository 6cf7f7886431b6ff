"""After a round, against the real PostgreSQL and Kafka (the app runs in-process): matching's
outcome parts and completion consumed from apl.rounds.v1, then the student's outcome, the
region's vacancies, the report, a supplementary round opened (on apl.round-requests.v1) and an
assignment by hand published (on apl.match-decisions.v1, and refused by matching), each through
the API."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest

from shared.contracts import events as ev
from tests.handlers.placements.test_outcomes import FULL, outcome, outcomes_events
from tests.integration.placements.conftest import Placements, consume, uid
from tests.integration.placements.test_api import placement_body, publish, student_body
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


async def test_a_round_from_outcomes_to_an_override(placements: Placements) -> None:
    p = placements
    region = f"SE-{uuid.uuid4().hex[:8].upper()}"
    p.coordinate(region)
    near, farther = uid("p"), uid("p")
    s1, s2 = uid("s"), uid("s")
    for pid, site in ((near, {"lat": 59.33, "lon": 18.07}), (farther, {"lat": 59.4, "lon": 18.07})):
        body = placement_body(pid, region=region, capacity=1, site=site)
        assert (await p.client.post("/v1/placements", json=body)).status_code == 201
    for sid in (s1, s2):
        body = student_body(
            sid, [near], region=region, home={"lat": 59.3, "lon": 18.0}, max_travel_km=40
        )
        assert (await p.client.post("/v1/students", json=body)).status_code == 201

    r = await p.client.post("/v1/rounds", json={"region": region, "fill": True})
    assert r.status_code == 202
    round_id = uuid.UUID(r.json()["round_id"])
    found = [outcome(s1, near, 1), outcome(s2, notes=[FULL])]
    parts = outcomes_events(round_id, found, region=region, per_part=1)
    proposal = ev.MatchProposed(
        producer="matching",
        data=ev.MatchProposedData(
            match_id=uuid.uuid4(),
            region=region,
            student_id=s1,
            placement_id=near,
            round_id=round_id,
            company_id="c-1",
            rank=1,
        ),
    )
    figures = ev.RoundFigures(
        students=2,
        placed=1,
        placed_weight=1,
        total_rank_cost=1,
        first_choice=1,
        top3=1,
        unknown_preferences=0,
        blocking_pairs=0,
        solve_seconds=0.01,
        solver="lsa",
    )
    done = ev.MatchingRoundCompleted(
        producer="matching",
        data=ev.MatchingRoundCompletedData(
            round_id=round_id,
            region=region,
            policy="optimal",
            figures=figures,
            unplaced_by_reason={"choices_full": 1},
            proposed=1,
            cancelled=0,
            fill=True,
            outcome_parts=2,
        ),
    )
    await publish(p, *parts, done)
    await publish(p, proposal)

    async def completed() -> dict[str, Any]:
        body: dict[str, Any] = (await p.client.get(f"/v1/rounds/{round_id}")).json()
        return body if body["status"] == "completed" else {}

    body = await eventually(completed, what=f"round {round_id} completed")
    assert (body["fill"], body["outcome_parts"], body["parts_received"]) == (True, 2, 2)
    listed = (await p.client.get("/v1/rounds", params={"region": region})).json()
    assert [i["round_id"] for i in listed["items"]] == [str(round_id)]

    r = await p.client.get(f"/v1/students/{s2}/outcome", params={"lang": "en"})
    assert r.status_code == 200, r.text
    mine = r.json()
    assert (mine["reason"], mine["text"][0]) == (
        "choices_full",
        "Not placed: every choice that fits was needed by others.",
    )
    page = (await p.client.get(f"/v1/rounds/{round_id}/outcomes", params={"placed": True})).json()
    assert [i["student_id"] for i in page["items"]] == [s1]

    async def proposed() -> bool:
        r = await p.client.get(f"/v1/students/{s1}/match")
        return r.status_code == 200

    await eventually(proposed, what="the proposal applied")
    vacancies = (await p.client.get(f"/v1/regions/{region}/vacancies")).json()
    assert [v["placement_id"] for v in vacancies["placements"]] == [farther]
    [unplaced] = vacancies["students"]["items"]
    assert (unplaced["student_id"], unplaced["vacancies"][0]["placement_id"]) == (s2, farther)

    report = (await p.client.get(f"/v1/rounds/{round_id}/report")).json()
    assert (report["students"], report["placed"], report["ranks"]["unplaced"]) == (2, 1, 1)
    assert report["vacancies"]["free_slots"] == 1
    rows = list(
        csv.reader(io.StringIO((await p.client.get(f"/v1/rounds/{round_id}/report.csv")).text))
    )
    assert ["summary", "students", "value", "2"] in rows

    r = await p.client.post(f"/v1/regions/{region}/supplementary", json={})
    assert r.status_code == 202, r.text
    opening = r.json()["opening_id"]

    r = await p.client.post(
        "/v1/matches", json={"student_id": s2, "placement_id": farther, "reason": "by phone"}
    )
    assert r.status_code == 202, r.text
    match_id = r.json()["match_id"]
    r = await p.client.post(
        "/v1/matches", json={"student_id": s1, "placement_id": farther, "reason": "again"}
    )
    assert r.status_code == 409  # the waiting assignment holds the only slot

    def opened(values: list[dict[str, Any]]) -> bool:
        return any(v["data"].get("opening_id") == opening for v in values)

    rounds = await consume(p.kafka, p.topics.round_requests, opened)
    [event] = [v for v in rounds if v["data"].get("opening_id") == opening]
    assert (event["type"], event["data"]["student_ids"]) == ("SupplementaryRoundOpened", [s2])
    [request] = [
        v
        for v in rounds
        if v["data"].get("round_id") == str(round_id) and v["type"] == "MatchingRoundRequested"
    ]
    assert request["data"]["fill"] is True

    def assigned(values: list[dict[str, Any]]) -> bool:
        return any(v["data"].get("match_id") == match_id for v in values)

    matches = await consume(p.kafka, p.topics.match_decisions, assigned)
    [assignment] = [v for v in matches if v["data"].get("match_id") == match_id]
    assert assignment["type"] == "MatchAssignmentRequested"
    assert assignment["data"].get("reason") is None  # the words stay in the placements service
    kept = "SELECT reason FROM placements.assignments WHERE match_id = $1"
    assert await p.db.fetchval(kept, uuid.UUID(match_id)) == "by phone"
    assert assignment["actor"]["role"] == "coordinator"
    audit = (await p.client.get(f"/v1/regions/{region}/audit")).json()
    assert "MatchAssignmentRequested" in [a["event_type"] for a in audit]

    service = {"Authorization": f"Bearer {p.issuer.service()}"}
    r = await p.client.get(
        "/internal/v1/student-notice-context", params={"student_id": s2}, headers=service
    )
    assert r.status_code == 200
    assert (r.json()["language"], r.json()["vacancies_total"]) == ("sv", 0)  # held by hand

    refusal = ev.MatchCancelled(
        producer="matching",
        data=ev.MatchCancelledData(
            match_id=uuid.UUID(match_id),
            region=region,
            student_id=s2,
            placement_id=farther,
            reason="capacity_reduced",
        ),
    )
    await publish(p, refusal)

    async def cancelled() -> bool:
        found = (await p.client.get(f"/v1/placements/{farther}/matches")).json()
        return any(m["match_id"] == match_id and m["state"] == "cancelled" for m in found)

    await eventually(cancelled, what="the refused assignment recorded as cancelled")
    r = await p.client.get(
        "/internal/v1/student-notice-context", params={"student_id": s2}, headers=service
    )
    assert r.json()["vacancies_total"] == 1  # the slot is free again
