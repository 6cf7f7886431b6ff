"""What notices an event produces, their stable ids, and the retry schedule. Pure.

A notice goes to one *recipient*, named by an id, never by an address, so nothing personal is stored
before delivery: the workplace supervisor of the match's placement (`placement:<id>`), or a student
(`student:<id>`). The notice id is `uuid5(NAMESPACE, f"{source_id}:{recipient}")`: the same event
and recipient always give the same id, which is the e-mail's Message-ID and the webhook's
Idempotency-Key, so a receiver can drop the rare repeat.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.contracts.events import (
    Event,
    MatchCancelled,
    MatchConfirmed,
    MatchingRoundOutcomes,
    MatchProposed,
    Recipient,
    SupplementaryRoundOpened,
)
from shared.contracts.internal import DueReminder

NoticeKind = Literal[
    "proposed",
    "confirmed",
    "cancelled",
    "digest",
    "student_proposed",
    "student_confirmed",
    "student_unplaced",
    "student_supplementary",
    "reminder",
    "student_reminder",
]
"""Supervisors' notices (`proposed`, `confirmed`, `cancelled`, `digest`, `reminder`) and
students' (`student_…`: proposed a placement, confirmed at it, left unplaced with next steps,
invited to a supplementary round, reminded that their placement starts soon)."""

STUDENT_KINDS: frozenset[NoticeKind] = frozenset(
    {
        "student_proposed",
        "student_confirmed",
        "student_unplaced",
        "student_supplementary",
        "student_reminder",
    }
)

NAMESPACE = uuid.UUID("6f1c7d1e-3a52-5c1b-9a8e-4e2f0b7a9d10")
MESSAGE_ID_DOMAIN = "apl-match"


def recipient_of(placement_id: str) -> str:
    """The recipient key of a placement's supervisor."""
    return f"placement:{placement_id}"


def student_recipient(student_id: str) -> str:
    """The recipient key of a student."""
    return f"student:{student_id}"


def recipient_role(recipient: str) -> Recipient:
    """Who a recipient key names: `student` (`student:<id>`) or `supervisor`."""
    return "student" if recipient.startswith("student:") else "supervisor"


def notification_id(source_id: uuid.UUID, recipient: str) -> uuid.UUID:
    """Stable id of the notice about `source_id` (an event id, or a round id for a digest)."""
    return uuid.uuid5(NAMESPACE, f"{source_id}:{recipient}")


def message_id(notice_id: uuid.UUID) -> str:
    """The RFC 5322 Message-ID of a notice."""
    return f"<{notice_id}@{MESSAGE_ID_DOMAIN}>"


@dataclass(frozen=True)
class PlannedNotice:
    """One notice to deliver, by ids only."""

    notification_id: uuid.UUID
    source_event_id: uuid.UUID
    recipient: str
    kind: NoticeKind
    region: str
    match_id: uuid.UUID | None
    """None for a notice about no match (a student unplaced, or invited to a round)."""
    placement_id: str | None
    student_id: str
    round_id: uuid.UUID | None = None
    detail: str | None = None
    """cancelled: the reason; student_proposed: `rank:<n>`, `filled` or `override`;
    student_unplaced: the outcome's reason; student_supplementary: the last day to rank;
    reminder, student_reminder: the placement's first day."""

    def digest_id(self) -> uuid.UUID | None:
        """The digest this notice may join: proposals of one round to one recipient."""
        if self.kind != "proposed" or self.round_id is None:
            return None
        return notification_id(self.round_id, self.recipient)


def plan_notices(event: Event) -> list[PlannedNotice]:
    """The notices an event produces: for a proposal or confirmation, one to the placement's
    supervisor and one to the student; for a cancellation, one to the supervisor; for a
    round's outcomes (not a dry run), one to each unplaced student; for a supplementary round
    opened, one to each invited student; for anything else, none."""
    if isinstance(event, MatchProposed | MatchConfirmed | MatchCancelled):
        return _match_notices(event)
    if isinstance(event, MatchingRoundOutcomes):
        if event.data.dry_run:
            return []  # a dry run tells nobody
        return [
            _student_notice(
                event,
                outcome.student_id,
                "student_unplaced",
                region=event.data.region,
                round_id=event.data.round_id,
                detail=outcome.reason,
            )
            for outcome in event.data.outcomes
            if outcome.placement_id is None
        ]
    if isinstance(event, SupplementaryRoundOpened):
        until = event.data.ranks_until
        return [
            _student_notice(
                event,
                sid,
                "student_supplementary",
                region=event.data.region,
                round_id=event.data.round_id,
                detail=until.isoformat() if until else None,
            )
            for sid in dict.fromkeys(event.data.student_ids)  # once each, in order
        ]
    return []  # MatchAccepted / MatchDeclined and everything else: not a notice


