"""Kafka subscribers: the match and round events that keep match states and round figures
current. Each parses through `EventConsumer` (retries, dead letters) and calls one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.kafka import EventConsumer, subscriber_options

GROUP_ID = "placements"

Apply = Callable[[ev.Event], Awaitable[object]]


def build_router(
    broker: KafkaBroker, topics: Topics, apply: Apply, max_attempts: int = 5
) -> KafkaRouter:
    """Subscribers of apl.matches.v1 and apl.rounds.v1 (group "placements")."""
    consumer = EventConsumer(broker, topics, GROUP_ID, max_attempts=max_attempts)
    router = KafkaRouter()

    async def handle(event: ev.Event) -> None:
        await apply(event)

    async def on_event(message: KafkaMessage) -> None:
        await consumer.dispatch(message, handle)

    for topic, description in (
        (topics.matches, "Match proposals, answers, confirmations and cancellations."),
        (topics.rounds, "Rounds requested and their figures once completed."),
    ):
        router.subscriber(topic, description=description, **subscriber_options(GROUP_ID))(on_event)
    return router
