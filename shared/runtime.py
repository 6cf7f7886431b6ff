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


def subscriber_options(settings: ServiceSettings) -> SubscriberOptions:
    return kafka.subscriber_options(
        settings.group_id, session_timeout_ms=settings.kafka_session_timeout_ms
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
async def opened(pool: asyncpg.Pool, broker: KafkaBroker) -> AsyncIterator[None]:
    """Open the pool, then start the broker (and so its subscribers); stop both on exit. While
    open, `/metrics` samples the pool's outbox backlog and the consumers' lag."""
    await pool
    try:
        await broker.start()
        try:
            async with METRICS.watching(pool, broker):
                yield
        finally:
            await broker.stop()
    finally:
        await pool.close()


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
