"""Round requests that wait for their inputs wait in the database, not in the consumer.

A round request counts the input events its requester published before it
(`inputs_published`); they travel on other topics, so they may still be on their way when the
request arrives. `ParkedRounds.admit` looks when the request is handed over: if every input is
applied (or dead-lettered) and no earlier request of the region is parked, the round runs at
once. Otherwise the request is parked (`parked_rounds`, migration 0007) and the handing over
is done: the consumer commits its offset and reads on, so a request that waits, for seconds or
for ever, holds neither its partition, nor the consumer, nor another region's rounds.

Each region with parked requests has a runner task that takes them in the order they were
parked: it looks at the head's count, and while it is short waits for a wake-up of the head's
(producer, region) (`InputSignals`: an input applied or dead-lettered, on this replica or,
by NOTIFY, another), or `signals.recheck` seconds. When the inputs are in, the round runs
(`run`: the same handling as an admitted request, its inbox claim included, so a round never
runs twice, whichever replica gets there first) and the request is removed; a request whose
inputs are still missing `deadline` seconds after it was made completes as not run
(`MatchingRoundCompleted` with status `inputs_missing` and why) and is removed. A round that
fails (the database is down) is tried again after a pause, in the region's order; one that keeps
failing otherwise (`max_attempts` times, as the consumer's policy allows a record) goes to the
round-requests topic's dead letters (`dead_letter`, replayable with `apl dlt replay`) and is
removed, so the region's later requests run.

Parked requests outlive the process: `run()` (a background task of the running service) looks
for regions with parked requests every `scan_seconds` (those parked before a restart, or by a
replica that has gone) and starts their runners. Two replicas may run one region's runner at
once; the round's claim and region lock keep its rounds once each and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiokafka import ConsumerRecord

from services.matching.adapters.repository import MatchingUnitOfWork, ParkedRequest
from services.matching.handlers import age_of
from services.matching.round_requests import finish_or_cancel
from services.matching.wakeup import InputSignals
from shared import tracing
from shared.contracts import events as ev
from shared.contracts.topics import ROUND_REQUESTS, Topics, event_key
from shared.kafka import event_headers

log = structlog.get_logger(__name__)

Run = Callable[[ev.MatchingRoundRequested], Awaitable[None]]
DeadLetter = Callable[[ParkedRequest, BaseException, int], Awaitable[None]]


@dataclass
class ParkedRounds:
    """This replica's parked round requests (see the module)."""

    uows: Callable[[], MatchingUnitOfWork]
    signals: InputSignals
    run_round: Run
    """Handles a request whose inputs are in, or whose deadline has passed (runs the round, or
    completes it as not run)."""
    deadline: float
    """Seconds after a request was made (its `occurred_at`) when it ends as not run."""
    dead_letter: DeadLetter | None = None
    """Where a request goes that kept failing (`max_attempts` times, errors not `transient`)."""
    max_attempts: int = 5
    transient: tuple[type[BaseException], ...] = ()
    """Errors that never count as an attempt (the database or the broker is down)."""
    scan_seconds: float = 5.0
    retry_initial: float = 0.5
    retry_max: float = 30.0
    _runners: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _kicks: set[str] = field(default_factory=set, init=False)
    """Regions told of a new parked request since their runner last looked."""
    _idle: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._idle.set()

    async def admit(self, request: ev.MatchingRoundRequested) -> bool:
        """True: run the round now. False: `request` is parked (or was already), and its
        region's runner will run it."""
        region = request.data.region
        async with self.uows() as uow:
            if not await uow.parked.waiting(region) and await _inputs_in(uow, request):
                return True
            parked = await uow.parked.park(request, tracing.current_headers())
        if parked:
            log.info(
                "round request parked until its inputs are applied",
                expected=request.data.inputs_published,
            )
        self._start(region)
        return False

    async def run(self) -> None:
        """Until cancelled: every `scan_seconds`, start the runners of regions with parked
        requests (a restart's, another replica's); then `close`."""
        try:
            while True:
                with contextlib.suppress(Exception):  # the database is down: next time
                    async with self.uows() as uow:
                        regions = await uow.parked.regions()
                    for region in regions:
                        self._start(region)
                await asyncio.sleep(self.scan_seconds)
        finally:
            await self.close()

    async def idle(self) -> None:
        """Until no runner is left (every parked request of this replica ran or ended)."""
        await self._idle.wait()

    async def close(self, grace: float = 10.0) -> None:
        """Start no more runners; give the running ones `grace` seconds, then cancel them (a
        cancelled round rolls back; its request stays parked)."""
        self._closed = True
        await finish_or_cancel(self._runners.values(), grace)

    def _start(self, region: str) -> None:
        self._kicks.add(region)  # a runner that found nothing looks once more
        if self._closed or region in self._runners:
            return
        self._idle.clear()
        self._runners[region] = asyncio.create_task(
            self._runner(region), name=f"parked-rounds-{region}"
        )

    async def _runner(self, region: str) -> None:
        pause = self.retry_initial
        head: ParkedRequest | None = None
        failures = 0  # of the head, not transient
        try:
            while not self._closed:
                try:
                    self._kicks.discard(region)
                    async with self.uows() as uow:
                        found = await uow.parked.head(region)
                    if found is None:
                        if region in self._kicks:  # parked while this looked: look again
                            continue
                        return
                    if head is None or found.request.event_id != head.request.event_id:
                        head, failures = found, 0
                    if not await self._ready(found.request):
                        continue
                    await self._handle(found)
                    pause = self.retry_initial
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # the database is down, or the round failed
                    if head is not None and not isinstance(error, self.transient):
                        failures += 1
                        if failures >= self.max_attempts and await self._give_up(head, error):
                            failures, pause = 0, self.retry_initial
                            continue
                    log.warning(
                        "parked round request will be tried again",
                        region=region,
                        pause=pause,
                        exc_info=True,
                    )
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, self.retry_max)
        finally:
            if self._runners.get(region) is asyncio.current_task():
                del self._runners[region]
            if not self._runners:
                self._idle.set()

    async def _give_up(self, head: ParkedRequest, error: BaseException) -> bool:
        """Dead-letter a request that kept failing and forget it; False if there is nowhere
        to send it (it is tried again)."""
        if self.dead_letter is None:
            return False
        await self.dead_letter(head, error, self.max_attempts)
        async with self.uows() as uow:
            await uow.parked.remove(head.request.event_id)
        return True

    async def _ready(self, request: ev.MatchingRoundRequested) -> bool:
        """Whether the request can be handled now (inputs in, or its deadline passed); if not,
        wait for a wake-up of its (producer, region) or a recheck first."""
        ticket = self.signals.ticket(request.producer, request.data.region)  # before the look
        async with self.uows() as uow:
            if await _inputs_in(uow, request):
                return True
        left = self.deadline - age_of(request)
        if left <= 0:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), min(left, self.signals.recheck))
        return False

    async def _handle(self, head: ParkedRequest) -> None:
        request = head.request
        structlog.contextvars.bind_contextvars(
            event_id=str(request.event_id),
            region=request.data.region,
            round_id=str(request.data.round_id),
        )
        attributes = {
            "apl.round_id": str(request.data.round_id),
            "apl.region": request.data.region,
            "messaging.message.id": str(request.event_id),
        }
        with tracing.stored_span("run parked round", head.trace, attributes):
            await self.run_round(request)
        async with self.uows() as uow:
            await uow.parked.remove(request.event_id)


async def _inputs_in(uow: MatchingUnitOfWork, request: ev.MatchingRoundRequested) -> bool:
    """Whether every input event the request counts was applied or dead-lettered here."""
    expected = request.data.inputs_published
    if expected is None:
        return True
    applied, dead = await uow.inputs.settled(request.producer, request.data.region)
    return applied + dead >= expected


def parked_record(topics: Topics, parked: ParkedRequest) -> ConsumerRecord[bytes, bytes]:
    """A parked request as the consumer read it (its JSON, key and headers), for the dead-letter
    topic: its partition and offset are gone (committed when it was parked), given as -1."""
    request = parked.request
    value = request.to_json()
    key = event_key(request.data.region)
    trace = dict(parked.trace)
    headers = tuple(
        (k, v.encode()) for k, v in event_headers(request.type, request.event_id, trace).items()
    )
    return ConsumerRecord(
        topics.name(ROUND_REQUESTS), -1, -1, 0, 0, key, value, None, len(key), len(value), headers
    )
