"""Message flow through `EventConsumer` with FastStream's in-memory `TestKafkaBroker`."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, TestKafkaBroker

from shared.contracts.events import Event, PlacementPosted
from shared.contracts.topics import Topics, dlt
from shared.kafka import EventConsumer, make_broker, publish_event, subscriber_options
from tests.support.factories import placement


async def test_valid_event_reaches_handler_and_malformed_goes_to_dlt() -> None:
    topics = Topics()
    broker = make_broker("localhost:9092", "inmemory")
    consumer = EventConsumer(broker, topics, group_id="g", max_attempts=2, backoff_initial=0.001)
    handled: list[Event] = []

    async def handle(event: Event) -> None:
        handled.append(event)

    @broker.subscriber(topics.placements, **subscriber_options("g"))
    async def on_placement(message: KafkaMessage) -> None:
        await consumer.dispatch(message, handle)

    @broker.subscriber(dlt(topics.placements), group_id="dlt-watch")
    async def on_dead(body: bytes) -> None:
        pass

    async with TestKafkaBroker(broker) as br:
        event = PlacementPosted(producer="test", data=placement())
        await publish_event(br, topics, event)
        await br.publish(b"{broken", topics.placements, key=b"SE-AB")
        assert handled == [event]
        on_dead.mock.assert_called_once()
        assert consumer.dead_letters == 1


async def test_on_dead_letter_hears_of_valid_events_only() -> None:
    topics = Topics()
    broker = make_broker("localhost:9092", "inmemory")
    heard: list[Event] = []

    async def hear(event: Event) -> None:
        heard.append(event)

    consumer = EventConsumer(
        broker, topics, group_id="g", max_attempts=2, backoff_initial=0.001, on_dead_letter=hear
    )

    async def refuse(event: Event) -> None:
        raise ValueError("never")

    @broker.subscriber(topics.placements, **subscriber_options("g"))
    async def on_placement(message: KafkaMessage) -> None:
        await consumer.dispatch(message, refuse)

    @broker.subscriber(dlt(topics.placements), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        pass

    async with TestKafkaBroker(broker) as br:
        event = PlacementPosted(producer="test", data=placement())
        await publish_event(br, topics, event)
        await br.publish(b"{broken", topics.placements, key=b"SE-AB")
        assert consumer.dead_letters == 2
        assert heard == [event]
