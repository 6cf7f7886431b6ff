"""Handlers: record the notices an event asks for, and deliver due notices.

Both take a unit of work (`NotificationsUnitOfWork`: the transaction, the inbox claim, the outbox
publish and the delivery log `uow.notices`) and never see a connection.

`record_notices` runs in the consumer: in one transaction it claims the event in the inbox and
inserts the notice rows, so a redelivered event adds nothing. `deliver_due` runs in the
`DeliveryWorker` beside it, with no transaction open while anything goes over the network: in one
short transaction it claims a batch of due rows (their claim's id, and not due again until the
claim's lease ends); then it fetches the batch's notice contexts in one call, renders each notice
and sends them side by side (the SMTP sender's pool bounds how many are on the wire); then, in a
second transaction, it records the outcomes on the rows still under its claim and publishes
`NotificationDelivered` or `NotificationFailed` through the outbox. Each e-mail's hand-over to
the mail server is marked on its row before the next one's (`handover.py`), so a crash between
sending and recording repeats one e-mail at most: when the lease ends a marked row is recorded
as delivered, the others are sent once more, with the same Message-ID / Idempotency-Key; a
notice whose outcome was recorded is never sent again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import structlog
from opentelemetry.trace import SpanKind

from services.notifications.adapters.rendering import Renderer
from services.notifications.adapters.smtp import OutgoingMail, compose_email
from services.notifications.adapters.store import Delivery, Result
from services.notifications.adapters.uow import NotificationsUnitOfWork
from services.notifications.domain.actions import (
    LINK_KINDS,
    TRAINING_KINDS,
    ActionUrls,
    LinkSigner,
)
from services.notifications.domain.contexts import ContextBatch, StudentKey, SupervisorKey
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
from services.notifications.handover import Mark, telling
from shared import tracing
from shared.contracts.events import (
    MatchCancelled,
    MatchConfirmed,
    MatchingRoundOutcomes,
    MatchProposed,
    NotificationDelivered,
    NotificationDeliveredData,
    NotificationFailed,
    NotificationFailedData,
    SupplementaryRoundOpened,
)
from shared.contracts.internal import NoticeContext, StudentNoticeContext
from shared.contracts.vocabulary import Channel
from shared.db import TRANSIENT_ERRORS
from shared.metrics import METRICS
from shared.serialised import Serialised

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
    return await record_batch([event], uow, digest_seconds=digest_seconds)


async def record_batch(
    events: Sequence[NoticeEvent], uow: NotificationsUnitOfWork, *, digest_seconds: float = 0.0
) -> int:
    """`record_notices` for a batch of events (a Kafka poll's) in one transaction: each claimed
    in the inbox (a duplicate adds nothing), the notices of the fresh ones inserted together.
    Returns notices recorded."""
    recorded = 0
    alone = []
    async with uow:
        for event in events:
            if not await uow.claim(event):
                log.info("duplicate event ignored", event_id=str(event.event_id))
                continue
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
    """The placements service's notice contexts (`adapters/placements.py:PlacementsClient`):
    one at a time, or a delivery batch's in one call (`fetch_many`)."""

    async def fetch(self, placement_id: str, student_id: str | None) -> NoticeContext: ...

    async def fetch_student(
        self, student_id: str, placement_id: str | None = None, round_id: uuid.UUID | None = None
    ) -> StudentNoticeContext: ...

    async def fetch_many(
        self, supervisors: Sequence[SupervisorKey], students: Sequence[StudentKey]
    ) -> ContextBatch: ...


def _student_key(notice: Delivery) -> StudentKey:
    """The context a student notice needs: an unplaced student's vacancies as their round
    left them (the placements service answers them once it has applied that round)."""
    after = notice.round_id if notice.kind == "student_unplaced" else None
    return (notice.student_id or "", notice.placement_id, after)


class MailSender(Protocol):
    async def send(self, message: OutgoingMail) -> None: ...


class HookSender(Protocol):
    async def send(self, url: str, body: bytes, idempotency_key: str) -> None: ...


@dataclass(kw_only=True)
class Outcome:
    ok: bool
    channel: Channel = "email"
    error: str | None = None
    transient: bool = False
    upstream: bool = False  # our own placements service was unavailable: attempts not used up
    # the trace context of the attempt's `deliver notice` span: the NotificationDelivered or
    # NotificationFailed that tells of it goes on in that trace (the story's)
    trace: dict[str, str] | None = None


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

    def _training(
        self, notice: Delivery, members: list[Delivery], contexts: list[NoticeContext]
    ) -> str | None:
        """The link on which a supervisor without valid training records their course (none
        when they are ready, or the notice is a cancellation)."""
        readiness = contexts[0].readiness if contexts else None
        if self.links is None or notice.kind not in TRAINING_KINDS or readiness is None:
            return None
        match_id = next((m.match_id for m in members if m.match_id is not None), None)
        if readiness.ready or match_id is None:
            return None
        return self.links.training_url(notice.notification_id, match_id, now=self.clock())

    async def notify_batch(
        self,
        work: Sequence[tuple[Delivery, list[Delivery]]],
        *,
        within: float | None = None,
        on_told: Callable[[int, Outcome], None] | None = None,
        mark: Callable[[Delivery], Mark] | None = None,
    ) -> list[Outcome]:
        """Tell each (notice, members) of a delivery batch; their outcomes in the same order.

        The notice contexts of the whole batch come in one call (`ContextSource.fetch_many`;
        a failed call fails each notice as its single call would have), then every notice is
        told at once (each in its own span, `_notify_in_trace`): rendering takes turns, the
        mail sender's connection pool bounds the messages on the wire. A notice not told within
        `within` seconds is stopped and counts as a transient failure. `on_told(i, outcome)`
        hears of each notice (by its index in `work`) the moment its telling ended, so the
        caller can record it while the others are still on the wire. `mark(notice)` gives
        the commit of a notice's hand-over to the mail server (`handover.py`: its DATA and
        that mark in turn with the other messages'; None: no gate)."""
        supervisors: dict[SupervisorKey, None] = {}
        students: dict[StudentKey, None] = {}
        for notice, members in work:
            if notice.kind in STUDENT_KINDS:
                if notice.student_id is not None:
                    students[_student_key(notice)] = None
                continue
            for m in members:
                if m.placement_id is not None and m.student_id is not None:
                    supervisors[(m.placement_id, m.student_id)] = None
        try:
            found = await self.contexts.fetch_many(list(supervisors), list(students))
        except DeliveryError as exc:
            found = ContextBatch.failed(exc)
        told = dataclasses.replace(self, contexts=found)
        tasks = [
            asyncio.ensure_future(
                _notify_in_trace(told, notice, members, mark(notice) if mark else None)
            )
            for notice, members in work
        ]
        if not tasks:
            return []
        if on_told is not None:
            for i, task in enumerate(tasks):
                task.add_done_callback(functools.partial(_tell, on_told, i))
        try:
            _, late = await asyncio.wait(tasks, timeout=within)
            for task in late:
                task.cancel()
            await asyncio.wait(tasks)
        finally:  # stopped itself: no send goes on without the batch
            for task in tasks:
                task.cancel()
        return [_outcome_of(task) for task in tasks]

    async def notify(self, notice: Delivery, members: list[Delivery]) -> Outcome:
        """Tell the notice's recipient (a digest's `members` are its notices)."""
        if notice.kind in STUDENT_KINDS:
            return await self.notify_student(notice)
        return await self.notify_supervisor(notice, members)

    async def notify_student(self, notice: Delivery) -> Outcome:
        try:
            if notice.student_id is None:  # planned notices always name the student
                raise PermanentError(f"student notice {notice.notification_id} names no student")
            found = await self.contexts.fetch_student(*_student_key(notice))
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
                notice.notification_id,
                notice.kind,
                fetched,
                reason=notice.detail,
                actions=actions,
                training=self._training(notice, members, fetched),
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


HandOverMarks = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]
"""Commits that the notice (`notification_id`, under `claim`) was handed over to the mail server
(`store.mark_handed_over`: one statement on the pool, its own transaction)."""

