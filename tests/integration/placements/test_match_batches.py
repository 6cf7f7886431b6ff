"""A poll of match events in one transaction (`subscribers.apply_match_events`, the policy's
`whole_batches`), on the real Kafka and PostgreSQL: a round's proposals sent at once are all
applied, and a proposal the database refuses (a second standing match of one student) is
dead-lettered alone while the rest of its batch is applied."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from shared.contracts.topics import dlt, event_key
from shared.kafka import event_headers
from tests.integration.placements.conftest import Placements, uid
from tests.integration.placements.test_api import placement_body, student_body
from tests.support.factories import proposed
from tests.support.kafka import read_records
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


async def test_a_rounds_proposals_are_applied_and_a_refused_one_dead_lettered_alone(
    placements: Placements,
) -> None:
    p, region = placements, uid("R")
    p.coordinate(region)
    first, second = uid("p"), uid("p")
    r = await p.client.post(
        "/v1/placements/batch",
        json={"items": [placement_body(x, region, capacity=30) for x in (first, second)]},
    )
    assert r.status_code == 201, r.text
    sids = [uid("s") for _ in range(25)]
    students = [student_body(s, [first], region) for s in sids]
    r = await p.client.post("/v1/students/batch", json={"items": students})
    assert r.status_code == 201, r.text

    round_id = uuid.uuid4()
    proposals = [proposed(s, first, round_id, 1, region) for s in sids]
    # the fifth student proposed twice: the database keeps one standing match per student
    refused = proposed(sids[4], second, round_id, 1, region)
    batch = [*proposals[:10], refused, *proposals[10:]]
    producer = p.kafka.producer(enable_idempotence=True, acks="all", linger_ms=50)
    await producer.start()
    try:
        sent = [
            await producer.send(
                p.topics.matches,
                e.to_json(),
                key=event_key(region),
                headers=[(k, v.encode()) for k, v in event_headers(e.type, e.event_id).items()],
            )
            for e in batch
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    async def all_applied() -> bool:
        listed = await p.client.get(f"/v1/placements/{first}/matches")
        return len(listed.json() or []) == len(sids)

    await eventually(all_applied, wait=60, what="every proposal applied")
    dead = await read_records(p.kafka, dlt(p.topics.matches), until=lambda rs: len(rs) >= 1)
    assert [json.loads(r.value)["event_id"] for r in dead] == [str(refused.event_id)]
    headers = dict(dead[0].headers)
    assert b"student" in headers["x-error"].lower(), headers["x-error"]
    listed = await p.client.get(f"/v1/placements/{second}/matches")
    assert listed.json() == []
    applied = await p.db.fetchval(
        "SELECT count(*) FROM placements.matches WHERE round_id = $1 AND state = 'proposed'",
        round_id,
    )
    assert applied == len(sids)
