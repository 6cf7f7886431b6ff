"""Real peers of the notifications service for its tests: an SMTP server (aiosmtpd), the
placements service's notice-context route and a webhook receiver that verifies signatures (both
small FastAPI apps under uvicorn in a background thread). bench/notifications.py uses
`serve_in_thread` and `context` too."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
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
from shared.contracts.internal import (
    NOTICE_CONTEXT_PATH,
    NoticeChannel,
    NoticeContext,
    NoticePlacement,
    NoticeStudent,
)
from shared.contracts.profiles import Supervisor
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
def serve_in_thread(app: Callable[..., Awaitable[None]]) -> Iterator[str]:
    """Run the ASGI `app` under uvicorn in a daemon thread; yields its base URL."""
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


def context(
    placement_id: str,
    student_id: str,
    *,
    email: str,
    language: str = "sv",
    name: str = "Anna Berg",
    shared: bool = False,
    webhook_url: str | None = None,
    student_name: str = "Kim Lindqvist",
) -> NoticeContext:
    """What the placements service answers about one (placement, student): supervisor `email`,
    in `language`; the student's name and contact only when `shared`."""
    return NoticeContext(
        placement=NoticePlacement(
            placement_id=placement_id,
            company_id="c-1",
            region="SE-AB",
            title="Elektrikerlärling",
            starts_on=date(2027, 1, 18),
            ends_on=date(2027, 3, 12),
        ),
        supervisor=Supervisor.model_validate({"name": name, "email": email, "language": language}),
        channel=NoticeChannel(kind="webhook", webhook_url=webhook_url)
        if webhook_url
        else NoticeChannel(),
        student=NoticeStudent(
            student_id=student_id,
            programme="EE",
            available_from=date(2027, 1, 11),
            available_to=date(2027, 3, 19),
            contact_shared=shared,
            name=student_name if shared else None,
            email=f"{student_id}@student.example" if shared else None,
            phone="+46 70 123 45 67" if shared else None,
        ),
    )


@dataclass
class PlacementsPeer:
    """Serves `GET /internal/v1/notice-context` from fixtures, like the placements service."""

    token: str
    contexts: dict[tuple[str, str], NoticeContext] = field(default_factory=dict)
    unavailable: dict[tuple[str, str], int] = field(default_factory=dict)  # 503s still to give
    url: str = ""

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.get(NOTICE_CONTEXT_PATH)
        def notice_context(placement_id: str, student_id: str, request: Request) -> Response:
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
            self.received[name].append(json.loads(body))
            self.headers[name].append(
                {
                    IDEMPOTENCY_HEADER: request.headers.get(IDEMPOTENCY_HEADER, ""),
                    TIMESTAMP_HEADER: request.headers.get(TIMESTAMP_HEADER, ""),
                }
            )
            return Response(status_code=204)

        return api
