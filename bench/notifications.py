"""Delivery benchmark of the notifications service: MatchProposed events -> e-mails delivered,
beside raw aiosmtplib on the same SMTP sink, in the same run.

Uses the running local infrastructure (`.local/apl.env` or the environment: APL_KAFKA_BOOTSTRAP,
APL_DATABASE_URL as admin), under a fresh topic prefix and a fresh database per run, removed at
the end. In this process it runs an aiosmtpd sink that counts messages and a stand-in for the
placements service's notice-context routes (a bare ASGI app under uvicorn in a thread: the batch
route `POST /internal/v1/notice-contexts` and the single ones, serving
`bench.notification_peers.context` and `.student_context`). Each event is two notices: one to the
placement's supervisor, one to the student. It alternates, `--repeat` times each:

- `raw`: aiosmtplib sends 2N ready messages (composed beforehand) over `--connections`
  connections to the sink: the limit of the path on this machine;
- `1 replica`: it publishes N MatchProposed events, then starts `apl serve notifications`
  (main.py: `bootstrap.running` under the shared `serve()`) as its own OS process, so that its
  CPU is measured apart from the sink's and the stand-in's, and times the sink from the first to
  the last of the 2N messages;
- `2 replicas`: the same with two such processes on one database and consumer group.

It prints each run's notices per second and CPU milliseconds per notice (all service processes),
the medians, and the ratios: 1 replica / raw, and 2 replicas / 1 replica (targets: >= 400
notices/s in one process, >= 1.7 x that with two).

    .venv/bin/python -m bench.notifications [--notices 2000] [--repeat 3] [--connections 4]

`APL_BENCH_PROFILE=1` runs each service process under cProfile (the files are named).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiosmtplib
import asyncpg
from aiosmtpd.controller import Controller

from bench.notification_peers import context, serve_in_thread, student_context
from devtools.ports import free_port
from services.notifications.adapters.smtp import OutgoingMail, compose_email
from services.notifications.settings import NotificationsSettings
from shared.contracts.events import MatchProposed, MatchProposedData
from shared.contracts.internal import (
    NOTICE_CONTEXT_PATH,
    NOTICE_CONTEXTS_PATH,
    STUDENT_NOTICE_CONTEXT_PATH,
    NoticeContexts,
    NoticeContextsQuery,
)
from shared.contracts.topics import Topics
from shared.kafka import delete_topics, ensure_topics, make_broker
from shared.kafka_client import KafkaConnection
from shared.settings import KafkaAdminSettings, ServiceSettings

REGION = "SE-AB"
TOKEN = "bench-token"
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (from /proc; Linux only)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Sink:
    """aiosmtpd handler that only counts and timestamps accepted messages."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.connections = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.perf_counter()
        self.count += 1
        self.first = self.first or now
        self.last = now
        return "250 OK"


ISSUER_PATH = "/realms/bench"


