"""The delivery log in Postgres (`deliveries`, see migrations/). Ids only, no personal data.

Each row keeps the W3C trace context current when it was written (the consumer's span of the
event that asked for the notice; `traceparent`, `tracestate`, NULL outside a trace), as the outbox
does: the delivery worker continues that trace when it sends the notice.

`NoticeRepository` is bound to the connection of a unit of work's transaction
(`NotificationsUnitOfWork.notices`); `tests/support/fakes/notifications.py` has an in-memory one
with the same methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import asyncpg

from services.notifications.domain.notices import NoticeKind, PlannedNotice
from shared import tracing
from shared.db import Connection

Status = Literal["pending", "grouped", "delivered", "failed"]


@dataclass(frozen=True)
class Delivery:
    """One row of the delivery log: a notice, or a digest of notices (`kind == "digest"`)."""

    notification_id: uuid.UUID
    source_event_id: uuid.UUID
    recipient: str
    kind: NoticeKind
    region: str
    placement_id: str | None
    """None for a student's notice about no match (unplaced, supplementary round)."""
    match_id: uuid.UUID | None
    student_id: str | None
    round_id: uuid.UUID | None
    detail: str | None
    status: Status
    digest_id: uuid.UUID | None
    attempts: int
    channel: str | None = None
    last_error: str | None = None
    traceparent: str | None = None
    """The trace context of the event's handling that recorded the notice (W3C), if any."""
    tracestate: str | None = None
    handed_over_at: datetime | None = None
    """When the mail server accepted its message, if it did and no outcome says so yet
    (`services/notifications/handover.py`)."""

    @property
    def trace(self) -> dict[str, str]:
        """The stored trace context as W3C headers (empty when none was stored)."""
        stored = {"traceparent": self.traceparent, "tracestate": self.tracestate}
        return {k: v for k, v in stored.items() if v}

    @classmethod
    def of(cls, row: Any) -> Delivery:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Result:
    """One row's outcome: `delivered`/`failed` (finished now) or `pending` again after
    `retry_in` seconds (the channel stays as it was)."""

    notification_id: uuid.UUID
    status: Status
    attempts: int
    channel: str | None = None
    error: str | None = None
    retry_in: float | None = None
    digest_id: uuid.UUID | None = None
    """A digest's member: recorded only if the digest's own row is (it carries the claim)."""


class NoticeStore(Protocol):
    """What the handlers do with the delivery log (Postgres here, in memory in the fakes)."""

    async def insert_notice(
        self,
        notice: PlannedNotice,
        *,
        status: Status = "pending",
        digest_id: uuid.UUID | None = None,
    ) -> bool: ...

    async def insert_notices(self, notices: Sequence[PlannedNotice]) -> int: ...

    async def open_digest(
        self, notice: PlannedNotice, digest_id: uuid.UUID, window_seconds: float
    ) -> bool: ...

    async def claim_due(
        self, limit: int, claim: uuid.UUID, lease_seconds: float
    ) -> list[Delivery]: ...

    async def members_of(self, digest_id: uuid.UUID) -> list[Delivery]: ...

    async def record(self, results: Sequence[Result], claim: uuid.UUID) -> set[uuid.UUID]: ...

    async def mark_handed_over(self, notification_id: uuid.UUID, claim: uuid.UUID) -> None: ...

    async def get(self, notification_id: uuid.UUID) -> Delivery | None: ...

    async def of_source(self, source_event_id: uuid.UUID) -> list[Delivery]: ...


# The columns of a `Delivery`, a fixed list interpolated into the statements below.
_COLUMNS = ", ".join(Delivery.__dataclass_fields__)
_D_COLUMNS = ", ".join(f"d.{name}" for name in Delivery.__dataclass_fields__)
_OUTCOME = (
    "status = u.status, channel = coalesce(u.channel, d.channel), attempts = u.attempts, "
    "last_error = u.error, "
    "finished_at = CASE WHEN u.status = 'pending' THEN d.finished_at ELSE now() END, "
    "next_attempt_at = CASE WHEN u.retry_in IS NULL THEN d.next_attempt_at "
    "ELSE now() + make_interval(secs => u.retry_in) END"
)
"""The SET list recording an outcome `u` on a row `d` (see `record`)."""
_RECORD = (  # only the fixed SET list is interpolated
    "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], "  # noqa: S608
    "$5::text[], $6::float8[], $7::uuid[]) "
    "AS u(id, status, attempts, channel, error, retry_in, digest)), "
    f"held AS (UPDATE deliveries AS d SET {_OUTCOME}, claimed_by = NULL FROM u "
    "WHERE d.notification_id = u.id AND u.digest IS NULL AND d.claimed_by = $8 "
    "RETURNING d.notification_id), "
    f"members AS (UPDATE deliveries AS d SET {_OUTCOME} FROM u "
    "WHERE d.notification_id = u.id AND d.status = 'grouped' "
    "AND u.digest IN (SELECT notification_id FROM held) RETURNING d.notification_id) "
    "SELECT notification_id FROM held UNION ALL SELECT notification_id FROM members"
)


