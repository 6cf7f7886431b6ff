"""Round requests region by region (services/matching/round_requests.py) and the wake-ups of
rounds waiting for their inputs (services/matching/wakeup.py, services/matching/parking.py),
without infrastructure.

On the container's subscribers over TestKafkaBroker and the in-memory read model: a round that
waits for its inputs is parked (the consumer is done with it) and holds no other region's round,
a region's later request is parked behind its earlier one, and the parked round runs as soon as
its input is applied
(woken by it: the periodic look again is set to an hour). Then `RoundRequests` on its own, with
a stand-in consumer: a record's offset is committed only once every record before it on its
partition is done, and requests of a partition the group took away are dropped, not committed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

from services.matching.bootstrap import Container, build
from services.matching.round_requests import RoundRequests
from services.matching.settings import MatchingSettings
from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.kafka import EventPolicy, publish_event
from tests.support.factories import placement, student
from tests.support.fakes.matching import InMemoryMatchingUnitOfWork
from tests.support.waiting import eventually
from tests.unit.matching_service.doubles import greedy_solver

A, B = "SE-AB", "SE-O"


@pytest.fixture
async def fake() -> InMemoryMatchingUnitOfWork:
    return InMemoryMatchingUnitOfWork()


@pytest.fixture
async def service(fake: InMemoryMatchingUnitOfWork) -> AsyncIterator[Container]:
    settings = MatchingSettings(
        kafka_bootstrap="localhost:9092",
        database_url="postgresql://unused/apl",
        topic_prefix="",
        input_wait_seconds=600,
    )
    c = build(settings, solver=greedy_solver, unit_of_work=lambda: fake)
    c.signals.recheck = 3600.0  # only a wake-up ends a wait within the test
    yield c
    await c.round_requests.close(grace=1)
    await c.parking.close(grace=1)
    await c.auto.close()


def _request(region: str, inputs: int | None = None) -> ev.MatchingRoundRequested:
    data = ev.MatchingRoundRequestedData(
        round_id=uuid.uuid4(), region=region, inputs_published=inputs
    )
    return ev.MatchingRoundRequested(producer="placements", data=data)


def _completed(fake: InMemoryMatchingUnitOfWork) -> list[uuid.UUID]:
    return [e.data.round_id for e in fake.published if isinstance(e, ev.MatchingRoundCompleted)]


async def test_a_waiting_round_holds_no_other_region_and_runs_once_its_input_arrives(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    inputs: list[ev.Event] = [
        ev.PlacementPosted(producer="placements", data=placement("a-p1", region=A, capacity=2)),
        ev.StudentRegistered(
            producer="placements", data=student("a-s1", region=A, prefs=("a-p1",))
        ),
        ev.PlacementPosted(producer="placements", data=placement("b-p1", region=B, capacity=1)),
        ev.StudentRegistered(
            producer="placements", data=student("b-s1", region=B, prefs=("b-p1",))
        ),
    ]
    late = ev.StudentRegistered(
        producer="placements", data=student("a-s2", region=A, prefs=("a-p1",))
    )
    async with TestKafkaBroker(service.broker) as br:
        for e in inputs:
            await publish_event(br, topics, e)
        # A's first request counts one input of A not applied yet (`late`, still in flight)
        a1, a2, b1 = _request(A, inputs=3), _request(A), _request(B)
        for request in (a1, a2, b1):
            await publish_event(br, topics, request)  # returns at once: handled in the queue
        await eventually(lambda: b1.data.round_id in _completed(fake), wait=20, interval=0.02)
        # B ran while A waits; A's second request, which counts nothing, waits behind A's first
        assert _completed(fake) == [b1.data.round_id]
        assert {r.region for r in fake.model.rounds.values()} == {B}

        # A's requests are parked: the consumer is done with them
        await service.round_requests.idle()
        assert [p.request.data.round_id for p in fake.model.parked.values()] == [
            a1.data.round_id,
            a2.data.round_id,
        ]

        published = time.monotonic()
        await publish_event(br, topics, late)
        await service.parking.idle()
        woken_after = time.monotonic() - published

    assert _completed(fake) == [b1.data.round_id, a1.data.round_id, a2.data.round_id]
    assert woken_after < 30  # woken by the input, not by the hourly look again
    a_proposed = {
        e.data.student_id
        for e in fake.published
        if isinstance(e, ev.MatchProposed) and e.data.round_id == a1.data.round_id
    }
    assert a_proposed == {"a-s1", "a-s2"}  # A's round saw the input it waited for


# ------------------------------------------------------------------- RoundRequests alone


class StandInConsumer(AIOKafkaConsumer):  # type: ignore[misc]
    """Records what would be committed (nothing connects)."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        assert offsets is not None
        self.commits.append(dict(offsets))


TOPIC = Topics().round_requests


def _message(
    policy: EventPolicy, consumer: StandInConsumer, partition: int, offset: int, event: ev.Event
) -> KafkaMessage:
    value = event.to_json()
    record: ConsumerRecord[Any, Any] = ConsumerRecord(
        TOPIC, partition, offset, 0, 0, event.key(), value, None, 5, len(value), ()
    )
    message = KafkaMessage(record, value, consumer=consumer)
    message.set_decoder(policy.decode)
    return message


