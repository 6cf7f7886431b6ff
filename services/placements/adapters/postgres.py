"""The placements schema in PostgreSQL: one repository per table, bound to the connection of the
unit of work's transaction (`PostgresPlacementsUnitOfWork`). All SQL of the service is here."""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from shared.contracts import events as ev
from shared.contracts.events import RoundFigures
from shared.contracts.outcomes import StudentOutcome, outcome_json
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.contracts.vocabulary import Participant
from shared.db import Connection
from shared.outbox import published_count
from shared.serialised import Serialised, as_models
from shared.uow import PostgresUnitOfWork, stamped

from ..domain.commands import ListOutcomes
from ..domain.errors import second_standing_match
from ..domain.model import (
    Assignment,
    Contact,
    IdempotencyKey,
    MatchRecord,
    OutcomeRecord,
    Placement,
    Round,
    StoredResponse,
    Student,
    Withdrawn,
)
from ..domain.outcomes import Opening, Unplaced
from ..domain.reports import (
    DISTANCE_BOUNDS_KM,
    EARTH_RADIUS_KM,
    STANDING,
    RegionOverview,
    RoundBreakdown,
    UnplacedStudent,
)
from ..domain.rules import Channel, Match
from ..ports import JoinsOuterBlock
from .accounts import PostgresAccounts
from .audit import PostgresActionLinks, PostgresAudit
from .readiness import PostgresReadiness