_MARK = (
    "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "UPDATE deliveries SET handed_over_at = now() FROM quick "
    "WHERE notification_id = $1 AND claimed_by = $2"
)
"""The hand-over mark, committed without waiting for the WAL's flush (`synchronous_commit`
off for its own transaction only): it guards against a crash of this service, which cannot
undo a commit PostgreSQL has made; a crash of PostgreSQL itself is ridden out by the outcome's
record, committed durably as before."""


class HeldMarks:
    """`NoticeRepository.mark_handed_over` as one statement on one connection of the pool, held
    from the first mark until `release` (the service's shutdown): the hand-over gate's marks
    (`handover.py`), one at a time, its own transaction each, one round trip. The gate holds
    every other message while a mark runs: a pooled `execute` paid there an acquire and the
    pool's reset query on release, a second round trip (0.57 ms a mark against 0.33 on a held
    connection, over 1,000 marks on the local PostgreSQL). A connection that fails is dropped;
    the next mark takes another.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._lock = asyncio.Lock()  # the gate makes marks one at a time; this keeps it so

    async def __call__(self, notification_id: uuid.UUID, claim: uuid.UUID) -> None:
        async with self._lock:
            conn = self._conn
            if conn is None:
                conn = self._conn = await self.pool.acquire()
            try:
                await conn.execute(_MARK, notification_id, claim)
            except BaseException:
                self._conn = None
                conn.terminate()  # its state is unknown (cancelled mid-statement, or broken)
                with contextlib.suppress(Exception):
                    await self.pool.release(conn)
                raise

    async def release(self) -> None:
        """Give the held connection back to the pool (before the pool closes)."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await self.pool.release(conn)


