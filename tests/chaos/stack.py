"""The chaos suite's world: its own PostgreSQL and three-node Kafka, the three services as
processes on them, an SMTP sink, and HTTP calls that ride out restarts.

`ChaosInfra` is the session's infrastructure (a `PrivatePostgres`, a `KafkaCluster` of three
nodes, the identity provider). A `Stack` is one database (provisioned as `apl infra up`
provisions `apl`: each service's role owns its schema) and one topic prefix on it, with the
three services running as separate processes, each as its own database role and Kafka
principal. Trials run in a stack one after another, each in a region of its own (the dev
realm has a coordinator for each of 13 regions), so the services need not start afresh for
each trial; a stack whose regions are used up is replaced by a new one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email
import email.policy
import email.utils
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller

from devtools.localinfra import KafkaCluster
from devtools.synthetic import REGIONS
from shared.contracts.topics import ALL_TOPICS, Topics
from tests.support.cluster import cluster_topics, drop_topics
from tests.support.identity import DevTokens
from tests.support.postgres import PrivatePostgres
from tests.support.processes import ServiceProcess, free_port

SERVICES = ("placements", "matching", "notifications")
NOTIFICATIONS_SECRET = "dev-notifications-secret"  # deploy/keycloak/dev: apl-notifications
ACTION_LINK_SECRET = "chaos-action-link-secret"
CHAOS_REGIONS: tuple[str, ...] = tuple(code for code, *_ in REGIONS)
"""Regions with a coordinator of their own in the dev realm (`coordinator-<region>`)."""
LEASE_SECONDS = 30
"""The notifications service's lease on a claimed batch (its minimum): a batch whose worker
was killed is due again after this long."""


def coordinator(region: str) -> str:
    """The dev realm's coordinator of `region` alone."""
    return f"coordinator-{region.lower()}"


# ------------------------------------------------------------------------------- the sink


@dataclass(frozen=True)
class Mail:
    message_id: str
    to: str
    subject: str
    at: float


