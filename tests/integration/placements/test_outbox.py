"""The outbox of the placements schema on the real broker and database: a relay killed between
publish and mark loses nothing, and rows that commit out of id order are all published."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from services.placements.bootstrap import MIGRATIONS
from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.db import migrate
from shared.kafka import make_broker
from shared.outbox import OutboxRelay, enqueue
from tests.integration.placements.conftest import consume
from tests.support.factories import placement
from tests.support.infra import Infra
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


def posted(region: str) -> ev.PlacementPosted:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    return ev.PlacementPosted(producer="placements", data=placement(pid, region=region))


@pytest.fixture
async def outbox_db(database_url: str, fresh_schema: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url, fresh_schema, MIGRATIONS)
    pool = await asyncpg.create_pool(
        database_url, server_settings={"search_path": fresh_schema}, min_size=2, max_size=4
    )
    assert pool is not None
    yield pool
    await pool.close()


async def _unsent(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))


async def _all_sent(pool: asyncpg.Pool) -> bool:
    return await _unsent(pool) == 0


async def _waits_for_a_lock(pool: asyncpg.Pool, backend_pid: int) -> bool:
    waiting = await pool.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", backend_pid
    )
    return bool(waiting)


@contextlib.asynccontextmanager
async def running_relay(
    infra: Infra, database_url: str, schema: str, topics: Topics, client_id: str
) -> AsyncIterator[None]:
    """The shared outbox relay publishing `schema`'s outbox, as a task of this test."""
    broker = make_broker(infra.kafka_as("placements"), client_id)
    relay = OutboxRelay(database_url, schema, broker, topics, poll_seconds=0.05)
    async with broker:
        await broker.connect()
        task = asyncio.create_task(relay.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def ids_of(values: list[dict[str, Any]]) -> list[str]:
    return [v["event_id"] for v in values]


async def _line(proc: asyncio.subprocess.Process, wait: float = 60.0) -> str:
    """The next marker line of the relay process (its log lines are skipped)."""
    assert proc.stdout is not None
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), wait)
        if not raw:
            return "(exited)"
        line = raw.decode().strip()
        if line.startswith(("STARTED", "ACKED")):
            return line


async def test_relay_killed_between_publish_and_mark_loses_nothing(
    infra: Infra,
    database_url: str,
    fresh_schema: str,
    outbox_db: asyncpg.Pool,
    make_topics: Callable[[], Awaitable[Topics]],
) -> None:
    topics = await make_topics()
    events = [posted("SE-AB") for _ in range(3)]
    async with outbox_db.acquire() as conn, conn.transaction():
        await enqueue(conn, events)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.placements.relay_process",
        database_url, fresh_schema, infra.kafka_bootstrap, topics.prefix, "--hang-before-mark",
        stdout=subprocess.PIPE, env={**os.environ, **infra.kafka_env("placements")},
    )  # fmt: skip
    try:
        assert await _line(proc) == "STARTED"
        assert await _line(proc) == "ACKED 3"  # the broker acknowledged; the mark is next
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL  # killed, not exited on its own
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    unsent = await _unsent(outbox_db)
    assert unsent == 3, "the killed relay never marked its batch"
    first = await consume(infra.kafka, topics.placements, lambda v: len(v) >= 3)
    assert ids_of(first) == [str(e.event_id) for e in events]

    # a new relay takes over (the dead one's session lock went with its connection)
    async with running_relay(infra, database_url, fresh_schema, topics, "relay-after-crash"):
        values = await consume(infra.kafka, topics.placements, lambda v: len(v) >= 6)
        await eventually(lambda: _all_sent(outbox_db), what="the outbox all sent")
    # every event arrived; the batch in flight at the crash arrives twice, in order
    assert ids_of(values) == [str(e.event_id) for e in events] * 2


@pytest.mark.parametrize("regions", [("SE-AB", "SE-AB"), ("SE-AB", "FI-18")])
async def test_transactions_committing_out_of_order_are_all_published(
    infra: Infra,
    database_url: str,
    fresh_schema: str,
    outbox_db: asyncpg.Pool,
    make_topics: Callable[[], Awaitable[Topics]],
    regions: tuple[str, str],
) -> None:
    topics = await make_topics()
    early, late = posted(regions[0]), posted(regions[1])
    async with running_relay(infra, database_url, fresh_schema, topics, "relay-order"):
        first = await outbox_db.acquire()
        second = await outbox_db.acquire()
        tx1, tx2 = first.transaction(), second.transaction()
        await tx1.start()
        await enqueue(first, [early])  # draws the lower outbox id
        await tx2.start()

        async def write_second() -> None:
            await enqueue(second, [late])
            await tx2.commit()

        writer = asyncio.create_task(write_second())
        if regions[0] == regions[1]:
            # same region: the second waits for the first's lock (the server says so), so
            # commit order = id order
            await eventually(
                lambda: _waits_for_a_lock(outbox_db, second.get_server_pid()),
                what="the second writer to wait for the region's lock",
            )
            assert not writer.done()
            await tx1.commit()
            await writer
            expected = [early, late]
        else:
            # another region does not wait: it commits, and is published, first
            await asyncio.wait_for(writer, timeout=30)
            seen = await consume(infra.kafka, topics.placements, lambda v: len(v) >= 1)
            assert ids_of(seen) == [str(late.event_id)]
            await tx1.commit()
            expected = [late, early]
        await outbox_db.release(first)
        await outbox_db.release(second)
        values = await consume(infra.kafka, topics.placements, lambda v: len(v) >= 2)
        await eventually(lambda: _all_sent(outbox_db), what="the outbox all sent")
    assert sorted(ids_of(values)) == sorted(str(e.event_id) for e in expected)
    ids = await outbox_db.fetch("SELECT event_id FROM outbox ORDER BY id")
    assert [str(r["event_id"]) for r in ids] == [str(early.event_id), str(late.event_id)]
    if regions[0] == regions[1]:
        assert ids_of(values) == [str(e.event_id) for e in expected]
