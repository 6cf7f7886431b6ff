"""The matching service's read model in Postgres (its own schema), as functions over a connection.

Every function runs inside the caller's transaction. Locking rules (transaction-level advisory
locks, so a crash releases them):

- region lock: a region's rounds, its student events and the responses to its matches;
- placement lock: a placement's events, and every round whose problem includes the placement.

A round takes its region lock first, then the placement locks in one sorted sweep, so two rounds
(or a round and a placement event) never wait for each other in a cycle, and everything a round
reads stays as it read it until the round commits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from services.matching.domain.model import (
    Cancellation,
    CancelReason,
    NewProposal,
    RoundInput,
    Standing,
)
from services.matching.domain.rules import capacity_left
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.db import Connection

STANDING = ("proposed", "confirmed")
_REGION_LOCK = 1
_PLACEMENT_LOCK = 2


async def lock_region(conn: Connection, region: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _REGION_LOCK, region)


async def lock_region_and_find_student(
    conn: Connection, region: str, student_id: str
) -> str | None:
    """Lock `region` and return the region the student had before (None if new), in one trip."""
    row = await conn.fetchrow(
        "SELECT pg_advisory_xact_lock($1, hashtext($2)), "
        "(SELECT region FROM students WHERE student_id = $3) AS before",
        _REGION_LOCK,
        region,
        student_id,
    )
    assert row is not None
    before: str | None = row["before"]
    return before


async def lock_placements(conn: Connection, placement_ids: Iterable[str]) -> None:
    """Lock placements in one sweep, ordered by lock key, so lockers never deadlock."""
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock($1, k)) FROM "
        "(SELECT DISTINCT hashtext(p) AS k FROM unnest($2::text[]) AS p ORDER BY 1) AS keys",
        _PLACEMENT_LOCK,
        sorted(set(placement_ids)),
    )


async def mark_changed(conn: Connection, regions: Iterable[str]) -> None:
    """Bump the input version of regions whose problem changed (automatic mode reads it)."""
    for region in sorted(set(regions)):
        await conn.execute(
            "INSERT INTO region_state (region, input_version) VALUES ($1, 1) "
            "ON CONFLICT (region) DO UPDATE "
            "SET input_version = region_state.input_version + 1, changed_at = now()",
            region,
        )


async def changed_regions(conn: Connection) -> list[str]:
    """Regions whose input changed after their last round."""
    rows = await conn.fetch(
        "SELECT region FROM region_state WHERE input_version > round_version ORDER BY region"
    )
    return [r["region"] for r in rows]


# ------------------------------------------------------------------------------- placements


async def upsert_placement(conn: Connection, offer: PlacementOffer) -> None:
    await conn.execute(
        "INSERT INTO placements (placement_id, region, company_id, capacity, offer) "
        "VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (placement_id) DO UPDATE SET region = $2, company_id = $3, capacity = $4, "
        "offer = $5, withdrawn = false, updated_at = now()",
        offer.placement_id,
        offer.region,
        offer.company_id,
        offer.capacity,
        offer.model_dump_json(),
    )


async def withdraw_placement(conn: Connection, placement_id: str, region: str) -> None:
    """Mark withdrawn; a withdrawal seen before the placement itself leaves a tombstone."""
    await conn.execute(
        "INSERT INTO placements (placement_id, region, company_id, capacity, offer, withdrawn) "
        "VALUES ($1, $2, '', 0, 'null', true) "
        "ON CONFLICT (placement_id) DO UPDATE SET withdrawn = true, updated_at = now()",
        placement_id,
        region,
    )


async def regions_ranking(conn: Connection, placement_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT region FROM students "
        "WHERE NOT withdrawn AND profile -> 'preferences' ? $1",
        placement_id,
    )
    return [r["region"] for r in rows]


# --------------------------------------------------------------------------------- students


async def upsert_student(conn: Connection, profile: StudentProfile) -> None:
    await conn.execute(
        "INSERT INTO students (student_id, region, profile) VALUES ($1, $2, $3) "
        "ON CONFLICT (student_id) DO UPDATE SET region = $2, profile = $3, withdrawn = false, "
        "updated_at = now()",
        profile.student_id,
        profile.region,
        profile.model_dump_json(),
    )


async def withdraw_student(conn: Connection, student_id: str, region: str) -> None:
    await conn.execute(
        "INSERT INTO students (student_id, region, profile, withdrawn) VALUES ($1, $2, NULL, true) "
        "ON CONFLICT (student_id) DO UPDATE SET withdrawn = true, updated_at = now()",
        student_id,
        region,
    )


# ---------------------------------------------------------------------------------- matches


def _standing(row: Any) -> Standing:
    return Standing(
        match_id=str(row["match_id"]),
        student_id=row["student_id"],
        placement_id=row["placement_id"],
        company_id=row["company_id"],
        region=row["region"],
        rank=row["rank"],
        status=row["status"],
        student_accepted=row["student_accepted"],
        company_accepted=row["company_accepted"],
    )


_MATCH_COLUMNS = (
    "match_id, student_id, placement_id, company_id, region, rank, status, "
    "student_accepted, company_accepted"
)


async def standing_where(conn: Connection, condition: str, *args: Any) -> list[Standing]:
    rows = await conn.fetch(
        f"SELECT {_MATCH_COLUMNS} FROM matches WHERE status IN ('proposed', 'confirmed') "
        f"AND ({condition}) ORDER BY created_at, match_id",
        *args,
    )
    return [_standing(r) for r in rows]


@dataclass(frozen=True)
class MatchRow:
    match: Standing | None  # None when it no longer stands
    student_id: str
    placement_id: str


async def match_for_update(conn: Connection, match_id: uuid.UUID) -> MatchRow | None:
    row = await conn.fetchrow(
        f"SELECT {_MATCH_COLUMNS} FROM matches WHERE match_id = $1 FOR UPDATE", match_id
    )
    if row is None:
        return None
    standing = _standing(row) if row["status"] in STANDING else None
    return MatchRow(standing, row["student_id"], row["placement_id"])


async def record_acceptance(conn: Connection, match_id: str, by: str) -> Standing:
    column = "student_accepted" if by == "student" else "company_accepted"
    row = await conn.fetchrow(
        f"UPDATE matches SET {column} = true WHERE match_id = $1 RETURNING {_MATCH_COLUMNS}",
        uuid.UUID(match_id),
    )
    return _standing(row)


async def confirm(conn: Connection, match_id: str) -> None:
    await conn.execute(
        "UPDATE matches SET status = 'confirmed' WHERE match_id = $1", uuid.UUID(match_id)
    )


async def close_matches(
    conn: Connection, cancellations: Sequence[Cancellation], status: str = "cancelled"
) -> None:
    await conn.executemany(
        "UPDATE matches SET status = $2, cancel_reason = $3, closed_at = now() "
        "WHERE match_id = $1 AND status IN ('proposed', 'confirmed')",
        [(uuid.UUID(c.match.match_id), status, c.reason) for c in cancellations],
    )


async def close_standing(
    conn: Connection, condition: str, arg: str, reason: CancelReason
) -> list[Standing]:
    """Cancel the standing matches that meet `condition`; return them."""
    closed = await standing_where(conn, condition, arg)
    await close_matches(conn, [Cancellation(m, reason) for m in closed])
    return closed


async def exclude(conn: Connection, student_id: str, placement_id: str, match_id: str) -> None:
    await conn.execute(
        "INSERT INTO exclusions (student_id, placement_id, match_id) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        student_id,
        placement_id,
        uuid.UUID(match_id),
    )


async def insert_proposals(
    conn: Connection, region: str, round_id: uuid.UUID, proposals: Sequence[NewProposal]
) -> list[tuple[uuid.UUID, NewProposal]]:
    made = [(uuid.uuid4(), p) for p in proposals]
    await conn.executemany(
        "INSERT INTO matches (match_id, region, round_id, student_id, placement_id, company_id, "
        "rank, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'proposed')",
        [
            (mid, region, round_id, p.student_id, p.placement_id, p.company_id, p.rank)
            for mid, p in made
        ],
    )
    return made


# ----------------------------------------------------------------------------------- rounds


async def round_recorded(conn: Connection, round_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT true FROM rounds WHERE round_id = $1", round_id))


async def input_version(conn: Connection, region: str) -> int:
    value = await conn.fetchval("SELECT input_version FROM region_state WHERE region = $1", region)
    return int(value or 0)


async def input_changed(conn: Connection, region: str) -> bool:
    """Whether the region's input changed after its last round (automatic mode)."""
    changed = await conn.fetchval(
        "SELECT input_version > round_version FROM region_state WHERE region = $1", region
    )
    return bool(changed)


