"""The HTTP API against the real PostgreSQL and Kafka (the app runs in-process)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.contracts import events as ev
from shared.kafka import make_broker, publish_event
from tests.integration.placements.conftest import (
    MAX_BODY,
    Placements,
    consume,
    uid,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


def placement_body(
    pid: str, region: str = "SE-AB", company: str = "c-1", **kw: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "placement_id": pid,
        "company_id": company,
        "region": region,
        "capacity": 2,
        "title": "Electrician apprentice",
        "required_skills": ["wiring"],
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "site": {"lat": 59.33, "lon": 18.07},
        "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    }
    body.update(kw)
    return body


def student_body(sid: str, prefs: list[str], region: str = "SE-AB", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "student_id": sid,
        "region": region,
        "programme": "EE",
        "skills": ["wiring"],
        "preferences": prefs,
        "available_from": "2027-01-11",
        "available_to": "2027-03-19",
        "name": "Sara Nieminen",
        "email": "sara@example.fi",
        "phone": "+358 40 123 4567",
    }
    body.update(kw)
    return body


def fields(response: Any) -> set[str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == response.status_code
    return {e["field"] for e in problem["errors"]}


async def publish(p: Placements, *events: ev.Event) -> None:
    broker = make_broker(p.kafka, "test-publisher")
    async with broker:
        await broker.connect()
        for event in events:
            await publish_event(broker, p.topics, event)


async def propose(p: Placements, sid: str, pid: str, region: str = "SE-AB") -> uuid.UUID:
    match_id = uuid.uuid4()
    data = ev.MatchProposedData(
        match_id=match_id,
        region=region,
        student_id=sid,
        placement_id=pid,
        round_id=uuid.uuid4(),
        company_id="c-1",
        rank=1,
    )
    await publish(p, ev.MatchProposed(producer="matching", data=data))

    async def seen() -> bool:
        r = await p.client.get(f"/v1/placements/{pid}/matches")
        return any(m["match_id"] == str(match_id) for m in r.json() or [])

    await eventually(seen, what=f"MatchProposed {match_id} applied")
    return match_id


async def test_placement_lifecycle_is_published(placements: Placements) -> None:
    p, region = placements, uid("R")
    p.coordinate(region)
    pid, company = uid("p"), uid("c")
    r = await p.client.post("/v1/placements", json=placement_body(pid, region, company))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open"
    assert (await p.client.get(f"/v1/placements/{pid}")).json()["capacity"] == 2
    other = uid("p")
    await p.client.post("/v1/placements", json=placement_body(other, region, uid("c")))
    listed = await p.client.get("/v1/placements", params={"region": region, "company_id": company})
    assert [x["placement_id"] for x in listed.json()] == [pid]
    assert len((await p.client.get("/v1/placements", params={"region": region})).json()) == 2

    r = await p.client.patch(f"/v1/placements/{pid}", json={"capacity": 5, "title": "Welder"})
    assert r.status_code == 200, r.text
    assert (r.json()["capacity"], r.json()["title"]) == (5, "Welder")
    assert (await p.client.delete(f"/v1/placements/{pid}")).status_code == 204
    assert (await p.client.delete(f"/v1/placements/{pid}")).status_code == 204  # no-op
    assert (await p.client.get(f"/v1/placements/{pid}")).json()["status"] == "withdrawn"
    r = await p.client.patch(f"/v1/placements/{pid}", json={"capacity": 1})
    assert r.status_code == 409

    def done(values: list[dict[str, Any]]) -> bool:
        return sum(bool(v["data"]["placement_id"] == pid) for v in values) >= 3

    values = await consume(p.kafka, p.topics.placements, done)
    mine = [v for v in values if v["data"]["placement_id"] == pid]
    assert [v["type"] for v in mine] == [
        "PlacementPosted",
        "PlacementUpdated",
        "PlacementWithdrawn",
    ]
    assert mine[1]["data"]["capacity"] == 5


async def test_bad_student_names_every_field_and_writes_nothing(placements: Placements) -> None:
    p = placements
    pid, withdrawn = uid("p"), uid("p")
    await p.client.post("/v1/placements", json=placement_body(pid))
    await p.client.post("/v1/placements", json=placement_body(withdrawn))
    await p.client.delete(f"/v1/placements/{withdrawn}")
    before = await p.outbox_count()
    sid = uid("s")
    body = student_body(
        sid,
        [pid, "p-unknown", pid, withdrawn],
        email="not-an-email",
        available_from="2027-05-01",
        available_to="2027-04-01",
    )
    r = await p.client.post("/v1/students", json=body)
    assert r.status_code == 422
    assert fields(r) == {"email"}  # the body itself is malformed: pydantic's checks come first
    body["email"] = "sara@example.fi"
    r = await p.client.post("/v1/students", json=body)
    assert r.status_code == 422
    assert fields(r) == {"preferences[1]", "preferences[2]", "preferences[3]", "available_to"}
    r = await p.client.post("/v1/students", json=student_body(sid, [uid("p") for _ in range(11)]))
    assert r.status_code == 422
    assert "preferences" in fields(r)  # too many (and each unknown one is named too)
    r = await p.client.post("/v1/students", json={"student_id": sid, "region": "SE-AB"})
    assert fields(r) == {"name", "email"}
    assert (await p.client.get(f"/v1/students/{sid}")).status_code == 404
    assert await p.outbox_count() == before


async def test_bad_placement_and_patch_name_their_fields(placements: Placements) -> None:
    p = placements
    pid = uid("p")
    bad = placement_body(
        pid,
        starts_on="2027-04-01",
        ends_on="2027-03-01",
        ranking=["s-1", "s-2", "s-1"],
        notification={"channel": "webhook"},
    )
    r = await p.client.post("/v1/placements", json={**bad, "capacity": -1})
    assert r.status_code == 422
    assert fields(r) == {"capacity"}
    r = await p.client.post("/v1/placements", json=bad)
    assert fields(r) == {"ends_on", "ranking[2]", "notification.webhook_url"}
    r = await p.client.post("/v1/placements", json={**placement_body(pid), "colour": "red"})
    assert fields(r) == {"colour"}
    assert (await p.client.get(f"/v1/placements/{pid}")).status_code == 404
    assert (await p.client.post("/v1/placements", json=placement_body(pid))).status_code == 201
    assert (await p.client.post("/v1/placements", json=placement_body(pid))).status_code == 409
    r = await p.client.patch(f"/v1/placements/{pid}", json={"ends_on": "2027-01-01"})
    assert fields(r) == {"ends_on"}
    r = await p.client.patch(f"/v1/placements/{pid}", json={"region": "FI-1"})
    assert fields(r) == {"region"}
    r = await p.client.patch(
        f"/v1/placements/{pid}", json={"capacity": None, "programmes": None, "title": None}
    )
    assert fields(r) == {"capacity", "programmes"}  # a title may be cleared; these may not
    assert (await p.client.patch("/v1/placements/nope", json={"capacity": 1})).status_code == 404


async def test_capacity_cannot_drop_below_confirmed_matches(placements: Placements) -> None:
    p = placements
    pid = uid("p")
    await p.client.post("/v1/placements", json=placement_body(pid, capacity=3))
    sids = [uid("s"), uid("s")]
    for sid in sids:
        assert (
            await p.client.post("/v1/students", json=student_body(sid, [pid]))
        ).status_code == 201
    ids = [await propose(p, sid, pid) for sid in sids]
    confirmations = [
        ev.MatchConfirmed(
            producer="matching",
            data=ev.MatchConfirmedData(match_id=m, region="SE-AB", student_id=s, placement_id=pid),
        )
        for m, s in zip(ids, sids, strict=True)
    ]
    await publish(p, *confirmations)

    async def confirmed() -> bool:
        return bool((await p.client.get(f"/v1/placements/{pid}")).json()["confirmed"] == 2)

    await eventually(confirmed, what="both confirmations applied")
    before = (await p.client.get(f"/v1/placements/{pid}/matches")).json()
    await publish(p, confirmations[0])  # a duplicate: the inbox knows it, nothing changes
    # A sentinel on the same partition (topic and region): once it is applied, so is the duplicate.
    sentinel = await propose(p, uid("s"), pid)
    after = (await p.client.get(f"/v1/placements/{pid}/matches")).json()
    assert [m for m in after if m["match_id"] != str(sentinel)] == before
    r = await p.client.patch(f"/v1/placements/{pid}", json={"capacity": 1})
    assert r.status_code == 422
    assert fields(r) == {"capacity"}
    assert (await p.client.patch(f"/v1/placements/{pid}", json={"capacity": 2})).status_code == 200
    n = await p.db.fetchval(
        "SELECT count(*) FROM placements.inbox WHERE event_id = $1", confirmations[0].event_id
    )
    assert n == 1


async def test_idempotency_key_replays_the_first_response(placements: Placements) -> None:
    p = placements
    pid = uid("p")
    key = {"Idempotency-Key": uid("k")}
    first = await p.client.post("/v1/placements", json=placement_body(pid), headers=key)
    before = await p.outbox_count()
    again = await p.client.post("/v1/placements", json=placement_body(pid), headers=key)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert await p.outbox_count() == before
    r = await p.client.post("/v1/placements", json=placement_body(pid, capacity=9), headers=key)
    assert r.status_code == 422
    assert fields(r) == {"Idempotency-Key"}
    rounds = [
        await p.client.post("/v1/rounds", json={"region": "SE-AB"}, headers=key) for _ in range(2)
    ]
    assert rounds[0].status_code == 202
    assert rounds[0].json() == rounds[1].json()
    assert await p.outbox_count() == before + 1


async def test_matches_accept_decline_and_notice_context(placements: Placements) -> None:
    p = placements
    pid, sid, other = uid("p"), uid("s"), uid("s")
    await p.client.post(
        "/v1/placements",
        json=placement_body(
            pid, notification={"channel": "webhook", "webhook_url": "https://x.example/h"}
        ),
    )
    for s in (sid, other):
        await p.client.post("/v1/students", json=student_body(s, [pid], email=f"{s}@example.fi"))
    assert (await p.client.get(f"/v1/students/{sid}/match")).status_code == 404
    match_id = await propose(p, sid, pid)
    declined_id = await propose(p, other, pid)
    path = "/internal/v1/notice-context"
    params = {"placement_id": pid, "student_id": sid}
    anonymous = {"Authorization": ""}
    assert (await p.client.get(path, params=params, headers=anonymous)).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert (await p.client.get(path, params=params, headers=bad)).status_code == 401
    assert (await p.client.get(path, params=params)).status_code == 403  # a coordinator's
    auth = {"Authorization": f"Bearer {p.issuer.service()}"}
    context = (await p.client.get(path, params=params, headers=auth)).json()
    assert context["student"]["contact_shared"] is False
    assert context["student"]["email"] is None
    assert context["channel"] == {"kind": "webhook", "webhook_url": "https://x.example/h"}
    assert context["supervisor"]["email"] == "anna@example.se"

    r = await p.client.post(f"/v1/matches/{match_id}/accept", json={"by": "student"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["accepted_by_student"]) == ("accepted", True)
    answered = {str(match_id): r.json()}
    r = await p.client.post(f"/v1/matches/{match_id}/accept", json={"by": "student"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    context = (await p.client.get(path, params=params, headers=auth)).json()
    assert context["student"]["contact_shared"] is True
    assert context["student"]["email"] == f"{sid}@example.fi"
    assert (await p.client.get(f"/v1/students/{sid}/match")).json()["match_id"] == str(match_id)

    r = await p.client.post(
        f"/v1/matches/{declined_id}/decline", json={"by": "company", "reason": "no fit"}
    )
    assert (r.status_code, r.json()["state"]) == (200, "declined")
    answered[str(declined_id)] = r.json()
    r = await p.client.post(f"/v1/matches/{declined_id}/accept", json={"by": "student"})
    assert r.status_code == 409
    r = await p.client.post(f"/v1/matches/{uuid.uuid4()}/accept", json={"by": "student"})
    assert r.status_code == 404
    r = await p.client.post(f"/v1/matches/{match_id}/accept", json={"by": "coordinator"})
    assert fields(r) == {"by"}
    missing = {"placement_id": "nope", "student_id": sid}
    assert (await p.client.get(path, params=missing, headers=auth)).status_code == 404

    def done(values: list[dict[str, Any]]) -> bool:
        return {"MatchAccepted", "MatchDeclined"} <= {
            v["type"] for v in values if v["data"]["placement_id"] == pid
        }

    values = await consume(p.kafka, p.topics.match_decisions, done)
    mine = [v for v in values if v["data"]["placement_id"] == pid and v["producer"] == "placements"]
    assert sorted(v["type"] for v in mine) == ["MatchAccepted", "MatchDeclined"]
    # our own answers are on apl.match-decisions.v1, which this service writes and does not
    # read: nothing changes (not even `updated_at`) when matching's next proposal is applied.
    sentinel = await propose(p, uid("s"), pid)
    after = (await p.client.get(f"/v1/placements/{pid}/matches")).json()
    assert {m["match_id"]: m for m in after if m["match_id"] != str(sentinel)} == answered


async def test_rounds_report_their_figures(placements: Placements) -> None:
    p = placements
    r = await p.client.post("/v1/rounds", json={"region": "SE-AB", "policy": "stable"})
    assert r.status_code == 202
    round_id = r.json()["round_id"]
    assert r.json()["status"] == "requested"
    assert (await p.client.get(f"/v1/rounds/{round_id}")).json()["status"] == "requested"
    figures = ev.RoundFigures(
        students=3,
        placed=2,
        placed_weight=2,
        total_rank_cost=5,
        first_choice=1,
        top3=2,
        unknown_preferences=0,
        blocking_pairs=0,
        solve_seconds=0.01,
        solver="lsa",
    )
    done = ev.MatchingRoundCompleted(
        producer="matching",
        data=ev.MatchingRoundCompletedData(
            round_id=uuid.UUID(round_id),
            region="SE-AB",
            policy="stable",
            figures=figures,
            unplaced_by_reason={"choices_full": 1},
            proposed=2,
            cancelled=0,
        ),
    )
    await publish(p, done)

    async def completed() -> bool:
        status = (await p.client.get(f"/v1/rounds/{round_id}")).json()["status"]
        return bool(status == "completed")

    await eventually(completed, what=f"round {round_id} completed")
    body = (await p.client.get(f"/v1/rounds/{round_id}")).json()
    assert body["figures"]["placed"] == 2
    assert body["unplaced_by_reason"] == {"choices_full": 1}
    assert (await p.client.get(f"/v1/rounds/{uuid.uuid4()}")).status_code == 404
    r = await p.client.post("/v1/rounds", json={"region": "SE-AB", "policy": "random"})
    assert fields(r) == {"policy"}


async def test_oversized_body_gets_413(placements: Placements) -> None:
    p = placements
    body = placement_body(uid("p"), title="x" * 100, programmes=["EE"] * (MAX_BODY // 4))
    r = await p.client.post("/v1/placements", json=body)
    assert r.status_code == 413
    assert r.json()["status"] == 413

    async def chunks() -> Any:
        for _ in range(MAX_BODY // 1000 + 2):
            yield b" " * 1000

    r = await p.client.post(
        "/v1/placements", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


async def test_health_and_docs(placements: Placements) -> None:
    p = placements
    assert (await p.client.get("/healthz")).status_code == 200
    r = await p.client.get("/readyz")
    assert r.status_code == 200, r.text
    assert (await p.client.get("/docs")).status_code == 200
    paths = (await p.client.get("/openapi.json")).json()["paths"]
    assert "/v1/placements" in paths
    assert not any(path.startswith("/internal") for path in paths)


async def test_erasure_leaves_no_trace_of_name_or_email(placements: Placements) -> None:
    p = placements
    pid, sid = uid("p"), uid("s")
    name, email = f"Name {uuid.uuid4().hex}", f"{uuid.uuid4().hex}@example.fi"
    await p.client.post("/v1/placements", json=placement_body(pid))
    key = {"Idempotency-Key": uid("k")}
    body = student_body(sid, [pid], name=name, email=email, phone="+46 70 999 1234")
    assert (await p.client.post("/v1/students", json=body, headers=key)).status_code == 201
    assert (
        await p.client.put(f"/v1/students/{sid}/preferences", json={"preferences": []})
    ).status_code == 200
    match_id = await propose(p, sid, pid)
    await p.client.post(
        f"/v1/matches/{match_id}/decline", json={"by": "student", "reason": "too far"}
    )
    assert await _traces(p, name, email), "the search must find the details before erasure"

    assert (await p.client.delete(f"/v1/students/{sid}")).status_code == 204
    assert await _traces(p, name, email) == []
    assert await _traces(p, "+46 70 999 1234", "+46 70 999 1234") == []
    assert (await p.client.get(f"/v1/students/{sid}")).status_code == 404
    row = await p.db.fetchrow("SELECT * FROM placements.students WHERE student_id = $1", sid)
    assert row is not None
    kept = {k for k, v in dict(row).items() if v is not None}
    assert kept == {"student_id", "region", "programme", "participant", "withdrawn_at"}
    # the replayed registration no longer holds the details either
    again = await p.client.post("/v1/students", json=body, headers=key)
    assert name not in again.text
    assert email not in again.text

    def done(values: list[dict[str, Any]]) -> bool:
        return any(
            v["type"] == "StudentWithdrawn" and v["data"]["student_id"] == sid for v in values
        )

    values = await consume(p.kafka, p.topics.students, done)
    assert done(values)
    assert not any(name in str(v) or email in str(v) for v in values)


async def _traces(p: Placements, *needles: str) -> list[str]:
    """Every (table.column) of the placements schema whose text contains a needle."""
    columns = await p.db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'placements' "
        "AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')"
    )
    found = []
    for c in columns:
        column = f'"{c["column_name"]}"'
        as_text = (
            f"convert_from({column}, 'UTF8')" if c["data_type"] == "bytea" else f"{column}::text"
        )
        for needle in needles:
            n = await p.db.fetchval(
                # table and column names as information_schema lists them, quoted
                f'SELECT count(*) FROM placements."{c["table_name"]}" '  # noqa: S608
                f"WHERE strpos({as_text}, $1) > 0",
                needle,
            )
            if n:
                found.append(f"{c['table_name']}.{c['column_name']}")
    return found


async def test_round_request_states_how_many_inputs_came_before_it(placements: Placements) -> None:
    p, region = placements, uid("R")
    p.coordinate(region)
    pids = [uid("p"), uid("p")]
    for pid in pids:
        r = await p.client.post("/v1/placements", json=placement_body(pid, region, uid("c")))
        assert r.status_code == 201, r.text
    await p.client.patch(f"/v1/placements/{pids[0]}", json={"capacity": 3})
    r = await p.client.post("/v1/rounds", json={"region": region})
    round_id = r.json()["round_id"]

    def done(values: list[dict[str, Any]]) -> bool:
        return any(v["data"].get("round_id") == round_id for v in values)

    values = await consume(p.kafka, p.topics.round_requests, done)
    request = next(v for v in values if v["data"].get("round_id") == round_id)
    assert request["type"] == "MatchingRoundRequested"
    assert request["data"]["inputs_published"] == 3  # two posted, one updated; other regions not


async def test_batches_are_all_or_nothing_and_name_the_bad_item(placements: Placements) -> None:
    p, region = placements, uid("R")
    p.coordinate(region)
    pids = [uid("p") for _ in range(3)]
    r = await p.client.post(
        "/v1/placements/batch", json={"items": [placement_body(x, region) for x in pids]}
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"created": 3, "ids": pids}
    listed = await p.client.get("/v1/placements", params={"region": region})
    assert sorted(x["placement_id"] for x in listed.json()) == sorted(pids)

    before = await p.outbox_count()
    bad = [placement_body(uid("p"), region), placement_body(uid("p"), region, capacity=-1)]
    bad.append(placement_body(bad[0]["placement_id"], region))
    r = await p.client.post("/v1/placements/batch", json={"items": bad})
    assert r.status_code == 422
    assert fields(r) == {"items[1].capacity"}
    del bad[1]
    r = await p.client.post("/v1/placements/batch", json={"items": bad})
    assert fields(r) == {"items[1].placement_id"}  # repeats items[0]
    r = await p.client.post(
        "/v1/placements/batch", json={"items": [placement_body(uid("p"), region), bad[0]]}
    )
    assert r.status_code == 201
    r = await p.client.post(
        "/v1/placements/batch", json={"items": [placement_body(uid("p"), region), bad[0]]}
    )
    assert r.status_code == 409  # bad[0] exists now: nothing of this batch is written
    assert await p.outbox_count() == before + 2

    sids = [uid("s"), uid("s")]
    students = [student_body(sids[0], pids[:2], region), student_body(sids[1], [pids[2]], region)]
    r = await p.client.post(
        "/v1/students/batch",
        json={"items": [students[0], student_body(uid("s"), [pids[0], "p-unknown"], region)]},
    )
    assert r.status_code == 422
    assert fields(r) == {"items[1].preferences[1]"}
    r = await p.client.post("/v1/students/batch", json={"items": students})
    assert r.status_code == 201, r.text
    assert r.json()["ids"] == sids
    assert (await p.client.get(f"/v1/students/{sids[1]}")).json()["preferences"] == [pids[2]]

    def done(values: list[dict[str, Any]]) -> bool:
        return sum(v["data"]["student_id"] in sids for v in values) >= 2

    values = await consume(p.kafka, p.topics.students, done)
    mine = [v for v in values if v["data"]["student_id"] in sids]
    assert [v["type"] for v in mine] == ["StudentRegistered", "StudentRegistered"]
    assert all("name" not in v["data"] and "email" not in v["data"] for v in mine)