async def test_offsets_are_committed_once_every_record_before_them_is_done() -> None:
    policy = EventPolicy(KafkaBroker("localhost:9092"), Topics(), "g")
    gates = {A: asyncio.Event(), B: asyncio.Event()}
    handled: list[str] = []

    async def handle(event: ev.MatchingRoundRequested) -> None:
        await gates[event.data.region].wait()
        handled.append(event.data.region)

    requests = RoundRequests(policy, handle)
    consumer = StandInConsumer()
    opened = ev.SupplementaryRoundOpened(  # on the same topic, not a request: done at once
        producer="placements",
        data=ev.SupplementaryRoundOpenedData(
            opening_id=uuid.uuid4(), region=B, student_ids=("s-1",)
        ),
    )
    tp = TopicPartition(TOPIC, 3)
    try:
        for offset, event in enumerate((_request(A), _request(B), opened), start=40):
            await requests.accept(_message(policy, consumer, 3, offset, event))
        gates[B].set()
        await eventually(lambda: handled == [B], wait=5, interval=0.01)
        await asyncio.sleep(0.05)
        assert consumer.commits == []  # offset 40 (A) is not done: nothing after it either
        gates[A].set()
        await requests.idle()
        await eventually(lambda: consumer.commits, wait=5, interval=0.01)
        assert consumer.commits == [{tp: 43}]  # everything up to offset 42, at once
        assert handled == [B, A]
    finally:
        for gate in gates.values():
            gate.set()
        await requests.close(grace=1)


async def test_requests_of_a_partition_taken_away_are_dropped_and_not_committed() -> None:
    policy = EventPolicy(KafkaBroker("localhost:9092"), Topics(), "g")
    gate = asyncio.Event()
    handled: list[uuid.UUID] = []

    async def handle(event: ev.MatchingRoundRequested) -> None:
        await gate.wait()
        handled.append(event.data.round_id)

    requests = RoundRequests(policy, handle)
    consumer = StandInConsumer()
    first, second = _request(A), _request(A)
    try:
        await requests.accept(_message(policy, consumer, 0, 10, first))
        await requests.accept(_message(policy, consumer, 0, 11, second))
        await asyncio.sleep(0.05)  # the first is running, the second queued behind it
        listener = requests.listener()
        await listener.on_partitions_revoked({TopicPartition(TOPIC, 0)})
        gate.set()
        await requests.idle()
        assert handled == [first.data.round_id]  # the queued one is the new owner's
        assert consumer.commits == []  # neither offset is committed here
    finally:
        gate.set()
        await requests.close(grace=1)


async def test_a_request_whose_inputs_never_arrive_completes_as_not_run_after_its_deadline(
    fake: InMemoryMatchingUnitOfWork,
) -> None:
    """It waits up to the deadline (from its `occurred_at`) while another region's round runs,
    then completes with status `inputs_missing`, proposing nothing; the region's next request
    runs as usual."""
    settings = MatchingSettings(
        kafka_bootstrap="localhost:9092",
        database_url="postgresql://unused/apl",
        topic_prefix="",
        input_wait_seconds=600,
        input_deadline_seconds=1.0,
    )
    c = build(settings, solver=greedy_solver, unit_of_work=lambda: fake)
    c.signals.recheck = 3600.0
    topics = settings.topics
    try:
        async with TestKafkaBroker(c.broker) as br:
            for e in (
                ev.PlacementPosted(producer="placements", data=placement("a-p1", region=A)),
                ev.StudentRegistered(
                    producer="placements", data=student("a-s1", region=A, prefs=("a-p1",))
                ),
                ev.PlacementPosted(producer="placements", data=placement("b-p1", region=B)),
            ):
                await publish_event(br, topics, e)
            stuck, b1 = _request(A, inputs=99), _request(B)  # 99: more than will ever come
            await publish_event(br, topics, stuck)
            await publish_event(br, topics, b1)
            await eventually(lambda: b1.data.round_id in _completed(fake), wait=20, interval=0.02)
            assert stuck.data.round_id not in _completed(fake)  # still waiting meanwhile
            await eventually(
                lambda: stuck.data.round_id in _completed(fake), wait=20, interval=0.05
            )
            after = _request(A)
            await publish_event(br, topics, after)
            await eventually(lambda: after.data.round_id in _completed(fake), wait=20)
    finally:
        await c.round_requests.close(grace=1)
        await c.parking.close(grace=1)
        await c.auto.close()
    assert fake.model.parked == {}
    done = {
        e.data.round_id: e.data for e in fake.published if isinstance(e, ev.MatchingRoundCompleted)
    }
    missing = done[stuck.data.round_id]
    assert (missing.status, missing.proposed, missing.cancelled) == ("inputs_missing", 0, 0)
    assert missing.detail == "2 of 99 input events of SE-AB from placements arrived within 1 s"
    assert missing.figures.students == 0
    assert done[after.data.round_id].status == "matched"
    assert done[after.data.round_id].proposed == 1  # the region's data was never lost
    assert not [
        e
        for e in fake.published
        if isinstance(e, ev.MatchProposed) and e.data.round_id == stuck.data.round_id
    ]
