"""Handlers: what the matching service does with each event, given its dependencies.

Every handler applies one event in one transaction: the inbox claim (so a redelivered event does
nothing), the change to the read model, and the events it causes, written to the outbox. Input
handlers return the regions whose matching input changed, for automatic mode.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
import structlog

from services.matching.adapters import repository as repo
from services.matching.domain.model import Cancellation, CancelReason, Policy, Solver, Standing
from services.matching.domain.rules import plan_round, solver_arguments
from shared.contracts import events as ev
from shared.db import Connection
from shared.outbox import claim, enqueue

log = structlog.get_logger(__name__)

PRODUCER = "matching"


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

Automatic = Callable[[str], bool]


def _never(region: str) -> bool:
    return False


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
)


async def _claim_input(conn: Connection, event: ev.Event) -> bool:
    """Claim an input event in the inbox and count it for its producer and region."""
    if not await claim(conn, event):
        return False
    await repo.count_input(conn, event.event_id, event.producer, event.region)
    return True


async def record_dead_input(event: ev.Event, *, pool: asyncpg.Pool) -> None:
    """An input event was dead-lettered: count it as settled, so that rounds waiting for their
    inputs go on without it (the `.dlt` keeps it for a replay) instead of waiting forever."""
    if not isinstance(event, INPUT_EVENTS):
        return
    async with pool.acquire() as conn:
        await repo.record_dead_input(conn, event.event_id, event.producer, event.region)
    log.warning("round requests will not wait for this dead-lettered input event")


async def wait_for_inputs(
    pool: asyncpg.Pool, request: ev.MatchingRoundRequested, *, wait: float = 120.0
) -> None:
    """Hold a round until the inputs its requester had published before it are applied.

    The inputs travel on other topics (and partitions), so they may still be in flight when the
    request arrives. Inputs that were dead-lettered count as arrived: the round goes on without
    them, and says so in the log. Raises TimeoutError (an infrastructure error: the request is
    redelivered later, never dead-lettered) if they do not arrive within `wait` seconds.
    """
    expected = request.data.inputs_published
    if expected is None:
        return
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        async with pool.acquire() as conn:
            applied, dead = await repo.inputs_settled(conn, request.producer, request.data.region)
        if applied + dead >= expected:
            if applied < expected:
                log.warning(
                    "round goes on without dead-lettered input events", missing=expected - applied
                )
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"round {request.data.round_id}: {applied + dead} of {expected} input events of "
                f"{request.data.region} from {request.producer} applied or dead-lettered "
                f"after {wait:.0f} s"
            )
        log.info("round waits for its inputs", applied=applied, expected=expected)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _track(conn: Connection, regions: Iterable[str], automatic: Automatic) -> None:
    """Record input changes of the regions in automatic mode (the others need no bookkeeping)."""
    await repo.mark_changed(conn, [r for r in regions if automatic(r)])


async def _cancel_standing(
    conn: Connection, condition: str, arg: str, reason: CancelReason
) -> set[str]:
    """Cancel the standing matches that meet `condition`, announce each (MatchCancelled), and
    return their regions."""
    closed = await repo.close_standing(conn, condition, arg, reason)
    await enqueue(conn, [cancelled_event(m, reason, None) for m in closed])
    return {m.region for m in closed}


async def apply_placement_event(
    event: ev.Event,
    *,
    pool: asyncpg.Pool,
    automatic: Automatic = _never,
    any_automatic: bool = False,
) -> set[str]:
    """PlacementPosted / PlacementUpdated / PlacementWithdrawn into the read model.

    Returns the regions whose input changed: the placement's, and (only when some region is in
    automatic mode) the regions whose students rank it.
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await _claim_input(conn, event):
            return set()
        pid: str = event.data.placement_id
        await repo.lock_placements(conn, [pid])
        changed = {event.region}
        if any_automatic:
            changed |= set(await repo.regions_ranking(conn, pid))
        if isinstance(event, ev.PlacementPosted | ev.PlacementUpdated):
            await repo.upsert_placement(conn, event.data)
        elif isinstance(event, ev.PlacementWithdrawn):
            await repo.withdraw_placement(conn, pid, event.region)
            changed |= await _cancel_standing(conn, "placement_id = $1", pid, "placement_withdrawn")
        await _track(conn, changed, automatic)
    return changed


async def apply_student_event(
    event: ev.Event, *, pool: asyncpg.Pool, automatic: Automatic = _never
) -> set[str]:
    """StudentRegistered / StudentPreferencesUpdated / StudentWithdrawn into the read model."""
    async with pool.acquire() as conn, conn.transaction():
        if not await _claim_input(conn, event):
            return set()
        sid: str = event.data.student_id
        before = await repo.lock_region_and_find_student(conn, event.region, sid)
        changed = {event.region}
        if before is not None and before != event.region:  # moved: lock its old region too
            await repo.lock_region(conn, before)
            changed.add(before)
        if isinstance(event, ev.StudentRegistered | ev.StudentPreferencesUpdated):
            await repo.upsert_student(conn, event.data)
        elif isinstance(event, ev.StudentWithdrawn):
            await repo.withdraw_student(conn, sid, event.region)
            changed |= await _cancel_standing(conn, "student_id = $1", sid, "student_withdrawn")
        await _track(conn, changed, automatic)
    return changed


# -------------------------------------------------------------------------------- responses