class Sink:
    """An SMTP server in this process (its own thread) that keeps every message it is given:
    a second send of one Message-ID is kept as a second message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Mail] = []
        self._hook: tuple[Callable[[], object], concurrent.futures.Future[object]] | None = None
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = Mail(
            str(message["Message-ID"]),
            email.utils.parseaddr(str(message["To"]))[1],
            str(message["Subject"]),
            time.monotonic(),
        )
        with self._lock:
            self._messages.append(mail)
            armed, self._hook = self._hook, None
        if armed is not None:
            hook, done = armed
            try:
                done.set_result(hook())
            except Exception as error:
                done.set_exception(error)
        return "250 OK"

    def messages(self) -> list[Mail]:
        with self._lock:
            return list(self._messages)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def arm(self, hook: Callable[[], object]) -> concurrent.futures.Future[object]:
        """Call `hook` (in the sink's thread) when the next message has been received and
        kept, before the sender hears the server's 250: a sender killed by it has delivered a
        message it cannot know it delivered. The future holds the hook's result."""
        done: concurrent.futures.Future[object] = concurrent.futures.Future()
        with self._lock:
            self._hook = (hook, done)
        return done

    def disarm(self) -> None:
        with self._lock:
            self._hook = None


# --------------------------------------------------------------------------- the session


@dataclass
class ChaosInfra:
    pg: PrivatePostgres
    kafka: KafkaCluster
    issuer: str
    folder: Path
    sink: Sink


# ------------------------------------------------------------------------------ a stack


@dataclass
class Stack:
    """The three services on one database and one topic prefix of the chaos infrastructure."""

    infra: ChaosInfra
    name: str
    database_url: str = ""
    topics: Topics = field(default_factory=Topics)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    regions: list[str] = field(default_factory=lambda: list(CHAOS_REGIONS))
    """Regions no trial of this stack has used yet."""

    @property
    def log_dir(self) -> Path:
        return self.infra.folder / "logs" / self.name

    def env(self, service: str, placements_port: int) -> dict[str, str]:
        kafka = self.infra.kafka
        connection = kafka.services[service]
        env = {
            # never the shared infrastructure's settings in .local/apl.env
            "APL_ENV_FILE": str(self.infra.folder / "no-such.env"),
            "APL_TOPIC_PREFIX": self.topics.prefix,
            "APL_AUTH_ISSUER": self.infra.issuer,
            **connection.environment(service),
            "APL_KAFKA_BOOTSTRAP": ",".join(n.address for n in kafka.nodes),
            # static membership, as compose gives each replica: a restarted service takes its
            # partitions back at once
            "APL_KAFKA_INSTANCE_ID": f"{self.name}-{service}",
            f"APL_{service.upper()}_DATABASE_URL": PrivatePostgres.service_url(
                self.database_url, service
            ),
            "APL_ACTION_LINK_SECRET": ACTION_LINK_SECRET,
        }
        if service == "notifications":
            env |= {
                "APL_NOTIFICATIONS_PLACEMENTS_URL": f"http://127.0.0.1:{placements_port}",
                "APL_NOTIFICATIONS_CLIENT_SECRET": NOTIFICATIONS_SECRET,
                "APL_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
                "APL_NOTIFICATIONS_SMTP_PORT": str(self.infra.sink.port),
                "APL_NOTIFICATIONS_LEASE_SECONDS": str(LEASE_SECONDS),
            }
        return env

    async def start(self) -> None:
        database = f"chaos_{self.name}"
        self.database_url = await asyncio.to_thread(self.infra.pg.database, database)
        self.topics = await cluster_topics(self.infra.kafka, f"c{uuid.uuid4().hex[:8]}.")
        placements_port = free_port()
        for service in SERVICES:
            process = ServiceProcess(service, self.env(service, placements_port), self.log_dir)
            if service == "placements":
                process.port = placements_port
            self.processes[service] = process
        # side by side: each spends seconds importing and joining its consumer group
        await asyncio.gather(*(asyncio.to_thread(p.start, 120) for p in self.processes.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.processes.values()))

    async def drop(self) -> None:
        """Stop the services and remove the topics (a cluster keeps every replica's files)."""
        await self.stop()
        with contextlib.suppress(Exception):
            await drop_topics(self.infra.kafka, self.topics)

    def take_region(self) -> str | None:
        return self.regions.pop(0) if self.regions else None

    @property
    def api(self) -> str:
        return self.processes["placements"].url

    def topic_names(self) -> list[str]:
        """Every contract topic of this stack (not the dead-letter twins)."""
        return [self.topics.name(t) for t in ALL_TOPICS]

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        conn: asyncpg.Connection = await asyncpg.connect(self.database_url)
        try:
            yield conn
        finally:
            await conn.close()


# ------------------------------------------------------------------------------ the API


class Api:
    """HTTP calls signed in as a dev user that ride out a restarting (or database-less)
    placements service: a refused connection or a 5xx is tried again, a POST with the same
    Idempotency-Key (the service answers a repeat from its idempotency record)."""

    def __init__(self, stack: Stack, tokens: DevTokens, wait: float = 180.0) -> None:
        self.stack = stack
        self.tokens = tokens
        self.wait = wait

    async def call(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.wait
        last = ""
        given = dict(kwargs.pop("headers", {}))
        while True:
            try:
                token = await asyncio.to_thread(self.tokens.token, user)  # cached, or fetched
                headers = {**given, "Authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(base_url=self.stack.api, timeout=15) as client:
                    response = await client.request(method, path, headers=headers, **kwargs)
                if response.status_code < 500:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as error:
                last = repr(error)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {path} kept failing for {self.wait:.0f} s: {last}")
            await asyncio.sleep(0.3)

    async def post(self, user: str, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        response = await self.call(user, "POST", path, json=body, headers={"Idempotency-Key": key})
        assert response.status_code < 300, (user, path, response.status_code, response.text)
        result: dict[str, Any] = response.json()
        return result

    async def get(self, user: str, path: str) -> Any:
        response = await self.call(user, "GET", path)
        assert response.status_code == 200, (user, path, response.status_code, response.text)
        return response.json()
