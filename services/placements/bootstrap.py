"""Composition root of the placements service: settings in, a container out, an app over it.

`build(settings)` wires everything and connects to nothing (the OpenAPI and AsyncAPI documents
are made from it); `async with running(settings) as container:` migrates the schema, opens the
pool, starts the broker (its subscribers) and the outbox relay, and closes them in reverse order.
`create_app(container)` is the FastAPI app over a running container. `main.py`, the tests, the
benchmarks and the demo all go through `running`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from shared import runtime
from shared.http import asyncapi_document, broker_check, database_check, service_app
from shared.kafka import EventPolicy
from shared.outbox import OutboxRelay

from .adapters.postgres import PostgresPlacementsUnitOfWork, init_connection
from .entrypoints import http, problems, subscribers
from .ports import PlacementsUnitOfWork
from .settings import PlacementsSettings

VERSION = "1.0.0"
TITLE = "APL Match — placements"
DESCRIPTION = (
    "The front door of APL Match: companies post placements, students register and rank "
    "them, coordinators run matching rounds. Errors are RFC 9457 problem details."
)
ASYNCAPI_DESCRIPTION = (
    "Consumes match events (proposals, answers, confirmations, cancellations) and round events "
    "(requests, figures) into its own tables; publishes placement, student, round-request and "
    "match-answer events through a transactional outbox."
)
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Container:
    """Everything the service is made of, wired once."""

    settings: PlacementsSettings
    pool: asyncpg.Pool
    broker: KafkaBroker
    policy: EventPolicy
    relay: OutboxRelay
    unit_of_work: Callable[[], PlacementsUnitOfWork]

    def uow(self) -> PlacementsUnitOfWork:
        """A new unit of work (one transaction per `async with`)."""
        return self.unit_of_work()


def build(
    settings: PlacementsSettings,
    *,
    unit_of_work: Callable[[], PlacementsUnitOfWork] | None = None,
) -> Container:
    """Wire the service; connect to nothing. `unit_of_work` replaces the PostgreSQL one (the
    in-memory tests pass the fake's)."""
    pool = runtime.pool(settings, init=init_connection)
    broker = runtime.broker(settings)
    policy = runtime.policy(settings, broker)

    def postgres() -> PlacementsUnitOfWork:
        return PostgresPlacementsUnitOfWork(pool)

    uow = unit_of_work or postgres
    broker.include_router(subscribers.build_router(settings, policy, uow))
    return Container(
        settings=settings,
        pool=pool,
        broker=broker,
        policy=policy,
        relay=runtime.relay(settings, broker),
        unit_of_work=uow,
    )


@contextlib.asynccontextmanager
async def running(
    settings: PlacementsSettings, *, migrate: bool = True, **injected: Any
) -> AsyncIterator[Container]:
    """The service running: schema migrated (unless `migrate=False`), pool open, subscribers
    consuming, outbox relay publishing; all closed on exit."""
    container = build(settings, **injected)
    if migrate:
        await runtime.migrate(settings, MIGRATIONS)
    async with (
        runtime.opened(container.pool, container.broker),
        runtime.background(outbox_relay=container.relay.run()),
    ):
        yield container


def create_app(container: Container) -> FastAPI:
    """The HTTP app over a (running) container: health, AsyncAPI, the /v1 API, internal routes."""

    def document() -> dict[str, Any]:
        return asyncapi_document(container.broker, title=TITLE, description=ASYNCAPI_DESCRIPTION)

    app = service_app(
        title=TITLE,
        description=DESCRIPTION,
        version=VERSION,
        checks={
            "broker": broker_check(container.broker),
            "database": database_check(container.pool),
        },
        asyncapi=document,
    )
    app.state.container = container
    problems.install(app)
    app.add_middleware(problems.BodySizeLimit, max_bytes=container.settings.max_body_bytes)
    app.include_router(http.router)
    app.include_router(http.internal_router(container.settings.internal_token))
    return app


def documented_settings() -> PlacementsSettings:
    """The settings the committed documents are made with: production topic names."""
    return PlacementsSettings(
        environment="local",
        kafka_bootstrap="kafka:9092",
        database_url="postgresql://unused/apl",
        topic_prefix="",
    )


def asyncapi(settings: PlacementsSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI document: what the service consumes and what its outbox publishes."""
    container = build(settings or documented_settings())
    return asyncapi_document(container.broker, title=TITLE, description=ASYNCAPI_DESCRIPTION)


def openapi(settings: PlacementsSettings | None = None) -> dict[str, Any]:
    """The OpenAPI document of the public API (settings do not change it)."""
    return create_app(build(settings or documented_settings())).openapi()