def proposal_detail(event: MatchProposed) -> str | None:
    """How a proposed placement came about, for the student's notice."""
    data = event.data
    if data.override:
        return "override"
    if data.filled:
        return "filled"
    return f"rank:{data.rank}" if data.rank is not None else None


def _match_notices(event: MatchProposed | MatchConfirmed | MatchCancelled) -> list[PlannedNotice]:
    kind: NoticeKind
    round_id: uuid.UUID | None = None
    detail: str | None = None
    if isinstance(event, MatchProposed):
        kind, round_id = "proposed", event.data.round_id
    elif isinstance(event, MatchConfirmed):
        kind = "confirmed"
    else:
        kind, round_id, detail = "cancelled", event.data.round_id, event.data.reason
    data = event.data
    recipient = recipient_of(data.placement_id)
    notices = [
        PlannedNotice(
            notification_id=notification_id(event.event_id, recipient),
            source_event_id=event.event_id,
            recipient=recipient,
            kind=kind,
            region=data.region,
            match_id=data.match_id,
            placement_id=data.placement_id,
            student_id=data.student_id,
            round_id=round_id,
            detail=detail,
        )
    ]
    student_kind: NoticeKind | None = None
    if isinstance(event, MatchProposed):
        student_kind, detail = "student_proposed", proposal_detail(event)
    elif isinstance(event, MatchConfirmed):
        student_kind = "student_confirmed"
    if student_kind is not None:  # a cancellation is the supervisor's only
        notices.append(
            _student_notice(
                event,
                data.student_id,
                student_kind,
                region=data.region,
                match_id=data.match_id,
                placement_id=data.placement_id,
                round_id=round_id,
                detail=detail,
            )
        )
    return notices


def _student_notice(
    event: Event,
    student_id: str,
    kind: NoticeKind,
    *,
    region: str,
    match_id: uuid.UUID | None = None,
    placement_id: str | None = None,
    round_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> PlannedNotice:
    recipient = student_recipient(student_id)
    return PlannedNotice(
        notification_id=notification_id(event.event_id, recipient),
        source_event_id=event.event_id,
        recipient=recipient,
        kind=kind,
        region=region,
        match_id=match_id,
        placement_id=placement_id,
        student_id=student_id,
        round_id=round_id,
        detail=detail,
    )


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Wait before the next attempt after `attempts` failed ones: base · 2^(attempts−1), capped."""
    if attempts < 1:
        return 0.0
    return float(min(cap, base * 2 ** (attempts - 1)))


class DeliveryError(Exception):
    """A delivery attempt failed. `transient` says whether trying again may help."""

    transient: bool = True
    upstream: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class TransientError(DeliveryError):
    """Try again later: timeouts, SMTP 4xx, HTTP 5xx, a peer being down."""

    transient = True


class UpstreamUnavailable(TransientError):
    """Our own placements service could not give the notice's context (down, restarting, 5xx).

    Nothing was tried at the recipient, so this does not use up the notice's attempts: it is
    retried at a short fixed interval (2 s by default) until the service answers. An outage must
    not fail notices.
    """

    upstream = True


class PermanentError(DeliveryError):
    """Trying again will not help: SMTP 5xx, HTTP 4xx, no such placement or supervisor."""

    transient = False


_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def redact(text: str) -> str:
    """Errors are stored and published; remove e-mail addresses (personal data) from them."""
    return _EMAIL.sub("<address>", text)[:2000]


def reminder_source(match_id: uuid.UUID) -> uuid.UUID:
    """The stable source id of a match's reminders (they come of no event): the same match
    always gives the same notices."""
    return uuid.uuid5(NAMESPACE, f"reminder:{match_id}")


def plan_reminders(due: Sequence[DueReminder]) -> list[PlannedNotice]:
    """The reminders before a placement starts: for each confirmed match due, one to the
    placement's supervisor (`reminder`) and one to the student (`student_reminder`); `detail`
    is the placement's first day."""
    notices: list[PlannedNotice] = []
    for d in due:
        source = reminder_source(d.match_id)
        told: tuple[tuple[str, NoticeKind], ...] = (
            (recipient_of(d.placement_id), "reminder"),
            (student_recipient(d.student_id), "student_reminder"),
        )
        for recipient, kind in told:
            notices.append(
                PlannedNotice(
                    notification_id=notification_id(source, recipient),
                    source_event_id=source,
                    recipient=recipient,
                    kind=kind,
                    region=d.region,
                    match_id=d.match_id,
                    placement_id=d.placement_id,
                    student_id=d.student_id,
                    detail=d.starts_on.isoformat(),
                )
            )
    return notices
