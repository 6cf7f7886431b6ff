"""SQL of the placements schema. Every function takes the connection of the caller's transaction."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.db import Connection

from ..domain.rules import Channel, Match

Row = asyncpg.Record


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python values."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# ------------------------------------------------------------------------------ placements


async def get_placement(conn: Connection, placement_id: str, *, lock: bool = False) -> Row | None:
    sql = "SELECT * FROM placements WHERE placement_id = $1" + (" FOR UPDATE" if lock else "")
    return await conn.fetchrow(sql, placement_id)


async def insert_placement(
    conn: Connection, offer: PlacementOffer, channel: Channel | None
) -> Row | None:
    """The new row, or None if the id exists."""
    return await conn.fetchrow(
        "INSERT INTO placements (placement_id, company_id, region, offer, channel, webhook_url) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (placement_id) DO NOTHING RETURNING *",
        offer.placement_id,
        offer.company_id,
        offer.region,
        offer.model_dump(mode="json"),
        channel.kind if channel else None,
        channel.webhook_url if channel else None,
    )


async def insert_placements(
    conn: Connection, rows: list[tuple[PlacementOffer, Channel | None]]
) -> set[str]:
    """Insert many placements in one statement; return the ids inserted (the others exist)."""
    inserted = await conn.fetch(
        "INSERT INTO placements (placement_id, company_id, region, offer, channel, webhook_url) "
        "SELECT u.id, u.company, u.region, u.offer::jsonb, u.channel, u.hook "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
        "AS u(id, company, region, offer, channel, hook) "
        "ON CONFLICT (placement_id) DO NOTHING RETURNING placement_id",
        [o.placement_id for o, _ in rows],
        [o.company_id for o, _ in rows],
        [o.region for o, _ in rows],
        [o.model_dump_json() for o, _ in rows],
        [c.kind if c else None for _, c in rows],
        [c.webhook_url if c else None for _, c in rows],
    )
    return {r["placement_id"] for r in inserted}


async def update_placement(
    conn: Connection, offer: PlacementOffer, channel: Channel | None, set_channel: bool
) -> Row:
    """The updated row of a placement that the caller's transaction has locked."""
    row = await conn.fetchrow(
        "UPDATE placements SET company_id = $2, offer = $3, updated_at = now(), "
        "channel = CASE WHEN $4 THEN $5 ELSE channel END, "
        "webhook_url = CASE WHEN $4 THEN $6 ELSE webhook_url END "
        "WHERE placement_id = $1 RETURNING *",
        offer.placement_id,
        offer.company_id,
        offer.model_dump(mode="json"),
        set_channel,
        channel.kind if channel else None,
        channel.webhook_url if channel else None,
    )
    assert row is not None
    return row


async def withdraw_placement(conn: Connection, placement_id: str, reason: str | None) -> None:
    await conn.execute(
        "UPDATE placements SET withdrawn_at = now(), withdraw_reason = $2, updated_at = now() "
        "WHERE placement_id = $1",
        placement_id,
        reason,
    )


async def list_placements(
    conn: Connection,
    region: str | None,
    company_id: str | None,
    include_withdrawn: bool,
    limit: int,
    offset: int,
) -> list[Row]:
    return await conn.fetch(
        "SELECT * FROM placements WHERE ($1::text IS NULL OR region = $1) "
        "AND ($2::text IS NULL OR company_id = $2) AND ($3 OR withdrawn_at IS NULL) "
        "ORDER BY placement_id LIMIT $4 OFFSET $5",
        region,
        company_id,
        include_withdrawn,
        limit,
        offset,
    )


async def open_placements_among(conn: Connection, ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT placement_id FROM placements WHERE placement_id = ANY($1::text[]) "
        "AND withdrawn_at IS NULL",
        ids,
    )
    return {r["placement_id"] for r in rows}


async def confirmed_counts(conn: Connection, placement_ids: list[str]) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT placement_id, count(*) AS n FROM matches WHERE state = 'confirmed' "
        "AND placement_id = ANY($1::text[]) GROUP BY placement_id",
        placement_ids,
    )
    return {r["placement_id"]: int(r["n"]) for r in rows}


async def set_company_channel(conn: Connection, company_id: str, channel: Channel) -> None:
    await conn.execute(
        "INSERT INTO companies (company_id, channel, webhook_url) VALUES ($1, $2, $3) "
        "ON CONFLICT (company_id) DO UPDATE SET channel = EXCLUDED.channel, "
        "webhook_url = EXCLUDED.webhook_url, updated_at = now()",
        company_id,
        channel.kind,
        channel.webhook_url,
    )


