"""Transactional outbox and inbox.

Writing: `enqueue(conn, events)` inside the caller's transaction. It first takes a transaction-level
advisory lock per region, so two transactions of one region commit in the order their outbox ids
were drawn; the relay can then publish in id order without ever skipping a row that committed
late. Rows of different regions do not wait for each other.

Publishing: `OutboxRelay` holds a session advisory lock (one active relay per schema, the others
stand by) and pipelines: it reads a batch of unsent rows — the next rows of every key (region)
side by side, each key's in id order — hands them to the broker's idempotent producer keyed by
region without awaiting each acknowledgement, reads the next batch while those acks are pending
(up to `in_flight` batches), and marks rows sent only once the broker acknowledged them. Order
holds per key, never across keys, so one region's backlog does not delay another's rows. A crash
between ack and mark repeats at most the rows then in flight (consumers deduplicate by
`event_id` in their inbox); it never loses one. While the broker is down it keeps the rows and
retries with backoff. When idle it deletes rows published more than `retention_days` ago (at
most hourly); the per-region counts stay.

Consuming: `claim(conn, event)` inserts the event id into the inbox inside the transaction that
applies the effect; it returns False for a duplicate, which the caller acknowledges and ignores.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from shared import tracing
from shared.contracts.events import Event
from shared.contracts.topics import Topics, event_key
from shared.db import Connection
from shared.kafka import (
    FATAL_PRODUCER_ERRORS,
    BrokerNotStarted,
    aiokafka_producer,
    renew_producer,
)
from shared.metrics import METRICS
from shared.serialised import Serialised

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "apl_outbox"
COPY_FROM = 500
"""`enqueue` writes batches of at least this many events by COPY (fewer by one INSERT)."""
_COPY_COLUMNS = ("event_id", "topic", "key", "event_type", "payload", "traceparent", "tracestate")


async def enqueue(conn: Connection, events: Iterable[Event | Serialised]) -> int:
    """Insert events into the outbox of the connection's schema, within its open transaction.

    Events are models (serialised here, once) or `Serialised` rows (serialised by the writer,
    see shared/serialised.py). Two round trips for up to `COPY_FROM` events: one takes the
    regions' locks and queues the relay's wake-up (delivered at commit), one inserts the rows
    and updates the counts. A larger batch (a matching round's thousands of proposals) is
    written by one binary COPY, in order, and its counts by one more statement.
    """
    batch = [e if isinstance(e, Serialised) else Serialised.of(e) for e in events]
    if not batch:
        return 0
    if not conn.is_in_transaction():
        raise RuntimeError("enqueue must run inside the transaction that makes the change")
    # Locks in a fixed order, so two multi-region writers cannot deadlock.
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock(hashtext('apl.outbox.' || r))), pg_notify($2, '') "
        "FROM (SELECT unnest($1::text[]) AS r ORDER BY 1) AS regions",
        sorted({e.key for e in batch}),
        NOTIFY_CHANNEL,
    )
    # the writer's trace goes on with the rows (or a row's own: `Serialised.trace`)
    current = tracing.current_headers()
    traces = [current if e.trace is None else e.trace for e in batch]
    parents = [trace.get("traceparent") for trace in traces]
    states = [trace.get("tracestate") for trace in traces]
    if len(batch) >= COPY_FROM:
        await _copy(conn, batch, parents, states)
        return len(batch)
    await conn.execute(
        """WITH rows AS (
               INSERT INTO outbox (event_id, topic, key, event_type, payload, traceparent,
                                   tracestate)
               SELECT u.event_id, u.topic, u.key, u.event_type, u.payload, u.traceparent,
                      u.tracestate
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[],
                           $6::text[], $7::text[])
                   WITH ORDINALITY AS u(event_id, topic, key, event_type, payload, traceparent,
                                        tracestate, n)
               ORDER BY u.n
               RETURNING topic, key)
           INSERT INTO outbox_counts (topic, key, events)
           SELECT topic, key, count(*) FROM rows GROUP BY topic, key
           ON CONFLICT (topic, key)
           DO UPDATE SET events = outbox_counts.events + EXCLUDED.events""",
        [e.event_id for e in batch],
        [e.topic for e in batch],
        [e.key for e in batch],
        [e.event_type for e in batch],
        [e.payload for e in batch],
        parents,
        states,
    )
    return len(batch)


async def _copy(
    conn: Connection,
    batch: list[Serialised],
    parents: list[str | None],
    states: list[str | None],
) -> None:
    """A large batch: the rows by COPY (ids drawn in the batch's order), then the counts."""
    await conn.copy_records_to_table(
        "outbox",
        columns=_COPY_COLUMNS,
        records=[
            (e.event_id, e.topic, e.key, e.event_type, e.payload, parent, state)
            for e, parent, state in zip(batch, parents, states, strict=True)
        ],
    )
    counts = collections.Counter((e.topic, e.key) for e in batch)
    await conn.execute(
        "INSERT INTO outbox_counts (topic, key, events) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "
        "ON CONFLICT (topic, key) DO UPDATE SET events = outbox_counts.events + EXCLUDED.events",
        [topic for topic, _ in counts],
        [key for _, key in counts],
        list(counts.values()),
    )


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
    return (await claim_all(conn, [event]))[0]


async def claim_all(conn: Connection, events: Sequence[Event]) -> list[bool]:
    """Record consumed events in the inbox in one statement; for each, False if it was applied
    before (a duplicate), also when an earlier event of `events` has the same id."""
    if not conn.is_in_transaction():
        raise RuntimeError("claim must run inside the transaction that applies the event")
    first: dict[Any, Event] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id, topic, event_type) "
        "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        list(first),
        [e.topic for e in first.values()],
        [e.type for e in first.values()],
    )
    fresh = {r["event_id"] for r in rows}
    claims: list[bool] = []
    for event in events:
        claims.append(event.event_id in fresh)
        fresh.discard(event.event_id)  # a second copy in the same batch is a duplicate
    return claims


