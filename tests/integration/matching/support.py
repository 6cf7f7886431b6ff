"""Helpers for the matching service's integration tests: input, processes, and reading output."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import TopicPartition

from services.matching.bootstrap import MIGRATIONS
from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.db import migrate
from shared.kafka import make_broker, publish_event
from shared.kafka_client import KafkaConnection
from tests.support.factories import placement, student
from tests.support.infra import Infra
from tests.support.kafka import read_records
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually


def region_input(
    region: str, n_students: int, n_placements: int, seed: int
) -> tuple[list[ev.Event], list[ev.Event]]:
    """Placement and student events of one region (preferences within the region)."""
    rng = random.Random(seed)
    pids = [f"{region}-p{i}" for i in range(n_placements)]
    placements: list[ev.Event] = [
        ev.PlacementPosted(
            producer="placements",
            data=placement(pid, region=region, capacity=rng.randint(1, 3), company_id=f"c-{pid}"),
        )
        for pid in pids
    ]
    students: list[ev.Event] = [
        ev.StudentRegistered(
            producer="placements",
            data=student(
                f"{region}-s{i}", region=region, prefs=tuple(rng.sample(pids, k=min(4, len(pids))))
            ),
        )
        for i in range(n_students)
    ]
    return placements, students


async def publish_all(kafka: KafkaConnection, topics: Topics, events: Iterable[ev.Event]) -> None:
    """Publish `events` as `kafka`'s principal (the tests' admin stands in for their producers)."""
    broker = make_broker(kafka, "test-feeder")
    async with broker:
        await broker.connect()
        for e in events:
            await publish_event(broker, topics, e)


def round_request(region: str) -> ev.MatchingRoundRequested:
    return ev.MatchingRoundRequested(
        producer="placements",
        data=ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region=region),
    )


def matching_env(infra: Infra, database_url: str, topics: Topics, schema: str) -> dict[str, str]:
    return {
        **infra.kafka_env("matching"),
        "APL_MATCHING_DATABASE_URL": database_url,
        "APL_DATABASE_URL": database_url,
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_MATCHING_TOPIC_PREFIX": topics.prefix,
        "APL_MATCHING_SCHEMA_NAME": schema,
        "APL_MATCHING_OUTBOX_POLL_SECONDS": "0.1",
        # a killed replica's partitions move to the others after a few seconds, not 45
        "APL_ENVIRONMENT": "test",
    }


def replica(
    env: dict[str, str], log_dir: Path, name: str, command: tuple[str, ...] = ()
) -> ServiceProcess:
    """A matching replica: `apl serve matching`, or the entry script `command` names."""
    return ServiceProcess("matching", env, log_dir, name=name, command=command)


async def prepared_schema(
    infra: Infra, database_url: str, topics: Topics
) -> tuple[str, dict[str, str]]:
    """A fresh read-model schema, migrated up front (so tests can poll it before the service
    started), and the environment of replicas that use it."""
    schema = f"m_{uuid.uuid4().hex[:10]}"
    await migrate(database_url, schema, MIGRATIONS)
    return schema, matching_env(infra, database_url, topics, schema)


async def scalar(database_url: str, query: str, *args: Any) -> Any:
    """The one value `query` returns."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def read_model_count(database_url: str, schema: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        # identifiers of the test's own generated schema and a table name the test passes
        return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}"))  # noqa: S608
    finally:
        await conn.close()


async def wait_for_read_model(
    database_url: str, schema: str, placements: Sized, students: Sized
) -> None:
    """Until the read model holds every placement and every student published."""

    async def applied() -> bool:
        return await read_model_count(database_url, schema, "students") == len(
            students
        ) and await read_model_count(database_url, schema, "placements") == len(placements)

    await eventually(applied, wait=90, interval=0.3, what="read model complete")


async def request_after_input(
    infra: Infra, database_url: str, topics: Topics, schema: str, region: str, *, seed: int
) -> ev.MatchingRoundRequested:
    """Publish a region's input (80 students, 30 placements), wait until the read model holds
    it, then publish a round request for the region and return it."""
    placements, students = region_input(region, 80, 30, seed=seed)
    await publish_all(infra.kafka, topics, [*placements, *students])
    await wait_for_read_model(database_url, schema, placements, students)
    request = round_request(region)
    await publish_all(infra.kafka, topics, [request])
    return request


async def position_of(kafka: KafkaConnection, topic: str, event: ev.Event) -> tuple[int, int]:
    """(partition, offset) of `event` on `topic`."""

    def found(records: list[Any]) -> bool:
        return any(json.loads(r.value)["event_id"] == str(event.event_id) for r in records)

    records = await read_records(kafka, topic, until=found)
    for r in records:
        if json.loads(r.value)["event_id"] == str(event.event_id):
            return r.partition, r.offset
    raise AssertionError(f"{event.type} {event.event_id} is not on {topic}")


async def committed_offset(kafka: KafkaConnection, group: str, topic: str, partition: int) -> int:
    """The offset `group` committed on the partition: the next record it will read (-1: none)."""
    admin = kafka.admin()
    await admin.start()
    try:
        tp = TopicPartition(topic, partition)
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return -1 if meta is None else int(meta.offset)


@dataclass
class Output:
    """Everything the service published on rounds and matches, deduplicated by event id."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events.values() if e["type"] == kind]

    @classmethod
    def of_records(cls, records: Iterable[Any]) -> Output:
        out = cls()
        for r in records:
            event = json.loads(r.value)
            if event["producer"] == "matching":
                out.events[event["event_id"]] = event
        return out


async def collect(
    kafka: KafkaConnection, topics: Topics, done: Callable[[Output], bool], *, wait: float = 120.0
) -> Output:
    """What the service published on rounds and matches, read from the beginning until `done`."""
    records = await read_records(
        kafka,
        topics.rounds,
        topics.matches,
        until=lambda rs: done(Output.of_records(rs)),
        wait=wait,
    )
    out = Output.of_records(records)
    if not done(out):
        raise TimeoutError(f"output incomplete: {len(out.events)} events")
    return out


def one_round_complete(out: Output) -> bool:
    """A round completed and every proposal it announced has arrived."""
    done = out.of("MatchingRoundCompleted")
    return len(done) >= 1 and done[0]["proposed"] == len(out.of("MatchProposed"))


def standing(out: Output) -> dict[str, str]:
    """student -> placement of the proposals that were not cancelled afterwards."""
    cancelled = {c["match_id"] for c in out.of("MatchCancelled")}
    return {
        p["student_id"]: p["placement_id"]
        for p in out.of("MatchProposed")
        if p["match_id"] not in cancelled
    }
