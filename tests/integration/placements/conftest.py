"""The placements app in-process on the real Kafka and PostgreSQL, with an HTTP client."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from services.placements.bootstrap import create_app
from services.placements.main import MIGRATIONS
from shared.contracts.topics import Topics
from shared.db import migrate
from shared.settings import PlacementsSettings
from tests.support.infra import Infra

TOKEN = "internal-test-token"
MAX_BODY = 20_000


@dataclass
class Placements:
    client: httpx.AsyncClient
    settings: PlacementsSettings
    topics: Topics
    db: asyncpg.Pool
    bootstrap: str

    async def outbox_count(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM placements.outbox"))


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
async def placements(
    infra: Infra, database_url: str, make_topics: Callable[[], Awaitable[Topics]]
) -> AsyncIterator[Placements]:
    topics = await make_topics()
    settings = PlacementsSettings(
        kafka_bootstrap=infra.kafka_bootstrap,
        database_url=database_url,
        topic_prefix=topics.prefix,
        internal_token=SecretStr(TOKEN),
        max_body_bytes=MAX_BODY,
        outbox_poll_seconds=0.05,
        environment="test",
    )
    await migrate(database_url, "placements", MIGRATIONS)
    app = create_app(settings)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    assert pool is not None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://placements") as client:
            yield Placements(client, settings, topics, pool, infra.kafka_bootstrap)
    await pool.close()


async def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    wait: float = 60.0,
) -> list[dict[str, Any]]:
    """Read `topic` from the start until `until(values)` holds (or the wait runs out)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    values: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not until(values) and loop.time() < deadline:
            for part in (await consumer.getmany(timeout_ms=300)).values():
                values.extend(json.loads(r.value) for r in part)
    finally:
        await consumer.stop()
    return values


async def eventually(
    check: Callable[[], Awaitable[bool]], wait: float = 60.0, every: float = 0.1
) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(every)
    return False
