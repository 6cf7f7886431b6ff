"""FastStream subscribers: every record goes through the shared `EventConsumer` (`dispatch_batch`
for placement and student batches, `dispatch` for the rest) to one handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.contracts import events as ev
from shared.kafka import subscriber_options

if TYPE_CHECKING:
    from services.matching.bootstrap import Matching

BATCH = 200  # input records per poll (and per offset commit)


def build_router(service: Matching) -> KafkaRouter:
    """Subscribers for the four topics the service reads, and the publishers it documents."""
    topics = service.topics
    consumer = service.consumer
    options = subscriber_options(service.settings.group_id)
    router = KafkaRouter()

    # Placement and student events arrive in batches so the offset is committed once per batch
    # (a commit per message costs more than applying the event); each record still has its own
    # transaction, inbox claim, retries and dead letter.
    async def on_placement(message: KafkaMessage) -> None:
        await consumer.dispatch_batch(message, service.on_placement)

    async def on_student(message: KafkaMessage) -> None:
        await consumer.dispatch_batch(message, service.on_student)

    async def on_round(message: KafkaMessage) -> None:
        await consumer.dispatch(message, service.on_round, accept=[ev.MatchingRoundRequested])

    async def on_match(message: KafkaMessage) -> None:
        await consumer.dispatch(
            message, service.on_match, accept=[ev.MatchAccepted, ev.MatchDeclined]
        )

    subscribe = router.subscriber
    batched: dict[str, Any] = {**options, "batch": True, "max_records": BATCH}
    subscribe(
        topics.placements,
        title="matching:placements",
        description="PlacementPosted, PlacementUpdated, PlacementWithdrawn into the read model.",
        **batched,
    )(on_placement)
    subscribe(
        topics.students,
        title="matching:students",
        description=(
            "StudentRegistered, StudentPreferencesUpdated, StudentWithdrawn into the read model."
        ),
        **batched,
    )(on_student)
    subscribe(
        topics.rounds,
        title="matching:rounds",
        description="MatchingRoundRequested runs a round for the region (others are ignored).",
        **options,
    )(on_round)
    subscribe(
        topics.matches,
        title="matching:matches",
        description=(
            "MatchAccepted (student and company: MatchConfirmed) and MatchDeclined (released, "
            "pair excluded); the service's own match events are ignored."
        ),
        **options,
    )(on_match)

    # Published through the outbox relay; declared here so the AsyncAPI document shows them.
    router.publisher(
        topics.matches,
        title="matching:match-events",
        description="MatchProposed, MatchConfirmed, MatchCancelled (keyed by region).",
        schema=ev.MatchProposed | ev.MatchConfirmed | ev.MatchCancelled,
    )
    router.publisher(
        topics.rounds,
        title="matching:round-results",
        description="MatchingRoundCompleted with the round's figures (keyed by region).",
        schema=ev.MatchingRoundCompleted,
    )
    return router