class NoticeRepository:
    """The delivery log on one transaction's connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def insert_notice(
        self,
        notice: PlannedNotice,
        *,
        status: Status = "pending",
        digest_id: uuid.UUID | None = None,
    ) -> bool:
        """Insert one per-event notice; False when it already exists (same event and recipient)."""
        trace = tracing.event_trace(notice.source_event_id)
        inserted = await self.conn.fetchval(
            "INSERT INTO deliveries (notification_id, source_event_id, recipient, kind, region, "
            "placement_id, match_id, student_id, round_id, detail, status, digest_id, "
            "traceparent, tracestate) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
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
            trace.get("traceparent"),
            trace.get("tracestate"),
        )
        return bool(inserted)

    async def insert_notices(self, notices: Sequence[PlannedNotice]) -> int:
        """Insert pending notices in one statement (a round's unplaced students: up to a part's
        200); those that already exist are left alone. Returns how many were new."""
        if not notices:
            return 0
        traces = [tracing.event_trace(n.source_event_id) for n in notices]
        rows = await self.conn.fetch(
            "INSERT INTO deliveries (notification_id, source_event_id, recipient, kind, region, "
            "placement_id, match_id, student_id, round_id, detail, traceparent, tracestate) "
            "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], "
            "$6::text[], $7::uuid[], $8::text[], $9::uuid[], $10::text[], $11::text[], "
            "$12::text[]) ON CONFLICT DO NOTHING RETURNING notification_id",
            [n.notification_id for n in notices],
            [n.source_event_id for n in notices],
            [n.recipient for n in notices],
            [n.kind for n in notices],
            [n.region for n in notices],
            [n.placement_id for n in notices],
            [n.match_id for n in notices],
            [n.student_id for n in notices],
            [n.round_id for n in notices],
            [n.detail for n in notices],
            [t.get("traceparent") for t in traces],
            [t.get("tracestate") for t in traces],
        )
        return len(rows)

    async def open_digest(
        self, notice: PlannedNotice, digest_id: uuid.UUID, window_seconds: float
    ) -> bool:
        """Create (or find) the round's digest for the notice's recipient and lock it.

        True when the digest still waits (never attempted, not claimed by a worker that is
        sending it): the notice may join it. False when it is already on its way: the notice goes
        out on its own.
        """
        if notice.round_id is None or notice.placement_id is None:
            raise ValueError("only a supervisor's notice of a round can join a digest")
        # the digest's delivery continues its first notice's trace
        trace = tracing.event_trace(notice.source_event_id)
        await self.conn.execute(
            "INSERT INTO deliveries (notification_id, source_event_id, recipient, kind, region, "
            "placement_id, round_id, status, next_attempt_at, traceparent, tracestate) "
            "VALUES ($1, $2, $3, 'digest', $4, $5, $2, 'pending', "
            "now() + make_interval(secs => $6), $7, $8) ON CONFLICT DO NOTHING",
            digest_id,
            notice.round_id,
            notice.recipient,
            notice.region,
            notice.placement_id,
            window_seconds,
            trace.get("traceparent"),
            trace.get("tracestate"),
        )
        waiting = await self.conn.fetchval(
            "SELECT true FROM deliveries WHERE notification_id = $1 AND status = 'pending' "
            "AND attempts = 0 AND claimed_by IS NULL FOR UPDATE SKIP LOCKED",
            digest_id,
        )
        return bool(waiting)

    async def claim_due(self, limit: int, claim: uuid.UUID, lease_seconds: float) -> list[Delivery]:
        """Claim up to `limit` due pending deliveries (the longest due first) for `claim`:
        their `claimed_by` is the claim and they are not due again before `lease_seconds`
        from now, so no other worker takes them while this one sends (nor after it recorded
        their outcomes). Rows locked by another transaction are skipped."""
        rows = await self.conn.fetch(
            # only the fixed column list is interpolated
            "WITH due AS (SELECT notification_id, next_attempt_at FROM deliveries "  # noqa: S608
            "WHERE status = 'pending' AND next_attempt_at <= now() "
            "ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
            "UPDATE deliveries AS d SET claimed_by = $2, "
            "next_attempt_at = now() + make_interval(secs => $3) "
            f"FROM due WHERE d.notification_id = due.notification_id RETURNING {_D_COLUMNS}, "
            "due.next_attempt_at AS due_at",
            limit,
            claim,
            lease_seconds,
        )
        return [Delivery.of(r) for r in sorted(rows, key=lambda r: r["due_at"])]

    async def members_of(self, digest_id: uuid.UUID) -> list[Delivery]:
        """The notices waiting in a digest, locked, in the order they arrived."""
        rows = await self.conn.fetch(
            # only the fixed column list is interpolated
            f"SELECT {_COLUMNS} FROM deliveries WHERE digest_id = $1 AND status = 'grouped' "  # noqa: S608
            "ORDER BY created_at, notification_id FOR UPDATE",
            digest_id,
        )
        return [Delivery.of(r) for r in rows]

    async def record(self, results: Sequence[Result], claim: uuid.UUID) -> set[uuid.UUID]:
        """Record the outcomes of a batch of deliveries, in one statement, on the rows still
        under `claim` (and the members of the digests that are); return the ids recorded. A
        row whose claim ran out and was taken by another worker is left to that worker."""
        if not results:
            return set()
        rows = await self.conn.fetch(
            _RECORD,
            [r.notification_id for r in results],
            [r.status for r in results],
            [r.attempts for r in results],
            [r.channel for r in results],
            [r.error for r in results],
            [r.retry_in for r in results],
            [r.digest_id for r in results],
            claim,
        )
        return {r["notification_id"] for r in rows}

    async def mark_handed_over(self, notification_id: uuid.UUID, claim: uuid.UUID) -> None:
        """The mail server accepted the notice's message (while `claim` holds it)."""
        await self.conn.execute(_MARK, notification_id, claim)

    async def get(self, notification_id: uuid.UUID) -> Delivery | None:
        row = await self.conn.fetchrow(
            # only the fixed column list is interpolated
            f"SELECT {_COLUMNS} FROM deliveries WHERE notification_id = $1",  # noqa: S608
            notification_id,
        )
        return None if row is None else Delivery.of(row)

    async def of_source(self, source_event_id: uuid.UUID) -> list[Delivery]:
        """The notices recorded for one match event (or, for a digest, one round)."""
        rows = await self.conn.fetch(
            # only the fixed column list is interpolated
            f"SELECT {_COLUMNS} FROM deliveries WHERE source_event_id = $1 "  # noqa: S608
            "ORDER BY notification_id",
            source_event_id,
        )
        return [Delivery.of(r) for r in rows]
