"""The real broker: events published and consumed back by subscribers; dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaRouter

from shared.contracts import events as ev
from shared.contracts.events import Event, PlacementPosted
from shared.contracts.topics import Topics, dlt
from shared.kafka import (
    EventPolicy,
    aiokafka_producer,
    delete_topics,
    ensure_topics,
    make_broker,
    publish_event,
    renew_producer,
    subscriber_options,
)
from tests.support.factories import every_event, placement
from tests.support.infra import Infra
from tests.support.kafka import read_records

pytestmark = pytest.mark.infra


async def test_event_published_and_consumed_back_by_a_subscriber(
    infra: Infra, topics: Topics
) -> None:
    broker = make_broker(infra.kafka, "test-roundtrip")
    sent = [e for e in every_event() if e.topic == "apl.matches.v1"]
    got: list[Event] = []
    done = asyncio.Event()
    policy = EventPolicy(broker, topics, group_id=f"g-{uuid.uuid4().hex[:6]}")
    router = KafkaRouter(middlewares=[policy.middleware])

    @router.subscriber(topics.matches, decoder=policy.decode, **subscriber_options(policy.group_id))
    async def on_match(event: ev.MatchEvent) -> None:
        got.append(event)
        if len(got) == len(sent):
            done.set()

    broker.include_router(router)

    async with broker:
        await broker.start()
        for event in sent:
            await publish_event(broker, topics, event)
        await asyncio.wait_for(done.wait(), 60)
    assert got == sent  # same key (region) → same partition → same order


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_poison_event_goes_to_dlt_and_does_not_block_the_partition(
    infra: Infra, topics: Topics, batch: bool
) -> None:
    broker = make_broker(infra.kafka, "test-dlt")
    policy = EventPolicy(
        broker, topics, group_id=f"g-{uuid.uuid4().hex[:6]}", max_attempts=3, backoff_initial=0.01
    )
    router = KafkaRouter(middlewares=[policy.middleware])
    options = subscriber_options(policy.group_id, session_timeout_ms=6000)
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        assert isinstance(event, PlacementPosted)
        if event.data.placement_id == "p-explodes":
            raise RuntimeError("cannot apply this placement")
        seen.append(event.data.placement_id)
        if event.data.placement_id == "p-after":
            done.set()

    if batch:

        @router.subscriber(
            topics.placements, decoder=policy.decode, **options, batch=True, max_records=50
        )
        async def on_batch(events: list[ev.PlacementEvent]) -> None:
            for event in events:
                await handle(event)

    else:

        @router.subscriber(topics.placements, decoder=policy.decode, **options)
        async def on_placement(event: ev.PlacementEvent) -> None:
            await handle(event)

    broker.include_router(router)

    good = PlacementPosted(producer="placements", data=placement("p-before"))
    bad_handler = PlacementPosted(producer="placements", data=placement("p-explodes"))
    after = PlacementPosted(producer="placements", data=placement("p-after"))
    async with broker:
        await broker.start()
        await publish_event(broker, topics, good)
        await broker.publish(
            b'{"type": "PlacementPosted", "schema_version": 1, "data": {}}',
            topics.placements,
            key=b"SE-AB",
            headers={"trace": "abc"},
        )
        await publish_event(broker, topics, bad_handler)
        await publish_event(broker, topics, after)
        await asyncio.wait_for(done.wait(), 60)
    assert seen == ["p-before", "p-after"]
    letters = await read_records(
        infra.kafka, dlt(topics.placements), until=lambda got: len(got) >= 2
    )
    assert len(letters) == 2
    by_error = {dict(r.headers)["x-error"].decode(): r for r in letters}
    malformed = next(r for e, r in by_error.items() if "ContractError" in e)
    assert dict(malformed.headers)["trace"] == b"abc"  # original headers kept
    assert dict(malformed.headers)["x-original-topic"].decode() == topics.placements
    assert json.loads(malformed.value)["data"] == {}
    failing = next(r for e, r in by_error.items() if "cannot apply" in e)
    assert dict(failing.headers)["x-attempts"] == b"3"
    assert failing.key == b"SE-AB"


async def test_a_renewed_producer_sends_under_a_new_producer_id(
    infra: Infra, topics: Topics
) -> None:
    """What the outbox relay does after a fatal sequence error (an idempotent producer whose
    sender stopped): the broker gets a new producer, and publishing goes on."""
    broker = make_broker(infra.kafka, "test-renew")
    async with broker:
        await broker.start()
        old = aiokafka_producer(broker)
        await renew_producer(broker)
        new = aiokafka_producer(broker)
        assert new is not old
        event = next(e for e in every_event() if e.topic == "apl.matches.v1")
        await publish_event(broker, topics, event)  # through the new producer
        metadata = await new.send_and_wait(topics.matches, event.to_json(), key=event.key())
        assert metadata.offset >= 0


async def test_topics_get_one_replica_per_broker_and_a_refused_topic_is_an_error(
    infra: Infra,
) -> None:
    """`ensure_topics` on the tests' one broker: one replica (as many as there are brokers, at
    most three); asked for three, the broker refuses and the error says why (aiokafka returns
    the refusal, it does not raise it)."""
    topics = Topics(f"rf{uuid.uuid4().hex[:8]}.")
    refused = Topics(f"rf{uuid.uuid4().hex[:8]}.")
    admin = infra.kafka.admin()
    await admin.start()
    try:
        await ensure_topics(infra.kafka, topics)
        (described,) = await admin.describe_topics([topics.matches])
        assert {len(p["replicas"]) for p in described["partitions"]} == {1}
        with pytest.raises(KafkaError, match="replication factor of 3 cannot be reached"):
            await ensure_topics(infra.kafka, refused, replication=3)
    finally:
        await admin.close()
        await delete_topics(infra.kafka, topics)
        await delete_topics(infra.kafka, refused)
