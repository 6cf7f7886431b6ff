"""The shared outbox relay and inbox on the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError

from shared import outbox
from shared.contracts.events import PlacementPosted, parse_event
from shared.contracts.topics import Topics
from shared.db import create_pool, migrate
from shared.kafka import aiokafka_producer, make_broker
from shared.kafka_client import KafkaConnection
from shared.outbox import (
    OutboxRelay,
    RelayError,
    claim,
    enqueue,
    published_count,
    purge_sent,
)
from tests.support.factories import placement
from tests.support.infra import Infra
from tests.support.kafka import read_records
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


@pytest.fixture
async def outbox_schema(database_url: str, fresh_schema: str) -> str:
    """A fresh schema with only the shared tables (outbox, inbox)."""
    await migrate(database_url, fresh_schema)
    return fresh_schema


@pytest.fixture
async def pool(database_url: str, outbox_schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, outbox_schema)
    yield pool
    await pool.close()


async def test_relay_publishes_committed_rows_in_order_and_marks_them(
    infra: Infra, topics: Topics, database_url: str, outbox_schema: str, pool: asyncpg.Pool
) -> None:
    events = [PlacementPosted(producer="placements", data=placement(f"p-{i}")) for i in range(30)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, events[:10])
    # a rolled-back transaction publishes nothing
    with contextlib.suppress(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(
                conn, [PlacementPosted(producer="placements", data=placement("p-rolled-back"))]
            )
            raise RuntimeError("abort")
    broker = make_broker(infra.kafka_as("placements"), "test-relay")
    relay = OutboxRelay(database_url, outbox_schema, broker, topics, batch=7, poll_seconds=0.05)
    async with broker:
        await broker.connect()
        task = asyncio.create_task(relay.run())
        async with pool.acquire() as conn, conn.transaction():  # while the relay runs
            await enqueue(conn, events[10:])
        records = await read_records(
            infra.kafka, topics.placements, until=lambda got: len(got) >= 30
        )
        # a batch is marked once its acknowledgements are in, after the records are readable
        await eventually(lambda: relay.published >= 30, what="every row marked")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    got = [parse_event("apl.placements.v1", r.value) for r in records]
    assert got == events
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_enqueue_outside_a_transaction_is_refused(
    database_url: str, outbox_schema: str
) -> None:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": outbox_schema})
    try:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await enqueue(conn, [PlacementPosted(producer="placements", data=placement())])
        event = PlacementPosted(producer="placements", data=placement())
        async with conn.transaction():
            assert await claim(conn, event) is True
        async with conn.transaction():
            assert await claim(conn, event) is False  # a duplicate is recognised
    finally:
        await conn.close()


async def test_published_counts_survive_purged_rows(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(
            conn,
            [PlacementPosted(producer="placements", data=placement(f"p{i}")) for i in range(3)],
        )
        await enqueue(
            conn, [PlacementPosted(producer="placements", data=placement("q", region="FI-1"))]
        )
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM outbox")
        assert await published_count(conn, "SE-AB", ["apl.placements.v1"]) == 3
        assert await published_count(conn, "SE-AB", ["apl.students.v1"]) == 0
        assert await published_count(conn, "FI-1", ["apl.placements.v1", "apl.students.v1"]) == 1


async def test_purge_deletes_only_published_rows(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(
            conn,
            [PlacementPosted(producer="placements", data=placement(f"p{i}")) for i in range(3)],
        )
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE id = (SELECT min(id) FROM outbox)"
        )
        assert await purge_sent(conn, 0) == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 2
        assert await published_count(conn, "SE-AB", ["apl.placements.v1"]) == 3


class _Recording(OutboxRelay):
    """The relay, recording the keys of each batch it hands to the producer."""

    handed: list[list[str]]

    async def _send(self, producer: Any, rows: list[asyncpg.Record], flight: Any) -> None:
        self.handed.append([r["key"] for r in rows])
        await super()._send(producer, rows, flight)


async def _relayed(
    relay: OutboxRelay, broker: Any, kafka: KafkaConnection, topic: str, count: int
) -> list[Any]:
    """Run `relay` until `count` records are on `topic`; the records, in partition order."""
    async with broker:
        await broker.connect()
        task = asyncio.create_task(relay.run())
        try:
            records = await read_records(kafka, topic, until=lambda got: len(got) >= count)
            await eventually(lambda: relay.published >= count, what="every row marked")
            return records
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_small_region_is_not_held_behind_a_large_regions_backlog(
    infra: Infra, topics: Topics, database_url: str, outbox_schema: str, pool: asyncpg.Pool
) -> None:
    large = [PlacementPosted(producer="placements", data=placement(f"a-{i}")) for i in range(250)]
    small = [
        PlacementPosted(producer="placements", data=placement(f"b-{i}", region="FI-18"))
        for i in range(3)
    ]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, large)  # every row of the large region has a lower id
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, small)
    broker = make_broker(infra.kafka_as("placements"), "test-relay-regions")
    relay = _Recording(database_url, outbox_schema, broker, topics, batch=40, poll_seconds=0.05)
    relay.handed = []
    records = await _relayed(relay, broker, infra.kafka, topics.placements, 253)
    # the first batch already holds the small region's rows, beside the large one's first 40
    assert sorted(relay.handed[0]) == ["FI-18"] * 3 + ["SE-AB"] * 40
    assert sum(len(b) for b in relay.handed) == 253  # each row handed over once
    got = [parse_event("apl.placements.v1", r.value) for r in records]
    by_region = {region: [e for e in got if e.region == region] for region in ("SE-AB", "FI-18")}
    assert by_region == {"SE-AB": large, "FI-18": small}  # all of them, each region in order
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


@dataclass
class _Refusing:
    """A producer that hands every record to the real one except `refused`, whose send future
    fails as a broker's refusal would."""

    real: Any
    refused: bytes

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[Any]:
        if self.refused in value:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_exception(KafkaTimeoutError("no acknowledgement"))
            return future
        sent: asyncio.Future[Any] = await self.real.send(topic, value, **kwargs)
        return sent


