"""Handlers: what the matching service does with each event, over a unit of work.

Every input handler applies its input in one transaction (`async with uow:`): the inbox claim
(so a redelivered event does nothing), the change to the read model, and the events it causes,
written to the outbox. Placement and student events come in batches (`apply_input_events`: a
poll's records in one transaction; one event is a batch of one). Input handlers return the
regions whose matching input changed, for automatic mode. A requested round runs several
transactions (it first waits for the inputs its request counts), so it takes a unit-of-work
factory.

A round publishes, in its one transaction and in this order: its MatchCancelled, its
MatchProposed, every student's outcome (`MatchingRoundOutcomes`, parts of at most
OUTCOMES_PER_PART) and last its MatchingRoundCompleted. A dry run publishes only the outcomes and
the completion (both `dry_run`) and writes no match.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from services.matching.adapters.repository import MatchingUnitOfWork
from services.matching.domain.model import (
    Cancellation,
    CancelReason,
    NewProposal,
    Policy,
    RoundOptions,
    RoundRecord,
    Solver,
    SolveResult,
    Standing,
)
from services.matching.domain.rules import plan_round, round_problem
from services.matching.engine.gcpause import paused_gc
from services.matching.round_events import ProposedEvents, outcome_part, outcome_rows
from services.matching.wakeup import InputSignals
from shared.contracts import events as ev
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.contracts.topics import MATCH_DECISIONS, PLACEMENTS, STUDENTS
from shared.contracts.vocabulary import Participant
from shared.metrics import METRICS, unknown_id
from shared.serialised import Serialised

log = structlog.get_logger(__name__)

PRODUCER = "matching"
OVERRIDE_ROUND_ID = uuid.UUID(int=0)
"""The `round_id` of a match assigned by hand (MatchProposed with `override: true`): no round
proposed it, so it carries the nil UUID."""
ORDINARY = RoundOptions()

Automatic = Callable[[str], bool]
UnitsOfWork = Callable[[], MatchingUnitOfWork]


def _never(region: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class RoundReport:
    """Where a committed round's own time went (what `round committed` logs)."""

    round_id: uuid.UUID
    region: str
    students: int
    proposed: int
    cancelled: int
    outcome_parts: int
    load_seconds: float
    solve_seconds: float
    write_seconds: float
    """From the solve's end to the last write (the explanations overlap it)."""
    explain_seconds: float
    """Explaining and serialising the outcomes, in a thread beside the writes."""

    @property
    def work_seconds(self) -> float:
        """Load, solve and write: the round's own time, before its commit."""
        return self.load_seconds + self.solve_seconds + self.write_seconds


class RoundHooks:
    """What runs around a round's commit: nothing. Tests subclass it to stop a round at exactly
    those moments (the crash tests kill the process there); bench/pipeline.py to hear each
    round's `RoundReport`."""

    async def before_commit(self) -> None:
        """Inside the round's transaction, after all its writes."""

    async def after_commit(self) -> None:
        """After the round committed (for a requested round: before its offset is committed)."""

    async def committed(self, report: RoundReport) -> None:
        """After the round committed, with where its time went (before `after_commit`)."""


NO_HOOKS = RoundHooks()


def cancelled_event(m: Standing, reason: CancelReason, round_id: uuid.UUID | None) -> ev.Event:
    return ev.MatchCancelled(
        producer=PRODUCER,
        data=ev.MatchCancelledData(
            match_id=uuid.UUID(m.match_id),
            region=m.region,
            student_id=m.student_id,
            placement_id=m.placement_id,
            reason=reason,
            round_id=round_id,
        ),
    )


# ------------------------------------------------------------------------------------ input

# The events a round request's `inputs_published` counts: what this service applies as input.
INPUT_EVENTS: tuple[type[ev.Event], ...] = (
    ev.PlacementPosted,
    ev.PlacementUpdated,
    ev.PlacementWithdrawn,
    ev.StudentRegistered,
    ev.StudentPreferencesUpdated,
    ev.StudentWithdrawn,
    ev.MatchAccepted,
    ev.MatchDeclined,
    ev.MatchAssignmentRequested,
)