async def respond_to_match(
    event: ev.Event, *, pool: asyncpg.Pool, automatic: Automatic = _never
) -> set[str]:
    """MatchAccepted (by student or company) and MatchDeclined.

    Accepted by both: the match is confirmed (one MatchConfirmed). Accepted by one side: the
    match is pinned in later rounds. Declined: the match is released (MatchCancelled, reason
    declined) and the pair is excluded from every later round.
    """
    data = event.data
    async with pool.acquire() as conn, conn.transaction():
        if not await _claim_input(conn, event):
            return set()
        await repo.lock_region(conn, event.region)
        row = await repo.match_for_update(conn, data.match_id)
        if row is not None and (row.student_id, row.placement_id) != (
            data.student_id,
            data.placement_id,
        ):
            raise ValueError(
                f"match_id: {data.match_id} is ({row.student_id}, {row.placement_id}), "
                f"not ({data.student_id}, {data.placement_id})"
            )
        if isinstance(event, ev.MatchDeclined):
            await repo.exclude(conn, data.student_id, data.placement_id, str(data.match_id))
            if row is not None and row.match is not None:
                await repo.close_matches(
                    conn, [Cancellation(row.match, "declined")], status="declined"
                )
                await enqueue(conn, [cancelled_event(row.match, "declined", None)])
            await _track(conn, [event.region], automatic)
            return {event.region}
        if row is None or row.match is None:
            log.warning("acceptance of a match that no longer stands; ignored", match=row)
            return set()
        match = await repo.record_acceptance(conn, row.match.match_id, data.by)
        if match.status == "proposed" and match.student_accepted and match.company_accepted:
            await repo.confirm(conn, match.match_id)
            await enqueue(
                conn,
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
                ],
            )
    return set()


# ----------------------------------------------------------------------------------- rounds


async def run_round(
    *,
    pool: asyncpg.Pool,
    solver: Solver,
    region: str,
    round_id: uuid.UUID,
    policy: Policy = "optimal",
    request: ev.Event | None = None,
    only_if_changed: bool = False,
    after_commit: Callable[[], Awaitable[None]] | None = None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Solve a region's open problem and record the round, all in one transaction.

    `request` is the MatchingRoundRequested being handled (claimed in the inbox in the same
    transaction); None for an automatic round, which with `only_if_changed` runs only when the
    region's input changed since its last round.
    """
    structlog.contextvars.bind_contextvars(round_id=str(round_id), region=region)
    async with pool.acquire() as conn:
        async with conn.transaction():
            if request is not None and not await claim(conn, request):
                log.info("round request already handled")
                return
            await repo.lock_region(conn, region)
            if await repo.round_recorded(conn, round_id):
                log.warning("round id already recorded; request ignored")
                return
            if only_if_changed and not await repo.input_changed(conn, region):
                return
            started = time.perf_counter()
            problem, version = await repo.load_problem(conn, region)
            loaded = time.perf_counter()
            pinned, previous = solver_arguments(problem)
            result = await asyncio.to_thread(
                solver,
                problem.students,
                problem.placements,
                pinned,
                previous=previous,
                policy=policy,
                excluded=problem.excluded,
            )
            solved = time.perf_counter()
            plan = plan_round(problem, result.outcomes)
            await repo.close_matches(conn, plan.cancellations)
            made = await repo.insert_proposals(conn, region, round_id, plan.proposals)
            figures = ev.RoundFigures.model_validate(dict(result.figures), strict=False)
            outgoing: list[ev.Event] = [
                cancelled_event(c.match, c.reason, round_id) for c in plan.cancellations
            ]
            outgoing += [
                ev.MatchProposed(
                    producer=PRODUCER,
                    data=ev.MatchProposedData(
                        match_id=mid,
                        region=region,
                        student_id=p.student_id,
                        placement_id=p.placement_id,
                        round_id=round_id,
                        company_id=p.company_id,
                        rank=p.rank,
                    ),
                )
                for mid, p in made
            ]
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
                        cancelled=len(plan.cancellations),
                    ),
                )
            )
            await enqueue(conn, outgoing)
            await repo.record_round(
                conn,
                round_id=round_id,
                region=region,
                policy=policy,
                trigger="requested" if request is not None else "automatic",
                figures_json=figures.model_dump_json(),
                unplaced=plan.unplaced_by_reason,
                proposed=len(made),
                cancelled=len(plan.cancellations),
                seen_version=version,
            )
            written = time.perf_counter()
            if before_commit is not None:
                await before_commit()
        log.info(
            "round committed",
            load_seconds=round(loaded - started, 3),
            solve_seconds=round(solved - loaded, 3),
            write_seconds=round(written - solved, 3),
            students=len(problem.students),
            proposed=len(made),
            cancelled=len(plan.cancellations),
            placed=figures.placed,
        )
    if after_commit is not None:
        await after_commit()


async def handle_round_request(
    event: ev.Event,
    *,
    pool: asyncpg.Pool,
    solver: Solver,
    after_commit: Callable[[], Awaitable[None]] | None = None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> None:
    assert isinstance(event, ev.MatchingRoundRequested)
    await wait_for_inputs(pool, event)
    await run_round(
        pool=pool,
        solver=solver,
        region=event.data.region,
        round_id=event.data.round_id,
        policy=event.data.policy,
        request=event,
        after_commit=after_commit,
        before_commit=before_commit,
    )
