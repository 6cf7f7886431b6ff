"""`apl serve notifications` as a real OS process: it serves health and AsyncAPI, tells a
supervisor, and after a SIGKILL and restart a redelivered event is still told only once."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.kafka import publish_event
from tests.integration.notifications.conftest import CLIENT_SECRET, SECRET, Peers, watching
from tests.integration.notifications.peers import context
from tests.support.fakes.notifications import confirmed, proposed, student_context
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra


async def test_service_process_tells_once_across_a_kill(
    infra: Infra,
    database_url: str,
    make_topics: Any,
    peers: Peers,
    producer: Any,
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    env = {
        **infra.kafka_env("notifications"),
        "APL_NOTIFICATIONS_DATABASE_URL": database_url,
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_NOTIFICATIONS_SCHEMA_NAME": f"n_{uuid.uuid4().hex[:8]}",
        "APL_NOTIFICATIONS_PLACEMENTS_URL": peers.placements.url,
        "APL_NOTIFICATIONS_AUTH_ISSUER": peers.issuer.url,
        "APL_NOTIFICATIONS_CLIENT_SECRET": CLIENT_SECRET,
        "APL_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "APL_NOTIFICATIONS_SMTP_PORT": str(peers.smtp_port),
        "APL_NOTIFICATIONS_WEBHOOK_SECRET": SECRET.decode(),
        "APL_NOTIFICATIONS_RETRY_BASE_SECONDS": "0.1",
        "APL_NOTIFICATIONS_WORKER_POLL_SECONDS": "0.2",
    }
    service = ServiceProcess("notifications", env, tmp_path)
    pid, sid = f"p-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    address = f"proc-{pid}@company.example"
    peers.placements.contexts[(pid, sid)] = context(pid, sid, email=address, language="en")
    peers.placements.students[sid] = student_context(sid, language="en")
    async with watching(infra.kafka, topics) as watcher:
        await asyncio.to_thread(service.start)
        try:
            async with httpx.AsyncClient(base_url=service.url) as http:
                assert (await http.get("/healthz")).status_code == 200
                assert (await http.get("/readyz")).json()["database"] is True
                doc = (await http.get("/docs/asyncapi.json")).json()
                addresses = {c["address"] for c in doc["channels"].values()}
                assert {topics.matches, topics.notifications} <= addresses
            event = proposed(pid, sid)
            await publish_event(producer, topics, event)
            await eventually(
                lambda: len(peers.smtp.to(address)) == 1, interval=0.05, what="first mail"
            )
            await watcher.wait_outcome(event.event_id)
            await watcher.wait_outcome(event.event_id, recipient="student")

            first = service.proc
            assert first is not None
            await asyncio.to_thread(service.kill)
            assert first.returncode == -signal.SIGKILL  # it was killed, not stopped
            await asyncio.to_thread(service.start)  # returns once /readyz answers 200
            assert service.starts == 2
            assert service.proc is not None
            assert service.proc.pid != first.pid
            assert service.proc.poll() is None
            await publish_event(producer, topics, event)  # redelivered after the restart
            sentinel = confirmed(pid, sid)
            await publish_event(producer, topics, sentinel)
            await watcher.wait_outcome(sentinel.event_id)
            subjects = [m["Subject"] for m in peers.smtp.to(address)]
            assert len(subjects) == 2, subjects
            assert subjects[0].startswith("A student is proposed for your placement")
            assert subjects[1].startswith("Placement confirmed")
            assert len(watcher.outcomes(source=event.event_id)) == 1
            await watcher.wait_outcome(sentinel.event_id, recipient="student")
            student = [m["Subject"] for m in peers.smtp.to(f"{sid}@student.example")]
            assert student == [
                "A placement is proposed for you: Elektrikerlärling",
                "Your placement is confirmed: Elektrikerlärling",
            ]
            assert len(watcher.outcomes(source=event.event_id, recipient="student")) == 1
        finally:
            await asyncio.to_thread(service.stop)
    assert "Traceback" not in service.log_path.read_text(errors="replace")