async def record_round(
    conn: Connection,
    *,
    round_id: uuid.UUID,
    region: str,
    policy: str,
    trigger: str,
    figures_json: str,
    unplaced: dict[str, int],
    proposed: int,
    cancelled: int,
    seen_version: int,
) -> None:
    await conn.execute(
        "INSERT INTO rounds (round_id, region, policy, trigger, figures, unplaced, proposed, "
        "cancelled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        round_id,
        region,
        policy,
        trigger,
        figures_json,
        json.dumps(unplaced),
        proposed,
        cancelled,
    )
    await conn.execute(
        "INSERT INTO region_state (region, round_version) VALUES ($1, $2) "
        "ON CONFLICT (region) DO UPDATE "
        "SET round_version = GREATEST(region_state.round_version, $2)",
        region,
        seen_version,
    )


async def load_problem(conn: Connection, region: str) -> tuple[RoundInput, int]:
    """The region's open problem and its input version. Call with the region lock held.

    Students: the region's, not withdrawn. Placements: every one they rank or hold a standing
    match at, from any region, locked, with capacity reduced by other regions' standing matches.
    """
    rows = await conn.fetch(
        "SELECT profile FROM students WHERE region = $1 AND NOT withdrawn "
        "AND profile IS NOT NULL ORDER BY student_id",
        region,
    )
    students = tuple(StudentProfile.model_validate_json(r["profile"]) for r in rows)
    student_ids = [s.student_id for s in students]
    condition = "region = $1 OR student_id = ANY($2::text[])"
    first = await standing_where(conn, condition, region, student_ids)
    wanted = {pid for s in students for pid in s.preferences} | {m.placement_id for m in first}
    await lock_placements(conn, wanted)
    # Again under the placement locks: a placement event (which takes only its placement's
    # lock) may have cancelled some of them meanwhile.
    standing = tuple(await standing_where(conn, condition, region, student_ids))
    wanted |= {m.placement_id for m in standing}
    prow = await conn.fetch(
        "SELECT placement_id, offer, withdrawn FROM placements "
        "WHERE placement_id = ANY($1::text[]) ORDER BY placement_id",
        sorted(wanted),
    )
    live = [PlacementOffer.model_validate_json(r["offer"]) for r in prow if not r["withdrawn"]]
    withdrawn_p = frozenset(r["placement_id"] for r in prow if r["withdrawn"])
    used = await conn.fetch(
        "SELECT placement_id, count(*) AS n FROM matches "
        "WHERE status IN ('proposed', 'confirmed') AND placement_id = ANY($1::text[]) "
        "AND region <> $2 AND NOT (student_id = ANY($3::text[])) GROUP BY placement_id",
        [p.placement_id for p in live],
        region,
        student_ids,
    )
    placements = capacity_left(live, {r["placement_id"]: int(r["n"]) for r in used})
    excl = await conn.fetch(
        "SELECT student_id, placement_id FROM exclusions WHERE student_id = ANY($1::text[])",
        student_ids,
    )
    gone = await conn.fetch(
        "SELECT student_id FROM students WHERE withdrawn AND student_id = ANY($1::text[])",
        [m.student_id for m in standing],
    )
    version = await input_version(conn, region)
    problem = RoundInput(
        region=region,
        students=students,
        placements=placements,
        standing=standing,
        excluded=frozenset((r["student_id"], r["placement_id"]) for r in excl),
        withdrawn_students=frozenset(r["student_id"] for r in gone),
        withdrawn_placements=withdrawn_p,
    )
    return problem, version