async def company_channel(conn: Connection, company_id: str) -> Channel | None:
    row = await conn.fetchrow(
        "SELECT channel, webhook_url FROM companies WHERE company_id = $1", company_id
    )
    return Channel(row["channel"], row["webhook_url"]) if row else None


# -------------------------------------------------------------------------------- students


async def get_student(conn: Connection, student_id: str, *, lock: bool = False) -> Row | None:
    sql = "SELECT * FROM students WHERE student_id = $1" + (" FOR UPDATE" if lock else "")
    return await conn.fetchrow(sql, student_id)


async def insert_student(
    conn: Connection, profile: StudentProfile, name: str, email: str, phone: str | None
) -> Row | None:
    """The new row, or None if the id exists."""
    return await conn.fetchrow(
        "INSERT INTO students (student_id, region, programme, profile, name, email, phone, "
        "registered_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now()) "
        "ON CONFLICT (student_id) DO NOTHING RETURNING *",
        profile.student_id,
        profile.region,
        profile.programme,
        profile.model_dump(mode="json"),
        name,
        email,
        phone,
    )


async def insert_students(
    conn: Connection, rows: list[tuple[StudentProfile, str, str, str | None]]
) -> set[str]:
    """Insert many students in one statement; return the ids inserted (the others exist)."""
    inserted = await conn.fetch(
        "INSERT INTO students (student_id, region, programme, profile, name, email, phone, "
        "registered_at, updated_at) "
        "SELECT u.id, u.region, u.programme, u.profile::jsonb, u.name, u.email, u.phone, "
        "now(), now() "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
        "$7::text[]) AS u(id, region, programme, profile, name, email, phone) "
        "ON CONFLICT (student_id) DO NOTHING RETURNING student_id",
        [p.student_id for p, *_ in rows],
        [p.region for p, *_ in rows],
        [p.programme for p, *_ in rows],
        [p.model_dump_json() for p, *_ in rows],
        [name for _, name, _, _ in rows],
        [email for _, _, email, _ in rows],
        [phone for _, _, _, phone in rows],
    )
    return {r["student_id"] for r in inserted}


async def update_profile(conn: Connection, profile: StudentProfile) -> Row:
    """The updated row of a student that the caller's transaction has locked."""
    row = await conn.fetchrow(
        "UPDATE students SET profile = $2, updated_at = now() WHERE student_id = $1 RETURNING *",
        profile.student_id,
        profile.model_dump(mode="json"),
    )
    assert row is not None
    return row


async def erase_student(conn: Connection, student_id: str) -> None:
    """Leave a tombstone (id, region, programme, withdrawal time) and scrub every other trace."""
    await conn.execute(
        "UPDATE students SET profile = NULL, name = NULL, email = NULL, phone = NULL, "
        "registered_at = NULL, updated_at = NULL, withdrawn_at = now() WHERE student_id = $1",
        student_id,
    )
    # Stored idempotent responses keep no personal field, and no hash of the request body.
    await conn.execute(
        "UPDATE idempotency_keys SET request_hash = NULL, "
        "response = response - 'name' - 'email' - 'phone' WHERE student_id = $1",
        student_id,
    )
    # Published outbox rows about the student are history only; unsent ones must still go out.
    await conn.execute(
        "DELETE FROM outbox WHERE sent_at IS NOT NULL "
        "AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'student_id' = $1",
        student_id,
    )
    # Free-text decline reasons the student wrote go too.
    await conn.execute(
        "UPDATE matches SET reason = NULL WHERE student_id = $1 AND declined_by = 'student'",
        student_id,
    )


# --------------------------------------------------------------------------------- matches


def to_match(row: Row) -> Match:
    return Match(
        match_id=str(row["match_id"]),
        state=row["state"],
        accepted_by_student=row["accepted_by_student"],
        accepted_by_company=row["accepted_by_company"],
        declined_by=row["declined_by"],
        reason=row["reason"],
    )


