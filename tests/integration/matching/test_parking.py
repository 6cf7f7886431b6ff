"""Parked round requests (services/matching/parking.py) on real Kafka and PostgreSQL, with the
service as an OS process: a request whose inputs are missing is parked in the database and its
offset committed, while another region's round on the same partition completes within a second
of its request; the parked request survives a kill and runs once its inputs arrive."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from shared.contracts import events as ev
from shared.contracts.topics import PARTITIONS, ROUND_REQUESTS, Topics, event_key, subscriber_name
from tests.integration.matching.support import (
    prepared_schema,
    publish_all,
    region_input,
    replica,
    scalar,
    wait_for_read_model,
)
from tests.support.infra import Infra
from tests.support.kafka import group_lag, read_records
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

STUCK, OTHER = "SE-AB", "SE-M"


def _partition(region: str) -> int:
    return int(murmur2(event_key(region)) & 0x7FFFFFFF) % PARTITIONS


def _request(region: str, inputs: int | None = None) -> ev.MatchingRoundRequested:
    data = ev.MatchingRoundRequestedData(
        round_id=uuid.uuid4(), region=region, inputs_published=inputs
    )
    return ev.MatchingRoundRequested(producer="placements", data=data)


async def _completed(infra: Infra, topics: Topics, round_id: uuid.UUID) -> dict[str, Any]:
    def done(records: list[Any]) -> bool:
        return any(_is_completion(r, round_id) for r in records)

    records = await read_records(infra.kafka, topics.rounds, until=done, wait=60)
    found = [ev.parse_event(topics.contract_topic(r.topic), r.value) for r in records]
    for event in found:
        if isinstance(event, ev.MatchingRoundCompleted) and event.data.round_id == round_id:
            return event.data.model_dump(mode="json")
    raise AssertionError(f"round {round_id} did not complete")


def _is_completion(record: Any, round_id: uuid.UUID) -> bool:
    return b"MatchingRoundCompleted" in record.value and str(round_id).encode() in record.value


async def test_a_parked_request_holds_no_partition_and_survives_a_kill(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    assert _partition(STUCK) == _partition(OTHER)  # one partition: the test's point
    topics = await make_topics()
    schema, env = await prepared_schema(infra, database_url, topics)
    proc = replica(env, tmp_path, "matching-parking")
    stuck_placements, stuck_students = region_input(STUCK, 20, 10, seed=1)
    other_placements, other_students = region_input(OTHER, 20, 10, seed=2)
    applied = len(stuck_placements) + len(stuck_students)
    group = f"{topics.prefix}matching.{subscriber_name(ROUND_REQUESTS)}"
    try:
        await asyncio.to_thread(proc.start)
        inputs = [*stuck_placements, *stuck_students, *other_placements, *other_students]
        await publish_all(infra.kafka, topics, inputs)
        await wait_for_read_model(
            database_url,
            schema,
            [*stuck_placements, *other_placements],
            [*stuck_students, *other_students],
        )
        # the stuck request counts five inputs of its region that are not published yet
        stuck = _request(STUCK, inputs=applied + 5)
        await publish_all(infra.kafka, topics, [stuck])
        parked = f"SELECT count(*) FROM {schema}.parked_rounds"  # noqa: S608 (the test's schema)
        await eventually(lambda: _one(database_url, parked), wait=30, what="the parked request")

        # another region's request behind it on the same partition runs at once
        other = _request(OTHER)
        asked = time.monotonic()
        await publish_all(infra.kafka, topics, [other])
        await eventually(
            lambda: _has_round(database_url, schema, other.data.round_id),
            wait=30,
            interval=0.02,
            what="the other region's round",
        )
        took = time.monotonic() - asked
        print(f"another region's round, behind a parked request on its partition: {took:.3f} s")
        assert took < 1.0, f"the other region's round took {took:.2f} s"
        assert (await _completed(infra, topics, other.data.round_id))["status"] == "matched"
        # both records are done for the consumer: nothing of the topic is left uncommitted
        await eventually(
            lambda: _no_lag(infra, group, topics.round_requests), wait=30, what="offsets"
        )

        # killed and started again, the service still has it parked; its inputs then arrive
        proc.kill()
        await asyncio.to_thread(proc.start)
        assert await scalar(database_url, parked) == 1
        late = [
            ev.StudentRegistered(
                producer="placements",
                data=s.data.model_copy(update={"student_id": f"{STUCK}-late{i}"}),
            )
            for i, s in enumerate(stuck_students[:5])
            if isinstance(s, ev.StudentRegistered)
        ]
        await publish_all(infra.kafka, topics, late)
        done = await _completed(infra, topics, stuck.data.round_id)
        assert done["status"] == "matched"
        assert done["figures"]["students"] == len(stuck_students) + 5  # it saw what it waited for
        assert await scalar(database_url, parked) == 0
    finally:
        await asyncio.to_thread(proc.stop)


async def _one(database_url: str, query: str) -> bool:
    return bool(await scalar(database_url, query) == 1)


async def _has_round(database_url: str, schema: str, round_id: uuid.UUID) -> bool:
    query = f"SELECT count(*) FROM {schema}.rounds WHERE round_id = $1"  # noqa: S608
    return bool(await scalar(database_url, query, round_id))


async def _no_lag(infra: Infra, group: str, topic: str) -> bool:
    return await group_lag(infra.kafka, group, topic) == 0