Attempt = tuple[Delivery, list[Delivery], Outcome | None]
"""A notice (or digest), the notices it tells of, and how telling went (None: nothing to tell)."""


LEASE_SECONDS = 120.0
"""How long a claimed batch is kept from other workers (`NotificationsSettings.lease_seconds`)."""
RECORD_GATHER_SECONDS = 0.1
"""With the hand-over marks: how long a record of outcomes waits for more to come."""
RECORD_GATHER_COUNT = 50
"""... and how many it takes at most without waiting longer."""
RECORD_MARGIN_SECONDS = 20.0
"""Of the lease, what is left for recording the outcomes: the sends have the rest."""


async def deliver_due(
    uow: NotificationsUnitOfWork,
    notifier: Notifier,
    *,
    retry: RetryPolicy,
    batch_size: int = 10,
    lease_seconds: float = LEASE_SECONDS,
    marks: HandOverMarks | None = None,
) -> int:
    """Deliver (or retry, or fail) up to `batch_size` due notices; returns how many were due.

    No transaction is open across the network: the due rows (and a digest's members) are
    claimed in one short transaction; then they are all told (`Notifier.notify_batch`: the
    contexts in one call, the messages side by side), within the lease less
    `RECORD_MARGIN_SECONDS` (a message not sent by then counts as a transient failure); and
    each outcome is recorded as soon as its message went out, on the rows still under this
    claim, with its outcome event (`_Recorder`: one short transaction for whatever was told
    meanwhile). So a process killed mid-batch sends again, when the claim's lease ends, only
    what had gone out since the last record. With `marks` each e-mail's hand-over to the mail
    server is committed before the next one's DATA (`handover.py`), and a claimed notice whose
    hand-over was marked (its worker died before recording it) is recorded as delivered
    without being sent again: a crash repeats one e-mail at most, and the outcomes, no longer
    needed for that, are recorded in larger transactions (`RECORD_GATHER_SECONDS`)."""
    claim = uuid.uuid4()
    lease_ends = time.monotonic() + lease_seconds
    async with uow:
        notices = await uow.notices.claim_due(batch_size, claim, lease_seconds)
        work: list[tuple[Delivery, list[Delivery]]] = []
        for notice in notices:
            digest = notice.kind == "digest"
            members = await uow.notices.members_of(notice.notification_id) if digest else [notice]
            work.append((notice, members))
    if not work:
        return 0
    gather = 0.0 if marks is None else RECORD_GATHER_SECONDS
    recorder = _Recorder(uow, retry, claim, lease_ends, gather=gather)
    # an empty digest cannot normally exist; it is closed quietly (outcome None)
    for notice, members in work:
        if not members:
            recorder.told((notice, members, None))
        elif notice.handed_over_at is not None:
            log.info(
                "notice was handed over before its worker stopped: recorded, not sent again",
                notification_id=str(notice.notification_id),
            )
            recorder.told((notice, members, Outcome(ok=True, trace=notice.trace or None)))
    told = [(n, m) for n, m in work if m and n.handed_over_at is None]
    flushing = asyncio.ensure_future(recorder.run())
    try:
        await notifier.notify_batch(
            told,
            within=max(lease_seconds - RECORD_MARGIN_SECONDS, 1.0),
            on_told=lambda i, outcome: recorder.told((*told[i], outcome)),
            mark=None if marks is None else _marks_of(marks, claim),
        )
    finally:
        recorder.close()  # what was told is recorded; a notice not told waits for its lease
        await flushing
    return len(notices)


