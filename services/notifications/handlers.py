"""Handlers: record the notices an event asks for, and deliver due notices.

Both take a unit of work (`NotificationsUnitOfWork`: the transaction, the inbox claim, the outbox
publish and the delivery log `uow.notices`) and never see a connection.

`record_notices` runs in the consumer: in one transaction it claims the event in the inbox and
inserts the notice rows, so a redelivered event adds nothing. `deliver_due` runs in the
`DeliveryWorker` beside it: it locks a small batch of due rows (`FOR UPDATE SKIP LOCKED`), and for
each fetches the notice context (a supervisor's, or a student's), renders and sends; then, in the
same transaction, it records the outcomes and publishes `NotificationDelivered` or
`NotificationFailed` through the outbox. A crash between sending and committing leaves the rows
pending, so each is sent once more with the same Message-ID / Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal, Protocol

import structlog
from opentelemetry.trace import SpanKind

from services.notifications.adapters.rendering import Renderer
from services.notifications.adapters.smtp import compose_email
from services.notifications.adapters.store import Delivery, Result
from services.notifications.adapters.uow import NotificationsUnitOfWork
from services.notifications.domain.actions import LINK_KINDS, ActionUrls, LinkSigner
from services.notifications.domain.notices import (
    STUDENT_KINDS,
    DeliveryError,
    PermanentError,
    backoff_seconds,
    message_id,
    plan_notices,
    recipient_role,
    redact,
)
from services.notifications.domain.student_views import StudentNoticeView, build_student_view
from services.notifications.domain.views import NoticeView, build_view
from shared import tracing
from shared.contracts.events import (
    MatchCancelled,
    MatchConfirmed,
    MatchingRoundOutcomes,
    MatchProposed,
    NotificationDelivered,
    NotificationDeliveredData,
    NotificationEvent,
    NotificationFailed,
    NotificationFailedData,
    SupplementaryRoundOpened,
)
from shared.contracts.internal import NoticeContext, StudentNoticeContext
from shared.contracts.vocabulary import Channel
from shared.metrics import METRICS

log = structlog.get_logger(__name__)

PRODUCER = "notifications"


NoticeEvent = (
    MatchProposed
    | MatchConfirmed
    | MatchCancelled
    | MatchingRoundOutcomes
    | SupplementaryRoundOpened
)
"""The events that become notices (MatchAccepted, MatchDeclined, MatchAssignmentRequested,
MatchingRoundRequested and MatchingRoundCompleted do not; nor a dry run's outcomes)."""


async def record_notices(
    event: NoticeEvent, uow: NotificationsUnitOfWork, *, digest_seconds: float = 0.0
) -> int:
    """Claim `event` and insert its notices, in one transaction. Returns notices recorded (0 for
    a duplicate). With `digest_seconds` > 0 a proposal joins its round's digest for the
    placement's supervisor while that digest still waits (a student's notice never does)."""
    async with uow:
        if not await uow.claim(event):
            log.info("duplicate event ignored")
            return 0
        recorded = 0
        alone = []
        for notice in plan_notices(event):
            digest_id = notice.digest_id() if digest_seconds > 0 else None
            if digest_id is not None and await uow.notices.open_digest(
                notice, digest_id, digest_seconds
            ):
                await uow.notices.insert_notice(notice, status="grouped", digest_id=digest_id)
                recorded += 1
            else:
                alone.append(notice)
        recorded += await uow.notices.insert_notices(alone)
    return recorded


# ----------------------------------------------------------------------------------- delivery


class ContextSource(Protocol):
    """The placements service's notice contexts (`adapters/placements.py:PlacementsClient`)."""

    async def fetch(self, placement_id: str, student_id: str | None) -> NoticeContext: ...

    async def fetch_student(
        self, student_id: str, placement_id: str | None = None
    ) -> StudentNoticeContext: ...


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class HookSender(Protocol):
    async def send(self, url: str, body: bytes, idempotency_key: str) -> None: ...


@dataclass(kw_only=True)
class Outcome:
    ok: bool
    channel: Channel = "email"
    error: str | None = None
    transient: bool = False
    upstream: bool = False  # our own placements service was unavailable: attempts not used up


@dataclass(frozen=True)
class Verdict:
    """A notice's next state: `delivered`/`failed`, or `pending` again after `retry_in` s."""

    status: Literal["delivered", "pending", "failed"]
    attempts: int
    """Attempts counted so far (one not counted when the placements service was unavailable)."""
    retry_in: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and when a failed notice is tried again."""

    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 600.0
    upstream_seconds: float = 2.0
    """The fixed wait while our own placements service is unavailable (attempts not counted)."""

    def verdict(self, notice: Delivery, outcome: Outcome | None) -> Verdict:
        """What becomes of a notice after this attempt; decided once, recorded and logged."""
        if outcome is None:  # an empty digest: closed, no attempt made
            return Verdict("delivered", notice.attempts)
        attempts = notice.attempts + 1
        if outcome.ok:
            return Verdict("delivered", attempts)
        if outcome.upstream:  # nothing was tried at the recipient: the attempt is not counted
            return Verdict("pending", notice.attempts, self.upstream_seconds)
        if outcome.transient and attempts < self.max_attempts:
            delay = backoff_seconds(attempts, self.base_seconds, self.max_seconds)
            return Verdict("pending", attempts, delay)
        return Verdict("failed", attempts)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Notifier:
    """Tells one recipient about one notice (or one digest): fetch, render, send. A supervisor's
    proposal carries, per student, the signed confirm/decline links `links` makes (none without
    it). A student is e-mailed at the address of their student notice context."""

    contexts: ContextSource
    mail: MailSender
    hooks: HookSender
    renderer: Renderer
    mail_from: str
    links: LinkSigner | None = None
    clock: Callable[[], datetime] = _now

    def _actions(self, notice: Delivery, member: Delivery) -> ActionUrls | None:
        if self.links is None or notice.kind not in LINK_KINDS or member.match_id is None:
            return None
        return self.links.urls(member.notification_id, member.match_id, now=self.clock())

    async def notify(self, notice: Delivery, members: list[Delivery]) -> Outcome:
        """Tell the notice's recipient (a digest's `members` are its notices)."""
        if notice.kind in STUDENT_KINDS:
            return await self.notify_student(notice)
        return await self.notify_supervisor(notice, members)

    async def notify_student(self, notice: Delivery) -> Outcome:
        try:
            if notice.student_id is None:  # planned notices always name the student
                raise PermanentError(f"student notice {notice.notification_id} names no student")
            found = await self.contexts.fetch_student(notice.student_id, notice.placement_id)
            view = build_student_view(
                notice.notification_id,
                notice.kind,
                found,
                placement_id=notice.placement_id,
                detail=notice.detail,
            )
            await self._send_student(view)
        except DeliveryError as exc:
            return Outcome(ok=False, error=str(exc), transient=exc.transient, upstream=exc.upstream)
        except Exception as exc:  # a bug or a surprise: retry, then give up with the reason
            log.exception("unexpected delivery error")
            return Outcome(ok=False, error=redact(f"{type(exc).__name__}: {exc}"), transient=True)
        return Outcome(ok=True)

    async def _send_student(self, view: StudentNoticeView) -> None:
        text, html = self.renderer.render(view)
        message = compose_email(
            mail_from=self.mail_from,
            to_name=view.student_name,
            to_address=view.student_email,
            subject=view.subject,
            text=text,
            html=html,
            message_id=message_id(view.notification_id),
            language=view.language,
        )
        await self.mail.send(message)

    async def notify_supervisor(self, notice: Delivery, members: list[Delivery]) -> Outcome:
        channel: Channel = "email"
        try:
            fetched = [await self.contexts.fetch(_placement_of(m), m.student_id) for m in members]
            actions = [self._actions(notice, m) for m in members]
            view = build_view(
                notice.notification_id, notice.kind, fetched, reason=notice.detail, actions=actions
            )
            channel = view.channel
            await self._send(view)
        except DeliveryError as exc:
            return Outcome(
                ok=False,
                channel=channel,
                error=str(exc),
                transient=exc.transient,
                upstream=exc.upstream,
            )
        except Exception as exc:  # a bug or a surprise: retry, then give up with the reason
            log.exception("unexpected delivery error")
            error = redact(f"{type(exc).__name__}: {exc}")
            return Outcome(ok=False, channel=channel, error=error, transient=True)
        return Outcome(ok=True, channel=channel)

    async def _send(self, view: NoticeView) -> None:
        key = str(view.notification_id)
        if view.channel == "webhook":
            if view.webhook_url is None:  # build_view refuses such a view already
                raise PermanentError("channel webhook without a webhook_url")
            payload = view.webhook_payload(datetime.now(UTC))
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            await self.hooks.send(view.webhook_url, body, key)
            return
        if view.supervisor_email is None:  # build_view refuses such a view already
            raise PermanentError("no supervisor address to e-mail")
        text, html = self.renderer.render(view)
        message = compose_email(
            mail_from=self.mail_from,
            to_name=view.supervisor_name,
            to_address=view.supervisor_email,
            subject=view.subject,
            text=text,
            html=html,
            message_id=message_id(view.notification_id),
            language=view.language,
        )
        await self.mail.send(message)


Attempt = tuple[Delivery, list[Delivery], Outcome | None]
"""A notice (or digest), the notices it tells of, and how telling went (None: nothing to tell)."""


async def deliver_due(
    uow: NotificationsUnitOfWork,
    notifier: Notifier,
    *,
    retry: RetryPolicy,
    batch_size: int = 10,
) -> int:
    """Deliver (or retry, or fail) up to `batch_size` due notices, in one transaction that
    holds their row locks from before the sends until their outcomes are recorded and their
    outcome events are in the outbox. Returns how many were due."""
    async with uow:
        notices = await uow.notices.pick_due(batch_size)
        done: list[Attempt] = []
        for notice in notices:
            members = (
                await uow.notices.members_of(notice.notification_id)
                if notice.kind == "digest"
                else [notice]
            )
            # an empty digest cannot normally exist; it is closed quietly (outcome None)
            outcome = None
            if members:
                outcome = await _notify_in_trace(notifier, notice, members)
            done.append((notice, members, outcome))
        verdicts = [retry.verdict(notice, outcome) for notice, _, outcome in done]
        results, events = _outcomes(done, verdicts)
        await uow.notices.record(results)
        await uow.publish(events)  # one call per batch: two statements whatever its size
    for (notice, _, outcome), verdict in zip(done, verdicts, strict=True):
        if outcome is not None:
            _log_outcome(notice, outcome, verdict)
    return len(notices)


async def _notify_in_trace(
    notifier: Notifier, notice: Delivery, members: list[Delivery]
) -> Outcome:
    """Tell one notice (or digest) in a CLIENT span that continues the trace stored with its row
    (the handling of the event that asked for it), so the story's trace reaches the notice."""
    attributes = {
        "apl.notification_id": str(notice.notification_id),
        "apl.notice.kind": notice.kind,
        "apl.notice.attempt": notice.attempts + 1,
    }
    with (
        tracing.stored_span(
            "deliver notice", notice.trace, attributes, kind=SpanKind.CLIENT
        ) as span,
        structlog.contextvars.bound_contextvars(
            notification_id=str(notice.notification_id), region=notice.region
        ),
    ):
        outcome = await notifier.notify(notice, members)
        span.set_attribute("apl.notice.channel", str(outcome.channel))
        if not outcome.ok:
            tracing.mark_failed(span, outcome.error or "notice not delivered")
        return outcome


