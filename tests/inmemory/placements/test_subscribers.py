"""Message flow of the placements subscribers with FastStream's in-memory TestKafkaBroker."""

from __future__ import annotations

import uuid

from faststream.kafka import KafkaMessage, TestKafkaBroker

from services.placements.entrypoints.subscribers import GROUP_ID, build_router
from shared.contracts import events as ev
from shared.contracts.topics import Topics, dlt
from shared.kafka import make_broker, publish_event
from tests.support.factories import every_event


async def test_match_and_round_events_reach_the_handler_and_poison_goes_to_dlt() -> None:
    topics = Topics("mem.")
    broker = make_broker("localhost:9092", "inmemory-placements")
    applied: list[ev.Event] = []
    dead_bodies: list[bytes] = []

    async def apply(event: ev.Event) -> None:
        applied.append(event)

    broker.include_router(build_router(broker, topics, apply, max_attempts=1))

    @broker.subscriber(dlt(topics.matches), group_id="dlt-watch")
    async def dead(message: KafkaMessage) -> None:
        dead_bodies.append(message.body)

    wanted = [
        e
        for e in every_event()
        if e.topic in {topics.contract_topic(topics.matches), topics.contract_topic(topics.rounds)}
    ]
    assert {e.type for e in wanted} >= {"MatchProposed", "MatchingRoundCompleted"}
    async with TestKafkaBroker(broker) as br:
        for event in wanted:
            await publish_event(br, topics, event)
        await br.publish(b'{"type": "MatchProposed"}', topics.matches, key=b"SE-AB")
        assert applied == wanted
        assert dead_bodies == [b'{"type": "MatchProposed"}']
    assert GROUP_ID == "placements"


async def test_a_handler_that_keeps_failing_dead_letters_the_event() -> None:
    topics = Topics("mem2.")
    broker = make_broker("localhost:9092", "inmemory-placements-2")
    dead_bodies: list[bytes] = []

    async def apply(event: ev.Event) -> None:
        raise ValueError("cannot apply")

    broker.include_router(build_router(broker, topics, apply, max_attempts=1))

    @broker.subscriber(dlt(topics.rounds), group_id="dlt-watch")
    async def dead(message: KafkaMessage) -> None:
        dead_bodies.append(message.body)

    event = ev.MatchingRoundRequested(
        producer="placements",
        data=ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region="SE-AB"),
    )
    async with TestKafkaBroker(broker) as br:
        await publish_event(br, topics, event)
        assert dead_bodies == [event.to_json()]