def _marks_of(marks: HandOverMarks, claim: uuid.UUID) -> Callable[[Delivery], Mark]:
    """Each notice's hand-over mark under `claim`."""
    return lambda notice: functools.partial(marks, notice.notification_id, claim)


@dataclass
class _Recorder:
    """Records a batch's outcomes as they come: each transaction takes every attempt told
    since the last one (one while the first message is on the wire, then whatever finished
    meanwhile), so the records keep up with any number of messages side by side. A record
    that fails on a database outage is tried again until the claim's lease ends (`lease_ends`,
    monotonic), so a short outage does not make the sent messages due again."""

    uow: NotificationsUnitOfWork
    retry: RetryPolicy
    claim: uuid.UUID
    lease_ends: float
    gather: float = 0.0
    """How long a record waits for more outcomes (at most `RECORD_GATHER_COUNT`) once one
    came: 0 records at once (without the hand-over marks, a record is what keeps a crash from
    repeating a message)."""
    _waiting: list[Attempt] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _full: asyncio.Event = field(default_factory=asyncio.Event)
    _closed: bool = False

    def told(self, attempt: Attempt) -> None:
        self._waiting.append(attempt)
        self._arrived.set()
        if len(self._waiting) >= RECORD_GATHER_COUNT:
            self._full.set()

    def close(self) -> None:
        """Nothing more will be told: `run` records what is waiting and returns."""
        self._closed = True
        self._arrived.set()
        self._full.set()

    async def run(self) -> None:
        """Record what is told, until closed."""
        while True:
            if not self._waiting:
                if self._closed:
                    return
                await self._arrived.wait()
                self._arrived.clear()
                continue
            if self.gather and not self._closed and len(self._waiting) < RECORD_GATHER_COUNT:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.gather)
            done, self._waiting = self._waiting, []
            await self._record(done)

    async def _record(self, done: list[Attempt]) -> None:
        verdicts = [self.retry.verdict(notice, outcome) for notice, _, outcome in done]
        results, events = _outcomes(done, verdicts)
        pause = 0.2
        while True:
            try:
                async with self.uow:
                    recorded = await self.uow.notices.record(results, self.claim)
                    # one call per transaction: two statements whatever its size
                    await self.uow.publish([e for i, e in events if i in recorded])
                break
            except TRANSIENT_ERRORS as error:
                if time.monotonic() + pause >= self.lease_ends:
                    raise
                log.warning(
                    "recording notice outcomes failed; trying again",
                    error=str(error),
                    retry_in=pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        for (notice, _, outcome), verdict in zip(done, verdicts, strict=True):
            if outcome is None:
                continue
            if notice.notification_id not in recorded:
                log.warning(
                    "notice's claim had ended: its outcome is left to the worker that took it",
                    notification_id=str(notice.notification_id),
                )
                continue
            _log_outcome(notice, outcome, verdict)


def _tell(on_told: Callable[[int, Outcome], None], i: int, task: asyncio.Future[Outcome]) -> None:
    on_told(i, _outcome_of(task))


def _outcome_of(task: asyncio.Future[Outcome]) -> Outcome:
    """A telling task's outcome; stopped (not told within the lease) or failed, a transient
    failure."""
    if task.cancelled():
        return Outcome(ok=False, error="not told within the claim's lease", transient=True)
    error = task.exception()
    if error is not None:  # `notify` catches what it can: this is a surprise
        return Outcome(ok=False, error=redact(f"{type(error).__name__}: {error}"), transient=True)
    return task.result()


async def _notify_in_trace(
    notifier: Notifier, notice: Delivery, members: list[Delivery], mark: Mark | None = None
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
        telling(mark),
    ):
        outcome = await notifier.notify(notice, members)
        span.set_attribute("apl.notice.channel", str(outcome.channel))
        if not outcome.ok:
            tracing.mark_failed(span, outcome.error or "notice not delivered")
        return dataclasses.replace(outcome, trace=tracing.current_headers())


def _outcomes(
    done: list[Attempt], verdicts: list[Verdict]
) -> tuple[list[Result], list[tuple[uuid.UUID, Serialised]]]:
    """The rows to update and the outcome events to publish for a batch of attempts (each with
    its notice's id), each event in the trace of the attempt it tells of."""
    results: list[Result] = []
    events: list[tuple[uuid.UUID, Serialised]] = []
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
        # the notice first: a digest's members are recorded only if the digest's row is
        ids: list[tuple[uuid.UUID, uuid.UUID | None]] = [(notice.notification_id, None)] + [
            (m.notification_id, notice.notification_id)
            for m in members
            if m.notification_id != notice.notification_id
        ]
        channel, trace = outcome.channel, outcome.trace
        if status == "delivered":
            results += [Result(i, status, attempts, channel, digest_id=d) for i, d in ids]
            events += [
                (m.notification_id, Serialised.of(_delivered(m, channel, attempts), trace))
                for m in members
            ]
        else:
            error = outcome.error or "unknown error"
            results += [Result(i, status, attempts, channel, error, digest_id=d) for i, d in ids]
            events += [
                (m.notification_id, Serialised.of(_failed(m, channel, attempts, error), trace))
                for m in members
            ]
    return results, events


@dataclass
class DeliveryWorker:
    """Delivers due notices; `run()` as a task, cancel to stop. Retries never block the consumer.

    Each of `concurrency` loops runs `deliver_due` batch after batch (`uow()`: a unit of work for
    the claim and one for the record, each a short transaction on a pooled connection): a
    handful of round trips per batch rather than per notice, and while one loop's messages are
    on the wire another claims, fetches and renders. Stopped (cancelled), a loop first finishes
    its batch for up to `stop_seconds`, so that the messages it sent are recorded rather than
    sent again when their claim's lease ends."""

    uow: Callable[[], NotificationsUnitOfWork]
    notifier: Notifier
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 2  # as NotificationsSettings.worker_concurrency
    poll_seconds: float = 0.5
    batch_size: int = 10
    lease_seconds: float = LEASE_SECONDS
    stop_seconds: float = 10.0
    marks: HandOverMarks | None = None
    """The hand-over marks (`handover.py`; None: outcomes recorded at once, no gate)."""
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
        """One batch (see `deliver_due`); returns how many notices were due. Cancelled, it
        lets the batch finish for up to `stop_seconds` before it stops."""
        batch = asyncio.ensure_future(
            deliver_due(
                self.uow(),
                self.notifier,
                retry=self.retry,
                batch_size=self.batch_size,
                lease_seconds=self.lease_seconds,
                marks=self.marks,
            )
        )
        try:
            return await asyncio.shield(batch)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(batch, self.stop_seconds)
            raise

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