async def _claim_input(uow: MatchingUnitOfWork, event: ev.Event) -> bool:
    """Claim an input event in the inbox and count it for its producer and region."""
    if not await uow.claim(event):
        return False
    await uow.inputs.count_applied(event.event_id, event.producer, event.region)
    return True


async def _track(uow: MatchingUnitOfWork, regions: Iterable[str], automatic: Automatic) -> None:
    """Record input changes of the regions in automatic mode (the others need no bookkeeping);
    a region named n times (by n events of a batch) is bumped n times."""
    await uow.regions.mark_changed([r for r in regions if automatic(r)])


async def _announce(
    uow: MatchingUnitOfWork, closed: list[Standing], reason: CancelReason
) -> set[str]:
    """Announce cancelled matches (MatchCancelled) and return their regions."""
    await uow.publish([cancelled_event(m, reason, None) for m in closed])
    return {m.region for m in closed}


PlacementInput = ev.PlacementPosted | ev.PlacementUpdated | ev.PlacementWithdrawn
StudentInput = ev.StudentRegistered | ev.StudentPreferencesUpdated | ev.StudentWithdrawn
ReadModelInput = PlacementInput | StudentInput


class _InputBatch:
    """The read-model changes of a batch of placement and student events, in one transaction.

    Events are applied in their order with the rules of one event at a time; only the upserts
    wait, one statement per table, until something reads or changes what they would write (a
    withdrawal, which regions rank a placement) or the batch ends: an id upserted twice keeps
    the last, as one event after the other would.
    """

    def __init__(self, uow: MatchingUnitOfWork, *, any_automatic: bool) -> None:
        self.uow = uow
        self.any_automatic = any_automatic
        self.offers: dict[str, PlacementOffer] = {}
        self.profiles: dict[str, StudentProfile] = {}
        self.region_of: dict[str, str] = {}
        """Each student's region before the event at hand (the read model's, then the batch's)."""

    async def lock(self, events: Sequence[ReadModelInput]) -> None:
        """The locks one event at a time would take, each kind in one sorted sweep: the regions
        of the student events and the regions those students are in, then the placements."""
        students = [e for e in events if isinstance(e, StudentInput)]
        if students:
            regions = {e.region for e in students}
            await self.uow.regions.lock_all(regions)
            self.region_of = await self.uow.students.regions_of(e.data.student_id for e in students)
            await self.uow.regions.lock_all(set(self.region_of.values()) - regions)
        placements = [e.data.placement_id for e in events if isinstance(e, PlacementInput)]
        if placements:
            await self.uow.placements.lock(placements)

    async def flush_students(self) -> None:
        await self.uow.students.upsert_all(self.profiles.values())
        self.profiles.clear()

    async def flush(self) -> None:
        await self.uow.placements.upsert_all(self.offers.values())
        self.offers.clear()
        await self.flush_students()

    async def apply(self, event: ReadModelInput) -> set[str]:
        """Apply one event; the regions whose input it changed."""
        if isinstance(event, PlacementInput):
            return await self._placement(event)
        return await self._student(event)

    async def _placement(self, event: PlacementInput) -> set[str]:
        uow, pid = self.uow, event.data.placement_id
        changed = {event.region}
        if self.any_automatic:
            await self.flush_students()
            changed |= set(await uow.placements.regions_ranking(pid))
        if isinstance(event, ev.PlacementWithdrawn):
            await self.flush()
            if not await uow.placements.withdraw(pid, event.region):
                unknown_id(event.topic, event.type, "placement_id", pid)
                return set()  # no tombstone: nothing of it is here, nothing changed
            reason: CancelReason = "placement_withdrawn"
            closed = await uow.matches.cancel_standing_of_placement(pid, reason)
            changed |= await _announce(uow, closed, reason)
        else:
            self.offers[pid] = event.data
        return changed

    async def _student(self, event: StudentInput) -> set[str]:
        uow, sid = self.uow, event.data.student_id
        before = self.region_of.get(sid)
        changed = {event.region}
        if before is not None and before != event.region:  # moved: its old region changed too
            changed.add(before)
        if isinstance(event, ev.StudentWithdrawn):
            await self.flush()
            if not await uow.students.withdraw(sid, event.region):
                unknown_id(event.topic, event.type, "student_id", sid)
                return set()  # no tombstone: nothing of them is here, nothing changed
            reason: CancelReason = "student_withdrawn"
            closed = await uow.matches.cancel_standing_of_student(sid, reason)
            changed |= await _announce(uow, closed, reason)
        else:
            self.profiles[sid] = event.data
            self.region_of[sid] = event.data.region
        return changed


