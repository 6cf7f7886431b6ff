"""Composition root of the notifications service.

`build(settings)` wires the container and connects to nothing (the AsyncAPI document is made from
it); `async with running(settings) as c:` applies the migrations, opens the pool and the broker (its
match- and round-event subscribers), runs the outbox relay and the delivery worker as background
tasks, and closes everything in reverse order. `main.py`, the tests and the benchmark use `running`;
tests inject other adapters (`running(settings, mail=..., contexts=...)`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from services.notifications.adapters.placements import PlacementsClient
from services.notifications.adapters.rendering import Renderer
from services.notifications.adapters.smtp import SmtpSender
from services.notifications.adapters.store import HeldMarks
from services.notifications.adapters.tokens import ClientCredentials, NoToken, TokenSource
from services.notifications.adapters.uow import PostgresNotificationsUnitOfWork
from services.notifications.adapters.webhook import WebhookSender
from services.notifications.domain.actions import LinkSigner
from services.notifications.entrypoints.subscribers import build_router
from services.notifications.handlers import (
    ContextSource,
    DeliveryWorker,
    HookSender,
    MailSender,
    Notifier,
    RetryPolicy,
)
from services.notifications.handover import HandOver
from services.notifications.reminders import ReminderScanner, ReminderSource
from services.notifications.settings import NotificationsSettings
from shared import runtime
from shared.contracts.events import NotificationEvent
from shared.http import asyncapi_document, broker_check, database_check, service_app
from shared.kafka import EventPolicy
from shared.netguard import WebhookGuard
from shared.outbox import OutboxRelay
from shared.uow import system_actor

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION = "1.0.0"
_DEFAULT_BOOTSTRAP: str = NotificationsSettings.model_fields["kafka_bootstrap"].default
TITLE = "APL Match notifications"
DESCRIPTION = (
    "Turns match and round events into notices for workplace supervisors (e-mail or signed "
    "webhook) and for students (e-mail), each exactly once, and reports every outcome."
)


@dataclass
class Container:
    """Everything the service is made of, wired once."""

    settings: NotificationsSettings
    pool: asyncpg.Pool
    broker: KafkaBroker
    policy: EventPolicy
    relay: OutboxRelay
    http: httpx.AsyncClient
    """The placements client's and the token source's (closed by `running`)."""
    hooks_http: httpx.AsyncClient
    """The webhook sender's, on the SSRF guard's transport (closed by `running`)."""
    tokens: TokenSource
    """This service's access tokens for the placements service (client credentials)."""
    contexts: ContextSource
    mail: MailSender
    hooks: HookSender
    notifier: Notifier
    worker: DeliveryWorker
    marks: HeldMarks
    reminders: ReminderScanner | None = None
    """The reminders before a placement starts (None: `reminder_days` 0, or no source)."""

    def uow(self) -> PostgresNotificationsUnitOfWork:
        return PostgresNotificationsUnitOfWork(self.pool, actor=system_actor(self.settings.service))


def build(
    settings: NotificationsSettings,
    *,
    mail: MailSender | None = None,
    contexts: ContextSource | None = None,
    hooks: HookSender | None = None,
    renderer: Renderer | None = None,
    tokens: TokenSource | None = None,
    reminders: ReminderSource | None = None,
) -> Container:
    """Wire the service; nothing connects yet. The keyword arguments replace adapters (tests);
    the due reminders come from `reminders`, else from `contexts` if it gives them (the
    placements client does)."""
    # A delivery loop holds a connection while it claims or records; the hand-over marks hold
    # one all along (HeldMarks); the consumer, the relay's marks and /readyz need more.
    pool = runtime.pool(
        settings, max_size=max(settings.pool_max_size, settings.worker_concurrency + 3)
    )
    broker = runtime.broker(settings)
    policy = runtime.policy(settings, broker, whole_batches=True)  # a poll in one transaction
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.send_timeout_seconds))
    if tokens is None:
        tokens = _token_source(settings, http)
    if contexts is None:
        contexts = PlacementsClient(
            http, settings.placements_url, tokens, timeout=settings.placements_timeout_seconds
        )
    if mail is None:
        mail = SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.send_timeout_seconds,
            connections=settings.smtp_connections,
            hand_over=HandOver(),
        )
    guard = WebhookGuard.of(settings.webhook_allowlist, environment=settings.environment)
    hooks_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.send_timeout_seconds), transport=guard.transport()
    )
    if hooks is None:
        hooks = WebhookSender(
            hooks_http, settings.webhook_secret.get_secret_value().encode(), guard=guard
        )
    signer = LinkSigner(
        settings.action_link_secret.get_secret_value().encode(), settings.action_link_base
    )
    notifier = Notifier(
        contexts, mail, hooks, renderer or Renderer(), settings.mail_from, links=signer
    )

    def uow() -> PostgresNotificationsUnitOfWork:
        return PostgresNotificationsUnitOfWork(pool, actor=system_actor(settings.service))

    marks = HeldMarks(pool)
    worker = DeliveryWorker(
        uow,
        notifier,
        RetryPolicy(
            max_attempts=settings.max_attempts,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
        ),
        concurrency=settings.worker_concurrency,
        poll_seconds=settings.worker_poll_seconds,
        batch_size=settings.worker_batch_size,
        lease_seconds=settings.lease_seconds,
        marks=marks,
    )
    broker.include_router(build_router(settings, policy, uow, on_recorded=worker.wake))
    if reminders is None and isinstance(contexts, ReminderSource):
        reminders = contexts
    scanner = (
        ReminderScanner(
            reminders,
            uow,
            settings.reminder_days,
            settings.reminder_poll_seconds,
            on_recorded=worker.wake,
        )
        if reminders is not None and settings.reminder_days > 0
        else None
    )
    broker.publisher(
        settings.topics.notifications,
        title="notifications/outcomes",
        description=(
            "NotificationDelivered or NotificationFailed, one per notice (per event and "
            "recipient: `recipient` supervisor or student), published from the transactional "
            "outbox."
        ),
        schema=NotificationEvent,
    )
    return Container(
        settings=settings,
        pool=pool,
        broker=broker,
        policy=policy,
        relay=runtime.relay(settings, broker),
        http=http,
        hooks_http=hooks_http,
        tokens=tokens,
        contexts=contexts,
        mail=mail,
        hooks=hooks,
        notifier=notifier,
        worker=worker,
        marks=marks,
        reminders=scanner,
    )


