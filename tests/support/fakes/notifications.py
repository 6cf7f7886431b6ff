"""Fakes of the notifications service: an in-memory unit of work with an in-memory delivery log
(the same named methods as `NoticeRepository`), and in-process peers (mail sender, notice-context
source, webhook sender) that the handler tests use directly and the integration tests' real
servers (tests/integration/notifications/peers.py) build on, a token source; and the match events
of a notice."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any, ClassVar

from services.notifications.adapters.smtp import classify_code
from services.notifications.adapters.store import Delivery, Result, Status
from services.notifications.domain.notices import (
    PermanentError,
    PlannedNotice,
    TransientError,
    UpstreamUnavailable,
)
from shared.contracts.events import (
    MatchCancelled,
    MatchCancelledData,
    MatchConfirmed,
    MatchConfirmedData,
    MatchProposed,
    MatchProposedData,
)
from shared.contracts.internal import NoticeContext
from shared.uow import InMemoryUnitOfWork

# ------------------------------------------------------------------------------ delivery log


@dataclass
class _Row:
    delivery: Delivery
    next_attempt_at: datetime
    finished_at: datetime | None = None


@dataclass
class InMemoryNoticeStore:
    """The `deliveries` table in a dict, with the repository's methods. `elapsed` moves its
    clock forward (tests make retries due without waiting)."""

    rows: dict[uuid.UUID, _Row] = field(default_factory=dict)
    elapsed: float = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.elapsed)

    async def insert_notice(
        self,
        notice: PlannedNotice,
        *,
        status: Status = "pending",
        digest_id: uuid.UUID | None = None,
    ) -> bool:
        clash = any(
            r.delivery.source_event_id == notice.source_event_id
            and r.delivery.recipient == notice.recipient
            for r in self.rows.values()
        )
        if notice.notification_id in self.rows or clash:
            return False
        delivery = Delivery(
            notification_id=notice.notification_id,
            source_event_id=notice.source_event_id,
            recipient=notice.recipient,
            kind=notice.kind,
            region=notice.region,
            placement_id=notice.placement_id,
            match_id=notice.match_id,
            student_id=notice.student_id,
            round_id=notice.round_id,
            detail=notice.detail,
            status=status,
            digest_id=digest_id,
            attempts=0,
        )
        self.rows[notice.notification_id] = _Row(delivery, self.now())
        return True

    async def open_digest(
        self, notice: PlannedNotice, digest_id: uuid.UUID, window_seconds: float
    ) -> bool:
        if notice.round_id is None:
            raise ValueError("only a notice of a round can join a digest")
        if digest_id not in self.rows:
            digest = Delivery(
                notification_id=digest_id,
                source_event_id=notice.round_id,
                recipient=notice.recipient,
                kind="digest",
                region=notice.region,
                placement_id=notice.placement_id,
                match_id=None,
                student_id=None,
                round_id=notice.round_id,
                detail=None,
                status="pending",
                digest_id=None,
                attempts=0,
            )
            self.rows[digest_id] = _Row(digest, self.now() + timedelta(seconds=window_seconds))
        row = self.rows[digest_id].delivery
        return row.status == "pending" and row.attempts == 0

    async def pick_due(self, limit: int = 1) -> list[Delivery]:
        now = self.now()
        due = [r for r in self.rows.values() if r.delivery.status == "pending"]
        due = sorted((r for r in due if r.next_attempt_at <= now), key=lambda r: r.next_attempt_at)
        return [r.delivery for r in due[:limit]]

    async def members_of(self, digest_id: uuid.UUID) -> list[Delivery]:
        return [
            r.delivery
            for r in self.rows.values()  # in the order they arrived
            if r.delivery.digest_id == digest_id and r.delivery.status == "grouped"
        ]

    async def record(self, results: Sequence[Result]) -> None:
        now = self.now()
        for result in results:
            row = self.rows[result.notification_id]
            row.delivery = dataclasses.replace(
                row.delivery,
                status=result.status,
                attempts=result.attempts,
                channel=result.channel or row.delivery.channel,
                last_error=result.error,
            )
            if result.status != "pending":
                row.finished_at = now
            if result.retry_in is not None:
                row.next_attempt_at = now + timedelta(seconds=result.retry_in)

    async def get(self, notification_id: uuid.UUID) -> Delivery | None:
        row = self.rows.get(notification_id)
        return None if row is None else row.delivery

    async def of_source(self, source_event_id: uuid.UUID) -> list[Delivery]:
        found = [
            r.delivery for r in self.rows.values() if r.delivery.source_event_id == source_event_id
        ]
        return sorted(found, key=lambda d: d.notification_id)


@dataclass
class InMemoryNotificationsUnitOfWork(InMemoryUnitOfWork):
    """`shared.uow.InMemoryUnitOfWork` with the delivery log (rolled back with the block)."""

    state_fields: ClassVar[tuple[str, ...]] = ("notices",)
    notices: InMemoryNoticeStore = field(default_factory=InMemoryNoticeStore)


# ------------------------------------------------------------------------------------- peers


@dataclass
class FakeMailSender:
    """Accepts messages, except that it answers scripted SMTP replies per recipient address:
    `script[address]` is consumed one reply per attempt, `always[address]` every time."""

    messages: list[EmailMessage] = field(default_factory=list)
    script: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    always: dict[str, str] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def refusal(self, address: str) -> str | None:
        """The reply to refuse a message to `address` with now (e.g. "451 4.3.0 later"), if any."""
        if address in self.always:
            self.refused[address] += 1
            return self.always[address]
        if self.script[address]:
            self.refused[address] += 1
            return self.script[address].pop(0)
        return None

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in list(self.messages) if address in str(m["To"])]

    async def send(self, message: EmailMessage) -> None:
        for _, address in getaddresses([str(message["To"])]):
            reply = self.refusal(address)
            if reply is not None:
                code, _, text = reply.partition(" ")
                raise classify_code(int(code), text)
        self.messages.append(message)


@dataclass
class FakeContextSource:
    """The placements service's notice contexts by (placement, student); `unavailable` counts
    the answers that are still to be "service unavailable"."""

    contexts: dict[tuple[str, str], NoticeContext] = field(default_factory=dict)
    unavailable: dict[tuple[str, str], int] = field(default_factory=dict)

    def answer(self, placement_id: str, student_id: str) -> tuple[int, NoticeContext | None]:
        """(HTTP status, context) as the placements route would answer."""
        key = (placement_id, student_id)
        if self.unavailable.get(key, 0) > 0:
            self.unavailable[key] -= 1
            return 503, None
        found = self.contexts.get(key)
        return (200, found) if found is not None else (404, None)

    async def fetch(self, placement_id: str, student_id: str | None) -> NoticeContext:
        status, found = self.answer(placement_id, student_id or "")
        if status == 503:
            raise UpstreamUnavailable("placements service answered 503")
        if found is None:
            raise PermanentError(
                f"placements service has no notice context for placement {placement_id} "
                f"and student {student_id} (404)"
            )
        return found


@dataclass
class FakeTokenSource:
    """This service's access tokens without an issuer: `token-1`, then `token-2` once the first
    was refused (`invalidate`), and so on."""

    serial: int = 1
    invalidated: list[str] = field(default_factory=list)

    @property
    def current(self) -> str:
        return f"token-{self.serial}"

    async def token(self) -> str | None:
        return self.current

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if token == self.current:
            self.serial += 1


@dataclass
class FakeHookSender:
    """Records webhook requests; `unavailable[url]` counts the 503s still to give."""

    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    keys: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    unavailable: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def send(self, url: str, body: bytes, idempotency_key: str) -> None:
        if self.unavailable[url] > 0:
            self.unavailable[url] -= 1
            raise TransientError("webhook answered 503")
        self.received[url].append(json.loads(body))
        self.keys[url].append(idempotency_key)


# ------------------------------------------------------------------------------------ events


def proposed(
    placement_id: str, student_id: str, round_id: uuid.UUID | None = None
) -> MatchProposed:
    return MatchProposed(
        producer="matching",
        data=MatchProposedData(
            match_id=uuid.uuid4(),
            region="SE-AB",
            student_id=student_id,
            placement_id=placement_id,
            round_id=round_id or uuid.uuid4(),
            company_id="c-1",
            rank=1,
        ),
    )


def confirmed(placement_id: str, student_id: str) -> MatchConfirmed:
    return MatchConfirmed(
        producer="matching",
        data=MatchConfirmedData(
            match_id=uuid.uuid4(), region="SE-AB", student_id=student_id, placement_id=placement_id
        ),
    )


def cancelled(
    placement_id: str, student_id: str, round_id: uuid.UUID | None = None
) -> MatchCancelled:
    return MatchCancelled(
        producer="matching",
        data=MatchCancelledData(
            match_id=uuid.uuid4(),
            region="SE-AB",
            student_id=student_id,
            placement_id=placement_id,
            reason="placement_withdrawn",
            round_id=round_id,
        ),
    )
