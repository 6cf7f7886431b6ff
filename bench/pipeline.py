"""Pipeline benchmark of the matching service: Kafka -> read model, and round latency, beside
the raw-library limit of the same round's I/O, measured in the same run.

Uses the running local infrastructure (`APL_KAFKA_BOOTSTRAP`, `APL_DATABASE_URL` from the
environment or `.local/apl.env`), under a fresh topic prefix and a fresh Postgres schema, both
removed at the end. It fills one region's read model with the placements and `--students`
students of `devtools.synthetic` (through the real broker, measuring the service's ingest; or,
with `--direct`, written by the read model's own repository, to reach large rounds quickly),
runs the matching service in this process (subscribers, outbox relay, the real engine), and
prints:

- events per second consumed into the read model (first applied to last applied event, as the
  service's own `inputs_applied` counters show them, polled every 20 ms; the
  events are published by a process of its own once the service's consumer group is stable,
  so neither its rebalances nor the publisher's work are in the figure) and,
  in the same run, the raw-library limit of that path: a plain `AIOKafkaConsumer` per topic reads
  the same records again (its own group) in batches of the service's size
  (`APL_MATCHING_CONSUMER_BATCH`), parses each with the contract's `parse_event`, COPYs the same
  columns into scratch copies of the `students` and `placements` tables in one transaction per
  batch and commits the batch's offsets (first batch received to last committed); both rates and
  their ratio (target >= 0.6);
- for two kinds of round over the same read model, alternating `--repeat` times each after one
  untimed warm-up round (before every round the previous round's matches and outbox rows are
  deleted, so each starts from the same read model and writes all its proposals):
  - `v1`: the round as before issue 14 (the container's `outcomes=False`: no explanations
    computed, no MatchingRoundOutcomes published; no fill);
  - `v2`: every student's outcome with its explanation published (MatchingRoundOutcomes parts,
    before the completion), and `fill: true`;
  - `v2-nofill`: the round the service runs for a request without `fill` (outcomes with their
    explanations, as in `v2`; no fill);
  each round's latency from publishing MatchingRoundRequested to receiving its
  MatchingRoundCompleted (the probe consumes the rounds topic in this process and, as a
  consumer routes, parses only the records whose `event-type` header is the completion's),
  split at the round's commit (the rest is the relay's publishing and the probe's receiving),
  this process's CPU time over it (every thread: the service and the probe; on a machine
  shared with other work less noisy than the latency), and the round's own work
  (`RoundReport`: load, solve, write; the explanations run in a thread beside the writes);
- after each round, the raw-library limit of that round's I/O, in the same run: asyncpg reads
  the same stored profiles and offers (no parsing), COPYs as many match rows into a copy of the
  `matches` table (its indexes too) and the round's own outbox payloads into a copy of the
  `outbox` table, in one transaction, and an idempotent acks=all `AIOKafkaProducer` sends those
  payloads (same keys and headers) to a scratch topic and awaits every acknowledgement. The
  engine's solve is not part of the limit (it is printed on its own);
- the best and median of each, and the ratios of the medians: v2 / v1 (latency and work) and
  project latency / raw limit.

    .venv/bin/python -m bench.pipeline [--students 7000] [--seed 1] [--repeat 3] [--direct]

`APL_BENCH_LOG_LEVEL=INFO` also prints the service's `round committed` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.synthetic import generate_round
from services.matching.adapters.repository import PostgresMatchingUnitOfWork
from services.matching.bootstrap import Container, running
from services.matching.handlers import RoundHooks, RoundReport
from services.matching.settings import MatchingSettings
from shared.contracts import events as ev
from shared.contracts.events import parse_event
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.contracts.topics import PARTITIONS, PLACEMENTS, STUDENTS, Topics, event_key
from shared.kafka import delete_topics, ensure_topics, event_headers, make_broker, publish_event
from shared.logging import configure_logging
from shared.settings import KafkaAdminSettings, ServiceSettings

REGION = "SE-AB"
MODES = ("v1", "v2-nofill", "v2")
TARGET_V2_OVER_V1 = 1.30
TARGET_INGEST_OVER_RAW = 0.6
TARGET_LATENCY = {7000: 0.7, 30000: 2.5}


class Reports(RoundHooks):
    """The service's round hooks in the bench: keeps every committed round's report."""

    def __init__(self) -> None:
        self.by_round: dict[uuid.UUID, RoundReport] = {}
        self.committed_at: dict[uuid.UUID, float] = {}  # perf_counter() just after the commit

    async def committed(self, report: RoundReport) -> None:
        self.committed_at[report.round_id] = time.perf_counter()
        self.by_round[report.round_id] = report


@dataclass
class Raw:
    """The raw-library time of one round's I/O."""

    read: float
    copy: float  # matches and outbox rows, one transaction with its commit
    produce: float
    rows: int
    payload_bytes: int
    messages: int

    @property
    def total(self) -> float:
        return self.read + self.copy + self.produce


