"""The matching service's composition root: one container, opened by `running`.

`build(settings)` wires everything and connects to nothing (the AsyncAPI document is made from
it). `async with running(settings) as c:` migrates the schema, opens the pool, starts the broker
(and so the subscribers), and runs the outbox relay, the automatic rounds, the round requests'
region queues, the input wake-ups and, with the real engine, the kernel warm-up as background
tasks; on exit it stops them in reverse order.
`main.py`, the tests and the benchmark all use `running`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from services.matching import handlers
from services.matching.adapters.engine import engine_solver, load_kernel
from services.matching.adapters.repository import MatchingUnitOfWork, PostgresMatchingUnitOfWork
from services.matching.auto import AutoRounds
from services.matching.domain.model import Solver
from services.matching.entrypoints import subscribers
from services.matching.handlers import NO_HOOKS, RoundHooks
from services.matching.parking import ParkedRounds, parked_record
from services.matching.round_requests import RoundRequests
from services.matching.settings import MatchingSettings
from services.matching.wakeup import InputSignals
from shared import runtime
from shared.contracts.events import Envelope, Event
from shared.http import asyncapi_document, broker_check, database_check, service_app
from shared.kafka import EventPolicy
from shared.outbox import OutboxRelay
from shared.uow import system_actor

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

TITLE = "APL Match — matching service"
DESCRIPTION = (
    "Consumes placement, student, round-request, match-response and override events into its "
    "own read model; runs matching rounds per region (ordinary, supplementary, fill, dry "
    "run); publishes proposals, confirmations, cancellations, every student's outcome and "
    "round results through a transactional outbox."
)


@dataclass
class Container:
    """Everything the matching service is made of, wired once."""

    settings: MatchingSettings
    pool: asyncpg.Pool
    broker: KafkaBroker
    policy: EventPolicy
    relay: OutboxRelay
    solver: Solver
    hooks: RoundHooks
    auto: AutoRounds
    unit_of_work: Callable[[], MatchingUnitOfWork]
    signals: InputSignals
    """Wake-ups of rounds waiting for their inputs (services/matching/wakeup.py)."""
    round_requests: RoundRequests
    """Round requests, per region (services/matching/round_requests.py)."""
    parking: ParkedRounds
    """Round requests waiting for their inputs (services/matching/parking.py)."""
    outcomes: bool = True
    """False: rounds run as in v1 (no explanations, no MatchingRoundOutcomes), the baseline
    bench/pipeline.py measures against. Never False in production."""

    def uow(self) -> MatchingUnitOfWork:
        """A new unit of work (one transaction; PostgreSQL unless `build` was given another)."""
        return self.unit_of_work()

    async def resume_automatic_rounds(self) -> None:
        """Schedule the automatic rounds of regions whose input changed after their last round
        (before a stop or a crash), so that none is lost."""
        if not self.settings.any_automatic:
            return
        async with self.uow() as uow:
            changed = await uow.regions.changed()
        self.auto.touch(changed)


def build(
    settings: MatchingSettings,
    *,
    solver: Solver = engine_solver,
    hooks: RoundHooks = NO_HOOKS,
    unit_of_work: Callable[[], MatchingUnitOfWork] | None = None,
) -> Container:
    """Wire the service; connect to nothing. `unit_of_work` replaces the PostgreSQL one (the
    subscriber tests run on the in-memory fake)."""
    pool = runtime.pool(settings)
    broker = runtime.broker(settings)
    system = system_actor(settings.service)
    uow = unit_of_work or (lambda: PostgresMatchingUnitOfWork(pool, actor=system))

    async def on_dead_letter(event: Event) -> None:
        await handlers.record_dead_input(event, uow())
        if isinstance(event, handlers.INPUT_EVENTS):
            c.signals.applied(event.producer, event.region)

    async def on_unparsed_dead_letter(topic: str, envelope: Envelope) -> None:
        if await handlers.record_unparsed_input(topic, envelope, uow()):
            c.signals.applied(envelope.producer, envelope.region)

    async def automatic_round(region: str) -> None:
        await handlers.run_round(
            uow(),
            solver=solver,
            region=region,
            round_id=uuid.uuid4(),
            only_if_changed=True,
            hooks=hooks,
            outcomes=c.outcomes,
        )

    # whole_batches: a poll of placement or student events in one call (one transaction); the
    # matches and rounds subscribers take one record at a time, which it does not change.
    event_policy = runtime.policy(
        settings,
        broker,
        on_dead_letter=on_dead_letter,
        on_unparsed_dead_letter=on_unparsed_dead_letter,
        whole_batches=True,
    )
    signals = InputSignals()
    c = Container(
        settings=settings,
        pool=pool,
        broker=broker,
        policy=event_policy,
        relay=runtime.relay(settings, broker),
        solver=solver,
        hooks=hooks,
        auto=AutoRounds(
            run_round=automatic_round,
            is_automatic=settings.is_automatic,
            delay=settings.auto_round_delay_seconds,
        ),
        unit_of_work=uow,
        signals=signals,
        round_requests=RoundRequests(
            event_policy,
            lambda event: subscribers.handle_round_event(c, event),
            concurrency=settings.round_concurrency,
        ),
        parking=ParkedRounds(
            uow,
            signals,
            lambda event: subscribers.run_round_request(c, event),
            deadline=settings.input_deadline_seconds,
            dead_letter=lambda parked, error, attempts: event_policy.dead_letter(
                parked_record(settings.topics, parked), error, attempts=attempts
            ),
            max_attempts=event_policy.max_attempts,
            transient=event_policy.transient,
        ),
    )
    broker.include_routers(subscribers.router(c), subscribers.rounds_router(c))
    return c


@asynccontextmanager
async def running(
    settings: MatchingSettings, *, solver: Solver = engine_solver, hooks: RoundHooks = NO_HOOKS
) -> AsyncIterator[Container]:
    """The service, running: schema migrated, pool open, subscribers consuming, relay and
    automatic rounds going. Regions whose input changed before the last stop (or crash) get
    their automatic round."""
    c = build(settings, solver=solver, hooks=hooks)
    await runtime.migrate(settings, MIGRATIONS)
    async with runtime.opened(c.pool, c.broker):
        work: dict[str, Coroutine[Any, Any, None]] = {
            "outbox-relay": c.relay.run(),
            "auto-rounds": c.auto.run(),
            "round-requests": c.round_requests.run(),
            "parked-rounds": c.parking.run(),
            "input-wake-ups": c.signals.run(settings.database_url, settings.schema_name),
        }
        if solver is engine_solver:
            work["kernel-warm-up"] = load_kernel()
        async with runtime.background(**work):
            await c.resume_automatic_rounds()
            yield c


def create_app(c: Container) -> FastAPI:
    """The HTTP side: `/healthz`, `/readyz` and `/docs/asyncapi.json` of the running container."""
    return service_app(
        title=TITLE,
        description=DESCRIPTION,
        version="1.0.0",
        checks={"broker": broker_check(c.broker), "database": database_check(c.pool)},
        asyncapi=lambda: asyncapi_document(c.broker, title=TITLE, description=DESCRIPTION),
    )


def asyncapi(settings: MatchingSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI document of the production topology (no topic prefix)."""
    settings = settings or MatchingSettings(
        kafka_bootstrap="kafka:9092", topic_prefix="", database_url="postgresql://unused/apl"
    )
    return asyncapi_document(build(settings).broker, title=TITLE, description=DESCRIPTION)
