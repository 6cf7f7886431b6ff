"""Pipeline benchmark of the matching service: Kafka -> read model, and round latency.

Uses the running local infrastructure (`APL_KAFKA_BOOTSTRAP`, `APL_DATABASE_URL` from the
environment or `.local/apl.env`), under a fresh topic prefix and a fresh Postgres schema, both
removed at the end.
It publishes one region's placements and 7,000 students through the real broker, runs the
matching service in this process (subscribers, outbox relay, the real engine), and prints:

- events per second consumed into the read model (first applied to last applied event);
- latency from publishing MatchingRoundRequested to receiving MatchingRoundCompleted, side by
  side in the same run for two kinds of round over the same read model:
  - `v1`: the round as before issue 14 (the container's `outcomes=False`: no explanations
    computed, no MatchingRoundOutcomes published; no fill);
  - `v2`: every student's outcome with its explanation published (MatchingRoundOutcomes parts,
    before the completion), and `fill: true`;
  alternating `--repeat` times each, after one untimed warm-up round; before every round the
  previous round's matches are deleted, so each starts from the same read model (no standing
  match) and writes all its proposals. The best and the median of each, and the ratio of the
  medians, are printed.

    .venv/bin/python -m bench.pipeline [--students 7000] [--seed 1] [--repeat 3]

`APL_BENCH_LOG_LEVEL=INFO` also prints the service's `round committed` lines: where each round's
own time went (load, solve with fill and explanations, write), without the relay and Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from devtools.synthetic import generate_round
from services.matching.bootstrap import Container, running
from services.matching.settings import MatchingSettings
from shared.contracts import events as ev
from shared.kafka import delete_topics, ensure_topics, make_broker, publish_event
from shared.logging import configure_logging
from shared.settings import KafkaAdminSettings, ServiceSettings

REGION = "SE-AB"


def _events(n_students: int, seed: int) -> tuple[list[ev.Event], list[ev.Event]]:
    generated = generate_round(n_students, seed=seed)
    placements: list[ev.Event] = [
        ev.PlacementPosted(producer="bench", data=p.model_copy(update={"region": REGION}))
        for p in generated.placements
    ]
    students: list[ev.Event] = [
        ev.StudentRegistered(producer="bench", data=s.model_copy(update={"region": REGION}))
        for s in generated.students
    ]
    return placements, students


async def _count(conn: asyncpg.Connection, schema: str) -> int:
    return int(
        await conn.fetchval(
            # the schema is the bench's own generated name (bench_ and hex digits)
            f"SELECT (SELECT count(*) FROM {schema}.students) "  # noqa: S608
            f"+ (SELECT count(*) FROM {schema}.placements)"
        )
    )


def _print_round(mode: str, latency: float, completed: dict[str, Any]) -> None:
    figures = completed["figures"]
    print(
        f"{mode}: {figures['students']} students, {figures['placed']} placed "
        f"({figures.get('filled', 0)} filled), {completed['proposed']} proposed, "
        f"{completed['outcome_parts']} outcome parts, solver {figures['solver']} "
        f"{figures['solve_seconds']:.3f} s; latency MatchingRoundRequested -> "
        f"MatchingRoundCompleted {latency:.3f} s"
    )


async def _round(
    c: Container,
    conn: asyncpg.Connection,
    schema: str,
    producer: Any,
    consumer: AIOKafkaConsumer,
    mode: str,
) -> tuple[float, dict[str, Any]]:
    """One round from the same read model: `v1` (outcomes off, no fill) or `v2` (outcomes with
    explanations, fill). Returns the latency and the MatchingRoundCompleted data."""
    # the bench's own generated schema name (bench_ and hex digits)
    await conn.execute(f"DELETE FROM {schema}.matches")  # noqa: S608
    c.outcomes = mode == "v2"
    request = ev.MatchingRoundRequested(
        producer="bench",
        data=ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region=REGION, fill=mode == "v2"),
    )
    t_req = time.perf_counter()
    await publish_event(producer, c.settings.topics, request)
    deadline = t_req + 300.0
    while True:
        if time.perf_counter() > deadline:
            raise SystemExit("no MatchingRoundCompleted within 300 s")
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for r in records:
                body = json.loads(r.value)
                if body["type"] == "MatchingRoundCompleted" and body["data"]["round_id"] == str(
                    request.data.round_id
                ):
                    data: dict[str, Any] = body["data"]
                    return time.perf_counter() - t_req, data


async def run(n_students: int, seed: int, repeat: int) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    # The shared APL_* addresses: the admin role, which may create the bench's schema (the
    # APL_MATCHING_* role may not).
    infra = ServiceSettings.load()
    database_url = infra.database_url
    kafka = KafkaAdminSettings.load().kafka  # topics, ACLs, the feeder, reading the results
    settings = MatchingSettings.load(  # the matching principal (APL_MATCHING_KAFKA_*)
        kafka_bootstrap=infra.kafka_bootstrap,
        database_url=database_url,
        schema_name=schema,
        topic_prefix=prefix,
        log_level=os.environ.get("APL_BENCH_LOG_LEVEL", "WARNING"),
        log_json=True,
        outbox_poll_seconds=0.05,
    )
    topics = settings.topics
    await ensure_topics(kafka, topics)
    placements, students = _events(n_students, seed)
    inputs = [*placements, *students]
    print(f"input: {len(placements)} placements, {len(students)} students, region {REGION}")

    producer = make_broker(kafka, "bench-feeder")
    configure_logging("matching", settings.log_level, json=True)
    conn = await asyncpg.connect(database_url)
    try:
        async with producer:
            await producer.connect()
            t0 = time.perf_counter()
            pending = [
                await producer.publish(
                    e.to_json(), topics.name(e.topic), key=e.key(), no_confirm=True
                )
                for e in inputs
            ]
            await asyncio.gather(*pending)
            print(f"published {len(inputs)} events in {time.perf_counter() - t0:.2f} s")

            # The service as main.py runs it: migrations, subscribers, outbox relay.
            async with running(settings) as c:
                first_at = last_at = 0.0
                seen = 0
                while seen < len(inputs):
                    seen = await _count(conn, schema)
                    now = time.perf_counter()
                    if seen and not first_at:
                        first_at, first_seen = now, seen
                    if seen:
                        last_at = now
                    await asyncio.sleep(0.05)
                span = max(last_at - first_at, 1e-9)
                rate = (seen - first_seen) / span
                print(f"read model: {seen} events applied; {rate:,.0f} events/s consumed")

                consumer = kafka.consumer(topics.rounds, auto_offset_reset="latest")
                await consumer.start()
                try:
                    await consumer.seek_to_end()
                    await asyncio.sleep(0.5)
                    await _round(c, conn, schema, producer, consumer, "v1")  # warm-up
                    latencies: dict[str, list[float]] = {"v1": [], "v2": []}
                    for _ in range(repeat):
                        for mode in ("v1", "v2"):
                            latency, completed = await _round(
                                c, conn, schema, producer, consumer, mode
                            )
                            latencies[mode].append(latency)
                            _print_round(mode, latency, completed)
                finally:
                    await consumer.stop()
                median = {m: statistics.median(v) for m, v in latencies.items()}
                for m, v in latencies.items():
                    print(
                        f"{m}: best {min(v):.3f} s, median {median[m]:.3f} s over {len(v)} rounds"
                    )
                added = median["v2"] / median["v1"] - 1
                print(
                    f"v2 / v1 (medians): {median['v2'] / median['v1']:.3f} "
                    f"({added:+.0%} added; target <= +30%)"
                )
    finally:
        with contextlib.suppress(Exception):
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
        await delete_topics(kafka, topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=7000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each kind")
    args = parser.parse_args()
    asyncio.run(run(args.students, args.seed, args.repeat))


if __name__ == "__main__":
    main()
