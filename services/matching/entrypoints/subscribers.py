"""FastStream subscribers: each declares its topic's payload type and calls one handler.

Decoding, retries and dead letters are the container's `EventPolicy` (the router's middleware and
the subscribers' decoder). Placement and student events arrive in batches, one offset commit and
(the policy's `whole_batches`) one call of `handlers.apply_input_events`, so one transaction, per
poll; if a record breaks the contract or the batch fails otherwise than transiently, the policy
runs the batch again one record at a time (each its own transaction, retries and dead letter).
Match decisions (accepts, declines, coordinators' assignments) are consumed one at a time.
After input events (placement, student, decision) are committed the container's `InputSignals`
hear of their producers and regions, so a round waiting for them wakes
(services/matching/wakeup.py).

Round requests have their own router (`rounds_router`): its middleware hands every record of the
round-requests topic to the container's `RoundRequests` (services/matching/round_requests.py),
which runs each region's requests in order and regions at once, through the same policy, and
commits their offsets itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from faststream import AckPolicy
from faststream.kafka import KafkaRouter

from services.matching import handlers
from shared import runtime
from shared.contracts import events as ev
from shared.contracts.topics import MATCH_DECISIONS, PLACEMENTS, ROUND_REQUESTS, STUDENTS

if TYPE_CHECKING:
    from services.matching.bootstrap import Container


def router(c: Container) -> KafkaRouter:
    """Subscribers for the placements, students and match-decisions topics, and the
    publishers the service documents (the round-requests topic: `rounds_router`)."""
    s = c.settings
    topics = s.topics
    decode = c.policy.decode
    r = runtime.router(c.policy)

    def applied(events: Sequence[ev.Event], changed: set[str]) -> None:
        """After a batch committed: wake the rounds waiting on its (producer, region)s once
        each, and (re)start the automatic rounds of the regions it changed."""
        for producer, region in dict.fromkeys((e.producer, e.region) for e in events):
            c.signals.applied(producer, region)
        c.auto.touch(changed)

    @r.subscriber(
        topics.placements,
        decoder=decode,
        batch=True,
        max_records=s.consumer_batch,
        title="matching:placements",
        description="PlacementPosted, PlacementUpdated, PlacementWithdrawn into the read model.",
        **runtime.subscriber_options(s, PLACEMENTS, c.policy),
    )
    async def on_placements(events: list[ev.PlacementEvent]) -> None:
        changed = await handlers.apply_input_events(
            events, c.uow(), automatic=s.is_automatic, any_automatic=s.any_automatic
        )
        applied(events, changed)

    @r.subscriber(
        topics.students,
        decoder=decode,
        batch=True,
        max_records=s.consumer_batch,
        title="matching:students",
        description=(
            "StudentRegistered, StudentPreferencesUpdated, StudentWithdrawn into the read model."
        ),
        **runtime.subscriber_options(s, STUDENTS, c.policy),
    )
    async def on_students(events: list[ev.StudentEvent]) -> None:
        changed = await handlers.apply_input_events(events, c.uow(), automatic=s.is_automatic)
        applied(events, changed)

    @r.subscriber(
        topics.match_decisions,
        decoder=decode,
        title="matching:match-decisions",
        description=(
            "MatchAccepted (student and company: MatchConfirmed), MatchDeclined (released, "
            "pair excluded) and MatchAssignmentRequested (a coordinator's override: checked "
            "again, then MatchProposed with override, or MatchCancelled)."
        ),
        **runtime.subscriber_options(s, MATCH_DECISIONS, c.policy),
    )
    async def on_match(event: ev.MatchDecisionEvent) -> None:
        if isinstance(event, ev.MatchAccepted | ev.MatchDeclined):
            changed = await handlers.respond_to_match(event, c.uow(), automatic=s.is_automatic)
            c.signals.applied(event.producer, event.region)
            c.auto.touch(changed)
        elif isinstance(event, ev.MatchAssignmentRequested):
            changed = await handlers.assign_match(event, c.uow(), automatic=s.is_automatic)
            c.signals.applied(event.producer, event.region)
            c.auto.touch(changed)

    # Published through the outbox relay; declared here so the AsyncAPI document shows them.
    r.publisher(
        topics.matches,
        title="matching:match-events",
        description="MatchProposed, MatchConfirmed, MatchCancelled (keyed by region).",
        schema=ev.MatchEvent,
    )
    r.publisher(
        topics.rounds,
        title="matching:round-results",
        description=(
            "Every student's outcome (MatchingRoundOutcomes, in parts), then "
            "MatchingRoundCompleted with the round's figures (keyed by region)."
        ),
        schema=ev.RoundEvent,
    )
    return r


async def handle_round_event(c: Container, event: ev.MatchingRoundRequested) -> None:
    """A round request, as `RoundRequests` hands it over (inside the policy): run now if its
    inputs are in, else parked (`c.parking`, services/matching/parking.py) and done here."""
    if await c.parking.admit(event):  # which has seen its inputs in
        await run_round_request(c, event, inputs_in=True)


async def run_round_request(
    c: Container, event: ev.MatchingRoundRequested, *, inputs_in: bool = False
) -> None:
    """A round request admitted (`inputs_in`) or taken from the parked ones: its round, or,
    past the input deadline, its completion as not run."""
    s = c.settings
    await handlers.handle_round_request(
        event,
        c.uow,
        solver=c.solver,
        hooks=c.hooks,
        input_wait=s.input_wait_seconds,
        input_deadline=s.input_deadline_seconds,
        outcomes=c.outcomes,
        signals=c.signals,
        slot=c.round_requests.slot,
        inputs_in=inputs_in,
    )


def rounds_router(c: Container) -> KafkaRouter:
    """The rounds topic's subscriber. Its router's middleware is `c.round_requests.middleware`
    (not the policy's): every record goes to `RoundRequests.accept`, which queues requests per
    region, runs them through the policy (`handle_round_event`) and commits the offsets once
    done; so the subscriber acknowledges nothing itself (manual), and its function only
    declares the topic's payload for the AsyncAPI document."""
    s = c.settings
    r = KafkaRouter(middlewares=[c.round_requests.middleware])
    options = runtime.subscriber_options(s, ROUND_REQUESTS)
    options["ack_policy"] = AckPolicy.MANUAL  # RoundRequests commits the offsets
    options["listener"] = c.round_requests.listener()  # and its revocations wait for them

    @r.subscriber(
        s.topics.round_requests,
        decoder=c.policy.decode,
        title="matching:round-requests",
        description=(
            "MatchingRoundRequested runs a round for the region (ordinary or supplementary, "
            "with or without fill, or a dry run; each region's requests in order, regions at "
            "once); SupplementaryRoundOpened is ignored."
        ),
        **options,
    )
    async def on_round(event: ev.RoundRequestEvent) -> None:
        if isinstance(event, ev.MatchingRoundRequested):  # what RoundRequests does with it
            await handle_round_event(c, event)

    return r
