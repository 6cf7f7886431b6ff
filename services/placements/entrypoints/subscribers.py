"""Kafka subscribers: the match and round events that keep match states and round figures
current. Each parses through `EventConsumer` (retries, dead letters) and calls one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.kafka import EventConsumer

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

    @router.subscriber(
        topics.matches,
        description="Match proposals, answers, confirmations and cancellations.",
        group_id=GROUP_ID,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_poll_interval_ms=600_000,
    )
    async def on_match_event(message: KafkaMessage) -> None:
        await consumer.dispatch(message, handle)

    @router.subscriber(
        topics.rounds,
        description="Rounds requested and their figures once completed.",
        group_id=GROUP_ID,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_poll_interval_ms=600_000,
    )
    async def on_round_event(message: KafkaMessage) -> None:
        await consumer.dispatch(message, handle)

    return router
