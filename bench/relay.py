"""Outbox relay benchmark: the project's relay beside raw aiokafka, in the same run.

Uses the running local infrastructure (`APL_KAFKA_BOOTSTRAP`, `APL_DATABASE_URL` as admin, from
the environment or `.local/apl.env`), under a fresh topic prefix and a fresh schema (the shared
outbox tables only), both removed at the end. It writes N MatchProposed events into the outbox
with `enqueue` (in transactions of 1,000; a large region's first, then the other regions'), then
alternates, `--repeat` times each:

- `raw`: one idempotent, acks=all `AIOKafkaProducer` with the project's batch size
  (`shared.kafka.PRODUCER_BATCH_BYTES`) sends the same records (payload, key, headers) without
  awaiting each acknowledgement, then waits for all of them: the limit of the path on this
  machine, without a database;
- `relay`: the outbox's rows are made unsent again (`sent_at = NULL`) and `shared.outbox.
  OutboxRelay` publishes them through a connected project broker until every row is marked.

It prints each run's records per second and the CPU microseconds of this process per record,
the best and median of each, the ratio of the medians (target >= 0.70), and for the relay when
each region's last row was marked published (a small region must not wait behind the large
one's rows: with rows published in global id order the others would finish last).

    .venv/bin/python -m bench.relay [--events 30000] [--regions 13] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid

import asyncpg

from shared.contracts import events as ev
from shared.contracts.topics import Topics, event_key
from shared.db import create_pool, migrate
from shared.kafka import (
    PRODUCER_BATCH_BYTES,
    delete_topics,
    ensure_topics,
    event_headers,
    make_broker,
)
from shared.kafka_client import KafkaConnection
from shared.logging import configure_logging
from shared.outbox import OutboxRelay, enqueue
from shared.settings import KafkaAdminSettings, ServiceSettings

CPU: dict[str, float] = {}
BIG = "SE-AB"
"""The large region: its rows are written first and are most of them."""


def _regions(count: int) -> list[str]:
    return [BIG, *[f"SE-R{i:02d}" for i in range(1, count)]]


def _events(n: int, regions: list[str]) -> list[ev.Event]:
    """N MatchProposed: 60 % of the large region's first, then the rest spread over the others
    (all of the large region when there is only one)."""
    big = n if len(regions) == 1 else int(n * 0.6)
    rest = regions[1:] or regions
    keys = [BIG] * big + [rest[i % len(rest)] for i in range(n - big)]
    return [
        ev.MatchProposed(
            producer="matching",
            data=ev.MatchProposedData(
                match_id=uuid.uuid4(),
                region=region,
                student_id=f"s-{i:06d}",
                placement_id=f"p-{i % 700:04d}",
                round_id=uuid.uuid4(),
                company_id="c-1",
                rank=1 + i % 5,
            ),
        )
        for i, region in enumerate(keys)
    ]


async def _raw(kafka: KafkaConnection, topics: Topics, events: list[ev.Event]) -> float:
    """Seconds raw aiokafka takes to send `events` and have every acknowledgement."""
    records = [
        (
            topics.name(e.topic),
            e.to_json(),
            event_key(e.region),
            [(k, v.encode()) for k, v in event_headers(e.type, e.event_id).items()],
        )
        for e in events
    ]
    producer = kafka.producer(
        enable_idempotence=True,
        acks="all",
        max_batch_size=PRODUCER_BATCH_BYTES,  # as the project's producer (`make_broker`)
        client_id="bench-raw",
    )
    await producer.start()
    try:
        await producer.send_and_wait(topics.name(events[0].topic), b"warm-up", key=b"warm-up")
        started, cpu = time.perf_counter(), time.process_time()
        futures = [
            await producer.send(topic, value, key=key, headers=headers)
            for topic, value, key, headers in records
        ]
        await asyncio.gather(*futures)
        CPU["raw"] = time.process_time() - cpu
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _relay(
    kafka: KafkaConnection,
    database_url: str,
    schema: str,
    topics: Topics,
    pool: asyncpg.Pool,
    n: int,
) -> tuple[float, dict[str, float]]:
    """Seconds the relay takes to publish and mark all N rows; when each region was done."""
    await pool.execute("UPDATE outbox SET sent_at = NULL")
    await pool.execute("VACUUM ANALYZE outbox")
    broker = make_broker(kafka, "bench-relay")
    async with broker:
        await broker.connect()
        relay = OutboxRelay(database_url, schema, broker, topics, poll_seconds=0.05)
        db_start = await pool.fetchval("SELECT clock_timestamp()")
        started, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(relay.run())
        try:
            while relay.published < n:
                if task.done():
                    task.result()
                    raise SystemExit("the relay stopped")
                await asyncio.sleep(0.002)
            elapsed = time.perf_counter() - started
            CPU["relay"] = time.process_time() - cpu
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    done = {
        r["key"]: (r["last"] - db_start).total_seconds()
        for r in await pool.fetch("SELECT key, max(sent_at) AS last FROM outbox GROUP BY key")
    }
    unsent = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    if unsent:
        raise SystemExit(f"{unsent} rows left unsent")
    return elapsed, done


async def run(n: int, regions: int, repeat: int) -> None:
    configure_logging("bench", "WARNING")
    infra = ServiceSettings.load()
    database_url = infra.database_url
    kafka = KafkaAdminSettings.load().kafka  # topics, ACLs; it writes as the admin too
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}.")
    schema = f"bench_relay_{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, topics)
    await migrate(database_url, schema)
    pool = await create_pool(database_url, schema, max_size=2)
    try:
        names = _regions(regions)
        events = _events(n, names)
        for start in range(0, n, 1000):
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, events[start : start + 1000])
        print(f"outbox: {n:,} MatchProposed rows in {len(names)} regions ({BIG} first)")
        rates: dict[str, list[float]] = {"raw": [], "relay": []}
        last_small: list[float] = []
        for _ in range(repeat):
            seconds = await _raw(kafka, topics, events)
            rates["raw"].append(n / seconds)
            print(
                f"raw aiokafka: {n:,} records in {seconds:.2f} s: {n / seconds:,.0f}/s "
                f"({CPU['raw'] / n * 1e6:.0f} us CPU each)"
            )
            seconds, done = await _relay(kafka, database_url, schema, topics, pool, n)
            rates["relay"].append(n / seconds)
            small = [done[r] for r in names[1:]] or [done[BIG]]
            last_small.append(max(small))
            print(
                f"relay: {n:,} rows published and marked in {seconds:.2f} s: "
                f"{n / seconds:,.0f}/s ({CPU['relay'] / n * 1e6:.0f} us CPU each); "
                f"{BIG} done after {done[BIG]:.2f} s, "
                f"the last other region after {max(small):.2f} s"
            )
        median = {k: statistics.median(v) for k, v in rates.items()}
        for k, v in rates.items():
            print(f"{k}: best {max(v):,.0f}/s, median {median[k]:,.0f}/s over {len(v)} runs")
        print(
            f"relay / raw (medians): {median['relay'] / median['raw']:.2f} (target >= 0.70); "
            f"the other regions done after {statistics.median(last_small):.2f} s (median)"
        )
    finally:
        await pool.close()
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await admin.close()
        await delete_topics(kafka, topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--regions", type=int, default=13)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.regions, args.repeat))


if __name__ == "__main__":
    main()
