"""Fakes of the notifications service: an in-memory unit of work with an in-memory delivery log
(the same named methods as `NoticeRepository`), and in-process peers (mail sender, notice-context
source, webhook sender) that the handler tests use directly and the integration tests' real
servers (tests/integration/notifications/peers.py) build on, a token source; a student's notice
context; and the match and round events of a notice."""

from __future__ import annotations

import dataclasses
import email
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from typing import Any, ClassVar

from services.notifications.adapters.smtp import OutgoingMail, classify_code
from services.notifications.adapters.store import Delivery, Result, Status
from services.notifications.domain.contexts import ContextBatch, StudentKey, SupervisorKey
from services.notifications.domain.notices import (
    DeliveryError,
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
    MatchingRoundOutcomes,
    MatchingRoundOutcomesData,
    MatchProposed,
    MatchProposedData,
    SupplementaryRoundOpened,
    SupplementaryRoundOpenedData,
)
from shared.contracts.internal import (
    DueReminder,
    DueReminders,
    NoticeContext,
    NoticePlacement,
    NoticeVacancy,
    StudentNoticeContext,
)
from shared.contracts.outcomes import Explanation, OutcomeReason, StudentOutcome
from shared.contracts.vocabulary import Language
from shared.uow import InMemoryUnitOfWork

# ------------------------------------------------------------------------------ delivery log


@dataclass
class _Row:
    delivery: Delivery
    next_attempt_at: datetime
    finished_at: datetime | None = None
    claimed_by: uuid.UUID | None = None


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

    async def insert_notices(self, notices: Sequence[PlannedNotice]) -> int:
        return sum([await self.insert_notice(n) for n in notices])

    async def open_digest(
        self, notice: PlannedNotice, digest_id: uuid.UUID, window_seconds: float
    ) -> bool:
        if notice.round_id is None or notice.placement_id is None:
            raise ValueError("only a supervisor's notice of a round can join a digest")
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
        row = self.rows[digest_id]
        return (
            row.delivery.status == "pending"
            and row.delivery.attempts == 0
            and row.claimed_by is None
        )

    async def claim_due(self, limit: int, claim: uuid.UUID, lease_seconds: float) -> list[Delivery]:
        now = self.now()
        due = [r for r in self.rows.values() if r.delivery.status == "pending"]
        due = sorted((r for r in due if r.next_attempt_at <= now), key=lambda r: r.next_attempt_at)
        for row in due[:limit]:
            row.claimed_by = claim
            row.next_attempt_at = now + timedelta(seconds=lease_seconds)
        return [r.delivery for r in due[:limit]]

    async def members_of(self, digest_id: uuid.UUID) -> list[Delivery]:
        return [
            r.delivery
            for r in self.rows.values()  # in the order they arrived
            if r.delivery.digest_id == digest_id and r.delivery.status == "grouped"
        ]

    async def record(self, results: Sequence[Result], claim: uuid.UUID) -> set[uuid.UUID]:
        now = self.now()
        held = set()
        for result in results:
            row = self.rows[result.notification_id]
            if result.digest_id is None:
                if row.claimed_by != claim:
                    continue  # another worker's claim now
                row.claimed_by = None
            elif result.digest_id not in held or row.delivery.status != "grouped":
                continue
            held.add(result.notification_id)
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
        return held

    async def mark_handed_over(self, notification_id: uuid.UUID, claim: uuid.UUID) -> None:
        row = self.rows[notification_id]
        if row.claimed_by == claim:
            row.delivery = dataclasses.replace(row.delivery, handed_over_at=self.now())

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

    async def send(self, mail: OutgoingMail) -> None:
        reply = self.refusal(mail.recipient)
        if reply is not None:
            code, _, text = reply.partition(" ")
            raise classify_code(int(code), text)
        self.messages.append(parsed(mail))