def _outcomes(
    done: list[Attempt], verdicts: list[Verdict]
) -> tuple[list[Result], list[NotificationEvent]]:
    """The rows to update and the outcome events to publish for a batch of attempts."""
    results: list[Result] = []
    events: list[NotificationEvent] = []
    for (notice, members, outcome), verdict in zip(done, verdicts, strict=True):
        status, attempts = verdict.status, verdict.attempts
        if outcome is None:
            results.append(Result(notice.notification_id, status, attempts, "email"))
            continue
        if status == "pending":  # only the notice (a digest's members stay grouped)
            error = outcome.error or "unknown error"
            results.append(
                Result(
                    notice.notification_id, status, attempts, error=error, retry_in=verdict.retry_in
                )
            )
            continue
        ids = [notice.notification_id] + [
            m.notification_id for m in members if m.notification_id != notice.notification_id
        ]
        if status == "delivered":
            results += [Result(i, status, attempts, outcome.channel) for i in ids]
            events += [_delivered(m, outcome.channel, attempts) for m in members]
        else:
            error = outcome.error or "unknown error"
            results += [Result(i, status, attempts, outcome.channel, error) for i in ids]
            events += [_failed(m, outcome.channel, attempts, error) for m in members]
    return results, events


@dataclass
class DeliveryWorker:
    """Delivers due notices; `run()` as a task, cancel to stop. Retries never block the consumer.

    Each of `concurrency` loops, per unit of work (`uow()`: one transaction on a pooled
    connection), locks up to `batch_size` due rows, tells them one after another, then records
    all their outcomes and publishes their outcome events before committing (a handful of round
    trips per batch rather than per notice)."""

    uow: Callable[[], NotificationsUnitOfWork]
    notifier: Notifier
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 2  # as NotificationsSettings.worker_concurrency
    poll_seconds: float = 0.5
    batch_size: int = 10
    _idle: collections.deque[asyncio.Future[None]] = field(
        default_factory=collections.deque, init=False
    )

    def wake(self) -> None:
        """New work: wake one idle loop (waking all would send them all to find nothing)."""
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _idle_wait(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, self.poll_seconds)
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(waiter)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(self._loop())

    async def deliver_due(self) -> int:
        """One batch (see `deliver_due`); returns how many notices were due."""
        return await deliver_due(
            self.uow(), self.notifier, retry=self.retry, batch_size=self.batch_size
        )

    async def _loop(self) -> None:
        backoff = 0.5
        while True:
            try:
                worked = await self.deliver_due()
            except Exception:
                log.warning("delivery worker interrupted; retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            if worked >= self.batch_size:
                self.wake()  # a full batch: there is likely more; bring a helper
            elif not worked:
                await self._idle_wait()


def _log_outcome(notice: Delivery, outcome: Outcome, verdict: Verdict) -> None:
    error = outcome.error or "unknown error"
    with structlog.contextvars.bound_contextvars(
        notification_id=str(notice.notification_id), region=notice.region
    ):
        labels = (str(outcome.channel), recipient_role(notice.recipient))
        if outcome.ok:
            METRICS.notices_sent.labels(*labels).inc()
        elif not outcome.upstream:
            target = (
                METRICS.notices_retried if verdict.status == "pending" else METRICS.notices_failed
            )
            target.labels(*labels).inc()
        if outcome.ok:
            log.info(
                "notice delivered",
                kind=notice.kind,
                channel=outcome.channel,
                attempts=verdict.attempts,
            )
        elif outcome.upstream:
            log.warning(
                "placements service unavailable; notice waits (attempt not counted)",
                error=error,
                retry_in=verdict.retry_in,
            )
        elif verdict.status == "pending":
            log.warning(
                "notice delivery failed; will retry",
                error=error,
                attempts=verdict.attempts,
                retry_in=verdict.retry_in,
            )
        else:
            log.error("notice delivery failed for good", error=error, attempts=verdict.attempts)


def _placement_of(m: Delivery) -> str:
    if m.placement_id is None:  # a supervisor's notice always has its placement
        raise PermanentError(f"notice {m.notification_id} names no placement")
    return m.placement_id


def _data(m: Delivery, channel: Channel, attempts: int) -> dict[str, object]:
    if m.kind == "digest":  # a digest is reported through its members, never itself
        raise ValueError(f"notice {m.notification_id} is a digest, not a notice to report on")
    return {
        "notification_id": m.notification_id,
        "source_event_id": m.source_event_id,
        "region": m.region,
        "match_id": m.match_id,
        "placement_id": m.placement_id,
        "recipient": recipient_role(m.recipient),
        "channel": channel,
        "attempts": attempts,
    }


def _delivered(m: Delivery, channel: Channel, attempts: int) -> NotificationDelivered:
    data = NotificationDeliveredData.model_validate(_data(m, channel, attempts))
    return NotificationDelivered(producer=PRODUCER, data=data)


def _failed(m: Delivery, channel: Channel, attempts: int, error: str) -> NotificationFailed:
    data = NotificationFailedData.model_validate({**_data(m, channel, attempts), "error": error})
    return NotificationFailed(producer=PRODUCER, data=data)