async def count_input(conn: Connection, event_id: uuid.UUID, producer: str, region: str) -> None:
    """One more input event of `producer` for `region` applied (inside its transaction). An
    event dead-lettered before and now replayed is no longer counted as dead-lettered.

    One statement, so every input event pays one round trip for it.
    """
    await conn.execute(
        "WITH replayed AS (DELETE FROM inputs_dead_lettered WHERE event_id = $3) "
        "INSERT INTO inputs_applied (producer, region, events) VALUES ($1, $2, 1) "
        "ON CONFLICT (producer, region) DO UPDATE SET events = inputs_applied.events + 1",
        producer,
        region,
        event_id,
    )


async def record_dead_input(
    conn: Connection, event_id: uuid.UUID, producer: str, region: str
) -> None:
    """An input event was dead-lettered: rounds stop waiting for it (idempotent)."""
    await conn.execute(
        "INSERT INTO inputs_dead_lettered (event_id, producer, region) VALUES ($1, $2, $3) "
        "ON CONFLICT (event_id) DO NOTHING",
        event_id,
        producer,
        region,
    )


async def inputs_settled(conn: Connection, producer: str, region: str) -> tuple[int, int]:
    """(applied, dead-lettered) input events of `producer` for `region`."""
    row = await conn.fetchrow(
        "SELECT (SELECT events FROM inputs_applied WHERE producer = $1 AND region = $2),"
        " (SELECT count(*) FROM inputs_dead_lettered WHERE producer = $1 AND region = $2)",
        producer,
        region,
    )
    assert row is not None  # a SELECT without FROM always returns its one row
    return int(row[0] or 0), int(row[1])
