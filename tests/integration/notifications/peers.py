"""Real peers of the notifications service for its tests: an SMTP server (aiosmtpd), the
placements service's notice-context route and a webhook receiver that verifies signatures (both
small FastAPI apps under uvicorn in a background thread)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response

from services.notifications.domain.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from shared.contracts.internal import NOTICE_CONTEXT_PATH, NoticeContext
from tests.support.processes import free_port

# ------------------------------------------------------------------------------------- SMTP


@dataclass
class SmtpInbox:
    """aiosmtpd handler: stores accepted messages; answers scripted codes per recipient."""

    messages: list[EmailMessage] = field(default_factory=list)
    script: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    always: dict[str, str] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.always:
                self.refused[rcpt] += 1
                return self.always[rcpt]
            if self.script[rcpt]:
                self.refused[rcpt] += 1
                return self.script[rcpt].pop(0)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in list(self.messages) if address in str(m["To"])]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[SmtpInbox, int]]:
    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


# ------------------------------------------------------------------------------------- HTTP


@contextlib.contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn in a daemon thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("test HTTP server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class PlacementsPeer:
    """Serves `GET /internal/v1/notice-context` from fixtures, like the placements service."""

    token: str
    contexts: dict[tuple[str, str], NoticeContext] = field(default_factory=dict)
    unavailable: dict[tuple[str, str], int] = field(default_factory=dict)  # 503s still to give
    calls: int = 0
    url: str = ""

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.get(NOTICE_CONTEXT_PATH)
        def notice_context(placement_id: str, student_id: str, request: Request) -> Response:
            self.calls += 1
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return Response(status_code=401)
            if self.unavailable.get((placement_id, student_id), 0) > 0:
                self.unavailable[(placement_id, student_id)] -= 1
                return Response(status_code=503)
            context = self.contexts.get((placement_id, student_id))
            if context is None:
                return Response(status_code=404)
            return Response(context.model_dump_json(), media_type="application/json")

        return api


@dataclass
class WebhookPeer:
    """Accepts webhooks whose signature verifies; can be told to answer 503 a few times."""

    secret: bytes
    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    headers: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    unavailable: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bad_signatures: int = 0
    clock: Callable[[], float] = time.time
    url: str = ""

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            body = await request.body()
            ok = verify(
                self.secret,
                request.headers.get(TIMESTAMP_HEADER, ""),
                request.headers.get(SIGNATURE_HEADER, ""),
                body,
                now=self.clock(),
            )
            if not ok:
                self.bad_signatures += 1
                return Response(status_code=401)
            if self.unavailable[name] > 0:
                self.unavailable[name] -= 1
                return Response(status_code=503)
            import json

            self.received[name].append(json.loads(body))
            self.headers[name].append(
                {
                    IDEMPOTENCY_HEADER: request.headers.get(IDEMPOTENCY_HEADER, ""),
                    TIMESTAMP_HEADER: request.headers.get(TIMESTAMP_HEADER, ""),
                }
            )
            return Response(status_code=204)

        return api


async def wait_until(
    condition: Callable[[], bool], within: float = 60.0, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