async def apply_input_events(
    events: Sequence[ReadModelInput],
    uow: MatchingUnitOfWork,
    *,
    automatic: Automatic = _never,
    any_automatic: bool = False,
) -> set[str]:
    """Placement and student events (a poll's batch) into the read model, in ONE transaction.

    As if applied one after the other in their order (`apply_placement_event`,
    `apply_student_event`): one inbox claim for all (an event claimed before, or twice in the
    batch, is applied once), the locks in one sorted sweep, the upserts in one statement per
    table, each (producer, region) counter in `inputs_applied` updated once. A withdrawal
    cancels the standing matches at once. Returns the regions whose input changed.
    """
    async with uow:
        claims = await uow.claim_all(events)
        fresh = [e for e, new in zip(events, claims, strict=True) if new]
        if not fresh:
            return set()
        await uow.inputs.count_applied_all([(e.event_id, e.producer, e.region) for e in fresh])
        batch = _InputBatch(uow, any_automatic=any_automatic)
        await batch.lock(fresh)
        changes: list[str] = []  # each region once for every event that changed it
        for event in fresh:
            changes += sorted(await batch.apply(event))
        await batch.flush()
        await _track(uow, changes, automatic)
    return set(changes)


async def apply_placement_event(
    event: PlacementInput,
    uow: MatchingUnitOfWork,
    *,
    automatic: Automatic = _never,
    any_automatic: bool = False,
) -> set[str]:
    """PlacementPosted / PlacementUpdated / PlacementWithdrawn into the read model (a batch of
    one: `apply_input_events`).

    A withdrawal cancels the placement's standing matches at once. Returns the regions whose
    input changed: the placement's, and (only when some region is in automatic mode) the regions
    whose students rank it.
    """
    return await apply_input_events([event], uow, automatic=automatic, any_automatic=any_automatic)


async def apply_student_event(
    event: StudentInput,
    uow: MatchingUnitOfWork,
    *,
    automatic: Automatic = _never,
) -> set[str]:
    """StudentRegistered / StudentPreferencesUpdated / StudentWithdrawn into the read model (a
    batch of one: `apply_input_events`).

    A withdrawal cancels the student's standing match at once. A student who moved changes the
    input of both regions (both are locked).
    """
    return await apply_input_events([event], uow, automatic=automatic)


INPUT_TOPICS: tuple[str, ...] = (PLACEMENTS, STUDENTS, MATCH_DECISIONS)
"""The topics of `INPUT_EVENTS`: what a round request's `inputs_published` counts."""


async def record_unparsed_input(topic: str, envelope: ev.Envelope, uow: MatchingUnitOfWork) -> bool:
    """A message of an input topic was dead-lettered for breaking the contract, but its
    envelope names its id, producer and region: counted as settled for that producer and
    region, as a valid dead-lettered input is, so a round that counts it goes on without it.
    False: not an input topic (nothing counted)."""
    if topic not in INPUT_TOPICS:
        return False
    async with uow:
        await uow.inputs.record_dead(envelope.event_id, envelope.producer, envelope.region)
    log.warning("round requests will not wait for this input that broke the contract")
    return True


