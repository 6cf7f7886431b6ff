"""Kafka subscribers: the match and round events that keep match states and round figures
current, and the publishers of what this service writes to its outbox (declared so that the
AsyncAPI document shows them; the outbox relay publishes).

Each subscriber takes its topic's union, parsed by the group's `EventPolicy` (contract
violations dead-lettered, handler failures retried then dead-lettered), and calls one handler.
Match events arrive in batches (a round proposes thousands at once): a poll's are applied in one
transaction (`apply_match_events`; the policy's `whole_batches`), and if the batch fails otherwise
than transiently the policy applies its records one at a time, so only a bad one is retried and
dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from faststream.kafka import KafkaRouter

from shared import runtime
from shared.contracts import events as ev
from shared.contracts.topics import MATCHES, ROUNDS
from shared.kafka import EventPolicy

from .. import handlers
from ..ports import PlacementsUnitOfWork
from ..settings import PlacementsSettings


async def apply_match_event(event: ev.MatchEvent, uow: PlacementsUnitOfWork) -> None:
    match event:
        case ev.MatchProposed():
            await handlers.apply_match_proposed(event, uow)
        case ev.MatchConfirmed():
            await handlers.apply_match_confirmed(event, uow)
        case ev.MatchCancelled():
            await handlers.apply_match_cancelled(event, uow)


async def apply_match_events(events: Sequence[ev.MatchEvent], uow: PlacementsUnitOfWork) -> None:
    """A poll's match events, in order, in ONE transaction (each handler's block joins it; a
    duplicate is still dropped by its own claim)."""
    async with uow:
        for event in events:
            await apply_match_event(event, uow)


async def apply_round_event(event: ev.RoundEvent, uow: PlacementsUnitOfWork) -> None:
    match event:
        case ev.MatchingRoundOutcomes():
            await handlers.apply_round_outcomes(event, uow)
        case ev.MatchingRoundCompleted():
            await handlers.apply_round_completed(event, uow)


def build_router(
    settings: PlacementsSettings,
    policy: EventPolicy,
    uow: Callable[[], PlacementsUnitOfWork],
) -> KafkaRouter:
    """Subscribers of apl.matches.v1 and apl.rounds.v1 (groups `<settings.group_id>.matches`
    and `.rounds`), publishers of apl.placements.v1, apl.students.v1, apl.round-requests.v1 and
    apl.match-decisions.v1 (the topics this service alone writes; it never reads them back)."""
    topics = settings.topics
    router = runtime.router(policy)

    @router.subscriber(
        topics.matches,
        decoder=policy.decode,
        title="placements:matches",
        description=(
            "Proposals (a new match), confirmations and cancellations keep each match's "
            "state (the answers are this service's own, applied when made)."
        ),
        batch=True,
        max_records=settings.consumer_batch,
        **runtime.subscriber_options(settings, MATCHES, policy),
    )
    async def on_match(events: list[ev.MatchEvent]) -> None:
        await apply_match_events(events, uow())

    @router.subscriber(
        topics.rounds,
        decoder=policy.decode,
        title="placements:rounds",
        description=(
            "Every student's outcome of a round (in parts, before it completes) and the "
            "figures of completed rounds."
        ),
        **runtime.subscriber_options(settings, ROUNDS, policy),
    )
    async def on_round(event: ev.RoundEvent) -> None:
        await apply_round_event(event, uow())

    # Published through the outbox relay (keyed by region); declared for the AsyncAPI document.
    router.publisher(
        topics.placements,
        title="placements:placement-events",
        description="PlacementPosted, PlacementUpdated, PlacementWithdrawn.",
        schema=ev.PlacementEvent,
    )
    router.publisher(
        topics.students,
        title="placements:student-events",
        description=(
            "StudentRegistered, StudentPreferencesUpdated (the pseudonymous profile only: no "
            "name, e-mail or phone), StudentWithdrawn."
        ),
        schema=ev.StudentEvent,
    )
    router.publisher(
        topics.round_requests,
        title="placements:round-requests",
        description=(
            "MatchingRoundRequested, with how many inputs of the region this service had "
            "published before it (`inputs_published`), its kind, fill and dry-run options; "
            "SupplementaryRoundOpened, with the unplaced students' ids."
        ),
        schema=ev.RoundRequestEvent,
    )
    router.publisher(
        topics.match_decisions,
        title="placements:match-decisions",
        description=(
            "MatchAccepted and MatchDeclined: a student's or a company's answer; "
            "MatchAssignmentRequested: a coordinator's assignment by hand."
        ),
        schema=ev.MatchDecisionEvent,
    )
    return router
