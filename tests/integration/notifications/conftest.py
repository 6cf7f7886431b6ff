"""Fixtures: the SMTP, issuer, placements and webhook peers, a Kafka watcher, and the service
in-process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from bench.notification_peers import serve_in_thread
from services.notifications.bootstrap import Container, running
from services.notifications.settings import NotificationsSettings
from shared.contracts.events import Event, parse_event
from shared.contracts.topics import Topics, dlt
from shared.kafka_client import KafkaConnection
from tests.integration.notifications.peers import (
    IssuerPeer,
    PlacementsPeer,
    SmtpInbox,
    WebhookPeer,
    smtp_server,
)
from tests.support.infra import Infra
from tests.support.waiting import eventually

CLIENT_ID = "apl-notifications"
CLIENT_SECRET = "test-notifications-secret"
SECRET = b"test-webhook-secret"
LINK_SECRET = "test-action-link-secret"
PUBLIC_URL = "https://apl.example.se"


@dataclass
class Watcher:
    """Collects every record of the notifications topic and of the matches DLT."""

    events: list[Event] = field(default_factory=list)
    dead: list[Any] = field(default_factory=list)

    def outcomes(
        self,
        notification_id: uuid.UUID | None = None,
        source: uuid.UUID | None = None,
        recipient: str = "supervisor",
    ) -> list[Event]:
        """Distinct outcome events of notices to `recipient` (`supervisor` or `student`; the
        outbox may publish one twice after a crash; consumers deduplicate by event_id, and so
        does this)."""
        seen: dict[uuid.UUID, Event] = {}
        for e in list(self.events):
            if (
                (notification_id is None or e.data.notification_id == notification_id)
                and (source is None or e.data.source_event_id == source)
                and e.data.recipient == recipient
            ):
                seen.setdefault(e.event_id, e)
        return list(seen.values())

    async def wait_outcome(
        self,
        source: uuid.UUID,
        count: int = 1,
        within: float = 60.0,
        recipient: str = "supervisor",
    ) -> list[Event]:
        """The outcome events of `source`'s notices to `recipient`, once there are `count`."""
        await eventually(
            lambda: len(self.outcomes(source=source, recipient=recipient)) >= count,
            wait=within,
            interval=0.05,
            what=f"{count} outcome(s) of event {source} for the {recipient}",
        )
        return self.outcomes(source=source, recipient=recipient)


async def _watch(kafka: KafkaConnection, topics: Topics, watcher: Watcher) -> None:
    consumer = kafka.consumer(
        topics.notifications,
        dlt(topics.matches),
        auto_offset_reset="earliest",
        group_id=f"watch-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    try:
        while True:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for r in records:
                    if tp.topic == topics.notifications:
                        watcher.events.append(parse_event("apl.notifications.v1", r.value))
                    else:
                        watcher.dead.append(r)
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def watching(kafka: KafkaConnection, topics: Topics) -> AsyncIterator[Watcher]:
    """A watcher of the service's output topics, reading as `kafka` (the admin)."""
    watcher = Watcher()
    task = asyncio.create_task(_watch(kafka, topics, watcher))
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Peers:
    smtp: SmtpInbox
    smtp_port: int
    placements: PlacementsPeer
    webhooks: WebhookPeer
    issuer: IssuerPeer


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    issuer = IssuerPeer(CLIENT_ID, CLIENT_SECRET)
    placements = PlacementsPeer(issuer=issuer)
    hooks = WebhookPeer(secret=SECRET)
    with (
        smtp_server() as (inbox, port),
        serve_in_thread(issuer.app()) as issuer_url,
        serve_in_thread(placements.app()) as placements_url,
        serve_in_thread(hooks.app()) as hooks_url,
    ):
        issuer.url = f"{issuer_url.rstrip('/')}/realms/apl"
        placements.url, hooks.url = placements_url, hooks_url
        yield Peers(inbox, port, placements, hooks, issuer)


def service_settings(
    infra: Infra, database_url: str, topics: Topics, peers: Peers, schema: str, **kw: Any
) -> NotificationsSettings:
    values: dict[str, Any] = {
        **infra.kafka_settings("notifications"),
        "database_url": database_url,
        "topic_prefix": topics.prefix,
        "placements_url": peers.placements.url,
        "placements_public_url": PUBLIC_URL,
        "auth_issuer": peers.issuer.url,
        "oauth_client_id": CLIENT_ID,
        "oauth_client_secret": CLIENT_SECRET,
        "action_link_secret": LINK_SECRET,
        "smtp_host": "127.0.0.1",
        "smtp_port": peers.smtp_port,
        "webhook_secret": SECRET.decode(),
        # the webhook receiver listens on loopback, which the SSRF guard refuses unless allowed
        "webhook_allowlist": "127.0.0.1",
        "max_attempts": 3,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "worker_poll_seconds": 0.1,
        "send_timeout_seconds": 5.0,
        "schema_name": schema,
        "outbox_poll_seconds": 0.1,
        "kafka_session_timeout_ms": 6000,
    }
    values.update(kw)
    return NotificationsSettings(**values)


@dataclass
class Running:
    container: Container
    topics: Topics
    watcher: Watcher

    @property
    def settings(self) -> NotificationsSettings:
        return self.container.settings

    @property
    def pool(self) -> asyncpg.Pool:
        return self.container.pool


@contextlib.asynccontextmanager
async def running_service(
    settings: NotificationsSettings, topics: Topics, kafka: KafkaConnection
) -> AsyncIterator[Running]:
    """The service in this process (`bootstrap.running`), and a watcher of its output topics
    (reading as `kafka`, the admin)."""
    async with watching(kafka, topics) as watcher, running(settings) as c:
        yield Running(c, topics, watcher)


@pytest.fixture(scope="module")
async def service(
    infra: Infra, database_url: str, make_topics: Callable[[], Any], peers: Peers
) -> AsyncIterator[Running]:
    topics = await make_topics()
    schema = f"n_{uuid.uuid4().hex[:8]}"
    settings = service_settings(infra, database_url, topics, peers, schema)
    async with running_service(settings, topics, infra.kafka) as running:
        yield running


@pytest.fixture(scope="module")
async def producer(infra: Infra) -> AsyncIterator[Any]:
    from shared.kafka import make_broker

    broker = make_broker(infra.kafka, "notifications-test-producer")
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.stop()
