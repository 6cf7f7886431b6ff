"""A poll's batch of placement events in one transaction, against the real Kafka and PostgreSQL.

The matching service applies a poll's placement and student records in one transaction
(`handlers.apply_input_events`, the policy's `whole_batches`). A batch with a record that breaks
the contract, and one with a valid record the read model refuses (a CHECK constraint, as a bug in
a migration would), are applied again one record at a time: only the bad records end in the
dead-letter topic (the refused one counted in `inputs_dead_lettered`), and every other record of
both batches is applied and counted once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts import events as ev
from shared.contracts.topics import Topics, dlt, event_key
from shared.kafka import event_headers
from tests.integration.matching.support import prepared_schema, read_model_count, replica, scalar
from tests.support.factories import placement
from tests.support.infra import Infra
from tests.support.kafka import read_records
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

REGION = "SE-AB"


async def _send(producer: AIOKafkaProducer, topic: str, records: list[ev.Event | bytes]) -> None:
    """Every record at once, on the region's partition (so one poll can take them all)."""
    sent = []
    for r in records:
        if isinstance(r, bytes):
            value, headers = r, []
        else:
            value = r.to_json()
            headers = [(k, v.encode()) for k, v in event_headers(r.type, r.event_id).items()]
        sent.append(await producer.send(topic, value, key=event_key(REGION), headers=headers))
    await asyncio.gather(*sent)


async def test_a_bad_record_of_a_batch_is_dead_lettered_alone_and_the_rest_applied(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    schema, env = await prepared_schema(infra, database_url, topics)
    env["APL_MATCHING_MAX_ATTEMPTS"] = "2"
    await scalar(  # the read model refuses this one placement, whatever the attempts
        database_url,
        f"ALTER TABLE {schema}.placements ADD CONSTRAINT refuses_p_bad "
        "CHECK (placement_id <> 'p-bad')",
    )

    def good(first: int) -> list[ev.Event | bytes]:
        return [
            ev.PlacementPosted(producer="placements", data=placement(f"p-{i}", region=REGION))
            for i in range(first, first + 10)
        ]

    refused = ev.PlacementPosted(producer="placements", data=placement("p-bad", region=REGION))
    # a batch with a contract breaker in the middle, published before the service starts
    first: list[ev.Event | bytes] = [*good(0), b"not json", *good(10)]
    producer = infra.kafka.producer(linger_ms=50)  # as the admin (feeding raw bytes)
    await producer.start()
    service = replica(env, tmp_path / "logs", "matching")
    try:
        await _send(producer, topics.placements, first)
        await asyncio.to_thread(service.start, 90)

        async def placements(n: int) -> bool:
            return await read_model_count(database_url, schema, "placements") >= n

        await eventually(lambda: placements(20), wait=60, what="the first batch's placements")
        # then a batch with a record the read model refuses, in the middle
        await _send(producer, topics.placements, [*good(20), refused, *good(30)])
        await eventually(lambda: placements(40), wait=60, what="the second batch's placements")
        # One record at a time, a record is dead-lettered before the next one is applied: with
        # all 40 applied, every dead letter of both batches is in the topic.
        letters = await read_records(
            infra.kafka, dlt(topics.placements), until=lambda r: len(r) >= 2, wait=60
        )
    finally:
        await producer.stop()
        await asyncio.to_thread(service.stop)

    assert sorted(r.value for r in letters if r.value == b"not json") == [b"not json"]
    refused_letters = [json.loads(r.value) for r in letters if r.value != b"not json"]
    assert [d["event_id"] for d in refused_letters] == [str(refused.event_id)]
    assert len(letters) == 2
    assert await read_model_count(database_url, schema, "placements") == 40
    assert not await scalar(
        database_url,
        f"SELECT count(*) FROM {schema}.placements WHERE placement_id = 'p-bad'",  # noqa: S608
    )
    assert (
        await scalar(
            database_url,
            f"SELECT events FROM {schema}.inputs_applied "  # noqa: S608
            "WHERE producer = 'placements' AND region = $1",
            REGION,
        )
        == 40
    )
    assert (
        await scalar(
            database_url,
            f"SELECT event_id FROM {schema}.inputs_dead_lettered",  # noqa: S608
        )
        == refused.event_id
    )
    assert await read_model_count(database_url, schema, "inbox") == 40
    # the batch with the refused record was tried whole first (and rolled back)
    assert "batch failed; handling its records one at a time" in service.log_path.read_text()