async def test_a_row_the_broker_does_not_acknowledge_stays_unsent_and_goes_later(
    infra: Infra,
    topics: Topics,
    database_url: str,
    outbox_schema: str,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = [PlacementPosted(producer="placements", data=placement(f"p-{i}")) for i in range(12)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, events)
    broker = make_broker(infra.kafka_as("placements"), "test-relay-refused")
    relay = OutboxRelay(database_url, outbox_schema, broker, topics, batch=5, in_flight=2)
    refused = str(events[7].event_id).encode()
    monkeypatch.setattr(
        outbox, "aiokafka_producer", lambda b: _Refusing(aiokafka_producer(b), refused)
    )
    async with broker:
        await broker.connect()
        path = {"search_path": outbox_schema}
        reads: asyncpg.Connection = await asyncpg.connect(database_url, server_settings=path)
        marks: asyncpg.Connection = await asyncpg.connect(database_url, server_settings=path)
        try:
            with pytest.raises(RelayError, match="did not acknowledge"):
                await relay.publish_pending(reads, marks)
            unsent = await reads.fetch("SELECT event_id FROM outbox WHERE sent_at IS NULL")
            # the refused row is unsent; the batches around it were acknowledged and marked
            # (the one after it was read ahead and may or may not have been handed over)
            assert events[7].event_id in {r["event_id"] for r in unsent}
            assert {r["event_id"] for r in unsent} <= {e.event_id for e in events[5:]}
            assert relay.published == 12 - len(unsent)
            monkeypatch.setattr(outbox, "aiokafka_producer", aiokafka_producer)
            assert await relay.publish_pending(reads, marks) == len(unsent)  # the next pass
        finally:
            await reads.close()
            await marks.close()
    records = await read_records(infra.kafka, topics.placements, until=lambda got: len(got) >= 12)
    assert sorted(
        str(parse_event("apl.placements.v1", r.value).event_id) for r in records
    ) == sorted(str(e.event_id) for e in events)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
