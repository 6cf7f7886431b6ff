"""Composition root: settings in, a runnable `AsgiFastStream` app out.

Everything with a connection (the Postgres pool, the HTTP client) is opened in the lifespan and
closed there; the delivery worker and the outbox relay run as tasks of the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import structlog
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.specification import AsyncAPI

from services.notifications.adapters.placements import PlacementsClient
from services.notifications.adapters.rendering import Renderer
from services.notifications.adapters.smtp import SmtpSender
from services.notifications.adapters.webhook import WebhookSender
from services.notifications.entrypoints.subscriber import build_router
from services.notifications.handlers import DeliveryWorker, Notifier, record_notices
from services.notifications.settings import NotifierSettings
from shared.contracts.events import Event, NotificationEvent
from shared.db import create_pool
from shared.kafka import make_broker
from shared.outbox import OutboxRelay

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass
class _Runtime:
    """What the lifespan opened, for the Kafka handler and /readyz."""

    pool: asyncpg.Pool | None = None
    worker: DeliveryWorker | None = None
    consumer_conn: Any = None
    """The connection the Kafka consumer records notices on (taken from `pool` when needed)."""


def build_app(settings: NotifierSettings) -> AsgiFastStream:
    topics = settings.topics
    broker = make_broker(settings.kafka_bootstrap, client_id="notifications")
    runtime = _Runtime()

    consumer_lock = asyncio.Lock()

    async def on_event(event: Event) -> None:
        # The consumer keeps one connection across events (no per-event release and reset round
        # trip); after an error it gives the connection back and takes a fresh one next time.
        async with consumer_lock:
            assert runtime.pool is not None
            if runtime.consumer_conn is None:
                runtime.consumer_conn = await runtime.pool.acquire()
            conn = runtime.consumer_conn
            try:
                recorded = await record_notices(conn, event, digest_seconds=settings.digest_seconds)
            except BaseException:
                runtime.consumer_conn = None
                with contextlib.suppress(Exception):
                    await runtime.pool.release(conn)
                raise
        if recorded and runtime.worker is not None:
            runtime.worker.wake()

    router, _ = build_router(broker, topics, on_event, max_attempts=settings.max_attempts)
    broker.include_router(router)
    broker.publisher(
        topics.notifications,
        title="notifications/outcomes",
        description=(
            "NotificationDelivered or NotificationFailed, one per notice (per match event and "
            "supervisor), published from the transactional outbox."
        ),
        schema=NotificationEvent,
    )

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url,
            settings.db_schema,
            min_size=settings.pool_min_size,
            # each worker loop keeps one connection; the consumer and /readyz need the rest
            max_size=max(settings.pool_max_size, settings.worker_concurrency + 2),
        )
        timeout = httpx.Timeout(settings.send_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout) as http:
            placements = PlacementsClient(
                http,
                settings.placements_url,
                settings.placements_token.get_secret_value(),
                timeout=settings.placements_timeout_seconds,
            )
            smtp = SmtpSender(
                host=settings.smtp_host,
                port=settings.smtp_port,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=(
                    settings.smtp_password.get_secret_value() if settings.smtp_password else None
                ),
                timeout=settings.send_timeout_seconds,
            )
            hooks = WebhookSender(http, settings.webhook_secret.get_secret_value().encode())
            notifier = Notifier(placements, smtp, hooks, Renderer(), settings.mail_from)
            worker = DeliveryWorker(
                pool,
                notifier,
                max_attempts=settings.max_attempts,
                retry_base_seconds=settings.retry_base_seconds,
                retry_max_seconds=settings.retry_max_seconds,
                concurrency=settings.worker_concurrency,
                poll_seconds=settings.worker_poll_seconds,
                batch_size=settings.worker_batch_size,
            )
            relay = OutboxRelay(
                settings.database_url,
                settings.db_schema,
                broker,
                topics,
                poll_seconds=settings.outbox_poll_seconds,
            )
            runtime.pool, runtime.worker = pool, worker
            tasks = [
                asyncio.create_task(worker.run(), name="delivery-worker"),
                asyncio.create_task(relay.run(), name="outbox-relay"),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await smtp.close()
                if runtime.consumer_conn is not None:
                    with contextlib.suppress(Exception):
                        await pool.release(runtime.consumer_conn)
                    runtime.consumer_conn = None
                await pool.close()
                runtime.pool = None

    @get
    async def healthz(scope: Any) -> AsgiResponse:
        return AsgiResponse(b"ok", status_code=200)

    @get
    async def readyz(scope: Any) -> AsgiResponse:
        problems = []
        if not await broker.ping(timeout=2.0):
            problems.append("broker unreachable")
        try:
            if runtime.pool is None:
                problems.append("database pool not open")
            else:
                await runtime.pool.fetchval("SELECT 1")
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}")
        if problems:
            return AsgiResponse("; ".join(problems).encode(), status_code=503)
        return AsgiResponse(b"ready", status_code=200)

    return AsgiFastStream(
        broker,
        specification=AsyncAPI(
            title="APL Match notifications",
            version="1.0.0",
            description=(
                "Turns match events into notices for workplace supervisors (e-mail or signed "
                "webhook), each exactly once, and reports every outcome."
            ),
        ),
        lifespan=lifespan,
        asgi_routes=[("/healthz", healthz), ("/readyz", readyz)],
        asyncapi_path="/docs/asyncapi",
    )


def asyncapi_document(settings: NotifierSettings | None = None) -> str:
    """The AsyncAPI document for production topic names, as committed in docs/."""
    settings = settings or NotifierSettings(topic_prefix="")
    app = build_app(settings)
    schema: dict[str, Any] = app.schema.to_specification().to_jsonable()
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
