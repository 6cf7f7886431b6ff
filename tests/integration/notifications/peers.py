"""Real peers of the notifications service for its tests: an SMTP server (aiosmtpd), an OIDC
issuer's client-credentials token endpoint, the placements service's notice-context route (which
takes only that issuer's live tokens) and a webhook receiver that verifies signatures (small FastAPI
apps under uvicorn in a background thread). The SMTP server's and the placements routes' (the
supervisor's and the student's notice context) answers are those of the in-process fakes
(tests/support/fakes/notifications.py) they extend; the sample context and the thread server are
bench/notification_peers.py's."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from bench.notification_peers import context, serve_in_thread
from services.notifications.adapters.smtp import SmtpSender
from services.notifications.domain.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from shared.contracts.internal import (
    NOTICE_CONTEXT_PATH,
    NOTICE_CONTEXTS_PATH,
    REMINDERS_DUE_PATH,
    STUDENT_NOTICE_CONTEXT_PATH,
    NoticeContexts,
    NoticeContextsQuery,
)
from tests.support.fakes.notifications import FakeContextSource, FakeMailSender
from tests.support.processes import free_port

__all__ = [
    "IssuerPeer",
    "PlacementsPeer",
    "SmtpInbox",
    "WebhookPeer",
    "context",
    "serve_in_thread",
    "smtp_server",
]

# ------------------------------------------------------------------------------------- SMTP


@dataclass
class SmtpInbox(FakeMailSender):
    """aiosmtpd handler: stores accepted messages; answers the scripted replies per recipient."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            reply = self.refusal(rcpt)
            if reply is not None:
                return reply
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


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


@dataclass
class IssuerPeer:
    """An OIDC issuer's discovery document and token endpoint (client credentials, HTTP Basic)
    for one client. Its tokens are opaque; `live` says which it issued and did not `revoke`."""

    client_id: str
    client_secret: str
    expires_in: int = 300
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    refused: int = 0
    url: str = ""
    """The issuer URL (`<server>/realms/apl`), set once served."""

    def live(self, token: str) -> bool:
        return token in self.issued and token not in self.revoked

    def revoke_all(self) -> None:
        self.revoked.update(self.issued)

    def _client_ok(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return secrets.compare_digest(
            f"{user}:{password}", f"{self.client_id}:{self.client_secret}"
        )

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.get("/realms/apl/.well-known/openid-configuration")
        def discovery() -> dict[str, str]:
            return {
                "issuer": self.url,
                "token_endpoint": f"{self.url}/protocol/openid-connect/token",
            }

        @api.post("/realms/apl/protocol/openid-connect/token")
        async def token(request: Request) -> Response:
            grant_type = parse_qs((await request.body()).decode()).get("grant_type")
            if grant_type != ["client_credentials"] or not self._client_ok(
                request.headers.get("authorization", "")
            ):
                self.refused += 1
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            value = f"at-{len(self.issued) + 1}-{secrets.token_hex(4)}"
            self.issued.append(value)
            body = {
                "access_token": value,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "scope": "notices:read",
            }
            return JSONResponse(body)

        return api


@dataclass
class PlacementsPeer(FakeContextSource):
    """Serves `GET /internal/v1/notice-context`, `GET /internal/v1/student-notice-context` and
    the batch `POST /internal/v1/notice-contexts` (an outage of any key it asks for answers the
    whole call 503; `batches` records each call's keys) from the fake's contexts, like the
    placements service: only to a bearer of a live token of `issuer`."""

    issuer: IssuerPeer | None = None
    url: str = ""
    unauthorised: int = 0

    def app(self) -> FastAPI:
        api = FastAPI()

        refused = self.refused

        @api.get(NOTICE_CONTEXT_PATH)
        def notice_context(placement_id: str, student_id: str, request: Request) -> Response:
            if (refusal := refused(request)) is not None:
                return refusal
            status, found = self.answer(placement_id, student_id)
            if found is None:
                return Response(status_code=status)
            return Response(found.model_dump_json(), media_type="application/json")

        @api.get(STUDENT_NOTICE_CONTEXT_PATH)
        def student_notice_context(
            student_id: str, request: Request, placement_id: str | None = None
        ) -> Response:
            if (refusal := refused(request)) is not None:
                return refusal
            status, found = self.student_answer(student_id, placement_id)
            if found is None:
                return Response(status_code=status)
            return Response(found.model_dump_json(), media_type="application/json")

        @api.post(NOTICE_CONTEXTS_PATH)
        async def notice_contexts(request: Request) -> Response:
            if (refusal := refused(request)) is not None:
                return refusal
            return self.batch_answer(NoticeContextsQuery.model_validate_json(await request.body()))

        @api.get(REMINDERS_DUE_PATH)
        def reminders_due(
            starts_from: date,
            starts_until: date,
            request: Request,
            after: uuid.UUID | None = None,
        ) -> Response:
            if (refusal := refused(request)) is not None:
                return refusal
            found = self.due_answer(starts_from, starts_until, after)
            return Response(found.model_dump_json(), media_type="application/json")

        return api

    def refused(self, request: Request) -> Response | None:
        """A 401 unless the request bears a live token of `issuer`."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if self.issuer is None or scheme != "Bearer" or not self.issuer.live(token):
            self.unauthorised += 1
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return None

    def batch_answer(self, query: NoticeContextsQuery) -> Response:
        """The batch route's answer: every key's context, or 503 if any key is unavailable."""
        keys = [(k.placement_id, k.student_id) for k in query.supervisors]
        student_keys = [(k.student_id, k.placement_id, k.round_id) for k in query.students]
        self.batches.append((keys, student_keys))
        answers = [self.answer(*key) for key in keys]
        student_answers = [self.student_answer(s, p) for s, p, _ in student_keys]
        if any(status == 503 for status, _ in [*answers, *student_answers]):
            return Response(status_code=503)  # one key's outage fails the whole call
        found = NoticeContexts(
            supervisors=tuple(c for _, c in answers),
            students=tuple(c for _, c in student_answers),
        )
        return Response(found.model_dump_json(), media_type="application/json")


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


def sender_to(port: int, **options: Any) -> SmtpSender:
    """The SMTP sender to the local sink on `port` (`options`: the pool's, the gate)."""
    return SmtpSender(
        host="127.0.0.1",
        port=port,
        starttls=False,
        username=None,
        password=None,
        timeout=5.0,
        **options,
    )
