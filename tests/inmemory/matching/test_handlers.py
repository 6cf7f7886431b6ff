"""Matching handlers behind their FastStream subscribers, on the in-memory TestKafkaBroker.

The broker is FastStream's in-memory one; the read model is the real PostgreSQL (a fresh schema
per test); rounds use a trivial deterministic solver double. What the service publishes is read
from its outbox (the relay that moves it to Kafka is tested on the real broker).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker

from services.matching.adapters import repository as repo
from services.matching.auto import AutoRounds
from services.matching.bootstrap import Matching, build_service
from services.matching.entrypoints import build_router
from services.matching.main import MIGRATIONS
from services.matching.settings import MatchingServiceSettings
from shared.contracts import events as ev
from shared.contracts.topics import Topics, dlt
from shared.db import create_pool, migrate
from shared.kafka import publish_event
from tests.support.factories import placement, student
from tests.support.waiting import eventually
from tests.unit.matching_service.doubles import greedy_solver

pytestmark = pytest.mark.infra

MATCH_KEYS = ("match_id", "region", "student_id", "placement_id")


@pytest.fixture
async def service(database_url: str, fresh_schema: str) -> AsyncIterator[Matching]:
    await migrate(database_url, fresh_schema, MIGRATIONS)
    settings = MatchingServiceSettings(
        database_url=database_url,
        schema_name=fresh_schema,
        topic_prefix="",
        kafka_bootstrap="localhost:9092",
        max_attempts=2,
    )
    svc = build_service(settings, greedy_solver)
    svc.consumer.backoff_initial = 0.001
    svc.broker.include_router(build_router(svc))
    svc.pool = await create_pool(database_url, fresh_schema)
    yield svc
    await svc.pool.close()


async def _outbox(pool: asyncpg.Pool, kind: str) -> list[dict[str, object]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", kind)
    return [json.loads(bytes(r["payload"]))["data"] for r in rows]


def _ids(proposal: dict[str, object], **fields: object) -> dict[str, object]:
    """A response's data: the match keys of `proposal` (a MatchProposed's data), and `fields`."""
    return {**{k: proposal[k] for k in MATCH_KEYS}, **fields}


def _accepted(proposal: dict[str, object], **fields: object) -> ev.MatchAccepted:
    data = ev.MatchAcceptedData.model_validate(_ids(proposal, **fields), strict=False)
    return ev.MatchAccepted(producer="t", data=data)


def _declined(proposal: dict[str, object], **fields: object) -> ev.MatchDeclined:
    data = ev.MatchDeclinedData.model_validate(_ids(proposal, **fields), strict=False)
    return ev.MatchDeclined(producer="t", data=data)


def _round(region: str = "SE-AB") -> ev.MatchingRoundRequested:
    return ev.MatchingRoundRequested(
        producer="test",
        data=ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region=region),
    )


async def test_round_proposes_once_and_repeat_without_change_publishes_nothing(
    service: Matching,
) -> None:
    topics = Topics()
    assert service.pool is not None
    async with TestKafkaBroker(service.broker) as br:
        # order across topics does not matter: the student ranks p-2 before p-2 exists
        await publish_event(
            br, topics, ev.StudentRegistered(producer="t", data=student("s-1", prefs=("p-2",)))
        )
        await publish_event(
            br, topics, ev.StudentRegistered(producer="t", data=student("s-2", prefs=("p-2",)))
        )
        posted = ev.PlacementPosted(producer="t", data=placement("p-2", capacity=1))
        await publish_event(br, topics, posted)
        await publish_event(br, topics, posted)  # a redelivery is applied once
        first = _round()
        await publish_event(br, topics, first)
        await publish_event(br, topics, first)  # redelivered request: no second round
        await publish_event(br, topics, _round())  # a new request, nothing changed

    proposed = await _outbox(service.pool, "MatchProposed")
    assert [(p["student_id"], p["placement_id"], p["rank"]) for p in proposed] == [
        ("s-1", "p-2", 1)
    ]
    completed = await _outbox(service.pool, "MatchingRoundCompleted")
    assert len(completed) == 2
    assert completed[0]["proposed"] == 1
    assert completed[0]["unplaced_by_reason"] == {"choices_full": 1}
    assert completed[0]["figures"]["placed"] == 1  # type: ignore[index]
    assert completed[1]["proposed"] == 0
    assert completed[1]["cancelled"] == 0


async def test_accept_by_both_confirms_and_decline_excludes_the_pair(service: Matching) -> None:
    topics = Topics()
    assert service.pool is not None
    async with TestKafkaBroker(service.broker) as br:
        await publish_event(br, topics, ev.PlacementPosted(producer="t", data=placement("p-1")))
        await publish_event(br, topics, ev.PlacementPosted(producer="t", data=placement("p-2")))
        for sid in ("s-1", "s-2"):
            await publish_event(
                br,
                topics,
                ev.StudentRegistered(producer="t", data=student(sid, prefs=("p-1", "p-2"))),
            )
        await publish_event(br, topics, _round())
        proposed = {p["student_id"]: p for p in await _outbox(service.pool, "MatchProposed")}
        assert {p["placement_id"] for p in proposed.values()} == {"p-1"}
        for by in ("student", "company"):
            await publish_event(br, topics, _accepted(proposed["s-1"], by=by))
        await publish_event(br, topics, _declined(proposed["s-2"], by="student"))
        await publish_event(br, topics, _round())

    confirmed = await _outbox(service.pool, "MatchConfirmed")
    assert [c["student_id"] for c in confirmed] == ["s-1"]
    cancelled = await _outbox(service.pool, "MatchCancelled")
    assert [(c["student_id"], c["reason"]) for c in cancelled] == [("s-2", "declined")]
    after = [
        p
        for p in await _outbox(service.pool, "MatchProposed")
        if p["round_id"] != proposed["s-1"]["round_id"]
    ]
    # the second round re-matches s-2 elsewhere (never p-1 again) and leaves s-1 pinned
    assert [(p["student_id"], p["placement_id"]) for p in after] == [("s-2", "p-2")]


async def test_withdrawn_placement_cancels_its_proposals_at_once(service: Matching) -> None:
    topics = Topics()
    assert service.pool is not None
    async with TestKafkaBroker(service.broker) as br:
        await publish_event(br, topics, ev.PlacementPosted(producer="t", data=placement("p-1")))
        await publish_event(
            br, topics, ev.StudentRegistered(producer="t", data=student("s-1", prefs=("p-1",)))
        )
        await publish_event(br, topics, _round())
        await publish_event(
            br,
            topics,
            ev.PlacementWithdrawn(
                producer="t",
                data=ev.PlacementWithdrawnData(placement_id="p-1", region="SE-AB"),
            ),
        )
    cancelled = await _outbox(service.pool, "MatchCancelled")
    assert [(c["student_id"], c["reason"]) for c in cancelled] == [("s-1", "placement_withdrawn")]


async def test_malformed_event_is_dead_lettered_and_the_partition_moves_on(
    service: Matching,
) -> None:
    topics = Topics()
    assert service.pool is not None
    dead: list[tuple[bytes, str]] = []

    @service.broker.subscriber(dlt(topics.students), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers["x-error"]))

    async with TestKafkaBroker(service.broker) as br:
        await br.publish(b'{"type": "StudentRegistered"}', topics.students, key=b"SE-AB")
        await publish_event(
            br, topics, ev.StudentRegistered(producer="t", data=student("s-1", prefs=("p-1",)))
        )
    assert len(dead) == 1
    assert dead[0][0] == b'{"type": "StudentRegistered"}'
    assert "schema_version" in dead[0][1]
    assert await service.pool.fetchval("SELECT count(*) FROM students") == 1


async def test_a_dead_lettered_input_does_not_hold_up_the_rounds_that_counted_it(
    service: Matching,
) -> None:
    topics = Topics()
    assert service.pool is not None
    async with TestKafkaBroker(service.broker) as br:
        await publish_event(
            br, topics, ev.PlacementPosted(producer="t", data=placement("p-1", capacity=1))
        )
        for sid in ("s-1", "s-2"):
            await publish_event(
                br, topics, ev.StudentRegistered(producer="t", data=student(sid, prefs=("p-1",)))
            )
        await publish_event(br, topics, _round())
        (proposal,) = await _outbox(service.pool, "MatchProposed")
        # The match id of one student with the other student: the handler refuses it every
        # time, so it is dead-lettered.
        other = "s-2" if proposal["student_id"] == "s-1" else "s-1"
        bad = _accepted(proposal, student_id=other, by="student")
        await publish_event(br, topics, bad)
        assert service.consumer.dead_letters == 1
        # The requester had published four inputs, the dead one included: the round runs.
        request = ev.MatchingRoundRequested(
            producer="t",
            data=ev.MatchingRoundRequestedData(
                round_id=uuid.uuid4(), region="SE-AB", inputs_published=4
            ),
        )
        async with asyncio.timeout(30):
            await publish_event(br, topics, request)
    completed = await _outbox(service.pool, "MatchingRoundCompleted")
    assert [c["round_id"] for c in completed][-1] == str(request.data.round_id)
    async with service.pool.acquire() as conn:
        assert await repo.inputs_settled(conn, "t", "SE-AB") == (3, 1)
        # Replayed from the .dlt and applied after all, it is counted once, as applied.
        await repo.count_input(conn, bad.event_id, "t", "SE-AB")
        assert await repo.inputs_settled(conn, "t", "SE-AB") == (4, 0)


async def test_automatic_mode_runs_after_changes_and_rematches_a_decline_minimally(
    service: Matching,
) -> None:
    topics = Topics()
    pool = service.pool
    assert pool is not None
    service.settings.auto_regions = "SE-AB"
    service.auto = AutoRounds(
        run=service.automatic_round, is_automatic=service.settings.is_automatic, delay=0.2
    )

    async def completed() -> int:
        return len(await _outbox(pool, "MatchingRoundCompleted"))

    try:
        async with TestKafkaBroker(service.broker) as br:
            await publish_event(
                br, topics, ev.PlacementPosted(producer="t", data=placement("p-1", capacity=3))
            )
            await publish_event(
                br, topics, ev.PlacementPosted(producer="t", data=placement("p-2", capacity=3))
            )
            for sid in ("s-1", "s-2", "s-3"):
                await publish_event(
                    br,
                    topics,
                    ev.StudentRegistered(producer="t", data=student(sid, prefs=("p-1", "p-2"))),
                )
            await eventually(lambda: _ge(completed, 1), wait=20, interval=0.05)
            await asyncio.sleep(0.5)
            assert await completed() == 1  # one debounced round for the burst of changes
            first = {p["student_id"]: p for p in await _outbox(pool, "MatchProposed")}
            assert {p["placement_id"] for p in first.values()} == {"p-1"}
            await publish_event(br, topics, _declined(first["s-2"], by="company"))
            await eventually(lambda: _ge(completed, 2), wait=20, interval=0.05)
    finally:
        await service.auto.close()
    proposals = await _outbox(pool, "MatchProposed")
    assert [(p["student_id"], p["placement_id"]) for p in proposals[3:]] == [("s-2", "p-2")]
    cancelled = await _outbox(pool, "MatchCancelled")
    assert [(c["student_id"], c["reason"]) for c in cancelled] == [("s-2", "declined")]


async def _ge(count, n: int) -> bool:
    return bool(await count() >= n)