async def record_dead_input(event: ev.Event, uow: MatchingUnitOfWork) -> None:
    """An input event was dead-lettered: count it as settled, so that rounds waiting for their
    inputs go on without it (the `.dlt` keeps it for a replay) instead of waiting forever."""
    if not isinstance(event, INPUT_EVENTS):
        return
    async with uow:
        await uow.inputs.record_dead(event.event_id, event.producer, event.region)
    log.warning("round requests will not wait for this dead-lettered input event")


# -------------------------------------------------------------------------------- responses


async def respond_to_match(
    event: ev.MatchAccepted | ev.MatchDeclined,
    uow: MatchingUnitOfWork,
    *,
    automatic: Automatic = _never,
) -> set[str]:
    """MatchAccepted (by student or company) and MatchDeclined.

    Accepted by both: the match is confirmed (one MatchConfirmed). Accepted by one side: the
    match is pinned in later rounds. Declined: the match is released (MatchCancelled, reason
    declined) and the pair is excluded from every later round. A response whose ids do not
    belong together raises ValueError (retried, then dead-lettered).
    """
    data = event.data
    async with uow:
        if not await _claim_input(uow, event):
            return set()
        await uow.regions.lock(event.region)
        row = await uow.matches.for_update(data.match_id)
        if row is not None and (row.student_id, row.placement_id) != (
            data.student_id,
            data.placement_id,
        ):
            raise ValueError(
                f"match_id: {data.match_id} is ({row.student_id}, {row.placement_id}), "
                f"not ({data.student_id}, {data.placement_id})"
            )
        if row is None:  # never proposed here: no exclusion, no confirmation
            unknown_id(event.topic, event.type, "match_id", str(data.match_id))
            return set()
        if isinstance(event, ev.MatchDeclined):
            await uow.matches.exclude(data.student_id, data.placement_id, str(data.match_id))
            if row is not None and row.match is not None:
                await uow.matches.close([Cancellation(row.match, "declined")], status="declined")
                await uow.publish([cancelled_event(row.match, "declined", None)])
            await _track(uow, [event.region], automatic)
            return {event.region}
        if row.match is None:
            log.warning("acceptance of a match that no longer stands; ignored", match=row)
            return set()
        match = await uow.matches.record_acceptance(row.match.match_id, data.by)
        if match.status == "proposed" and match.student_accepted and match.company_accepted:
            await uow.matches.confirm(match.match_id)
            await uow.publish(
                [
                    ev.MatchConfirmed(
                        producer=PRODUCER,
                        data=ev.MatchConfirmedData(
                            match_id=data.match_id,
                            region=match.region,
                            student_id=match.student_id,
                            placement_id=match.placement_id,
                        ),
                    )
                ]
            )
    return set()