@dataclass
class Run:
    latency: float
    committed: float  # from the request to the round's commit (the rest: relay and consumer)
    cpu: float  # this process's CPU time (every thread) from the request to the completion
    report: RoundReport
    raw: Raw
    completed: dict[str, Any]


def _inputs(n_students: int, seed: int) -> tuple[list[ev.Event], list[ev.Event]]:
    generated = generate_round(n_students, seed=seed)
    placements: list[ev.Event] = [
        ev.PlacementPosted(producer="placements", data=p.model_copy(update={"region": REGION}))
        for p in generated.placements
    ]
    students: list[ev.Event] = [
        ev.StudentRegistered(producer="placements", data=s.model_copy(update={"region": REGION}))
        for s in generated.students
    ]
    return placements, students


async def _count(conn: asyncpg.Connection, schema: str) -> int:
    """Input events applied so far: the service's own counters (`inputs_applied`, a row per
    producer and region, updated in each batch's transaction), one row read, so that polling
    every 20 ms takes little from the service it measures on the same cores (counting the
    tables' rows scanned up to 11,559 rows a poll; a poll then took 8 ms on average, waits
    included)."""
    return int(
        await conn.fetchval(
            # the schema is the bench's own generated name (bench_ and hex digits)
            f"SELECT coalesce(sum(events), 0) FROM {schema}.inputs_applied"  # noqa: S608
        )
    )


async def _publish(topics: Topics, inputs: list[ev.Event], feeder: Any) -> None:
    """Publish every input event (`--publish-prefix`: in a process of its own)."""
    t0 = time.perf_counter()
    pending = [
        await feeder.publish(e.to_json(), topics.name(e.topic), key=e.key(), no_confirm=True)
        for e in inputs
    ]
    await asyncio.gather(*pending)
    print(f"published {len(inputs)} events in {time.perf_counter() - t0:.2f} s")


async def _publish_only(prefix: str, n_students: int, seed: int) -> None:
    """`--publish-prefix`: the bench's input events (the same data, new event ids), published
    under `prefix` by this process."""
    placements, students = _inputs(n_students, seed)
    feeder = make_broker(KafkaAdminSettings.load().kafka, "bench-feeder")
    async with feeder:
        await feeder.connect()
        await _publish(Topics(prefix), [*placements, *students], feeder)


async def _stable_groups(admin: AIOKafkaAdminClient, groups: list[str]) -> None:
    """Wait until each consumer group has a member and no rebalance going on. One group per
    request: aiokafka cannot decode a Kafka 4 broker's answer about several groups at once
    ("Buffer underrun decoding string"), and the service has a group per subscriber."""
    deadline = time.perf_counter() + 120.0
    waiting = set(groups)
    while time.perf_counter() < deadline:
        for group in sorted(waiting):
            [response] = await admin.describe_consumer_groups([group])
            # a group's (error, id, state, protocol type, protocol, members, ...)
            if any(g[2] == "Stable" and g[5] for g in response.groups):
                waiting.discard(group)
        if not waiting:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"consumer groups {sorted(waiting)} not stable within 120 s")