def parsed(mail: OutgoingMail) -> EmailMessage:
    """The message a receiver reads from the bytes on the wire (line ends as `\\n`)."""
    message = email.message_from_bytes(mail.data.replace(b"\r\n", b"\n"), policy=default)
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class FakeContextSource:
    """The placements service's notice contexts by (placement, student), and students' notice
    contexts by student; `unavailable` counts the answers that are still to be "service
    unavailable" (by (placement, student), or by (`""`, student) for a student's context)."""

    contexts: dict[tuple[str, str], NoticeContext] = field(default_factory=dict)
    unavailable: dict[tuple[str, str], int] = field(default_factory=dict)
    students: dict[str, StudentNoticeContext] = field(default_factory=dict)
    student_calls: list[tuple[str, str | None]] = field(default_factory=list)
    batches: list[tuple[list[SupervisorKey], list[StudentKey]]] = field(default_factory=list)
    """The keys of each `fetch_many` call (one per delivery batch)."""
    due: list[DueReminder] = field(default_factory=list)
    """The confirmed matches the placements service would name as due for a reminder."""
    due_page: int = 500
    due_calls: int = 0

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

    async def fetch_many(
        self, supervisors: Sequence[SupervisorKey], students: Sequence[StudentKey]
    ) -> ContextBatch:
        """Every key answered as the single routes would (503s per key included)."""
        self.batches.append((list(supervisors), list(students)))
        found: dict[SupervisorKey, NoticeContext | DeliveryError] = {}
        found_students: dict[StudentKey, StudentNoticeContext | DeliveryError] = {}
        for placement_id, student_id in supervisors:
            try:
                found[(placement_id, student_id)] = await self.fetch(placement_id, student_id)
            except DeliveryError as exc:
                found[(placement_id, student_id)] = exc
        for key in students:
            try:
                found_students[key] = await self.fetch_student(*key)
            except DeliveryError as exc:
                found_students[key] = exc
        return ContextBatch(found, found_students)

    def student_answer(
        self, student_id: str, placement_id: str | None
    ) -> tuple[int, StudentNoticeContext | None]:
        """(HTTP status, context) as the student notice-context route would answer: with
        `placement_id`, the placement (from the supervisor's context of the pair) and no
        vacancies; without, the student's vacancies; 404 for an unknown (erased) student."""
        self.student_calls.append((student_id, placement_id))
        key = ("", student_id)
        if self.unavailable.get(key, 0) > 0:
            self.unavailable[key] -= 1
            return 503, None
        found = self.students.get(student_id)
        if found is None:
            return 404, None
        if placement_id is None:
            return 200, found.model_copy(update={"placement": None})
        pair = self.contexts.get((placement_id, student_id))
        placement = pair.placement if pair is not None else found.placement
        if placement is None or placement.placement_id != placement_id:
            return 404, None
        return 200, found.model_copy(
            update={"placement": placement, "vacancies": (), "vacancies_total": 0}
        )

    def due_answer(
        self, starts_from: date, starts_until: date, after: uuid.UUID | None
    ) -> DueReminders:
        """The due reminders as the placements route answers them: those of `due` starting in
        the window, by match id after `after`, `due_page` at a time."""
        self.due_calls += 1
        found = sorted(
            (
                d
                for d in self.due
                if starts_from <= d.starts_on <= starts_until
                and (after is None or d.match_id > after)
            ),
            key=lambda d: d.match_id,
        )
        page = found[: self.due_page]
        more = len(found) > self.due_page
        return DueReminders(items=tuple(page), next_after=page[-1].match_id if more else None)

    async def due_reminders(
        self, starts_from: date, starts_until: date, *, after: uuid.UUID | None = None
    ) -> DueReminders:
        return self.due_answer(starts_from, starts_until, after)

    async def fetch_student(
        self, student_id: str, placement_id: str | None = None, round_id: uuid.UUID | None = None
    ) -> StudentNoticeContext:
        status, found = self.student_answer(student_id, placement_id)
        if status == 503:
            raise UpstreamUnavailable("placements service answered 503")
        if found is None:
            raise PermanentError(
                f"placements service has no student notice context for student {student_id} "
                "(404: withdrawn or erased)"
            )
        return found


def vacancies(count: int, *, start: int = 1) -> tuple[NoticeVacancy, ...]:
    """`count` vacancies, nearest first (2.4 km apart)."""
    return tuple(
        NoticeVacancy(
            placement_id=f"v-{i}",
            company_id="c-2",
            title=f"Vakans {i}",
            free_slots=i,
            starts_on=date(2027, 1, 18),
            ends_on=date(2027, 3, 12),
            distance_km=2.4 * i,
        )
        for i in range(start, start + count)
    )


def student_context(
    student_id: str,
    *,
    email: str | None = None,
    language: Language = "sv",
    name: str = "Kim Lindqvist",
    fitting: int = 0,
    total: int | None = None,
    placement: NoticePlacement | None = None,
) -> StudentNoticeContext:
    """What the placements service answers about a student: name, `email` (default
    `<id>@student.example`), `language`; the first `fitting` (at most 10) of `total` vacancies."""
    listed = vacancies(min(fitting, 10))
    return StudentNoticeContext(
        student_id=student_id,
        region="SE-AB",
        name=name,
        email=email or f"{student_id}@student.example",
        language=language,
        placement=placement,
        vacancies=listed,
        vacancies_total=fitting if total is None else total,
        page_url="https://apl.example.se/student",
    )


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
    placement_id: str,
    student_id: str,
    round_id: uuid.UUID | None = None,
    *,
    rank: int | None = 1,
    filled: bool = False,
    override: bool = False,
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
            rank=None if filled else rank,
            filled=filled,
            override=override,
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


def outcome(
    student_id: str,
    placement_id: str | None = None,
    reason: OutcomeReason | None = "choices_full",
) -> StudentOutcome:
    """A student's outcome: placed at `placement_id` (rank 1), or unplaced for `reason`."""
    placed = placement_id is not None
    return StudentOutcome(
        student_id=student_id,
        placement_id=placement_id,
        rank=1 if placed else None,
        reason=None if placed else reason,
        explanation=Explanation(choices=3),
    )


def round_outcomes(
    outcomes: Sequence[StudentOutcome],
    *,
    round_id: uuid.UUID | None = None,
    dry_run: bool = False,
    part: int = 1,
    parts: int = 1,
) -> MatchingRoundOutcomes:
    return MatchingRoundOutcomes(
        producer="matching",
        data=MatchingRoundOutcomesData(
            round_id=round_id or uuid.uuid4(),
            region="SE-AB",
            part=part,
            parts=parts,
            dry_run=dry_run,
            outcomes=tuple(outcomes),
        ),
    )


def supplementary_opened(
    student_ids: Sequence[str], *, ranks_until: date | None = date(2027, 2, 1)
) -> SupplementaryRoundOpened:
    return SupplementaryRoundOpened(
        producer="placements",
        data=SupplementaryRoundOpenedData(
            opening_id=uuid.uuid4(),
            region="SE-AB",
            round_id=uuid.uuid4(),
            student_ids=tuple(student_ids),
            ranks_until=ranks_until,
        ),
    )