async def assign_match(
    event: ev.MatchAssignmentRequested,
    uow: MatchingUnitOfWork,
    *,
    automatic: Automatic = _never,
) -> set[str]:
    """MatchAssignmentRequested: a coordinator assigns a student by hand.

    Under the student's region lock and the placement's lock (the order every round takes), the
    placements service's checks are made again: the student is present, the placement open, and
    a slot free (every region's standing matches at the placement count, but for the student's
    own). Then the student's standing match, if any, is cancelled (reason `overridden`) and the
    match is recorded under the request's `match_id`, pinned by its override flag, and announced
    (MatchProposed with `override: true`, `rank` = the placement's position in the student's
    preferences or None, `round_id` = OVERRIDE_ROUND_ID). If a check fails, nothing is written
    but a MatchCancelled for the request's `match_id` (reason `student_withdrawn`,
    `placement_withdrawn` or `capacity_reduced`). A match id recorded before is ignored.
    """
    data = event.data
    sid, pid = data.student_id, data.placement_id
    async with uow:
        if not await _claim_input(uow, event):
            return set()
        before = await uow.students.lock_region_and_find(event.region, sid)
        if before is not None and before != event.region:
            await uow.regions.lock(before)
        await uow.placements.lock([pid])
        if await uow.matches.exists(data.match_id):
            log.warning("assignment of a match id recorded before; ignored", match=data.match_id)
            return set()
        profile = await uow.students.live(sid)
        offer = await uow.placements.live(pid)
        refused: CancelReason | None = None
        if profile is None:
            refused = "student_withdrawn"
        elif offer is None:
            refused = "placement_withdrawn"
        else:
            held = [m for m in await uow.matches.standing_at(pid) if m.student_id != sid]
            if len(held) >= offer.capacity:
                refused = "capacity_reduced"
        if refused is not None or profile is None or offer is None:
            log.warning("assignment refused", reason=refused, student=sid, placement=pid)
            await uow.publish(
                [
                    ev.MatchCancelled(
                        producer=PRODUCER,
                        data=ev.MatchCancelledData(
                            match_id=data.match_id,
                            region=event.region,
                            student_id=sid,
                            placement_id=pid,
                            reason=refused or "student_withdrawn",
                            round_id=None,
                        ),
                    )
                ]
            )
            return set()
        region = profile.region
        reason: CancelReason = "overridden"
        closed = await uow.matches.cancel_standing_of_student(sid, reason)
        rank = profile.preferences.index(pid) + 1 if pid in profile.preferences else None
        proposal = NewProposal(sid, pid, offer.company_id, rank)
        await uow.matches.insert_override(data.match_id, region, OVERRIDE_ROUND_ID, proposal, None)
        changed = await _announce(uow, closed, reason) | {region}
        await uow.publish(
            [
                ev.MatchProposed(
                    producer=PRODUCER,
                    data=ev.MatchProposedData(
                        match_id=data.match_id,
                        region=region,
                        student_id=sid,
                        placement_id=pid,
                        round_id=OVERRIDE_ROUND_ID,
                        company_id=offer.company_id,
                        rank=rank,
                        override=True,
                    ),
                )
            ]
        )
        await _track(uow, changed, automatic)
    return changed


# ----------------------------------------------------------------------------------- rounds


def outcome_parts(
    round_id: uuid.UUID,
    region: str,
    outcomes: Sequence[StudentOutcome],
    *,
    dry_run: bool,
    participant: Participant = "student",
) -> list[ev.MatchingRoundOutcomes]:
    """Every student's outcome, in parts of at most OUTCOMES_PER_PART (none without students)."""
    size = ev.OUTCOMES_PER_PART
    parts = math.ceil(len(outcomes) / size)
    return [
        outcome_part(
            round_id,
            region,
            k + 1,
            parts,
            outcomes[k * size : (k + 1) * size],
            dry_run=dry_run,
            participant=participant,
        )
        for k in range(parts)
    ]


def _outcome_rows(
    result: SolveResult,
    round_id: uuid.UUID,
    region: str,
    *,
    dry_run: bool,
    participant: Participant,
    actor: ev.Actor | None,
) -> tuple[list[Serialised], float]:
    """The round's `MatchingRoundOutcomes`, explained (the engine's outcomes are explained on
    first use) and serialised, by `actor`; and the seconds it took. Runs in a thread. From
    the solver's JSON texts when it gives them (the engine does: no models made), else from
    its `StudentOutcome` models; the same bytes either way."""
    started = time.perf_counter()
    if result.outcome_texts is not None:
        rows = outcome_rows(
            round_id,
            region,
            result.outcome_texts(),
            dry_run=dry_run,
            participant=participant,
            actor=actor,
        )
    else:
        outcomes = result.student_outcomes
        parts = outcome_parts(round_id, region, outcomes, dry_run=dry_run, participant=participant)
        rows = [Serialised.of(p.by(actor)) for p in parts]
    return rows, time.perf_counter() - started


class InputsMissing(Exception):
    """A round request's inputs did not arrive by its deadline: the round does not run."""


