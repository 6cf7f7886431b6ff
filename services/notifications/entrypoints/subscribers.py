"""The Kafka entrypoints: `apl.matches.v1`, `apl.rounds.v1` and `apl.round-requests.v1` →
`record_batch`.

One batch subscriber per topic (`list[MatchEvent]`, `list[RoundEvent]`,
`list[RoundRequestEvent]`; up to `consumer_batch` records per poll, offsets committed once per
batch; one consumer group). The event policy (`shared.kafka.EventPolicy` with `whole_batches`, the
router's middleware and decoder) parses the records and hands a poll's to the subscriber at once,
which records them in one transaction (`record_batch`); a batch that breaks the contract or fails
is split, and each record retried and dead-lettered on its own. The subscriber sees typed events
only.

MatchProposed and MatchConfirmed become a notice to the supervisor and one to the student,
MatchCancelled one to the supervisor. MatchingRoundOutcomes (not a dry run) becomes one notice
per unplaced student, SupplementaryRoundOpened one per invited student; MatchingRoundCompleted,
MatchingRoundRequested and a dry run's outcomes are ignored (not claimed).
"""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaRouter

from services.notifications.adapters.uow import NotificationsUnitOfWork
from services.notifications.handlers import NoticeEvent, record_batch
from services.notifications.settings import NotificationsSettings
from shared import runtime
from shared.contracts import events as ev
from shared.contracts.topics import MATCHES, ROUND_REQUESTS, ROUNDS
from shared.kafka import EventPolicy


def build_router(
    settings: NotificationsSettings,
    policy: EventPolicy,
    uow: Callable[[], NotificationsUnitOfWork],
    on_recorded: Callable[[], None] = lambda: None,
) -> KafkaRouter:
    """The match- and round-event subscribers; `on_recorded` is called after notices were
    recorded (the delivery worker's wake-up)."""
    router = runtime.router(policy)

    async def record(events: list[NoticeEvent]) -> None:
        if events and await record_batch(events, uow(), digest_seconds=settings.digest_seconds):
            on_recorded()

    @router.subscriber(
        settings.topics.matches,
        decoder=policy.decode,
        batch=True,
        max_records=settings.consumer_batch,
        title="notifications/matches",
        description=(
            "Match events. MatchProposed and MatchConfirmed each become one notice to the "
            "placement's supervisor and one to the student; MatchCancelled one to the "
            "supervisor. Contract violations go to apl.matches.v1.dlt."
        ),
        **runtime.subscriber_options(settings, MATCHES, policy),
    )
    async def on_match_events(events: list[ev.MatchEvent]) -> None:
        await record(list(events))  # a poll's records at once (or one, if the batch was split)

    @router.subscriber(
        settings.topics.rounds,
        decoder=policy.decode,
        batch=True,
        max_records=settings.consumer_batch,
        title="notifications/rounds",
        description=(
            "Round results. MatchingRoundOutcomes (not a dry run) becomes one notice to each "
            "unplaced student, with the vacancies that fit them; MatchingRoundCompleted and a "
            "dry run's outcomes are ignored. Contract violations go to apl.rounds.v1.dlt."
        ),
        **runtime.subscriber_options(settings, ROUNDS, policy),
    )
    async def on_round_events(events: list[ev.RoundEvent]) -> None:
        told: list[NoticeEvent] = []
        for event in events:  # a poll's records at once (or one, when the batch was split)
            match event:
                case ev.MatchingRoundOutcomes() if not event.data.dry_run:
                    told.append(event)
                case _:
                    pass  # a completion or a dry run: nothing to tell
        await record(told)

    @router.subscriber(
        settings.topics.round_requests,
        decoder=policy.decode,
        batch=True,
        max_records=settings.consumer_batch,
        title="notifications/round-requests",
        description=(
            "Round requests and openings. SupplementaryRoundOpened becomes one notice to each "
            "invited student; MatchingRoundRequested is ignored. Contract violations go to "
            "apl.round-requests.v1.dlt."
        ),
        **runtime.subscriber_options(settings, ROUND_REQUESTS, policy),
    )
    async def on_round_requests(events: list[ev.RoundRequestEvent]) -> None:
        await record([e for e in events if isinstance(e, ev.SupplementaryRoundOpened)])

    return router