Row = asyncpg.Record


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python values (the pool's `init`)."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _for_update(sql: str, *, for_update: bool) -> str:
    return sql + " FOR UPDATE" if for_update else sql


def _channel(row: Row) -> Channel | None:
    return Channel(row["channel"], row["webhook_url"]) if row["channel"] else None


class _Repository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn


# ------------------------------------------------------------------------------ placements


_OFFERS: OrderedDict[str, PlacementOffer] = OrderedDict()
_OFFERS_KEPT = 50_000


_PLACEMENT = "placement_id, offer::text AS offer, channel, webhook_url, withdrawn_at"
"""The columns `_placement` reads, the offer as jsonb's text: read back, an offer is a key into
`_OFFERS` as it is, and only a new one is parsed (asyncpg's json.loads of every offer read, and
the json.dumps that keyed the cache, cost two thirds of reading a region's vacancies)."""


def _offer(stored: str) -> PlacementOffer:
    """The stored offer (jsonb's text, the same text for the same value) as the contract's
    model. Offers are immutable values, validated when written; reading one back validates it
    again (its e-mail address costs most), so the models of recently read offers are kept, keyed
    by their text (a changed offer is a new key)."""
    found = _OFFERS.get(stored)
    if found is not None:
        _OFFERS.move_to_end(stored)
        return found
    offer = PlacementOffer.model_validate_json(stored, strict=False)
    _OFFERS[stored] = offer
    if len(_OFFERS) > _OFFERS_KEPT:
        _OFFERS.popitem(last=False)
    return offer


def _placement(row: Row) -> Placement:
    return Placement(
        offer=_offer(row["offer"]),
        channel=_channel(row),
        withdrawn=row["withdrawn_at"] is not None,
    )


class PostgresPlacements(_Repository):
    async def get(self, placement_id: str, *, for_update: bool = False) -> Placement | None:
        sql = _for_update(
            f"SELECT {_PLACEMENT} FROM placements WHERE placement_id = $1",  # noqa: S608
            for_update=for_update,
        )
        row = await self.conn.fetchrow(sql, placement_id)
        return _placement(row) if row else None

    async def get_many(self, placement_ids: Iterable[str]) -> dict[str, Placement]:
        rows = await self.conn.fetch(
            f"SELECT {_PLACEMENT} FROM placements WHERE placement_id = ANY($1::text[])",  # noqa: S608
            list(placement_ids),
        )
        return {r["placement_id"]: _placement(r) for r in rows}

    async def add(self, placement: Placement) -> bool:
        return bool(await self.add_many([placement]))

    async def add_many(self, placements: Sequence[Placement]) -> set[str]:
        inserted = await self.conn.fetch(
            "INSERT INTO placements "
            "(placement_id, company_id, region, offer, channel, webhook_url, kind) "
            "SELECT u.id, u.company, u.region, u.offer::jsonb, u.channel, u.hook, u.kind "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
            "$7::text[]) AS u(id, company, region, offer, channel, hook, kind) "
            "ON CONFLICT (placement_id) DO NOTHING RETURNING placement_id",
            [p.offer.placement_id for p in placements],
            [p.offer.company_id for p in placements],
            [p.offer.region for p in placements],
            [p.offer.model_dump_json() for p in placements],
            [p.channel.kind if p.channel else None for p in placements],
            [p.channel.webhook_url if p.channel else None for p in placements],
            [p.offer.kind for p in placements],
        )
        return {r["placement_id"] for r in inserted}

    async def save(self, placement: Placement) -> None:
        offer, channel = placement.offer, placement.channel
        await self.conn.execute(
            "UPDATE placements SET company_id = $2, offer = $3, channel = $4, webhook_url = $5, "
            "updated_at = now() WHERE placement_id = $1",
            offer.placement_id,
            offer.company_id,
            offer.model_dump(mode="json"),
            channel.kind if channel else None,
            channel.webhook_url if channel else None,
        )

    async def withdraw(self, placement_id: str, reason: str | None) -> None:
        await self.conn.execute(
            "UPDATE placements SET withdrawn_at = now(), withdraw_reason = $2, updated_at = now() "
            "WHERE placement_id = $1",
            placement_id,
            reason,
        )

    async def search(
        self,
        *,
        region: str | None,
        company_id: str | None,
        include_withdrawn: bool,
        limit: int,
        offset: int,
        kind: Participant | None = None,
    ) -> list[Placement]:
        rows = await self.conn.fetch(
            f"SELECT {_PLACEMENT} FROM placements WHERE ($1::text IS NULL OR region = $1) "  # noqa: S608
            "AND ($2::text IS NULL OR company_id = $2) AND ($3 OR withdrawn_at IS NULL) "
            "AND ($6::text IS NULL OR kind = $6) "
            "ORDER BY placement_id LIMIT $4 OFFSET $5",
            region,
            company_id,
            include_withdrawn,
            limit,
            offset,
            kind,
        )
        return [_placement(r) for r in rows]

    async def open_among(self, placement_ids: Iterable[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT placement_id FROM placements WHERE placement_id = ANY($1::text[]) "
            "AND withdrawn_at IS NULL",
            list(placement_ids),
        )
        return {r["placement_id"] for r in rows}

    async def open_kinds(self, placement_ids: Iterable[str]) -> dict[str, Participant]:
        rows = await self.conn.fetch(
            "SELECT placement_id, kind FROM placements WHERE placement_id = ANY($1::text[]) "
            "AND withdrawn_at IS NULL",
            list(placement_ids),
        )
        return {r["placement_id"]: r["kind"] for r in rows}

    async def with_free_slots(self, region: str, kind: Participant) -> list[tuple[Placement, int]]:
        # Only the placements with a free slot are read and decoded: after a round with fill
        # that is a few of the region's thousands.
        rows = await self.conn.fetch(_WITH_FREE_SLOTS, region, kind)
        return [(_placement(r), int(r["held"])) for r in rows]

    async def open_count(self, region: str, kind: Participant) -> int:
        return int(
            await self.conn.fetchval(
                "SELECT count(*) FROM placements WHERE region = $1 AND kind = $2 "
                "AND withdrawn_at IS NULL",
                region,
                kind,
            )
        )


class PostgresCompanies(_Repository):
    async def set_channel(self, company_id: str, channel: Channel) -> None:
        await self.conn.execute(
            "INSERT INTO companies (company_id, channel, webhook_url) VALUES ($1, $2, $3) "
            "ON CONFLICT (company_id) DO UPDATE SET channel = EXCLUDED.channel, "
            "webhook_url = EXCLUDED.webhook_url, updated_at = now()",
            company_id,
            channel.kind,
            channel.webhook_url,
        )

    async def channel(self, company_id: str) -> Channel | None:
        row = await self.conn.fetchrow(
            "SELECT channel, webhook_url FROM companies WHERE company_id = $1", company_id
        )
        return _channel(row) if row else None

    async def channels(self, company_ids: Iterable[str]) -> dict[str, Channel]:
        rows = await self.conn.fetch(
            "SELECT company_id, channel, webhook_url FROM companies "
            "WHERE company_id = ANY($1::text[])",
            list(company_ids),
        )
        return {r["company_id"]: found for r in rows if (found := _channel(r)) is not None}


# -------------------------------------------------------------------------------- students


def _student(row: Row) -> Student | Withdrawn:
    if row["withdrawn_at"] is not None or row["profile"] is None:
        return Withdrawn(row["student_id"], row["region"], row["programme"], row["participant"])
    return Student(
        profile=StudentProfile.model_validate(row["profile"], strict=False),
        contact=Contact(row["name"], row["email"], row["phone"], row["language"]),
    )


class PostgresStudents(_Repository):
    async def get(self, student_id: str, *, for_update: bool = False) -> Student | Withdrawn | None:
        sql = _for_update("SELECT * FROM students WHERE student_id = $1", for_update=for_update)
        row = await self.conn.fetchrow(sql, student_id)
        return _student(row) if row else None

    async def add(self, student: Student) -> bool:
        return bool(await self.add_many([student]))

    async def add_many(self, students: Sequence[Student]) -> set[str]:
        inserted = await self.conn.fetch(
            "INSERT INTO students (student_id, region, programme, profile, name, email, phone, "
            "language, registered_at, updated_at, participant) "
            "SELECT u.id, u.region, u.programme, u.profile::jsonb, u.name, u.email, u.phone, "
            "u.language, now(), now(), u.participant "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
            "$7::text[], $8::text[], $9::text[]) AS u(id, region, programme, profile, name, email, "
            "phone, language, participant) "
            "ON CONFLICT (student_id) DO NOTHING RETURNING student_id",
            [s.profile.student_id for s in students],
            [s.profile.region for s in students],
            [s.profile.programme for s in students],
            [s.profile.model_dump_json() for s in students],
            [s.contact.name for s in students],
            [s.contact.email for s in students],
            [s.contact.phone for s in students],
            [s.contact.language for s in students],
            [s.profile.participant for s in students],
        )
        return {r["student_id"] for r in inserted}

    async def get_many(self, student_ids: Iterable[str]) -> dict[str, Student | Withdrawn]:
        rows = await self.conn.fetch(
            "SELECT * FROM students WHERE student_id = ANY($1::text[])", list(student_ids)
        )
        return {r["student_id"]: _student(r) for r in rows}

    async def save_profile(self, profile: StudentProfile) -> Student:
        row = await self.conn.fetchrow(
            "UPDATE students SET profile = $2, updated_at = now() WHERE student_id = $1 "
            "AND withdrawn_at IS NULL RETURNING *",
            profile.student_id,
            profile.model_dump(mode="json"),
        )
        student = _student(row) if row else None
        if not isinstance(student, Student):
            raise LookupError(f"student {profile.student_id} is not registered")
        return student

    async def live_count(self, region: str, participant: Participant) -> int:
        return int(
            await self.conn.fetchval(
                "SELECT count(*) FROM students WHERE region = $1 AND participant = $2 "
                "AND withdrawn_at IS NULL AND profile IS NOT NULL",
                region,
                participant,
            )
        )

    async def erase(self, student_id: str) -> None:
        await self.conn.execute(
            "UPDATE students SET profile = NULL, name = NULL, email = NULL, phone = NULL, "
            "language = NULL, registered_at = NULL, updated_at = NULL, withdrawn_at = now() "
            "WHERE student_id = $1",
            student_id,
        )
        # Published outbox rows about the student are history only; unsent ones must still go out.
        await self.conn.execute(
            "DELETE FROM outbox WHERE sent_at IS NOT NULL "
            "AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'student_id' = $1",
            student_id,
        )


# --------------------------------------------------------------------------------- matches


def _match(row: Row) -> MatchRecord:
    return MatchRecord(
        match_id=row["match_id"],
        round_id=row["round_id"],
        region=row["region"],
        student_id=row["student_id"],
        placement_id=row["placement_id"],
        company_id=row["company_id"],
        rank=row["rank"],
        state=row["state"],
        accepted_by_student=row["accepted_by_student"],
        accepted_by_company=row["accepted_by_company"],
        declined_by=row["declined_by"],
        reason=row["reason"],
        updated_at=row["updated_at"],
        filled=row["filled"],
        override=row["override"],
    )


_STANDING_COUNTS = """
SELECT placement_id, count(*) AS n FROM (
    SELECT placement_id FROM matches
    WHERE placement_id = ANY($1::text[]) AND state IN ('proposed', 'accepted', 'confirmed')
    UNION ALL
    SELECT a.placement_id FROM assignments a
    WHERE a.placement_id = ANY($1::text[])
    AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.match_id = a.match_id)
) held GROUP BY placement_id
"""


_WITH_FREE_SLOTS = """
WITH open AS (
    SELECT placement_id FROM placements
    WHERE region = $1 AND kind = $2 AND withdrawn_at IS NULL
), held AS (
    SELECT placement_id, count(*) AS n FROM (
        SELECT m.placement_id FROM matches m JOIN open USING (placement_id)
        WHERE m.state IN ('proposed', 'accepted', 'confirmed')
        UNION ALL
        SELECT a.placement_id FROM assignments a JOIN open USING (placement_id)
        WHERE NOT EXISTS (SELECT 1 FROM matches m WHERE m.match_id = a.match_id)
    ) h GROUP BY placement_id
)
SELECT p.placement_id, p.offer::text AS offer, p.channel, p.webhook_url, p.withdrawn_at,
    coalesce(held.n, 0) AS held
FROM placements p JOIN open USING (placement_id) LEFT JOIN held USING (placement_id)
WHERE (p.offer->>'capacity')::int > coalesce(held.n, 0)
ORDER BY p.placement_id
"""


class PostgresMatches(_Repository):
    async def get(self, match_id: uuid.UUID, *, for_update: bool = False) -> MatchRecord | None:
        sql = _for_update("SELECT * FROM matches WHERE match_id = $1", for_update=for_update)
        row = await self.conn.fetchrow(sql, match_id)
        return _match(row) if row else None

    async def propose(self, proposal: ev.MatchProposedData) -> None:
        try:
            await self.conn.execute(
                # clock_timestamp(): a poll's proposals are applied in one transaction, whose
                # now() they would share; lists keep the order they were proposed in
                "INSERT INTO matches (match_id, round_id, region, student_id, placement_id, "
                "company_id, rank, state, filled, override, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, 'proposed', $8, $9, clock_timestamp(), "
                "clock_timestamp()) ON CONFLICT (match_id) DO NOTHING",
                proposal.match_id,
                proposal.round_id,
                proposal.region,
                proposal.student_id,
                proposal.placement_id,
                proposal.company_id,
                proposal.rank,
                proposal.filled,
                proposal.override,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "matches_one_standing_per_student":
                raise
            raise second_standing_match(proposal) from None

    async def record_cancelled(self, cancelled: ev.MatchCancelledData) -> MatchRecord:
        row = await self.conn.fetchrow(
            "INSERT INTO matches (match_id, round_id, region, student_id, placement_id, "
            "company_id, rank, state, reason, override) "
            "SELECT $1, $2, $3, $4, $5, "
            "(SELECT company_id FROM placements WHERE placement_id = $5), NULL, 'cancelled', $6, "
            "EXISTS (SELECT 1 FROM assignments WHERE match_id = $1) "
            "ON CONFLICT (match_id) DO UPDATE SET state = 'cancelled', reason = EXCLUDED.reason, "
            "updated_at = now() RETURNING *",
            cancelled.match_id,
            cancelled.round_id,
            cancelled.region,
            cancelled.student_id,
            cancelled.placement_id,
            cancelled.reason,
        )
        if row is None:  # an upsert always answers its row
            raise LookupError(f"match {cancelled.match_id} was not recorded")
        return _match(row)

    async def standing_counts(self, placement_ids: Iterable[str]) -> dict[str, int]:
        rows = await self.conn.fetch(_STANDING_COUNTS, list(placement_ids))
        return {r["placement_id"]: int(r["n"]) for r in rows}

    async def declined_pairs(self, student_ids: Iterable[str]) -> set[tuple[str, str]]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT student_id, placement_id FROM matches "
            "WHERE student_id = ANY($1::text[]) AND state = 'declined'",
            list(student_ids),
        )
        return {(r["student_id"], r["placement_id"]) for r in rows}

    async def save(self, match: Match) -> MatchRecord:
        row = await self.conn.fetchrow(
            "UPDATE matches SET state = $2, accepted_by_student = $3, accepted_by_company = $4, "
            "declined_by = $5, reason = $6, updated_at = now() WHERE match_id = $1 RETURNING *",
            uuid.UUID(match.match_id),
            match.state,
            match.accepted_by_student,
            match.accepted_by_company,
            match.declined_by,
            match.reason,
        )
        if row is None:
            raise LookupError(f"match {match.match_id} is not known")
        return _match(row)

    async def of_placement(self, placement_id: str) -> list[MatchRecord]:
        rows = await self.conn.fetch(
            "SELECT * FROM matches WHERE placement_id = $1 ORDER BY created_at, match_id",
            placement_id,
        )
        return [_match(r) for r in rows]

    async def of_pair(self, placement_id: str, student_id: str) -> list[MatchRecord]:
        rows = await self.conn.fetch(
            "SELECT * FROM matches WHERE placement_id = $1 AND student_id = $2",
            placement_id,
            student_id,
        )
        return [_match(r) for r in rows]

    async def of_pairs(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[MatchRecord]]:
        wanted = sorted(set(pairs))
        rows = await self.conn.fetch(
            "SELECT m.* FROM matches m JOIN unnest($1::text[], $2::text[]) AS u(p, s) "
            "ON m.placement_id = u.p AND m.student_id = u.s",
            [p for p, _ in wanted],
            [s for _, s in wanted],
        )
        found: dict[tuple[str, str], list[MatchRecord]] = {}
        for r in rows:
            found.setdefault((r["placement_id"], r["student_id"]), []).append(_match(r))
        return found

    async def current_of_student(self, student_id: str) -> MatchRecord | None:
        row = await self.conn.fetchrow(
            "SELECT * FROM matches WHERE student_id = $1 "
            "AND state IN ('proposed', 'accepted', 'confirmed') "
            "ORDER BY created_at DESC, match_id LIMIT 1",
            student_id,
        )
        return _match(row) if row else None

    async def confirmed_counts(self, placement_ids: Iterable[str]) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT placement_id, count(*) AS n FROM matches WHERE state = 'confirmed' "
            "AND placement_id = ANY($1::text[]) GROUP BY placement_id",
            list(placement_ids),
        )
        return {r["placement_id"]: int(r["n"]) for r in rows}

    async def forget_reasons_of(self, student_id: str) -> None:
        # Words a student or a company wrote when declining (a code of the list stays).
        await self.conn.execute(
            "UPDATE matches SET reason = NULL WHERE student_id = $1 AND declined_by IS NOT NULL "
            "AND reason IS NOT NULL AND NOT (reason = ANY($2::text[]))",
            student_id,
            list(ev.DECLINE_REASONS),
        )
        # A coordinator's reason for an assignment is free text about the student.
        await self.conn.execute(
            "UPDATE assignments SET reason = '(erased)' WHERE student_id = $1", student_id
        )


# ---------------------------------------------------------------------------------- rounds


def _round(row: Row) -> Round:
    figures = row["figures"]
    return Round(
        round_id=row["round_id"],
        region=row["region"],
        policy=row["policy"],
        status=row["status"],
        requested_at=row["requested_at"],
        completed_at=row["completed_at"],
        figures=RoundFigures.model_validate(figures, strict=False) if figures else None,
        unplaced_by_reason=row["unplaced_by_reason"],
        proposed=row["proposed"],
        cancelled=row["cancelled"],
        kind=row["kind"],
        fill=row["fill"],
        dry_run=row["dry_run"],
        outcome_parts=row["outcome_parts"],
        parts_received=row["parts_received"],
        requested_by=row["requested_by"],
        participant=row["participant"],
        failure=row["failure"],
    )


class PostgresRounds(_Repository):
    async def add_requested(
        self,
        round_id: uuid.UUID,
        region: str,
        policy: str,
        requested_by: str | None,
        *,
        kind: ev.RoundKind = "ordinary",
        fill: bool = False,
        dry_run: bool = False,
        participant: Participant = "student",
    ) -> None:
        await self.conn.execute(
            "INSERT INTO rounds (round_id, region, policy, requested_by, status, requested_at, "
            "kind, fill, dry_run, participant) "
            "VALUES ($1, $2, $3, $4, 'requested', now(), $5, $6, $7, $8) "
            "ON CONFLICT (round_id) DO NOTHING",
            round_id,
            region,
            policy,
            requested_by,
            kind,
            fill,
            dry_run,
            participant,
        )

    async def complete(self, result: ev.MatchingRoundCompletedData) -> None:
        await self.conn.execute(
            "INSERT INTO rounds (round_id, region, policy, status, figures, unplaced_by_reason, "
            "proposed, cancelled, completed_at, kind, fill, dry_run, outcome_parts, participant, "
            "failure) "
            "VALUES ($1, $2, $3, $13, $4, $5, $6, $7, now(), $8, $9, $10, $11, $12, $14) "
            "ON CONFLICT (round_id) DO UPDATE SET status = EXCLUDED.status, "
            "failure = EXCLUDED.failure, policy = EXCLUDED.policy, "
            "figures = EXCLUDED.figures, unplaced_by_reason = EXCLUDED.unplaced_by_reason, "
            "proposed = EXCLUDED.proposed, cancelled = EXCLUDED.cancelled, completed_at = now(), "
            "kind = EXCLUDED.kind, fill = EXCLUDED.fill, dry_run = EXCLUDED.dry_run, "
            "outcome_parts = EXCLUDED.outcome_parts, participant = EXCLUDED.participant",
            result.round_id,
            result.region,
            result.policy,
            result.figures.model_dump(mode="json"),
            dict(result.unplaced_by_reason),
            result.proposed,
            result.cancelled,
            result.kind,
            result.fill,
            result.dry_run,
            result.outcome_parts,
            result.participant,
            "completed" if result.status == "matched" else "failed",
            result.detail if result.status != "matched" else None,
        )

    async def part_received(self, part: ev.MatchingRoundOutcomesData) -> None:
        await self.conn.execute(
            "INSERT INTO rounds (round_id, region, policy, status, dry_run, parts_received, "
            "participant) VALUES ($1, $2, 'optimal', 'requested', $3, 1, $4) "
            "ON CONFLICT (round_id) DO UPDATE SET parts_received = rounds.parts_received + 1",
            part.round_id,
            part.region,
            part.dry_run,
            part.participant,
        )

    async def get(self, round_id: uuid.UUID) -> Round | None:
        row = await self.conn.fetchrow("SELECT * FROM rounds WHERE round_id = $1", round_id)
        return _round(row) if row else None

    async def of_region(self, region: str, *, limit: int, offset: int) -> tuple[int, list[Round]]:
        total = await self.conn.fetchval("SELECT count(*) FROM rounds WHERE region = $1", region)
        rows = await self.conn.fetch(
            "SELECT * FROM rounds WHERE region = $1 "
            "ORDER BY coalesce(requested_at, completed_at) DESC NULLS LAST, round_id DESC "
            "LIMIT $2 OFFSET $3",
            region,
            limit,
            offset,
        )
        return int(total), [_round(r) for r in rows]

    async def settled(self, round_id: uuid.UUID, grace_seconds: float) -> bool:
        found = await self.conn.fetchval(
            "SELECT (r.status = 'completed' AND r.parts_received >= r.outcome_parts "
            "AND coalesce(r.proposed, 0) <= "
            "(SELECT count(*) FROM matches m WHERE m.round_id = r.round_id)) "
            "OR r.completed_at < now() - make_interval(secs => $2) "
            "FROM rounds r WHERE r.round_id = $1",
            round_id,
            grace_seconds,
        )
        return bool(found)

    async def latest_completed(
        self, region: str, participant: Participant = "student"
    ) -> Round | None:
        row = await self.conn.fetchrow(
            "SELECT * FROM rounds WHERE region = $1 AND status = 'completed' AND NOT dry_run "
            "AND participant = $2 ORDER BY completed_at DESC NULLS LAST, round_id DESC LIMIT 1",
            region,
            participant,
        )
        return _round(row) if row else None


# -------------------------------------------------------------------------------- outcomes


def _outcome(row: Row) -> OutcomeRecord:
    outcome = StudentOutcome.model_validate(
        {
            "student_id": row["student_id"],
            "placement_id": row["placement_id"],
            "rank": row["rank"],
            "filled": row["filled"],
            "pinned": row["pinned"],
            "reason": row["reason"],
            "previous_placement_id": row["previous_placement_id"],
            "explanation": row["explanation"],
        },
        strict=False,
    )
    return OutcomeRecord(
        round_id=row["round_id"],
        region=row["region"],
        dry_run=row["dry_run"],
        outcome=outcome,
        programme=row["programme"],
    )


_OUTCOME_ROWS = (
    "SELECT o.*, s.programme FROM outcomes o LEFT JOIN students s ON s.student_id = o.student_id "
)
_OUTCOME_FILTER = (
    "WHERE o.round_id = $1 AND ($2::text IS NULL OR o.reason = $2) "
    "AND ($3::text IS NULL OR s.programme = $3) "
    "AND ($4::boolean IS NULL OR (o.placement_id IS NOT NULL) = $4) "
    "AND ($5::boolean IS NULL OR (o.previous_placement_id IS NOT NULL "
    "AND o.previous_placement_id IS DISTINCT FROM o.placement_id) = $5) "
)


_OUTCOME_FROM = "FROM outcomes o LEFT JOIN students s ON s.student_id = o.student_id "
_OUTCOME_COUNT = "SELECT count(*) " + _OUTCOME_FROM + _OUTCOME_FILTER
_OUTCOME_PAGE = _OUTCOME_ROWS + _OUTCOME_FILTER + "ORDER BY o.student_id LIMIT $6 OFFSET $7"


class PostgresOutcomes(_Repository):
    async def add_part(
        self,
        round_id: uuid.UUID,
        region: str,
        outcomes: Sequence[StudentOutcome],
        *,
        dry_run: bool,
    ) -> int:
        rows = await self.conn.fetch(
            "INSERT INTO outcomes (round_id, student_id, region, dry_run, placement_id, rank, "
            "filled, pinned, reason, previous_placement_id, explanation) "
            "SELECT $1, u.sid, $2, $3, u.pid, u.rank, u.filled, u.pinned, u.reason, u.prev, "
            "u.explanation::jsonb "
            "FROM unnest($4::text[], $5::text[], $6::int[], $7::boolean[], $8::boolean[], "
            "$9::text[], $10::text[], $11::text[]) "
            "WITH ORDINALITY AS u(sid, pid, rank, filled, pinned, reason, prev, explanation, i) "
            "ORDER BY u.i ON CONFLICT (round_id, student_id) DO NOTHING RETURNING student_id",
            round_id,
            region,
            dry_run,
            [o.student_id for o in outcomes],
            [o.placement_id for o in outcomes],
            [o.rank for o in outcomes],
            [o.filled for o in outcomes],
            [o.pinned for o in outcomes],
            [o.reason for o in outcomes],
            [o.previous_placement_id for o in outcomes],
            [outcome_json(o.explanation) for o in outcomes],
        )
        return len(rows)

    async def latest_of_student(self, student_id: str) -> OutcomeRecord | None:
        row = await self.conn.fetchrow(
            _OUTCOME_ROWS + "WHERE o.student_id = $1 AND NOT o.dry_run ORDER BY o.seq DESC LIMIT 1",
            student_id,
        )
        return _outcome(row) if row else None

    async def of_round(self, query: ListOutcomes) -> tuple[int, list[OutcomeRecord]]:
        facts = (query.round_id, query.reason, query.programme, query.placed, query.moved)
        total = await self.conn.fetchval(_OUTCOME_COUNT, *facts)
        rows = await self.conn.fetch(_OUTCOME_PAGE, *facts, query.limit, query.offset)
        return int(total), [_outcome(r) for r in rows]

    async def all_of_round(self, round_id: uuid.UUID) -> list[OutcomeRecord]:
        rows = await self.conn.fetch(
            _OUTCOME_ROWS + "WHERE o.round_id = $1 ORDER BY o.student_id", round_id
        )
        return [_outcome(r) for r in rows]

    async def unplaced(self, round_id: uuid.UUID) -> list[Unplaced]:
        rows = await self.conn.fetch(
            "SELECT o.student_id, o.reason, s.programme FROM outcomes o "
            "JOIN students s ON s.student_id = o.student_id AND s.withdrawn_at IS NULL "
            "WHERE o.round_id = $1 AND o.placement_id IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.student_id = o.student_id "
            "AND m.state IN ('proposed', 'accepted', 'confirmed')) "
            "AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.student_id = o.student_id "
            "AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.match_id = a.match_id)) "
            "ORDER BY o.student_id",
            round_id,
        )
        return [Unplaced(r["student_id"], r["reason"], r["programme"]) for r in rows]


class PostgresAssignments(_Repository):
    async def add(self, assignment: Assignment) -> None:
        await self.conn.execute(
            "INSERT INTO assignments (match_id, region, student_id, placement_id, reason, "
            "override_hard_constraints, constraints_overridden) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            assignment.match_id,
            assignment.region,
            assignment.student_id,
            assignment.placement_id,
            assignment.reason,
            assignment.override_hard_constraints,
            list(assignment.constraints_overridden),
        )

    async def get(self, match_id: uuid.UUID) -> Assignment | None:
        row = await self.conn.fetchrow(
            "SELECT a.*, p.company_id FROM assignments a "
            "LEFT JOIN placements p ON p.placement_id = a.placement_id WHERE a.match_id = $1",
            match_id,
        )
        if row is None:
            return None
        return Assignment(
            match_id=row["match_id"],
            region=row["region"],
            student_id=row["student_id"],
            placement_id=row["placement_id"],
            company_id=row["company_id"] or "",
            reason=row["reason"],
            override_hard_constraints=row["override_hard_constraints"],
            constraints_overridden=tuple(row["constraints_overridden"]),
        )


class PostgresOpenings(_Repository):
    async def add(self, opening: Opening) -> None:
        await self.conn.execute(
            "INSERT INTO supplementary_openings (opening_id, region, round_id, ranks_until, "
            "student_ids) VALUES ($1, $2, $3, $4, $5)",
            opening.opening_id,
            opening.region,
            opening.round_id,
            opening.ranks_until,
            list(opening.student_ids),
        )

    async def latest_of_student(self, student_id: str) -> Opening | None:
        row = await self.conn.fetchrow(
            "SELECT opening_id, region, round_id, ranks_until FROM supplementary_openings "
            "WHERE student_ids @> ARRAY[$1::text] ORDER BY opened_at DESC LIMIT 1",
            student_id,
        )
        if row is None:
            return None
        return Opening(
            row["opening_id"], row["region"], row["round_id"], (student_id,), row["ranks_until"]
        )

    async def forget_student(self, student_id: str) -> None:
        await self.conn.execute(
            "UPDATE supplementary_openings SET student_ids = array_remove(student_ids, $1) "
            "WHERE student_ids @> ARRAY[$1::text]",
            student_id,
        )


# ---------------------------------------------------------------------------- idempotency


class PostgresIdempotency(_Repository):
    async def reserve(self, key: IdempotencyKey) -> StoredResponse | None:
        # A concurrent request with the same key waits on the primary key until the first
        # commits (then sees its row) or rolls back (then reserves the key itself).
        reserved = await self.conn.fetchval(
            "INSERT INTO idempotency_keys (key, method, path, request_hash) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            key.key,
            key.method,
            key.path,
            key.request_hash,
        )
        if reserved:
            return None
        row = await self.conn.fetchrow(
            "SELECT status, response, request_hash FROM idempotency_keys "
            "WHERE key = $1 AND method = $2 AND path = $3",
            key.key,
            key.method,
            key.path,
        )
        if row is None:  # deleted between the two statements: no stored answer to give
            raise LookupError(f"idempotency key {key.key!r} vanished")
        return StoredResponse(row["status"], row["response"], row["request_hash"])

    async def store(
        self, key: IdempotencyKey, status: int, body: Any, student_id: str | None
    ) -> None:
        await self.conn.execute(
            "UPDATE idempotency_keys SET status = $4, response = $5, student_id = $6 "
            "WHERE key = $1 AND method = $2 AND path = $3",
            key.key,
            key.method,
            key.path,
            status,
            body,
            student_id,
        )

    async def forget_student(self, student_id: str) -> None:
        # Stored responses keep no personal field (nor a decline's words), and no hash of the
        # request body.
        await self.conn.execute(
            "UPDATE idempotency_keys SET request_hash = NULL, "
            "response = response - 'name' - 'email' - 'phone' - 'reason' WHERE student_id = $1",
            student_id,
        )


# --------------------------------------------------------------------------------- reports

_OVERVIEW = """
SELECT s.students, s.ranked, s.standing, p.placements, p.slots, r.*
FROM (
    SELECT count(*) AS students,
           count(*) FILTER (WHERE jsonb_array_length(st.profile -> 'preferences') > 0) AS ranked,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM matches m
               WHERE m.student_id = st.student_id AND m.state = ANY($2::text[])
           )) AS standing
    FROM students st
    WHERE st.region = $1 AND st.withdrawn_at IS NULL AND st.participant = 'student'
) s
CROSS JOIN (
    SELECT count(*) AS placements, coalesce(sum((offer ->> 'capacity')::int), 0) AS slots
    FROM placements WHERE region = $1 AND withdrawn_at IS NULL AND kind = 'student'
) p
LEFT JOIN LATERAL (
    SELECT * FROM rounds WHERE region = $1
    ORDER BY coalesce(requested_at, completed_at) DESC NULLS LAST, round_id DESC LIMIT 1
) r ON true
"""

# One row per (dimension, key): the round's new proposals by rank, programme and distance band.
_BREAKDOWN = """
WITH proposed AS (
    SELECT m.rank, s.programme,
           (s.profile #>> '{home,lat}')::float8 AS hlat,
           (s.profile #>> '{home,lon}')::float8 AS hlon,
           (p.offer #>> '{site,lat}')::float8 AS slat,
           (p.offer #>> '{site,lon}')::float8 AS slon
    FROM matches m
    LEFT JOIN students s ON s.student_id = m.student_id
    LEFT JOIN placements p ON p.placement_id = m.placement_id
    WHERE m.round_id = $1
), measured AS (
    SELECT rank, programme,
           CASE WHEN hlat IS NULL OR hlon IS NULL OR slat IS NULL OR slon IS NULL THEN NULL
           ELSE 2 * $3::float8 * asin(sqrt(least(1.0, greatest(0.0,
               power(sin(radians(slat - hlat) / 2), 2)
               + cos(radians(hlat)) * cos(radians(slat)) * power(sin(radians(slon - hlon) / 2), 2)
           )))) END AS km
    FROM proposed
)
SELECT 'rank' AS dimension, rank::text AS key, count(*) AS n FROM measured GROUP BY rank
UNION ALL
SELECT 'programme', programme, count(*) FROM measured GROUP BY programme
UNION ALL
SELECT 'distance', width_bucket(km, $2::float8[])::text, count(*) FROM measured GROUP BY 2
"""


def _int_or_none(key: str | None) -> int | None:
    return int(key) if key is not None else None


class PostgresReports(_Repository):
    async def region_overview(self, region: str) -> RegionOverview:
        row = await self.conn.fetchrow(_OVERVIEW, region, list(STANDING))
        if row is None:  # an aggregate over a cross join always answers one row
            raise LookupError("the overview query answered no row")
        return RegionOverview(
            region=region,
            students=int(row["students"]),
            ranked=int(row["ranked"]),
            standing=int(row["standing"]),
            placements=int(row["placements"]),
            slots=int(row["slots"]),
            last_round=_round(row) if row["round_id"] is not None else None,
        )

    async def round_breakdown(self, round_id: uuid.UUID) -> RoundBreakdown:
        rows = await self.conn.fetch(
            _BREAKDOWN, round_id, list(DISTANCE_BOUNDS_KM), EARTH_RADIUS_KM
        )
        by_rank: dict[int | None, int] = {}
        by_programme: dict[str | None, int] = {}
        by_distance: dict[int | None, int] = {}
        for r in rows:
            n = int(r["n"])
            if r["dimension"] == "rank":
                by_rank[_int_or_none(r["key"])] = n
            elif r["dimension"] == "programme":
                by_programme[r["key"]] = n
            else:
                by_distance[_int_or_none(r["key"])] = n
        return RoundBreakdown(sum(by_rank.values()), by_rank, by_programme, by_distance)

    async def unplaced(self, region: str, *, limit: int, offset: int) -> list[UnplacedStudent]:
        rows = await self.conn.fetch(
            "SELECT s.student_id, s.programme, "
            "coalesce(jsonb_array_length(s.profile -> 'preferences'), 0) AS choices "
            "FROM students s WHERE s.region = $1 AND s.withdrawn_at IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.student_id = s.student_id "
            "AND m.state = ANY($2::text[])) "
            "ORDER BY s.student_id LIMIT $3 OFFSET $4",
            region,
            list(STANDING),
            limit,
            offset,
        )
        return [UnplacedStudent(r["student_id"], r["programme"], int(r["choices"])) for r in rows]

    async def region_matches(self, region: str) -> list[MatchRecord]:
        rows = await self.conn.fetch(
            "SELECT m.match_id, m.round_id, m.region, m.student_id, m.placement_id, "
            "coalesce(m.company_id, p.company_id) AS company_id, m.rank, m.state, "
            "m.accepted_by_student, m.accepted_by_company, m.declined_by, m.reason, m.updated_at, "
            "m.filled, m.override "
            "FROM matches m LEFT JOIN placements p ON p.placement_id = m.placement_id "
            "WHERE m.region = $1 ORDER BY m.student_id, m.created_at, m.match_id",
            region,
        )
        return [_match(r) for r in rows]


# -------------------------------------------------------------------------- unit of work


class PostgresPlacementsUnitOfWork(JoinsOuterBlock, PostgresUnitOfWork):
    """A transaction over the placements schema (the pool's connections live in it; they need
    `init_connection`), with the repositories on its connection."""

    placements: PostgresPlacements
    companies: PostgresCompanies
    students: PostgresStudents
    matches: PostgresMatches
    rounds: PostgresRounds
    outcomes: PostgresOutcomes
    assignments: PostgresAssignments
    openings: PostgresOpenings
    idempotency: PostgresIdempotency
    accounts: PostgresAccounts
    audit: PostgresAudit
    action_links: PostgresActionLinks
    reports: PostgresReports
    readiness: PostgresReadiness

    def bind(self, conn: Connection) -> None:
        self.placements = PostgresPlacements(conn)
        self.companies = PostgresCompanies(conn)
        self.students = PostgresStudents(conn)
        self.matches = PostgresMatches(conn)
        self.rounds = PostgresRounds(conn)
        self.outcomes = PostgresOutcomes(conn)
        self.assignments = PostgresAssignments(conn)
        self.openings = PostgresOpenings(conn)
        self.idempotency = PostgresIdempotency(conn)
        self.accounts = PostgresAccounts(conn)
        self.audit = PostgresAudit(conn)
        self.action_links = PostgresActionLinks(conn)
        self.reports = PostgresReports(conn)
        self.readiness = PostgresReadiness(conn)

    async def publish(self, events: Iterable[ev.Event | Serialised]) -> None:
        """The outbox and the audit trail, in this transaction; each event with the actor."""
        batch = stamped(events, self.actor)
        await super().publish(batch)
        await self.audit.record(as_models(batch))

    async def published_count(self, region: str, topics: Iterable[str]) -> int:
        return await published_count(self.conn, region, topics)