async def wait_for_inputs(
    request: ev.MatchingRoundRequested,
    uows: UnitsOfWork,
    *,
    wait: float = 120.0,
    signals: InputSignals | None = None,
    deadline: float | None = None,
) -> None:
    """Hold a round until the inputs its requester had published before it are applied.

    The inputs travel on other topics (and partitions), so they may still be in flight when the
    request arrives. While the count is short the round waits for a wake-up (`signals`:
    services/matching/wakeup.py; every input applied or dead-lettered of the request's producer
    and region wakes it, on this replica at once, from another one by NOTIFY), not for a timer;
    without a wake-up it looks again after `signals.recheck` seconds. Inputs that were
    dead-lettered count as arrived: the round goes on without them, and says so in the log.
    Raises TimeoutError (an infrastructure error: the request is handled again later, never
    dead-lettered) if they do not arrive within `wait` seconds; and `InputsMissing` once
    `deadline` seconds have passed since the request was made (its `occurred_at`), so that a
    request that can never be satisfied ends.
    """
    expected = request.data.inputs_published
    if expected is None:
        return
    signals = signals or InputSignals()
    producer, region = request.producer, request.data.region
    until = time.monotonic() + wait
    if deadline is not None:
        until = min(until, time.monotonic() + max(deadline - age_of(request), 0.0))
    while True:
        ticket = signals.ticket(producer, region)  # before the look: no wake-up in between
        async with uows() as uow:
            applied, dead = await uow.inputs.settled(producer, region)
        if applied + dead >= expected:
            if applied < expected:
                log.warning(
                    "round goes on without dead-lettered input events", missing=expected - applied
                )
            return
        left = until - time.monotonic()
        if left <= 0 and deadline is not None and age_of(request) >= deadline:
            raise InputsMissing(
                f"{applied + dead} of {expected} input events of {region} from {producer} "
                f"arrived within {deadline:.0f} s"
            )
        if left <= 0:
            raise TimeoutError(
                f"round {request.data.round_id}: {applied + dead} of {expected} input events of "
                f"{region} from {producer} applied or dead-lettered after {wait:.0f} s"
            )
        log.info("round waits for its inputs", applied=applied, expected=expected)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), min(left, signals.recheck))


def age_of(request: ev.Event) -> float:
    """Seconds since the event was made (its `occurred_at`)."""
    return (datetime.now(UTC) - request.occurred_at).total_seconds()


async def abandon_round(
    uow: MatchingUnitOfWork, request: ev.MatchingRoundRequested, why: str
) -> None:
    """A round whose inputs never arrived: in one transaction, claim the request and publish its
    MatchingRoundCompleted with status `inputs_missing` and `why` (nothing proposed or
    cancelled, figures zero), so the requester sees why it did not run."""
    d = request.data
    structlog.contextvars.bind_contextvars(round_id=str(d.round_id), region=d.region)
    async with uow:
        if not await uow.claim(request):
            log.info("round request already handled")
            return
        await uow.regions.lock(d.region)
        if await uow.rounds.recorded(d.round_id):
            log.warning("round id already recorded; request ignored")
            return
        zero = ev.RoundFigures(
            students=0,
            placed=0,
            placed_weight=0,
            total_rank_cost=0,
            first_choice=0,
            top3=0,
            unknown_preferences=0,
            blocking_pairs=0,
            solve_seconds=0.0,
            solver="none",
        )
        await uow.publish(
            [
                ev.MatchingRoundCompleted(
                    producer=PRODUCER,
                    data=ev.MatchingRoundCompletedData(
                        round_id=d.round_id,
                        region=d.region,
                        policy=d.policy,
                        figures=zero,
                        proposed=0,
                        cancelled=0,
                        kind=d.kind,
                        fill=d.fill,
                        dry_run=d.dry_run,
                        participant=d.participant,
                        status="inputs_missing",
                        detail=why,
                    ),
                )
            ]
        )
    log.error("round did not run: its inputs never arrived", detail=why)
    METRICS.round_duration.labels(d.kind, "inputs_missing").observe(0.0)


