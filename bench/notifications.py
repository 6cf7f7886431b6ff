"""Delivery benchmark of the notifications service: MatchProposed events -> e-mails delivered.

Uses the running local infrastructure (`.local/apl.env` or the environment: APL_KAFKA_BOOTSTRAP,
APL_DATABASE_URL as admin), under a fresh topic prefix and a fresh database, both removed at the
end. In this process it runs an aiosmtpd sink that counts messages and a stand-in for the
placements service's notice-context route (a bare ASGI app under uvicorn in a thread, serving
`bench.notification_peers.context`, which the tests' peers use too). It publishes N
MatchProposed events, then starts `apl serve notifications` (main.py: `bootstrap.running` under
the shared `serve()`) as its own OS process, so that its CPU is measured apart from the sink's and
the stand-in's, and prints, from the first to the last message the sink accepted:

- notices per second delivered end to end;
- CPU seconds (user + system) of the notifications process per notice.

    .venv/bin/python -m bench.notifications [--notices 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import httpx
from aiosmtpd.controller import Controller

from bench.notification_peers import context, serve_in_thread
from devtools.ports import free_port
from services.notifications.settings import NotificationsSettings
from shared.contracts.events import MatchProposed, MatchProposedData
from shared.contracts.internal import NOTICE_CONTEXT_PATH
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


async def _context_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The notice-context route, as bare ASGI (cheap, so the stand-in is not the bottleneck),
    and the issuer the service takes its bearer token from."""
    if scope["type"] != "http":  # served with lifespan="off": only HTTP requests come
        raise RuntimeError(f"only HTTP is served, not {scope['type']!r}")
    if scope["path"].startswith(ISSUER_PATH):
        await _issuer(scope, send)
        return
    query = parse_qs(scope["query_string"].decode())
    headers = dict(scope["headers"])
    if scope["path"] != NOTICE_CONTEXT_PATH or headers.get(b"authorization") != (
        f"Bearer {TOKEN}".encode()
    ):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    placement_id, student_id = query["placement_id"][0], query["student_id"][0]
    notice = context(placement_id, student_id, email=f"{placement_id}@company.example")
    body = notice.model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _publish(kafka: KafkaConnection, topics: Topics, n: int, placements: int) -> None:
    """N MatchProposed events for `placements` distinct placements (and so supervisors),
    published as `kafka` (the admin stands in for the matching service)."""
    producer = make_broker(kafka, "bench-feeder")
    async with producer:
        await producer.connect()
        events = [
            MatchProposed(
                producer="bench",
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


async def _settled(database_url: str, http_port: int, n: int) -> tuple[dict[str, int], int, int]:
    """(deliveries by status, outbox rows unsent, /readyz status) once all N are delivered and
    their outcomes published, or after 10 s (the outbox relay may still be publishing)."""
    conn = await asyncpg.connect(database_url)
    try:
        async with httpx.AsyncClient() as http:
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
                if unsent == 0 and rows.get("delivered") == n:
                    break
                await asyncio.sleep(0.1)
            ready = (await http.get(f"http://127.0.0.1:{http_port}/readyz")).status_code
    finally:
        await conn.close()
    return rows, unsent, ready


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the service's process group, SIGKILL it after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def run(n: int, concurrency: int | None, placements: int) -> None:
    infra = ServiceSettings.load()  # the environment, else .local/apl.env
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
    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    proc: subprocess.Popen[bytes] | None = None
    logs = Path(tempfile.mkdtemp(prefix="bench-notifications-")) / "notifications.log"
    try:
        with serve_in_thread(_context_app) as context_url:
            await _publish(kafka, topics, n, placements)
            print(f"published {n} MatchProposed events")

            http_port = free_port()
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
                "APL_NOTIFICATIONS_WEBHOOK_SECRET": "bench-secret",
                "APL_NOTIFICATIONS_HTTP_PORT": str(http_port),
                "APL_LOG_LEVEL": "WARNING",
                "APL_LOG_JSON": "true",
            }
            if concurrency is not None:
                env["APL_NOTIFICATIONS_WORKER_CONCURRENCY"] = str(concurrency)
            with logs.open("wb") as out:
                proc = await asyncio.to_thread(
                    subprocess.Popen,
                    [sys.executable, "-m", "services.cli", "serve", "notifications"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            cpu_first = 0.0
            deadline = time.perf_counter() + 600
            recorded_first = recorded_last = 0.0
            watch = None
            samples: list[tuple[float, int, int]] = []
            checked = 0.0
            while sink.count < n:
                if recorded_last == 0.0 and time.perf_counter() - checked > 0.25:
                    checked = time.perf_counter()
                    with contextlib.suppress(Exception):
                        watch = watch or await asyncpg.connect(database_url)
                        recorded = await watch.fetchval(
                            "SELECT count(*) FROM notifications.deliveries"
                        )
                        now = time.perf_counter()
                        recorded_first = recorded_first or (now if recorded else 0.0)
                        recorded_last = now if recorded == n else 0.0
                        samples.append((now, recorded, sink.count))
                if proc.poll() is not None:
                    raise SystemExit(f"service exited:\n{logs.read_text()[-3000:]}")
                if time.perf_counter() > deadline:
                    raise SystemExit(f"only {sink.count}/{n} delivered after 600 s")
                if sink.count and not cpu_first:
                    cpu_first = _cpu_seconds(proc.pid)
                    counted_from = sink.count
                await asyncio.sleep(0.02)
            cpu_last = _cpu_seconds(proc.pid)
            if watch is not None:
                await watch.close()
            span = max(sink.last - sink.first, 1e-9)
            rate = (sink.count - 1) / span
            per_notice = (cpu_last - cpu_first) / max(sink.count - counted_from, 1)

            rows, unsent, ready = await _settled(database_url, http_port, n)
            print(
                f"delivered {sink.count} e-mails over {sink.connections} SMTP connection(s) "
                f"in {span:.2f} s: {rate:,.1f} notices/s"
            )
            if os.environ.get("BENCH_TRACE"):
                for t, r, d in samples[::8]:
                    print(f"  t={t - samples[0][0]:6.2f} s recorded {r:5d} delivered {d:5d}")
            if recorded_last:
                print(
                    f"consumer: all {n} events recorded after "
                    f"{recorded_last - recorded_first:.2f} s (sampled)"
                )
            print(f"notifications process CPU: {per_notice * 1000:.1f} ms per notice")
            print(f"deliveries by status: {rows}; outbox unsent: {unsent}; readyz {ready}")
    finally:
        if proc is not None:
            _stop(proc)
        controller.stop()
        with contextlib.suppress(Exception):
            await admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        await admin.close()
        await delete_topics(kafka, topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notices", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the service's")
    parser.add_argument("--placements", type=int, default=700, help="distinct supervisors")
    args = parser.parse_args()
    asyncio.run(run(args.notices, args.concurrency, args.placements))


if __name__ == "__main__":
    main()