async def _ingest(
    c: Container,
    admin: AIOKafkaAdminClient,
    database_url: str,
    schema: str,
    expected: int,
    n_students: int,
    seed: int,
) -> float:
    """Through Kafka: once the service's consumers are in a stable group, publish the input
    events from another process (so the publisher does not share this process's core with the
    service) and wait until the read model has all `expected`."""
    await _stable_groups(admin, [str(s.group_id) for s in c.broker.subscribers])  # type: ignore[attr-defined]
    publisher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.pipeline",
        "--publish-prefix",
        c.settings.topics.prefix,
        "--students",
        str(n_students),
        "--seed",
        str(seed),
    )
    first_at = last_at = 0.0
    first_seen = seen = 0
    conn = await asyncpg.connect(database_url)
    try:
        while seen < expected:
            seen = await _count(conn, schema)
            now = time.perf_counter()
            if seen and not first_at:
                first_at, first_seen = now, seen
            if seen:
                last_at = now
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
        if await publisher.wait() != 0:
            raise SystemExit("the publisher process failed")
    rate = (seen - first_seen) / max(last_at - first_at, 1e-9)
    print(f"read model: {seen} events applied; {rate:,.0f} events/s consumed")
    return rate


_RAW_COLUMNS = {
    "students": ("student_id", "region", "profile", "participant", "profile_json"),
    "placements": (
        "placement_id",
        "region",
        "company_id",
        "capacity",
        "offer",
        "kind",
        "offer_json",
    ),
}


def _raw_row(event: ev.Event) -> tuple[str, tuple[Any, ...]]:
    """The read-model row of a parsed input event, as the repository writes it."""
    data = event.data
    if isinstance(data, PlacementOffer):
        text = data.model_dump_json()
        row = (
            data.placement_id,
            data.region,
            data.company_id,
            data.capacity,
            text,
            data.kind,
            text.encode(),
        )
        return "raw_placements", row
    if isinstance(data, StudentProfile):
        text = data.model_dump_json()
        return "raw_students", (
            data.student_id,
            data.region,
            text,
            data.participant,
            text.encode(),
        )
    raise TypeError(f"not a bench input: {event.type}")


async def _raw_ingest_topic(
    settings: MatchingSettings, database_url: str, schema: str, topic: str, expected: int
) -> tuple[float, float, int]:
    """One topic's records again with the raw libraries; (first batch, last commit, records)."""
    topics = settings.topics
    consumer = KafkaAdminSettings.load().kafka.consumer(  # a group of its own: as the admin
        topics.name(topic),
        group_id=f"{topics.prefix}raw-ingest",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=settings.consumer_batch,
    )
    conn = await asyncpg.connect(database_url)
    await consumer.start()
    first = last = 0.0
    done = 0
    try:
        while done < expected:
            got = await consumer.getmany(timeout_ms=200, max_records=settings.consumer_batch)
            records = [r for rs in got.values() for r in rs]
            if not records:
                continue
            if not first:
                first = time.perf_counter()
            rows: dict[str, list[tuple[Any, ...]]] = {"raw_students": [], "raw_placements": []}
            for r in records:
                table, row = _raw_row(parse_event(topic, r.value or b""))
                rows[table].append(row)
            async with conn.transaction():
                for table, batch in rows.items():
                    if batch:
                        await conn.copy_records_to_table(
                            table,
                            schema_name=schema,
                            columns=_RAW_COLUMNS[table.removeprefix("raw_")],
                            records=batch,
                        )
            await consumer.commit()
            done += len(records)
            last = time.perf_counter()
    finally:
        await consumer.stop()
        await conn.close()
    return first, last, done


async def _raw_ingest(
    settings: MatchingSettings,
    conn: asyncpg.Connection,
    database_url: str,
    schema: str,
    placements: int,
    students: int,
) -> float:
    """The raw-library limit of the ingest path (see the module); its events per second."""
    for table in ("students", "placements"):
        # the bench's own generated schema name (bench_ and hex digits)
        await conn.execute(
            f"CREATE TABLE {schema}.raw_{table} (LIKE {schema}.{table} INCLUDING ALL)"
        )
    ends = await asyncio.gather(
        _raw_ingest_topic(settings, database_url, schema, PLACEMENTS, placements),
        _raw_ingest_topic(settings, database_url, schema, STUDENTS, students),
    )
    first, last = min(e[0] for e in ends), max(e[1] for e in ends)
    n = sum(e[2] for e in ends)
    rate = n / max(last - first, 1e-9)
    print(
        f"raw limit of ingest: {n} events in batches of {settings.consumer_batch}, one "
        f"transaction each (asyncpg COPY, offsets committed); {rate:,.0f} events/s"
    )
    return rate