async def run_round(
    uow: MatchingUnitOfWork,
    *,
    solver: Solver,
    region: str,
    round_id: uuid.UUID,
    policy: Policy = "optimal",
    options: RoundOptions = ORDINARY,
    request: ev.MatchingRoundRequested | None = None,
    only_if_changed: bool = False,
    hooks: RoundHooks = NO_HOOKS,
    outcomes: bool = True,
) -> None:
    """Solve a region's open problem and record the round, all in one transaction.

    `request` is the MatchingRoundRequested being handled (claimed in the inbox in the same
    transaction); None for an automatic round, which with `only_if_changed` runs only when the
    region's input changed since its last round. `options`: the request's kind, fill and dry
    run. `outcomes=False` is the v1 round, bench/pipeline.py's baseline: no explanations
    computed, no MatchingRoundOutcomes published (`outcome_parts: 0`).
    """
    structlog.contextvars.bind_contextvars(round_id=str(round_id), region=region)
    # thousands of models made and dropped, none in a reference cycle (engine/gcpause.py)
    with paused_gc():
        done = await _round_in_transaction(
            uow,
            solver=solver,
            region=region,
            round_id=round_id,
            policy=policy,
            options=options,
            request=request,
            only_if_changed=only_if_changed,
            hooks=hooks,
            outcomes=outcomes,
        )
        # The round's objects are gone by now (they were the transaction's locals): had they
        # been alive when the collector came back, its first collection would have walked
        # every one of them, on the event loop, with the relay that publishes the round's
        # completion waiting behind it (under py-spy, 0.83 s over three 30,000-student rounds).
    if done is None:
        return
    report = done.report
    log.info(
        "round committed",
        load_seconds=round(report.load_seconds, 3),
        solve_seconds=round(report.solve_seconds, 3),
        write_seconds=round(report.write_seconds, 3),
        explain_seconds=round(report.explain_seconds, 3),
        students=report.students,
        proposed=report.proposed,
        cancelled=report.cancelled,
        placed=done.figures.placed,
        filled=done.figures.filled,
        outcome_parts=report.outcome_parts,
        kind=options.kind,
        fill=options.fill,
        dry_run=options.dry_run,
    )
    result_label = "dry_run" if options.dry_run else "completed"
    METRICS.round_duration.labels(options.kind, result_label).observe(report.work_seconds)
    METRICS.round_students.labels(options.kind).observe(report.students)
    METRICS.round_placements.labels(options.kind).observe(done.placements)
    METRICS.round_matches.labels(options.kind).observe(report.proposed)
    await hooks.committed(report)
    await hooks.after_commit()


@dataclass(frozen=True, slots=True)
class _Committed:
    """What a committed round's log line, metrics and report need of it, none of its objects."""

    report: RoundReport
    figures: ev.RoundFigures
    placements: int


