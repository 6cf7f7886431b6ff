"""The shared outbox relay and inbox on the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.contracts.events import PlacementPosted, parse_event
from shared.contracts.topics import Topics
from shared.db import create_pool, migrate
from shared.kafka import make_broker
from shared.outbox import OutboxRelay, claim, enqueue, published_count, purge_sent
from tests.support.factories import placement
from tests.support.infra import Infra
from tests.support.kafka import read_records

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
    events = [PlacementPosted(producer="test", data=placement(f"p-{i}")) for i in range(30)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, events[:10])
    # a rolled-back transaction publishes nothing
    with contextlib.suppress(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [PlacementPosted(producer="test", data=placement("p-rolled-back"))])
            raise RuntimeError("abort")
    broker = make_broker(infra.kafka_as("placements"), "test-relay")
    relay = OutboxRelay(database_url, outbox_schema, broker, topics, batch=7, poll_seconds=0.05)
    async with broker:
        await broker.connect()
        task = asyncio.create_task(relay.run())
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, events[10:])
        records = await read_records(
            infra.kafka, topics.placements, until=lambda got: len(got) >= 30
        )
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
            await enqueue(conn, [PlacementPosted(producer="t", data=placement())])
        event = PlacementPosted(producer="t", data=placement())
        async with conn.transaction():
            assert await claim(conn, event) is True
        async with conn.transaction():
            assert await claim(conn, event) is False  # a duplicate is recognised
    finally:
        await conn.close()


async def test_published_counts_survive_purged_rows(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(
            conn, [PlacementPosted(producer="t", data=placement(f"p{i}")) for i in range(3)]
        )
        await enqueue(conn, [PlacementPosted(producer="t", data=placement("q", region="FI-1"))])
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM outbox")
        assert await published_count(conn, "SE-AB", ["apl.placements.v1"]) == 3
        assert await published_count(conn, "SE-AB", ["apl.students.v1"]) == 0
        assert await published_count(conn, "FI-1", ["apl.placements.v1", "apl.students.v1"]) == 1


async def test_purge_deletes_only_published_rows(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(
            conn, [PlacementPosted(producer="t", data=placement(f"p{i}")) for i in range(3)]
        )
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE id = (SELECT min(id) FROM outbox)"
        )
        assert await purge_sent(conn, 0) == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 2
        assert await published_count(conn, "SE-AB", ["apl.placements.v1"]) == 3