async def _direct(c: Container, placements: list[ev.Event], students: list[ev.Event]) -> None:
    """`--direct`: the read model written by its own repository (1,000 rows a transaction)."""
    t0 = time.perf_counter()
    rows = [e.data for e in placements] + [e.data for e in students]
    for start in range(0, len(rows), 1000):
        async with PostgresMatchingUnitOfWork(c.pool) as uow:
            for data in rows[start : start + 1000]:
                if isinstance(data, PlacementOffer):
                    await uow.placements.upsert(data)
                else:
                    await uow.students.upsert(data)
    print(f"read model: {len(rows)} rows written directly in {time.perf_counter() - t0:.1f} s")


async def _raw(
    conn: asyncpg.Connection,
    schema: str,
    producer: AIOKafkaProducer,
    topic: str,
    after_id: int,
    proposed: int,
) -> Raw:
    """The raw-library limit of the round just run (see the module)."""
    # schema and table names here are the bench's own (bench_ and hex digits)
    rows = await conn.fetch(
        f"SELECT event_id, key, event_type, payload FROM {schema}.outbox "  # noqa: S608
        "WHERE id > $1 ORDER BY id",
        after_id,
    )
    t0 = time.perf_counter()
    await conn.fetch(
        f"SELECT profile::text FROM {schema}.students WHERE region = $1 "  # noqa: S608
        "AND NOT withdrawn ORDER BY student_id",
        REGION,
    )
    await conn.fetch(f"SELECT offer::text FROM {schema}.placements")  # noqa: S608
    t1 = time.perf_counter()
    await conn.execute(f"TRUNCATE {schema}.raw_matches, {schema}.raw_outbox")
    round_id = uuid.uuid4()
    matches = [
        (uuid.uuid4(), REGION, round_id, f"s-{i}", f"p-{i % 997}", "c-1", 1, "proposed", False)
        for i in range(proposed)
    ]
    t2 = time.perf_counter()
    async with conn.transaction():
        await conn.copy_records_to_table(
            "raw_matches",
            schema_name=schema,
            columns=[
                "match_id",
                "region",
                "round_id",
                "student_id",
                "placement_id",
                "company_id",
                "rank",
                "status",
                "filled",
            ],
            records=matches,
        )
        await conn.copy_records_to_table(
            "raw_outbox",
            schema_name=schema,
            columns=["event_id", "topic", "key", "event_type", "payload"],
            records=[(r["event_id"], topic, r["key"], r["event_type"], r["payload"]) for r in rows],
        )
    t3 = time.perf_counter()
    futures = [
        await producer.send(
            topic,
            bytes(r["payload"]),
            key=event_key(r["key"]),
            headers=[
                (k, v.encode()) for k, v in event_headers(r["event_type"], r["event_id"]).items()
            ],
        )
        for r in rows
    ]
    await asyncio.gather(*futures)
    t4 = time.perf_counter()
    return Raw(
        read=t1 - t0,
        copy=t3 - t2,
        produce=t4 - t3,
        rows=len(matches) + len(rows),
        payload_bytes=sum(len(r["payload"]) for r in rows),
        messages=len(rows),
    )


