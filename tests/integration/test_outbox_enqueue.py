"""The outbox's write side on the real database: a large batch (written by COPY) keeps its order,
its counts and its rows exactly as a small one (written by one INSERT), and `Serialised` events
go in as they were serialised."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.contracts.events import Event, PlacementPosted, parse_event
from shared.db import create_pool, migrate
from shared.outbox import COPY_FROM, enqueue, published_count
from shared.serialised import Serialised
from tests.support.factories import placement

pytestmark = pytest.mark.infra


@pytest.fixture
async def pool(database_url: str, fresh_schema: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url, fresh_schema)
    pool = await create_pool(database_url, fresh_schema)
    yield pool
    await pool.close()


async def test_a_large_batch_is_written_in_order_with_its_counts(pool: asyncpg.Pool) -> None:
    regions = ("SE-AB", "SE-O")
    events = [
        PlacementPosted(producer="placements", data=placement(f"p-{i}", region=regions[i % 2]))
        for i in range(COPY_FROM + 7)
    ]
    small = [PlacementPosted(producer="placements", data=placement("p-small", region="SE-AB"))]
    serialised = Serialised.of(events[3])
    batch: list[Event | Serialised] = [*events[:3], serialised, *events[4:]]
    async with pool.acquire() as conn, conn.transaction():
        assert await enqueue(conn, batch) == len(events)
        assert await enqueue(conn, small) == 1
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_id, topic, key, event_type, payload FROM outbox ORDER BY id"
        )
        counts = {r: await published_count(conn, r, ["apl.placements.v1"]) for r in regions}
    assert [r["event_id"] for r in rows] == [e.event_id for e in [*events, *small]]
    assert [parse_event(r["topic"], bytes(r["payload"])) for r in rows] == [*events, *small]
    assert bytes(rows[3]["payload"]) == serialised.payload
    assert {(r["topic"], r["event_type"]) for r in rows} == {
        ("apl.placements.v1", "PlacementPosted")
    }
    assert [r["key"] for r in rows[:4]] == ["SE-AB", "SE-O", "SE-AB", "SE-O"]
    half = (COPY_FROM + 7) // 2
    assert counts == {"SE-AB": len(events) - half + 1, "SE-O": half}


async def test_a_large_batch_rolled_back_leaves_nothing(pool: asyncpg.Pool) -> None:
    events = [
        PlacementPosted(producer="placements", data=placement(f"p-{i}")) for i in range(COPY_FROM)
    ]
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await enqueue(conn, events)
        await tx.rollback()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        assert await published_count(conn, "SE-AB", ["apl.placements.v1"]) == 0
