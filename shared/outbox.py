"""Transactional outbox and inbox.

Writing: `enqueue(conn, events)` inside the caller's transaction. It first takes a transaction-level
advisory lock per region, so two transactions of one region commit in the order their outbox ids
were drawn; the relay can then publish in id order without ever skipping a row that committed
late. Rows of different regions do not wait for each other.

Publishing: `OutboxRelay` holds a session advisory lock (one active relay per schema, the others
stand by), reads unsent rows in id order, publishes each keyed by region, waits for the broker's
acknowledgement, and only then marks them sent. A crash between the two repeats a publication
(consumers deduplicate by `event_id` in their inbox); it never loses one. While the broker is
down it keeps the rows and retries with backoff. When idle it deletes rows published more than
`retention_days` ago (at most hourly); the per-region counts stay.

Consuming: `claim(conn, event)` inserts the event id into the inbox inside the transaction that
applies the effect; it returns False for a duplicate, which the caller acknowledges and ignores.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg
import structlog
from faststream.kafka import KafkaBroker

from shared import tracing
from shared.contracts.events import Event
from shared.contracts.topics import Topics, event_key
from shared.db import Connection
from shared.kafka import event_headers
from shared.metrics import METRICS

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "apl_outbox"


async def enqueue(conn: Connection, events: Iterable[Event]) -> int:
    """Insert events into the outbox of the connection's schema, within its open transaction.

    Two round trips whatever the number of events: one takes the regions' locks and queues the
    relay's wake-up (delivered at commit), one inserts the rows and updates the counts.
    """
    batch = list(events)
    if not batch:
        return 0
    if not conn.is_in_transaction():
        raise RuntimeError("enqueue must run inside the transaction that makes the change")
    # Locks in a fixed order, so two multi-region writers cannot deadlock.
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock(hashtext('apl.outbox.' || r))), pg_notify($2, '') "
        "FROM (SELECT unnest($1::text[]) AS r ORDER BY 1) AS regions",
        sorted({e.region for e in batch}),
        NOTIFY_CHANNEL,
    )
    trace = tracing.current_headers()  # the writer's trace goes on with the rows
    await conn.execute(
        """WITH rows AS (
               INSERT INTO outbox (event_id, topic, key, event_type, payload, traceparent,
                                   tracestate)
               SELECT u.event_id, u.topic, u.key, u.event_type, u.payload, $6, $7
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[])
                   WITH ORDINALITY AS u(event_id, topic, key, event_type, payload, n)
               ORDER BY u.n
               RETURNING topic, key)
           INSERT INTO outbox_counts (topic, key, events)
           SELECT topic, key, count(*) FROM rows GROUP BY topic, key
           ON CONFLICT (topic, key)
           DO UPDATE SET events = outbox_counts.events + EXCLUDED.events""",
        [e.event_id for e in batch],
        [e.topic for e in batch],
        [e.region for e in batch],
        [e.type for e in batch],
        [e.to_json() for e in batch],
        trace.get("traceparent"),
        trace.get("tracestate"),
    )
    return len(batch)


async def published_count(conn: Connection, key: str, topics: Iterable[str]) -> int:
    """Events with Kafka key `key` this schema has enqueued on `topics` (contract names), ever."""
    count = await conn.fetchval(
        "SELECT coalesce(sum(events), 0) FROM outbox_counts WHERE key = $1 AND topic = ANY($2)",
        key,
        list(topics),
    )
    return int(count)


async def claim(conn: Connection, event: Event) -> bool:
    """Record a consumed event in the inbox; False if it was applied before (a duplicate)."""
    if not conn.is_in_transaction():
        raise RuntimeError("claim must run inside the transaction that applies the event")
    inserted = await conn.fetchval(
        "INSERT INTO inbox (event_id, topic, event_type) VALUES ($1, $2, $3) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event.event_id,
        event.topic,
        event.type,
    )
    return bool(inserted)


@dataclass
class OutboxRelay:
    """Publishes a schema's outbox to Kafka. Run `run()` as a task; cancel it to stop."""

    dsn: str
    schema: str
    broker: KafkaBroker
    topics: Topics
    batch: int = 500
    poll_seconds: float = 0.2
    retention_days: int = 7  # published rows are kept this long, then purged
    published: int = field(default=0, init=False)
    _next_purge: float = field(default=0.0, init=False)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._run_once_connected()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay interrupted; retrying", schema=self.schema, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                backoff = 0.5

    async def _run_once_connected(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, server_settings={"search_path": f"{self.schema}, public"}
        )
        try:
            lock = f"apl.outbox.relay.{self.schema}"
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock):  # noqa: ASYNC110
                await asyncio.sleep(1.0)  # another replica's relay is active; stand by
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            log.info("outbox relay active", schema=self.schema)
            while True:
                sent = await self.publish_pending(conn)
                if sent < self.batch and time.monotonic() >= self._next_purge:
                    await purge_sent(conn, self.retention_days)  # idle: keep the table small
                    self._next_purge = time.monotonic() + 3600
                if sent < self.batch:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self.poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    def _notified(self, *_: object) -> None:
        self._wakeup.set()

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of unsent rows in id order; return how many were published."""
        rows = await conn.fetch(
            "SELECT id, event_id, topic, key, event_type, payload, traceparent, tracestate "
            "FROM outbox "
            "WHERE sent_at IS NULL ORDER BY id LIMIT $1",
            self.batch,
        )
        if not rows:
            return 0
        # Send the batch without waiting between messages, then wait for every acknowledgement;
        # the idempotent producer keeps per-partition order.
        futures = []
        for row in rows:
            name = self.topics.name(row["topic"])
            trace = tracing.producer_headers(
                row["topic"],
                {"traceparent": row["traceparent"] or "", "tracestate": row["tracestate"] or ""},
                {"messaging.message.id": str(row["event_id"]), "apl.event_type": row["event_type"]},
            )
            fut = await self.broker.publish(
                bytes(row["payload"]),
                name,
                key=event_key(row["key"]),
                headers=event_headers(row["event_type"], row["event_id"], trace),
                no_confirm=True,
            )
            futures.append(fut)
        await asyncio.gather(*futures)
        await conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
            [r["id"] for r in rows],
        )
        self.published += len(rows)
        for row in rows:
            METRICS.outbox_published.labels(row["topic"]).inc()
        return len(rows)


async def purge_sent(conn: Connection, older_than_days: int = 7) -> int:
    """Delete outbox rows published more than `older_than_days` ago."""
    result = await conn.execute(
        "DELETE FROM outbox WHERE sent_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(result.split()[-1])