async def _round(
    c: Container,
    conn: asyncpg.Connection,
    schema: str,
    feeder: Any,
    consumer: AIOKafkaConsumer,
    reports: Reports,
    raw_producer: AIOKafkaProducer,
    raw_topic: str,
    mode: str,
) -> Run:
    """One round from the same read model: `v1` (outcomes off, no fill), `v2` (outcomes with
    explanations, fill) or `v2-nofill` (outcomes, no fill), then the raw limit of its I/O."""
    # the bench's own generated schema name (bench_ and hex digits)
    await conn.execute(f"DELETE FROM {schema}.matches")  # noqa: S608
    await conn.execute(f"DELETE FROM {schema}.outbox WHERE sent_at IS NOT NULL")  # noqa: S608
    after_id = int(await conn.fetchval(f"SELECT coalesce(max(id), 0) FROM {schema}.outbox"))  # noqa: S608
    c.outcomes = mode != "v1"
    request = ev.MatchingRoundRequested(
        producer="placements",
        data=ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region=REGION, fill=mode == "v2"),
    )
    cpu_req = time.process_time()
    t_req = time.perf_counter()
    await publish_event(feeder, c.settings.topics, request)
    deadline = t_req + 300.0
    completed: dict[str, Any] | None = None
    while completed is None:
        if time.perf_counter() > deadline:
            raise SystemExit("no MatchingRoundCompleted within 300 s")
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for r in records:
                # as a consumer routes: by the `event-type` header, so only the completion is
                # parsed (this probe shares the service's process; the outcome parts' 6 MB of
                # JSON are the placements service's to parse, in its own)
                if dict(r.headers).get("event-type") != b"MatchingRoundCompleted":
                    continue
                body = json.loads(r.value)
                if body["data"]["round_id"] == str(request.data.round_id):
                    completed = body["data"]
    latency = time.perf_counter() - t_req
    cpu = time.process_time() - cpu_req
    report = reports.by_round[request.data.round_id]
    committed = reports.committed_at[request.data.round_id] - t_req
    raw = await _raw(conn, schema, raw_producer, raw_topic, after_id, report.proposed)
    return Run(latency, committed, cpu, report, raw, completed)


def _print_run(mode: str, run: Run) -> None:
    figures, r, raw = run.completed["figures"], run.report, run.raw
    print(
        f"{mode}: {figures['students']} students, {figures['placed']} placed "
        f"({figures.get('filled', 0)} filled), {r.proposed} proposed, {r.outcome_parts} outcome "
        f"parts, solver {figures['solver']} {figures['solve_seconds']:.3f} s\n"
        f"    latency MatchingRoundRequested -> MatchingRoundCompleted {run.latency:.3f} s "
        f"(committed at {run.committed:.3f}, published and received in "
        f"{run.latency - run.committed:.3f}; this process's CPU {run.cpu:.3f} s); round work "
        f"{r.work_seconds:.3f} s "
        f"(load {r.load_seconds:.3f}, solve {r.solve_seconds:.3f}, write {r.write_seconds:.3f}; "
        f"explain beside the writes {r.explain_seconds:.3f})\n"
        f"    raw limit of its I/O {raw.total:.3f} s (read {raw.read:.3f}, COPY {raw.rows} rows "
        f"/ {raw.payload_bytes / 1e6:.1f} MB {raw.copy:.3f} = {raw.rows / raw.copy:,.0f} rows/s, "
        f"produce {raw.messages} {raw.produce:.3f} = {raw.messages / raw.produce:,.0f}/s)"
    )


def _summary(runs: dict[str, list[Run]], n_students: int) -> None:
    med: dict[str, dict[str, float]] = {}
    for mode, rs in runs.items():
        lat = [r.latency for r in rs]
        work = [r.report.work_seconds for r in rs]
        raw = [r.raw.total for r in rs]
        solve = [r.report.solve_seconds for r in rs]
        after = [r.latency - r.committed for r in rs]
        cpu = [r.cpu for r in rs]
        med[mode] = {
            "latency": statistics.median(lat),
            "work": statistics.median(work),
            "raw": statistics.median(raw),
            "solve": statistics.median(solve),
            "after": statistics.median(after),
            "cpu": statistics.median(cpu),
        }
        m = med[mode]
        print(
            f"{mode}: latency best {min(lat):.3f} s, median {m['latency']:.3f} s; round work "
            f"median {m['work']:.3f} s (solve {m['solve']:.3f}); commit -> completion received "
            f"median {m['after']:.3f} s; this process's CPU median {m['cpu']:.3f} s; raw I/O "
            f"limit median "
            f"{m['raw']:.3f} s; latency / (raw I/O + solve) "
            f"{m['latency'] / (m['raw'] + m['solve']):.2f} over {len(rs)} rounds"
        )
    for key in ("latency", "work", "cpu"):
        ratio = med["v2"][key] / med["v1"][key]
        target = f"; target <= {TARGET_V2_OVER_V1 - 1:+.0%}" if key == "latency" else ""
        print(f"v2 / v1 {key} (medians): {ratio:.3f} ({ratio - 1:+.0%} added{target})")
    limit = TARGET_LATENCY.get(n_students)
    if limit is not None:
        for mode in MODES:
            verdict = "met" if med[mode]["latency"] <= limit else "not met"
            print(
                f"{mode}: median latency {med[mode]['latency']:.3f} s, target <= {limit} s: "
                f"{verdict}"
            )


