"""Composition root of the placements service: settings in, a container out, an app over it.

`build(settings)` wires everything and connects to nothing (the OpenAPI and AsyncAPI documents
are made from it); `async with running(settings) as container:` migrates the schema, opens the
pool, starts the broker (its subscribers) and the outbox relay, and closes them in reverse order.
`create_app(container)` is the FastAPI app over a running container. `main.py`, the tests, the
benchmarks and the demo all go through `running`.

The container's `verifier` checks the callers' bearer tokens against the configured issuer
(`APL_AUTH_ISSUER`, `shared/auth.py`); tests and benchmarks pass their own (`build(settings,
verifier=...)`: a test issuer's, or a stand-in that returns a fixed principal).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from shared import runtime
from shared.auth import IssuerUnavailable, Principal, TokenVerifier, Verifier
from shared.contracts.events import Actor
from shared.http import asyncapi_document, broker_check, database_check, service_app
from shared.kafka import EventPolicy
from shared.netguard import WebhookGuard
from shared.outbox import OutboxRelay

from .adapters.postgres import PostgresPlacementsUnitOfWork, init_connection
from .entrypoints import actions, audit, auth, http, problems, readiness, subscribers, web
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
    "(requests, every student's outcome, figures) into its own tables; publishes placement, "
    "student, round-request, supplementary-opening, match-answer and assignment events through "
    "a transactional outbox."
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
    unit_of_work: Callable[[Actor | None], PlacementsUnitOfWork]
    verifier: Verifier
    """Checks the callers' bearer tokens (`shared.auth`)."""
    webhooks: WebhookGuard = field(default_factory=WebhookGuard)
    """The SSRF guard every webhook URL passes when saved (the settings' allow-list)."""

    def uow(self, actor: Actor | None = None) -> PlacementsUnitOfWork:
        """A new unit of work (one transaction per `async with`) for `actor` (stamped on the
        events it publishes and recorded in the audit trail)."""
        return self.unit_of_work(actor)


class NoIssuer:
    """The verifier when no issuer is configured (local runs without `APL_AUTH_ISSUER`):
    every protected route answers 503, naming the setting."""

    async def verify(self, token: str) -> Principal:
        raise IssuerUnavailable("no OIDC issuer is configured (APL_AUTH_ISSUER)", retry_after=60)

    async def aclose(self) -> None:
        return None


def verifier_of(
    settings: PlacementsSettings, transport: httpx.AsyncBaseTransport | None = None
) -> Verifier:
    """The settings' issuer's verifier (`NoIssuer` without one)."""
    if not settings.auth_issuer:
        return NoIssuer()
    return TokenVerifier.from_settings(settings, transport=transport)


def _postgres(pool: asyncpg.Pool) -> Callable[[Actor | None], PlacementsUnitOfWork]:
    def uow(actor: Actor | None) -> PlacementsUnitOfWork:
        return PostgresPlacementsUnitOfWork(pool, actor=actor)

    return uow


def _actors(
    given: Callable[[], PlacementsUnitOfWork],
) -> Callable[[Actor | None], PlacementsUnitOfWork]:
    """An injected unit of work (a test's shared fake), told who acts each time it is taken."""

    def uow(actor: Actor | None) -> PlacementsUnitOfWork:
        taken = given()
        taken.actor = actor
        return taken

    return uow


def build(
    settings: PlacementsSettings,
    *,
    unit_of_work: Callable[[], PlacementsUnitOfWork] | None = None,
    verifier: Verifier | None = None,
) -> Container:
    """Wire the service; connect to nothing. `unit_of_work` replaces the PostgreSQL one (the
    in-memory tests pass the fake's); `verifier` the settings' issuer's (tests pass a test
    issuer's, the auth benchmark a stand-in: never a production setting)."""
    pool = runtime.pool(settings, init=init_connection)
    broker = runtime.broker(settings)
    # whole_batches: a poll of match events in one call (one transaction)
    policy = runtime.policy(settings, broker, whole_batches=True)

    uow = _actors(unit_of_work) if unit_of_work else _postgres(pool)
    broker.include_router(subscribers.build_router(settings, policy, lambda: uow(None)))
    return Container(
        settings=settings,
        pool=pool,
        broker=broker,
        policy=policy,
        relay=runtime.relay(settings, broker),
        unit_of_work=uow,
        verifier=verifier or verifier_of(settings),
        webhooks=WebhookGuard.of(settings.webhook_allowlist, environment=settings.environment),
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
    try:
        async with (
            runtime.opened(container.pool, container.broker),
            runtime.background(outbox_relay=container.relay.run()),
        ):
            yield container
    finally:
        await container.verifier.aclose()


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
    app.swagger_ui_init_oauth = auth.swagger_oauth(container.settings)
    problems.install(app)
    app.add_middleware(problems.BodySizeLimit, max_bytes=container.settings.max_body_bytes)
    app.include_router(http.router)
    app.include_router(audit.router)
    app.include_router(actions.router)
    app.include_router(http.internal_router())
    app.include_router(readiness.router)
    app.include_router(readiness.internal_router())
    web.install(app, container.settings)
    _document_security(app, container.settings)
    return app


def _document_security(app: FastAPI, settings: PlacementsSettings) -> None:
    """The app's OpenAPI document with the issuer's endpoints in its security scheme."""
    generate = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = auth.document_security(generate(), settings)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]  # FastAPI's documented override


def documented_settings() -> PlacementsSettings:
    """The settings the committed documents are made with: production topic names."""
    return PlacementsSettings(
        environment="local",
        kafka_bootstrap="kafka:9092",
        database_url="postgresql://unused/apl",
        topic_prefix="",
        auth_issuer="http://127.0.0.1:18080/realms/apl",
    )


def asyncapi(settings: PlacementsSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI document: what the service consumes and what its outbox publishes."""
    container = build(settings or documented_settings())
    return asyncapi_document(container.broker, title=TITLE, description=ASYNCAPI_DESCRIPTION)


def openapi(settings: PlacementsSettings | None = None) -> dict[str, Any]:
    """The OpenAPI document of the public API (settings do not change it)."""
    return create_app(build(settings or documented_settings())).openapi()
