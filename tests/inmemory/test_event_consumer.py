"""Message flow through `EventConsumer` with FastStream's in-memory `TestKafkaBroker`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

from shared.contracts.events import Event, PlacementPosted
from shared.contracts.topics import Topics, dlt
from shared.kafka import EventConsumer, make_broker, publish_event, subscriber_options
from tests.support.factories import placement


def _wire(
    handle: Callable[[Event], Awaitable[None]],
    on_dead_letter: Callable[[Event], Awaitable[None]] | None = None,
) -> tuple[KafkaBroker, EventConsumer, Any]:
    """A broker whose placements subscriber dispatches to `handle`, and a watcher of the
    dead-letter topic (its `.mock` records the calls)."""
    topics = Topics()
    broker = make_broker("localhost:9092", "inmemory")
    consumer = EventConsumer(
        broker,
        topics,
        group_id="g",
        max_attempts=2,
        backoff_initial=0.001,
        on_dead_letter=on_dead_letter,
    )

    @broker.subscriber(topics.placements, **subscriber_options("g"))
    async def on_placement(message: KafkaMessage) -> None:
        await consumer.dispatch(message, handle)

    @broker.subscriber(dlt(topics.placements), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        pass

    return broker, consumer, on_dead


async def test_valid_event_reaches_handler_and_malformed_goes_to_dlt() -> None:
    handled: list[Event] = []

    async def handle(event: Event) -> None:
        handled.append(event)

    broker, consumer, on_dead = _wire(handle)
    async with TestKafkaBroker(broker) as br:
        event = PlacementPosted(producer="test", data=placement())
        await publish_event(br, consumer.topics, event)
        await br.publish(b"{broken", consumer.topics.placements, key=b"SE-AB")
        assert handled == [event]
        on_dead.mock.assert_called_once()
        assert consumer.dead_letters == 1


async def test_on_dead_letter_hears_of_valid_events_only() -> None:
    heard: list[Event] = []

    async def hear(event: Event) -> None:
        heard.append(event)

    async def refuse(event: Event) -> None:
        raise ValueError("never")

    broker, consumer, _ = _wire(refuse, on_dead_letter=hear)
    async with TestKafkaBroker(broker) as br:
        event = PlacementPosted(producer="test", data=placement())
        await publish_event(br, consumer.topics, event)
        await br.publish(b"{broken", consumer.topics.placements, key=b"SE-AB")
        assert consumer.dead_letters == 2
        assert heard == [event]