async def _json(send: Any, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _issuer(scope: dict[str, Any], send: Any) -> None:
    """The stand-in issuer: its discovery document, and a token endpoint that hands out TOKEN
    (the service takes one and keeps it, so this is asked once per run)."""
    if scope["path"].endswith("/.well-known/openid-configuration"):
        host = dict(scope["headers"])[b"host"].decode()
        endpoint = f"http://{host}{ISSUER_PATH}/token"
        await _json(send, json.dumps({"token_endpoint": endpoint}).encode())
        return
    await _json(send, json.dumps({"access_token": TOKEN, "expires_in": 3600}).encode())


def _supervisor(placement_id: str, student_id: str) -> Any:
    return context(placement_id, student_id, email=f"{placement_id}@company.example")


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _context_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The notice-context routes, as bare ASGI (cheap, so the stand-in is not the bottleneck),
    and the issuer the service takes its bearer token from."""
    if scope["type"] != "http":  # served with lifespan="off": only HTTP requests come
        raise RuntimeError(f"only HTTP is served, not {scope['type']!r}")
    if scope["path"].startswith(ISSUER_PATH):
        await _issuer(scope, send)
        return
    if dict(scope["headers"]).get(b"authorization") != f"Bearer {TOKEN}".encode():
        await _json(send, b"{}", 401)
        return
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if scope["path"] == NOTICE_CONTEXTS_PATH:
        asked = NoticeContextsQuery.model_validate_json(await _body(receive))
        answer = NoticeContexts(
            supervisors=tuple(_supervisor(k.placement_id, k.student_id) for k in asked.supervisors),
            students=tuple(student_context(k.student_id, k.placement_id) for k in asked.students),
        )
        await _json(send, answer.model_dump_json().encode())
    elif scope["path"] == NOTICE_CONTEXT_PATH:
        found = _supervisor(query["placement_id"], query["student_id"])
        await _json(send, found.model_dump_json().encode())
    elif scope["path"] == STUDENT_NOTICE_CONTEXT_PATH:
        student = student_context(query["student_id"], query.get("placement_id"))
        await _json(send, student.model_dump_json().encode())
    else:
        await _json(send, b"{}", 404)


async def _publish(kafka: KafkaConnection, topics: Topics, n: int, placements: int) -> None:
    """N MatchProposed events for `placements` distinct placements (and so supervisors),
    published as `kafka` (the admin stands in for the matching service)."""
    producer = make_broker(kafka, "bench-feeder")
    async with producer:
        await producer.connect()
        events = [
            MatchProposed(
                producer="matching",
                data=MatchProposedData(
                    match_id=uuid.uuid4(),
                    region=REGION,
                    student_id=f"s-{i}",
                    placement_id=f"p-{i % placements}",
                    round_id=uuid.uuid4(),
                    company_id="c-1",
                    rank=1,
                ),
            )
            for i in range(n)
        ]
        pending = [
            await producer.publish(e.to_json(), topics.name(e.topic), key=e.key(), no_confirm=True)
            for e in events
        ]
        await asyncio.gather(*pending)


async def _settled(database_url: str, expected: int) -> tuple[dict[str, int], int]:
    """(deliveries by status, outbox rows unsent) once all are delivered and their outcomes
    published, or after 10 s (the outbox relay may still be publishing)."""
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            rows: dict[str, int] = {
                r["status"]: r["count"]
                for r in await conn.fetch(
                    "SELECT status, count(*) FROM notifications.deliveries GROUP BY 1"
                )
            }
            unsent: int = await conn.fetchval(
                "SELECT count(*) FROM notifications.outbox WHERE sent_at IS NULL"
            )
            if unsent == 0 and rows.get("delivered") == expected:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return rows, unsent


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the service's process group, SIGKILL it after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _python(profile: Path) -> list[str]:
    """The service's command line; under cProfile (written to `profile`, and its 25 costliest
    functions printed) with `APL_BENCH_PROFILE=1`."""
    if os.environ.get("APL_BENCH_PROFILE"):
        print(f"  profiling into {profile}")
        return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "services.cli"]
    return [sys.executable, "-m", "services.cli"]


@dataclass
class Run:
    rate: float
    cpu_ms: float
    connections: int


async def _raw(port: int, n: int, connections: int) -> float:
    """Seconds aiosmtplib takes to send `n` ready messages over `connections` connections."""
    mails = [
        compose_email(
            mail_from="APL Match <noreply@apl-match.example>",
            to_name="Anna Berg",
            to_address=f"p-{i}@company.example",
            subject="En elev föreslås för din APL-plats: Elektrikerlärling",
            text="Hej Anna Berg,\n\nEn elev föreslås för din plats.\n" * 12,
            html="<p>Hej Anna Berg,</p>\n<p>En elev föreslås för din plats.</p>\n" * 12,
            message_id=f"<{uuid.uuid4()}@apl-match>",
            language="sv",
        )
        for i in range(n)
    ]
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port) for _ in range(connections)]
    await asyncio.gather(*(c.connect() for c in clients))

    async def send(client: aiosmtplib.SMTP, share: list[OutgoingMail]) -> None:
        for mail in share:
            await client.sendmail(mail.sender, [mail.recipient], mail.data)

    started = time.perf_counter()
    await asyncio.gather(*(send(c, mails[i::connections]) for i, c in enumerate(clients)))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.quit() for c in clients))
    return elapsed


async def _service_run(
    infra: ServiceSettings,
    sink: Sink,
    smtp_port: int,
    context_url: str,
    *,
    n: int,
    replicas: int,
    placements: int,
    connections: int,
    concurrency: int | None,
) -> Run:
    """N events through `replicas` service processes on a fresh database and topics."""
    admin_url = infra.database_url
    kafka = KafkaAdminSettings.load().kafka  # topics, ACLs, the feeder
    service_kafka = NotificationsSettings.load().kafka  # the service's own principal
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = Topics(prefix)
    db_name = f"bench_notifications_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f"CREATE DATABASE {db_name}")
    database_url = f"{admin_url.rpartition('/')[0]}/{db_name}"
    await ensure_topics(kafka, topics)
    procs: list[subprocess.Popen[bytes]] = []
    logs = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    expected = 2 * n  # the supervisor's notice and the student's
    try:
        await _publish(kafka, topics, n, placements)
        sink.reset()
        for replica in range(replicas):
            env = {
                **os.environ,
                **service_kafka.environment("notifications"),
                "APL_NOTIFICATIONS_DATABASE_URL": database_url,
                "APL_TOPIC_PREFIX": prefix,
                "APL_NOTIFICATIONS_PLACEMENTS_URL": context_url,
                "APL_NOTIFICATIONS_AUTH_ISSUER": context_url + ISSUER_PATH,
                "APL_NOTIFICATIONS_CLIENT_SECRET": "bench-client-secret",
                "APL_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
                "APL_NOTIFICATIONS_SMTP_PORT": str(smtp_port),
                "APL_NOTIFICATIONS_SMTP_CONNECTIONS": str(connections),
                "APL_NOTIFICATIONS_WEBHOOK_SECRET": "bench-secret",
                "APL_NOTIFICATIONS_HTTP_PORT": str(free_port()),
                "APL_NOTIFICATIONS_REMINDER_DAYS": "0",
                "APL_LOG_LEVEL": "WARNING",
                "APL_LOG_JSON": "true",
            }
            if concurrency is not None:
                env["APL_NOTIFICATIONS_WORKER_CONCURRENCY"] = str(concurrency)
            with (logs / f"notifications-{replica}.log").open("wb") as out:
                procs.append(
                    await asyncio.to_thread(
                        subprocess.Popen,
                        [
                            *_python(logs / f"notifications-{replica}.prof"),
                            "serve",
                            "notifications",
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.perf_counter() + 600
        cpu_first: float | None = None
        counted_from = 0
        while sink.count < expected:
            for i, proc in enumerate(procs):
                if proc.poll() is not None:
                    text = (logs / f"notifications-{i}.log").read_text()[-3000:]
                    raise SystemExit(f"service exited:\n{text}")
            if time.perf_counter() > deadline:
                raise SystemExit(f"only {sink.count}/{expected} delivered after 600 s")
            if sink.count and cpu_first is None:
                cpu_first = sum(_cpu_seconds(p.pid) for p in procs)
                counted_from = sink.count
            await asyncio.sleep(0.02)
        cpu_last = sum(_cpu_seconds(p.pid) for p in procs)
        span = max(sink.last - sink.first, 1e-9)
        rate = (sink.count - 1) / span
        per_notice = (cpu_last - (cpu_first or 0.0)) / max(sink.count - counted_from, 1)
        rows, unsent = await _settled(database_url, expected)
        if rows.get("delivered") != expected or sink.count != expected:
            raise SystemExit(f"{sink.count} e-mails for {expected} notices; deliveries {rows}")
        if unsent:
            print(f"  (outbox still had {unsent} outcome events unsent after 10 s)")
        return Run(rate, per_notice * 1000, sink.connections)
    finally:
        for proc in procs:
            _stop(proc)
        with contextlib.suppress(Exception):
            await admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        await admin.close()
        await delete_topics(kafka, topics)


async def run(
    n: int, repeat: int, placements: int, connections: int, concurrency: int | None
) -> None:
    infra = ServiceSettings.load()  # the environment, else .local/apl.env
    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    rates: dict[str, list[float]] = {"raw": [], "1 replica": [], "2 replicas": []}
    cpu: dict[str, list[float]] = {"1 replica": [], "2 replicas": []}
    try:
        with serve_in_thread(_context_app) as context_url:
            for _ in range(repeat):
                sink.reset()
                seconds = await _raw(smtp_port, 2 * n, connections)
                rates["raw"].append(2 * n / seconds)
                print(
                    f"raw aiosmtplib: {2 * n} ready messages over {connections} connections "
                    f"in {seconds:.2f} s: {2 * n / seconds:,.1f}/s"
                )
                for replicas in (1, 2):
                    name = f"{replicas} replica" + ("s" if replicas > 1 else "")
                    got = await _service_run(
                        infra,
                        sink,
                        smtp_port,
                        context_url,
                        n=n,
                        replicas=replicas,
                        placements=placements,
                        connections=connections,
                        concurrency=concurrency,
                    )
                    rates[name].append(got.rate)
                    cpu[name].append(got.cpu_ms)
                    print(
                        f"{name}: {2 * n} notices ({n} events) over {got.connections} SMTP "
                        f"connection(s): {got.rate:,.1f} notices/s, "
                        f"{got.cpu_ms:.2f} ms CPU per notice"
                    )
    finally:
        controller.stop()
    median = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        extra = f", {statistics.median(cpu[k]):.2f} ms CPU per notice" if k in cpu else ""
        print(f"{k}: median {median[k]:,.1f}/s over {len(v)} runs (best {max(v):,.1f}){extra}")
    print(
        f"1 replica / raw (medians): {median['1 replica'] / median['raw']:.2f}; "
        f"2 replicas / 1 replica: {median['2 replicas'] / median['1 replica']:.2f} "
        "(targets: 1 replica >= 400/s, 2 replicas >= 1.7 x 1 replica)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notices", type=int, default=2000, help="events (2 notices each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the service's")
    parser.add_argument("--placements", type=int, default=700, help="distinct supervisors")
    args = parser.parse_args()
    asyncio.run(run(args.notices, args.repeat, args.placements, args.connections, args.concurrency))


if __name__ == "__main__":
    main()
