"""The Kafka entrypoint: `apl.matches.v1` → `record_notices` (via `EventConsumer.dispatch`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from shared.contracts.events import Event, MatchCancelled, MatchConfirmed, MatchProposed
from shared.contracts.topics import Topics
from shared.kafka import EventConsumer, subscriber_options

BATCH = 200

NOTICE_EVENTS: tuple[type[Event], ...] = (MatchProposed, MatchConfirmed, MatchCancelled)


def group_id(topics: Topics) -> str:
    return f"{topics.prefix}notifications"


def build_router(
    broker: KafkaBroker,
    topics: Topics,
    on_event: Callable[[Event], Awaitable[None]],
    *,
    max_attempts: int = 5,
) -> tuple[KafkaRouter, EventConsumer]:
    """A router with the match-event subscriber; MatchAccepted / MatchDeclined are skipped."""
    router = KafkaRouter()
    consumer = EventConsumer(broker, topics, group_id=group_id(topics), max_attempts=max_attempts)

    @router.subscriber(
        topics.matches,
        title="notifications/matches",
        description=(
            "Match events. MatchProposed, MatchConfirmed and MatchCancelled each become one "
            "notice to the placement's supervisor; MatchAccepted and MatchDeclined are ignored. "
            "Contract violations go to apl.matches.v1.dlt."
        ),
        **subscriber_options(group_id(topics)),
        # One offset commit per batch of up to BATCH records; each record is handled on its own.
        batch=True,
        max_records=BATCH,
    )
    async def on_match_event(message: KafkaMessage) -> None:
        await consumer.dispatch_batch(message, on_event, accept=NOTICE_EVENTS)

    return router, consumer
