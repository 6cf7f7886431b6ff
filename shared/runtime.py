"""The parts every composition root is built from (`services/<service>/bootstrap.py`).

A root has two steps: `build(settings)` wires a container and connects to nothing (the AsyncAPI
document is made from it), and `async with running(settings) as container:` opens it: migrations,
the pool, the broker (its subscribers), the outbox relay and the service's background tasks, and
closes them in reverse order. `main.py`, the tests, the benchmarks and the demo all use `running`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker, KafkaRouter

from shared import db, kafka
from shared.contracts.events import Envelope, Event
from shared.contracts.topics import subscriber_name
from shared.kafka import EventPolicy, SubscriberOptions
from shared.metrics import METRICS
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

# What rewinds a partition instead of dead-lettering an event, in every service.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (*kafka.TRANSIENT_ERRORS, *db.TRANSIENT_ERRORS)


def pool(settings: ServiceSettings, **kwargs: Any) -> asyncpg.Pool:
    """The service's pool, not yet connected (`running` opens it)."""
    kwargs.setdefault("min_size", settings.pool_min_size)
    kwargs.setdefault("max_size", settings.pool_max_size)
    return db.make_pool(settings.database_url, settings.schema_name, **kwargs)


def broker(settings: ServiceSettings) -> KafkaBroker:
    """The service's broker, connected as its own principal."""
    return kafka.make_broker(settings.kafka, settings.client_id)


def policy(
    settings: ServiceSettings,
    broker: KafkaBroker,
    on_dead_letter: Callable[[Event], Awaitable[None]] | None = None,
    *,
    on_unparsed_dead_letter: Callable[[str, Envelope], Awaitable[None]] | None = None,
    whole_batches: bool = False,
) -> EventPolicy:
    """The consumer group's parse / retry / dead-letter policy (`whole_batches`: a poll's
    records handed to the subscriber at once; the hooks: see `EventPolicy`)."""
    return EventPolicy(
        broker,
        settings.topics,
        settings.group_id,
        max_attempts=settings.max_attempts,
        transient=TRANSIENT_ERRORS,
        on_dead_letter=on_dead_letter,
        on_unparsed_dead_letter=on_unparsed_dead_letter,
        whole_batches=whole_batches,
    )


def router(policy: EventPolicy) -> KafkaRouter:
    """A router whose subscribers all go through `policy`."""
    return KafkaRouter(middlewares=[policy.middleware])


def subscriber_options(
    settings: ServiceSettings, topic: str, policy: EventPolicy | None = None
) -> SubscriberOptions:
    """The options of a subscriber of the contract topic `topic` (unprefixed): a consumer group
    of its own, `<group_id>.<subscriber>` with the topic's short name (`subscriber_name`: so
    the service's subscribers join, and rebalance, independently of each other), and the
    replica's static membership when `kafka_instance_id` names one; with `policy`, its
    revocation barrier (`EventPolicy.listener`: a rebalance waits for the batch in hand)."""
    return kafka.subscriber_options(
        f"{settings.group_id}.{subscriber_name(topic)}",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        instance_id=settings.instance_id,
        listener=policy.listener() if policy is not None else None,
    )


def relay(settings: ServiceSettings, broker: KafkaBroker) -> OutboxRelay:
    return OutboxRelay(
        settings.database_url,
        settings.schema_name,
        broker,
        settings.topics,
        batch=settings.outbox_batch,
        poll_seconds=settings.outbox_poll_seconds,
    )


async def migrate(settings: ServiceSettings, folder: Path) -> list[str]:
    applied = await db.migrate(settings.database_url, settings.schema_name, folder)
    log.info("migrations applied", applied=applied, schema=settings.schema_name)
    return applied


@contextlib.asynccontextmanager
async def opened(pool: asyncpg.Pool, broker: KafkaBroker) -> AsyncIterator[asyncio.Task[None]]:
    """Open the pool, then start the broker (and so its subscribers) in the background: the
    service's HTTP side need not wait for its consumer groups to settle (a subscriber's start
    waits for its group's assignment), and `/readyz` says "broker unavailable" until the
    broker is up. Yields the start's task; stops both on exit. While open, `/metrics` samples
    the pool's outbox backlog and the consumers' lag."""
    await pool
    try:
        started = asyncio.create_task(start_broker(broker), name="broker start")
        try:
            async with METRICS.watching(pool, broker):
                yield started
        finally:
            started.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await started
            await broker.stop()
    finally:
        await pool.close()


async def start_broker(broker: KafkaBroker, *, backoff: float = 0.5) -> None:
    """Start the broker; should it fail (the cluster is away, a credential is refused), stop
    what started, say so and try again, pausing 0.5 s doubling to 10 s."""
    while True:
        try:
            await broker.start()
        except Exception as error:
            log.error("the broker did not start; trying again", error=str(error), retry_in=backoff)
            with contextlib.suppress(Exception):
                await broker.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
        else:
            log.info("broker started", subscribers=len(broker.subscribers))
            return


@contextlib.asynccontextmanager
async def background(
    **work: Coroutine[Any, Any, None],
) -> AsyncIterator[dict[str, asyncio.Task[None]]]:
    """Run each coroutine as a named task; cancel them all (and wait for them) on exit."""
    tasks = {name: asyncio.create_task(coro, name=name) for name, coro in work.items()}
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