async def get_match(conn: Connection, match_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    sql = "SELECT * FROM matches WHERE match_id = $1" + (" FOR UPDATE" if lock else "")
    return await conn.fetchrow(sql, match_id)


async def insert_match(
    conn: Connection,
    match_id: uuid.UUID,
    round_id: uuid.UUID | None,
    region: str,
    student_id: str,
    placement_id: str,
    company_id: str | None,
    rank: int | None,
) -> None:
    await conn.execute(
        "INSERT INTO matches (match_id, round_id, region, student_id, placement_id, company_id, "
        "rank, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'proposed') "
        "ON CONFLICT (match_id) DO NOTHING",
        match_id,
        round_id,
        region,
        student_id,
        placement_id,
        company_id,
        rank,
    )


async def save_match(conn: Connection, match: Match) -> Row:
    """The updated row of a match that the caller's transaction has locked."""
    row = await conn.fetchrow(
        "UPDATE matches SET state = $2, accepted_by_student = $3, accepted_by_company = $4, "
        "declined_by = $5, reason = $6, updated_at = now() WHERE match_id = $1 RETURNING *",
        uuid.UUID(match.match_id),
        match.state,
        match.accepted_by_student,
        match.accepted_by_company,
        match.declined_by,
        match.reason,
    )
    assert row is not None
    return row


async def matches_of_placement(conn: Connection, placement_id: str) -> list[Row]:
    return await conn.fetch(
        "SELECT * FROM matches WHERE placement_id = $1 ORDER BY created_at, match_id",
        placement_id,
    )


async def matches_of_pair(conn: Connection, placement_id: str, student_id: str) -> list[Row]:
    return await conn.fetch(
        "SELECT * FROM matches WHERE placement_id = $1 AND student_id = $2",
        placement_id,
        student_id,
    )


async def current_match_of_student(conn: Connection, student_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM matches WHERE student_id = $1 "
        "AND state IN ('proposed', 'accepted', 'confirmed') "
        "ORDER BY created_at DESC, match_id LIMIT 1",
        student_id,
    )


# ---------------------------------------------------------------------------------- rounds


async def insert_round(
    conn: Connection,
    round_id: uuid.UUID,
    region: str,
    policy: str,
    requested_by: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO rounds (round_id, region, policy, requested_by, status, requested_at) "
        "VALUES ($1, $2, $3, $4, 'requested', now()) ON CONFLICT (round_id) DO NOTHING",
        round_id,
        region,
        policy,
        requested_by,
    )


async def complete_round(
    conn: Connection,
    round_id: uuid.UUID,
    region: str,
    policy: str,
    figures: dict[str, Any],
    unplaced_by_reason: dict[str, int],
    proposed: int,
    cancelled: int,
) -> None:
    await conn.execute(
        "INSERT INTO rounds (round_id, region, policy, status, figures, unplaced_by_reason, "
        "proposed, cancelled, completed_at) "
        "VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7, now()) "
        "ON CONFLICT (round_id) DO UPDATE SET status = 'completed', policy = EXCLUDED.policy, "
        "figures = EXCLUDED.figures, unplaced_by_reason = EXCLUDED.unplaced_by_reason, "
        "proposed = EXCLUDED.proposed, cancelled = EXCLUDED.cancelled, completed_at = now()",
        round_id,
        region,
        policy,
        figures,
        unplaced_by_reason,
        proposed,
        cancelled,
    )


async def get_round(conn: Connection, round_id: uuid.UUID) -> Row | None:
    return await conn.fetchrow("SELECT * FROM rounds WHERE round_id = $1", round_id)


# ---------------------------------------------------------------------------- idempotency


async def reserve_key(
    conn: Connection, key: str, method: str, path: str, request_hash: str
) -> Row | None:
    """Reserve the key for this transaction; or return the row of the request that used it first.

    A concurrent request with the same key waits on the primary key until the first commits
    (then sees its row) or rolls back (then reserves the key itself).
    """
    reserved = await conn.fetchval(
        "INSERT INTO idempotency_keys (key, method, path, request_hash) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING RETURNING true",
        key,
        method,
        path,
        request_hash,
    )
    if reserved:
        return None
    return await conn.fetchrow(
        "SELECT * FROM idempotency_keys WHERE key = $1 AND method = $2 AND path = $3",
        key,
        method,
        path,
    )


async def store_response(
    conn: Connection,
    key: str,
    method: str,
    path: str,
    status: int,
    response: Any,
    student_id: str | None,
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = $4, response = $5, student_id = $6 "
        "WHERE key = $1 AND method = $2 AND path = $3",
        key,
        method,
        path,
        status,
        response,
        student_id,
    )