@dataclass
class _InFlight:
    """One fetched batch handed to the producer: its rows and, once settled, each row's ack."""

    ids: list[int]
    topics: list[str]
    acks: asyncio.Future[list[Any]]


class _Flight:
    """The batches handed to the producer and not yet marked, oldest first, at most `limit`
    (`space`); `settled()` waits for the oldest's acknowledgements and takes it with every
    batch after it that is settled too ([] once `close()`d and empty)."""

    def __init__(self, limit: int) -> None:
        self.space = asyncio.Semaphore(limit)
        self.batches: collections.deque[_InFlight] = collections.deque()
        self._changed = asyncio.Event()
        self._closed = False

    def add(self, batch: _InFlight) -> None:
        self.batches.append(batch)
        self._changed.set()

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def settled(self) -> list[_InFlight]:
        while not self.batches:
            if self._closed:
                return []
            self._changed.clear()
            await self._changed.wait()
        await asyncio.wait([self.batches[0].acks])
        done: list[_InFlight] = []
        while self.batches and self.batches[0].acks.done():
            done.append(self.batches.popleft())
            self.space.release()
        return done


class RelayError(RuntimeError):
    """The broker refused or timed out some rows: they stay unsent and are published again.
    `refusal` is the broker's (or the producer's) error."""

    def __init__(self, message: str, refusal: BaseException | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


# The fetch: the keys (regions) with unsent rows by a skip scan of `outbox_unsent_by_key`, then
# each key's next rows in id order after the relay's cursor for it ($1 keys, $2 last ids sent to
# the producer), at most $3 rows of each key.
_FETCH = """
WITH RECURSIVE keys(key) AS (
    SELECT min(key) FROM outbox WHERE sent_at IS NULL
    UNION ALL
    SELECT (SELECT min(o.key) FROM outbox o WHERE o.sent_at IS NULL AND o.key > keys.key)
    FROM keys WHERE keys.key IS NOT NULL
), live AS (
    SELECT k.key, coalesce(c.after, 0) AS after FROM keys k
    LEFT JOIN unnest($1::text[], $2::bigint[]) AS c(key, after) ON c.key = k.key
    WHERE k.key IS NOT NULL
)
SELECT r.id, r.event_id::text, r.topic, r.key, r.event_type, r.payload, r.traceparent, r.tracestate
FROM live CROSS JOIN LATERAL (
    SELECT o.id, o.event_id, o.topic, o.key, o.event_type, o.payload, o.traceparent, o.tracestate
    FROM outbox o
    WHERE o.sent_at IS NULL AND (o.key, o.id) > (live.key, live.after) AND o.key = live.key
    ORDER BY o.key, o.id
    LIMIT $3
) r
"""

_MARK = "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
_CONTENT_TYPE = ("content-type", b"application/json")


@dataclass
class OutboxRelay:
    """Publishes a schema's outbox to Kafka. Run `run()` as a task; cancel it to stop.

    Pipelined: it sends a fetched batch without awaiting each acknowledgement and fetches the
    next while the acks are pending, up to `in_flight` batches; settled batches are marked sent
    together, only their acknowledged rows. Each batch takes the next rows of every key
    (region) side by side, so a region's rows never wait behind another region's backlog;
    order holds per key (one partition each), which is all Kafka keeps anyway.

    Reading by a cursor per key is sound because `enqueue` takes the region's lock before it
    draws ids: a row of a key that commits later always has a higher id than every row of that
    key already visible."""

    dsn: str
    schema: str
    broker: KafkaBroker
    topics: Topics
    batch: int = 500
    """Rows a fetch takes of each key (region) that has unsent rows."""
    poll_seconds: float = 0.2
    retention_days: int = 7  # published rows are kept this long, then purged
    in_flight: int = 4
    """Batches whose acknowledgements may be pending at once."""
    read_ahead: int = 2
    """Batches read ahead of the one being handed to the producer."""
    published: int = field(default=0, init=False)
    _names: dict[str, str] = field(default_factory=dict, init=False)
    _keys: dict[str, bytes] = field(default_factory=dict, init=False)
    _types: dict[str, tuple[str, bytes]] = field(default_factory=dict, init=False)
    _next_purge: float = field(default=0.0, init=False)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._run_once_connected()
            except asyncio.CancelledError:
                raise
            except BrokerNotStarted:  # the service is starting: no need for a traceback
                log.info("outbox relay waits for the broker to start", schema=self.schema)
                await asyncio.sleep(0.1)
            except RelayError as error:
                log.warning(
                    "outbox relay interrupted; retrying", schema=self.schema, error=str(error)
                )
                if isinstance(error.refusal, FATAL_PRODUCER_ERRORS):
                    try:
                        await renew_producer(self.broker)
                    except Exception:  # if not now, at the next failure
                        log.warning("the Kafka producer was not renewed", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.warning("outbox relay interrupted; retrying", schema=self.schema, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                backoff = 0.5

    async def _run_once_connected(self) -> None:
        conn: asyncpg.Connection = await self._connect()
        marks: asyncpg.Connection | None = None
        try:
            lock = f"apl.outbox.relay.{self.schema}"
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock):  # noqa: ASYNC110
                await asyncio.sleep(1.0)  # another replica's relay is active; stand by
            marks = await self._connect()
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            log.info("outbox relay active", schema=self.schema)
            while True:
                self._wakeup.clear()  # before reading: a commit from now on wakes the wait below
                sent = await self.publish_pending(conn, marks)
                if time.monotonic() >= self._next_purge:
                    await purge_sent(conn, self.retention_days)  # idle: keep the table small
                    self._next_purge = time.monotonic() + 3600
                if not sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self.poll_seconds)
        finally:
            for each in (marks, conn):
                if each is not None:
                    with contextlib.suppress(Exception):
                        await each.close()

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, server_settings={"search_path": f"{self.schema}, public"}
        )
        return conn

    def _notified(self, *_: object) -> None:
        self._wakeup.set()

    async def publish_pending(self, conn: asyncpg.Connection, marks: asyncpg.Connection) -> int:
        """Publish every row unsent now (and those that commit meanwhile) until none is left
        and every acknowledgement is in and marked; return how many rows were marked.

        Three steps run side by side: reading batches on `conn` (a cursor per key, up to
        `read_ahead` batches ahead), handing them to the producer (up to `in_flight` batches
        unacknowledged), and marking acknowledged batches on `marks`. A row the broker refused
        or timed out raises `RelayError` once the acknowledged rows in flight are marked; it
        and the rows after it stay unsent and are read again."""
        producer = aiokafka_producer(self.broker)
        read: asyncio.Queue[list[asyncpg.Record] | None] = asyncio.Queue(self.read_ahead)
        flight = _Flight(self.in_flight)
        marked = 0

        async def reading() -> None:
            cursor: dict[str, int] = {}  # per key: the last id read
            while rows := await conn.fetch(_FETCH, list(cursor), list(cursor.values()), self.batch):
                for row in rows:  # each key's rows come in id order
                    cursor[row[3]] = row[0]
                await read.put(rows)
            await read.put(None)

        async def sending() -> None:
            while (rows := await read.get()) is not None:
                await flight.space.acquire()
                await self._send(producer, rows, flight)
            flight.close()

        async def marking() -> None:
            nonlocal marked
            while batches := await flight.settled():
                marked += await self._mark(marks, batches)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(reading())
                group.create_task(sending())
                group.create_task(marking())
        except BaseException as stopped:
            # an error, or cancelled: mark what the broker acknowledges within a few seconds
            # (fewer repeats on the next start), then stop
            with contextlib.suppress(Exception):
                if flight.batches:
                    await asyncio.wait([b.acks for b in flight.batches], timeout=5.0)
                    done = [b for b in flight.batches if b.acks.done()]
                    await self._mark(marks, done, final=True)
            if isinstance(stopped, BaseExceptionGroup):
                raise stopped.exceptions[0] from None
            raise
        return marked

    async def _send(
        self, producer: AIOKafkaProducer, rows: list[asyncpg.Record], flight: _Flight
    ) -> None:
        """Hand `rows` to the producer (each key's in id order: its partition keeps that
        order) and put them in `flight`. If handing over fails, the rows handed over so far go
        in `flight` (they may still be acknowledged) before the error is raised."""
        traced = tracing.enabled()
        names, keys, types = self._names, self._keys, self._types  # encoded once, kept
        futures: list[asyncio.Future[Any]] = []
        try:
            for _, event_id, topic, key, event_type, payload, parent, state in rows:
                name = names.get(topic) or names.setdefault(topic, self.topics.name(topic))
                kind = types.get(event_type) or types.setdefault(
                    event_type, ("event-type", event_type.encode())
                )
                headers = [_CONTENT_TYPE, kind, ("event-id", event_id.encode())]
                if traced:
                    trace = tracing.producer_headers(
                        topic,
                        {"traceparent": parent or "", "tracestate": state or ""},
                        {"messaging.message.id": event_id, "apl.event_type": event_type},
                    )
                    headers += [(k, v.encode()) for k, v in trace.items()]
                else:
                    if parent:
                        headers.append(("traceparent", parent.encode()))
                    if state:
                        headers.append(("tracestate", state.encode()))
                encoded = keys.get(key) or keys.setdefault(key, event_key(key))
                futures.append(await producer.send(name, payload, key=encoded, headers=headers))
        finally:
            handed = rows[: len(futures)]
            if handed:
                acks = asyncio.gather(*futures, return_exceptions=True)
                flight.add(_InFlight([r[0] for r in handed], [r[2] for r in handed], acks))

    async def _mark(
        self, conn: asyncpg.Connection, settled: list[_InFlight], *, final: bool = False
    ) -> int:
        """Mark the acknowledged rows of settled batches sent, in one statement; raise
        `RelayError` (unless `final`) when a row was refused."""
        ok: list[int] = []
        counts: collections.Counter[str] = collections.Counter()
        error: BaseException | None = None
        for batch in settled:
            for id_, topic, ack in zip(batch.ids, batch.topics, batch.acks.result(), strict=True):
                if isinstance(ack, BaseException):
                    error = error or ack
                else:
                    ok.append(id_)
                    counts[topic] += 1
        if ok:
            await self._mark_sent(conn, ok)
            self.published += len(ok)
            for topic, n in counts.items():
                METRICS.outbox_published.labels(topic).inc(n)
        if error is not None and not final:
            raise RelayError(
                f"the broker did not acknowledge every row: {error!r}", error
            ) from error
        return len(ok)

    async def _mark_sent(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        """The one statement that marks rows published (after their acknowledgement)."""
        await conn.execute(_MARK, ids)


async def purge_sent(conn: Connection, older_than_days: int = 7) -> int:
    """Delete outbox rows published more than `older_than_days` ago."""
    result = await conn.execute(
        "DELETE FROM outbox WHERE sent_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(result.split()[-1])
