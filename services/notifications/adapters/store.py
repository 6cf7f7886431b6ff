"""The delivery log in Postgres (`deliveries`, see migrations/0001). Ids only, no personal data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.notifications.domain.notices import NoticeKind, PlannedNotice
from shared.db import Connection


@dataclass(frozen=True)
class Delivery:
    notification_id: uuid.UUID
    source_event_id: uuid.UUID
    recipient: str
    kind: NoticeKind
    region: str
    placement_id: str
    match_id: uuid.UUID | None
    student_id: str | None
    round_id: uuid.UUID | None
    detail: str | None
    status: str
    digest_id: uuid.UUID | None
    attempts: int

    @classmethod
    def of(cls, row: Any) -> Delivery:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


_COLUMNS = ", ".join(Delivery.__dataclass_fields__)


async def insert_notice(
    conn: Connection,
    notice: PlannedNotice,
    *,
    status: str = "pending",
    digest_id: uuid.UUID | None = None,
) -> bool:
    """Insert one per-event notice; False when it already exists (same event and recipient)."""
    inserted = await conn.fetchval(
        "INSERT INTO deliveries (notification_id, source_event_id, recipient, kind, region, "
        "placement_id, match_id, student_id, round_id, detail, status, digest_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT DO NOTHING RETURNING true",
        notice.notification_id,
        notice.source_event_id,
        notice.recipient,
        notice.kind,
        notice.region,
        notice.placement_id,
        notice.match_id,
        notice.student_id,
        notice.round_id,
        notice.detail,
        status,
        digest_id,
    )
    return bool(inserted)


async def open_digest(
    conn: Connection, notice: PlannedNotice, digest_id: uuid.UUID, window_seconds: float
) -> bool:
    """Create (or find) the round's digest for the notice's recipient and lock it.

    True when the digest still waits (never attempted, not being sent right now): the notice may
    join it. False when it is already on its way: the notice goes out on its own.
    """
    assert notice.round_id is not None
    await conn.execute(
        "INSERT INTO deliveries (notification_id, source_event_id, recipient, kind, region, "
        "placement_id, round_id, status, next_attempt_at) "
        "VALUES ($1, $2, $3, 'digest', $4, $5, $2, 'pending', "
        "now() + make_interval(secs => $6)) ON CONFLICT DO NOTHING",
        digest_id,
        notice.round_id,
        notice.recipient,
        notice.region,
        notice.placement_id,
        window_seconds,
    )
    waiting = await conn.fetchval(
        "SELECT true FROM deliveries WHERE notification_id = $1 AND status = 'pending' "
        "AND attempts = 0 FOR UPDATE SKIP LOCKED",
        digest_id,
    )
    return bool(waiting)


async def pick_due(conn: Connection, limit: int = 1) -> list[Delivery]:
    """Lock up to `limit` due pending deliveries (others skip them) for the rest of the
    transaction, the longest due first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now() "
        "ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [Delivery.of(r) for r in rows]


async def members_of(conn: Connection, digest_id: uuid.UUID) -> list[Delivery]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM deliveries WHERE digest_id = $1 AND status = 'grouped' "
        "ORDER BY created_at, notification_id FOR UPDATE",
        digest_id,
    )
    return [Delivery.of(r) for r in rows]


@dataclass(frozen=True)
class Result:
    """One row's outcome: `delivered`/`failed` (finished now) or `pending` again after
    `retry_in` seconds (the channel stays as it was)."""

    notification_id: uuid.UUID
    status: str
    attempts: int
    channel: str | None = None
    error: str | None = None
    retry_in: float | None = None


async def record(conn: Connection, results: list[Result]) -> None:
    """Record the outcomes of a batch of deliveries, in one statement."""
    if not results:
        return
    await conn.execute(
        "UPDATE deliveries AS d SET status = u.status, channel = coalesce(u.channel, d.channel), "
        "attempts = u.attempts, last_error = u.error, "
        "finished_at = CASE WHEN u.status = 'pending' THEN d.finished_at ELSE now() END, "
        "next_attempt_at = CASE WHEN u.retry_in IS NULL THEN d.next_attempt_at "
        "ELSE now() + make_interval(secs => u.retry_in) END "
        "FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::float8[]) "
        "AS u(id, status, attempts, channel, error, retry_in) WHERE d.notification_id = u.id",
        [r.notification_id for r in results],
        [r.status for r in results],
        [r.attempts for r in results],
        [r.channel for r in results],
        [r.error for r in results],
        [r.retry_in for r in results],
    )