async def run(n_students: int, seed: int, repeat: int, *, direct: bool) -> None:
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
    raw_topic = f"{prefix}raw"
    await ensure_topics(kafka, topics)
    admin = kafka.admin()
    await admin.start()
    await admin.create_topics([NewTopic(raw_topic, PARTITIONS, 1)])
    placements, students = _inputs(n_students, seed)
    print(f"input: {len(placements)} placements, {len(students)} students, region {REGION}")

    feeder = make_broker(kafka, "bench-feeder")
    raw_producer = kafka.producer(enable_idempotence=True, acks="all", linger_ms=0)
    configure_logging("matching", settings.log_level, json=True)
    conn = await asyncpg.connect(database_url)
    reports = Reports()
    try:
        async with feeder:
            await feeder.connect()
            await raw_producer.start()
            # The service as main.py runs it: migrations, subscribers, outbox relay.
            async with running(settings, hooks=reports) as c:
                for table in ("matches", "outbox"):
                    await conn.execute(
                        f"CREATE TABLE {schema}.raw_{table} (LIKE {schema}.{table} INCLUDING ALL)"
                    )
                if direct:
                    await _direct(c, placements, students)
                else:
                    n_inputs = len(placements) + len(students)
                    rate = await _ingest(c, admin, database_url, schema, n_inputs, n_students, seed)
                    limit = await _raw_ingest(
                        settings, conn, database_url, schema, len(placements), len(students)
                    )
                    ratio = rate / limit
                    verdict = "met" if ratio >= TARGET_INGEST_OVER_RAW else "not met"
                    print(
                        f"ingest / raw limit: {rate:,.0f} / {limit:,.0f} events/s = {ratio:.2f} "
                        f"(target >= {TARGET_INGEST_OVER_RAW}: {verdict})"
                    )
                consumer = kafka.consumer(topics.rounds, auto_offset_reset="latest")
                await consumer.start()
                try:
                    await consumer.seek_to_end()
                    await asyncio.sleep(0.5)
                    args = (c, conn, schema, feeder, consumer, reports, raw_producer, raw_topic)
                    await _round(*args, "v1")  # warm-up
                    runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
                    for _ in range(repeat):
                        for mode in MODES:
                            result = await _round(*args, mode)
                            runs[mode].append(result)
                            _print_run(mode, result)
                finally:
                    await consumer.stop()
                if repeat:  # --repeat 0: the ingest alone
                    _summary(runs, n_students)
    finally:
        with contextlib.suppress(Exception):
            await raw_producer.stop()
        with contextlib.suppress(Exception):
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
        with contextlib.suppress(Exception):
            await admin.delete_topics([raw_topic])
        await admin.close()
        await delete_topics(kafka, topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=7000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of each kind (0: the ingest only)"
    )
    parser.add_argument(
        "--direct", action="store_true", help="write the read model directly, not through Kafka"
    )
    parser.add_argument("--publish-prefix", help=argparse.SUPPRESS)  # the ingest's publisher
    args = parser.parse_args()
    if args.publish_prefix is not None:
        asyncio.run(_publish_only(args.publish_prefix, args.students, args.seed))
        return
    asyncio.run(run(args.students, args.seed, args.repeat, direct=args.direct))


if __name__ == "__main__":
    main()
