"""The Kafka entrypoint: `apl.matches.v1` → `record_notices`.

One batch subscriber of the whole topic (`list[MatchEvent]`, up to `consumer_batch` records per
poll, offsets committed once per batch). The event policy (`shared.kafka.EventPolicy`, the
router's middleware and decoder) parses each record, retries a failing handler and dead-letters
what cannot be handled, one record at a time; the subscriber sees typed events only.
MatchProposed, MatchConfirmed and MatchCancelled each become notices; MatchAccepted and
MatchDeclined are ignored (not claimed).
"""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaRouter

from services.notifications.adapters.uow import NotificationsUnitOfWork
from services.notifications.handlers import record_notices
from services.notifications.settings import NotificationsSettings
from shared import runtime
from shared.contracts import events as ev
from shared.kafka import EventPolicy


def build_router(
    settings: NotificationsSettings,
    policy: EventPolicy,
    uow: Callable[[], NotificationsUnitOfWork],
    on_recorded: Callable[[], None] = lambda: None,
) -> KafkaRouter:
    """The match-event subscriber; `on_recorded` is called after notices were recorded (the
    delivery worker's wake-up)."""
    router = runtime.router(policy)

    @router.subscriber(
        settings.topics.matches,
        decoder=policy.decode,
        batch=True,
        max_records=settings.consumer_batch,
        title="notifications/matches",
        description=(
            "Match events. MatchProposed, MatchConfirmed and MatchCancelled each become one "
            "notice to the placement's supervisor; MatchAccepted and MatchDeclined are ignored. "
            "Contract violations go to apl.matches.v1.dlt."
        ),
        **runtime.subscriber_options(settings),
    )
    async def on_match_events(events: list[ev.MatchEvent]) -> None:
        for event in events:  # the policy hands over one record at a time
            match event:
                case ev.MatchProposed() | ev.MatchConfirmed() | ev.MatchCancelled():
                    recorded = await record_notices(
                        event, uow(), digest_seconds=settings.digest_seconds
                    )
                    if recorded:
                        on_recorded()
                case _:
                    pass  # an answer (accepted / declined): nothing to tell

    return router
