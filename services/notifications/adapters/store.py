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


async def pick_due(conn: Connection) -> Delivery | None:
    """Lock one due pending delivery (others skip it) for the rest of the transaction."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now() "
        "ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    return Delivery.of(row) if row is not None else None


async def members_of(conn: Connection, digest_id: uuid.UUID) -> list[Delivery]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM deliveries WHERE digest_id = $1 AND status = 'grouped' "
        "ORDER BY created_at, notification_id FOR UPDATE",
        digest_id,
    )
    return [Delivery.of(r) for r in rows]


async def finish(
    conn: Connection,
    ids: list[uuid.UUID],
    *,
    status: str,
    channel: str,
    attempts: int,
    error: str | None,
) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = $2, channel = $3, attempts = $4, last_error = $5, "
        "finished_at = now() WHERE notification_id = ANY($1::uuid[])",
        ids,
        status,
        channel,
        attempts,
        error,
    )


async def schedule_retry(
    conn: Connection, notice_id: uuid.UUID, *, attempts: int, delay_seconds: float, error: str
) -> None:
    await conn.execute(
        "UPDATE deliveries SET attempts = $2, last_error = $3, "
        "next_attempt_at = now() + make_interval(secs => $4) WHERE notification_id = $1",
        notice_id,
        attempts,
        error,
        delay_seconds,
    )
