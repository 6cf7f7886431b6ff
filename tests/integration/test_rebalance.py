"""A replica joining mid-stream: the rebalance hands no batch over twice (`shared/rebalance.py`).

Two consumers of one group on the real broker, the second started while the first is in the
middle of a stream of slow batches (each takes a while to handle, as a batch of a thousand
events in a real transaction does). Every record handed to a handler is counted: each of them
is handled exactly once, none twice, and the rebalance did happen (the first consumer gave up
partitions, and both handled records).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from faststream.kafka import KafkaBroker, KafkaRouter

from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.kafka import EventPolicy, make_broker, publish_event, subscriber_options
from shared.rebalance import RevocationBarrier
from tests.support.factories import placement
from tests.support.infra import Infra
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

EVENTS = 2400
BATCH = 50
HANDLING_SECONDS = 0.15
"""Each batch's handling time: a rebalance almost always finds a batch in hand."""


def _consumer(
    infra: Infra,
    topics: Topics,
    group_id: str,
    name: str,
    handled: Counter[str],
    by_consumer: Counter[str],
) -> tuple[KafkaBroker, RevocationBarrier]:
    broker = make_broker(infra.kafka, f"test-rebalance-{name}")
    policy = EventPolicy(broker, topics, group_id=group_id, whole_batches=True)
    router = KafkaRouter(middlewares=[policy.middleware])
    barrier = policy.listener()

    @router.subscriber(
        topics.placements,
        decoder=policy.decode,
        batch=True,
        max_records=BATCH,
        **subscriber_options(group_id, session_timeout_ms=6000, listener=barrier),
    )
    async def on_placements(events: list[ev.PlacementEvent]) -> None:
        await asyncio.sleep(HANDLING_SECONDS)
        for event in events:
            handled[str(event.event_id)] += 1
        by_consumer[name] += len(events)

    broker.include_router(router)
    return broker, barrier


async def test_a_replica_joining_mid_stream_gets_no_batch_twice(
    infra: Infra, topics: Topics
) -> None:
    regions = [f"SE-{chr(ord('A') + i)}{chr(ord('A') + j)}" for i in range(6) for j in range(4)]
    sent = [
        ev.PlacementPosted(
            producer="placements", data=placement(f"p-{i}", region=regions[i % len(regions)])
        )
        for i in range(EVENTS)
    ]
    feeder = make_broker(infra.kafka, "test-rebalance-feeder")
    async with feeder:
        await feeder.connect()
        await asyncio.gather(*(publish_event(feeder, topics, e) for e in sent))

    group_id = f"g-rebalance-{uuid.uuid4().hex[:6]}"
    handled: Counter[str] = Counter()
    by_consumer: Counter[str] = Counter()
    first, first_barrier = _consumer(infra, topics, group_id, "first", handled, by_consumer)
    second, _ = _consumer(infra, topics, group_id, "second", handled, by_consumer)
    async with first, second:
        await first.start()
        # the first is well into the stream when the second joins: the group rebalances
        await eventually(lambda: len(handled) >= EVENTS // 6, interval=0.05, what="a start")
        await second.start()
        await eventually(lambda: len(handled) >= EVENTS, wait=120, what="every event")
        await asyncio.sleep(2 * HANDLING_SECONDS + 1.0)  # anything handled twice has been

    assert first_barrier.revocations >= 1  # the rebalance did happen
    assert by_consumer["first"] > 0
    assert by_consumer["second"] > 0
    assert set(handled) == {str(e.event_id) for e in sent}
    twice = {event_id: n for event_id, n in handled.items() if n > 1}
    assert twice == {}, f"{len(twice)} events handled more than once"