async def _round_in_transaction(
    uow: MatchingUnitOfWork,
    *,
    solver: Solver,
    region: str,
    round_id: uuid.UUID,
    policy: Policy,
    options: RoundOptions,
    request: ev.MatchingRoundRequested | None,
    only_if_changed: bool,
    hooks: RoundHooks,
    outcomes: bool,
) -> _Committed | None:
    """`run_round`'s transaction: None when the round does not run (handled already, recorded
    already, or its input unchanged)."""
    async with uow:
        if request is not None and not await uow.claim(request):
            log.info("round request already handled")
            return None
        await uow.regions.lock(region)
        if await uow.rounds.recorded(round_id):
            log.warning("round id already recorded; request ignored")
            return None
        if only_if_changed and not await uow.regions.input_changed(region):
            return None
        dry_run = options.dry_run
        started = time.perf_counter()
        problem, version = await uow.rounds.load_problem(
            region, whole_region=options.fill, participant=options.participant
        )
        loaded = time.perf_counter()
        given = round_problem(
            problem, policy, kind=options.kind, fill=options.fill, explain=outcomes
        )
        result = await asyncio.to_thread(solver, given)
        solved = time.perf_counter()
        plan = plan_round(problem, result.outcomes)
        cancellations = () if dry_run else plan.cancellations
        # Every student's outcome is explained and serialised in a worker thread while the
        # matches are written: one computes while the other waits on PostgreSQL.
        explaining = asyncio.ensure_future(
            asyncio.to_thread(
                _outcome_rows,
                result,
                round_id,
                region,
                dry_run=dry_run,
                participant=options.participant,
                actor=uow.actor,
            )
        )
        made: list[tuple[str, NewProposal]] = []
        try:
            if cancellations:
                await uow.matches.close(cancellations)
            if not dry_run:
                made = await uow.matches.insert_proposals(region, round_id, plan.proposals)
            matches: list[ev.Event | Serialised] = [
                cancelled_event(c.match, c.reason, round_id) for c in cancellations
            ]
            matches += ProposedEvents(region, round_id, uow.actor).rows(made)
        except BaseException:
            await asyncio.wait([explaining])  # the thread ends its work either way
            raise
        parts, explain_seconds = await explaining
        figures = ev.RoundFigures.model_validate(dict(result.figures), strict=False)
        # The round's events in one write, in their order: a round's proposals and outcomes
        # (thousands of rows, megabytes of outcomes) go by one COPY (shared/outbox.enqueue).
        outgoing: list[ev.Event | Serialised] = [*matches, *parts]
        outgoing.append(
            ev.MatchingRoundCompleted(
                producer=PRODUCER,
                data=ev.MatchingRoundCompletedData(
                    round_id=round_id,
                    region=region,
                    policy=policy,
                    figures=figures,
                    unplaced_by_reason=plan.unplaced_by_reason,
                    proposed=len(made),
                    cancelled=len(cancellations),
                    kind=options.kind,
                    fill=options.fill,
                    dry_run=dry_run,
                    participant=options.participant,
                    outcome_parts=len(parts),
                ),
            )
        )
        await uow.publish(outgoing)
        await uow.rounds.record(
            RoundRecord(
                round_id=round_id,
                region=region,
                policy=policy,
                trigger="requested" if request is not None else "automatic",
                figures=figures,
                unplaced_by_reason=plan.unplaced_by_reason,
                proposed=len(made),
                cancelled=len(cancellations),
                seen_version=version,
                kind=options.kind,
                fill=options.fill,
                dry_run=dry_run,
                outcome_parts=len(parts),
                participant=options.participant,
            )
        )
        written = time.perf_counter()
        await hooks.before_commit()
    return _Committed(
        report=RoundReport(
            round_id=round_id,
            region=region,
            students=len(problem.students),
            proposed=len(made),
            cancelled=len(cancellations),
            outcome_parts=len(parts),
            load_seconds=loaded - started,
            solve_seconds=solved - loaded,
            write_seconds=written - solved,
            explain_seconds=explain_seconds,
        ),
        figures=figures,
        placements=len(problem.placements),
    )


async def handle_round_request(
    event: ev.MatchingRoundRequested,
    uows: UnitsOfWork,
    *,
    solver: Solver,
    hooks: RoundHooks = NO_HOOKS,
    input_wait: float = 120.0,
    input_deadline: float | None = None,
    outcomes: bool = True,
    signals: InputSignals | None = None,
    slot: contextlib.AbstractAsyncContextManager[Any] | None = None,
    inputs_in: bool = False,
) -> None:
    """MatchingRoundRequested: wait for the inputs it counts (`input_wait` seconds at most,
    woken by `signals`; not at all when the caller has just seen them in, `inputs_in`), then,
    holding `slot` if given (the service bounds how many rounds run at once), run the round in
    one transaction (`outcomes`: see `run_round`). Inputs still missing `input_deadline`
    seconds after the request was made: the round completes without running
    (`abandon_round`)."""
    try:
        if not inputs_in:
            await wait_for_inputs(
                event, uows, wait=input_wait, signals=signals, deadline=input_deadline
            )
    except InputsMissing as missing:
        await abandon_round(uows(), event, str(missing))
        return
    d = event.data
    async with slot or contextlib.nullcontext():
        await run_round(
            uows(),
            solver=solver,
            region=d.region,
            round_id=d.round_id,
            policy=d.policy,
            options=RoundOptions(
                kind=d.kind, fill=d.fill, dry_run=d.dry_run, participant=d.participant
            ),
            request=event,
            hooks=hooks,
            outcomes=outcomes,
        )