def _token_source(settings: NotificationsSettings, http: httpx.AsyncClient) -> TokenSource:
    """Client-credentials tokens from the configured issuer; none without one (local only:
    production settings require an issuer)."""
    if not settings.auth_issuer:
        return NoToken()
    return ClientCredentials(
        http,
        issuer=settings.auth_issuer,
        client_id=settings.oauth_client_id,
        client_secret=settings.oauth_client_secret.get_secret_value(),
        margin=settings.token_refresh_margin_seconds,
        timeout=settings.placements_timeout_seconds,
    )


@contextlib.asynccontextmanager
async def running(
    settings: NotificationsSettings,
    *,
    mail: MailSender | None = None,
    contexts: ContextSource | None = None,
    hooks: HookSender | None = None,
    renderer: Renderer | None = None,
    tokens: TokenSource | None = None,
    reminders: ReminderSource | None = None,
) -> AsyncIterator[Container]:
    """The service, running: migrated, connected, consuming, delivering, relaying, and looking
    for due reminders."""
    c = build(
        settings,
        mail=mail,
        contexts=contexts,
        hooks=hooks,
        renderer=renderer,
        tokens=tokens,
        reminders=reminders,
    )
    tasks = {"relay": c.relay.run(), "delivery_worker": c.worker.run()}
    if c.reminders is not None:
        tasks["reminders"] = c.reminders.run()
    await runtime.migrate(settings, MIGRATIONS)
    async with (
        c.http,
        c.hooks_http,
        _closing(c.mail),
        runtime.opened(c.pool, c.broker),
        _released(c.marks),
        runtime.background(**tasks),
    ):
        yield c


@contextlib.asynccontextmanager
async def _released(marks: HeldMarks) -> AsyncIterator[None]:
    """Give the hand-over marks' held connection back once the worker has stopped, before the
    pool closes (a connection still held keeps `Pool.close` waiting)."""
    try:
        yield
    finally:
        await marks.release()


@contextlib.asynccontextmanager
async def _closing(mail: MailSender) -> AsyncIterator[None]:
    """QUIT the SMTP sender's kept-open connections on the way out (an injected sender is the
    caller's to close)."""
    try:
        yield
    finally:
        if isinstance(mail, SmtpSender):
            await mail.close()


def create_app(c: Container) -> FastAPI:
    """The HTTP side over a running container: `/healthz`, `/readyz`, `/docs/asyncapi.json`."""
    document = asyncapi_document(c.broker, title=TITLE, description=DESCRIPTION)
    return service_app(
        title=TITLE,
        description=DESCRIPTION,
        version=VERSION,
        checks={"broker": broker_check(c.broker), "database": database_check(c.pool)},
        asyncapi=lambda: document,
    )


def asyncapi(settings: NotificationsSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI document, for production topic names unless `settings` say otherwise (the
    defaults, whatever the environment says)."""
    if settings is None:
        settings = NotificationsSettings(
            topic_prefix="", kafka_bootstrap=_DEFAULT_BOOTSTRAP, environment="local"
        )
    c = build(settings)
    return asyncapi_document(c.broker, title=TITLE, description=DESCRIPTION)


def asyncapi_json(settings: NotificationsSettings | None = None) -> str:
    """`asyncapi()` as committed in docs/asyncapi-notifications.json."""
    return json.dumps(asyncapi(settings), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
