"""The matching service's read model: the repositories handlers use, and their PostgreSQL form.

Handlers see a `MatchingUnitOfWork` (one transaction, with the inbox claim and the outbox
publish of `shared.uow`) and its repositories, each a set of named operations: `regions`,
`placements`, `students`, `matches`, `rounds` and `inputs`. The protocols below are the contract;
`PostgresMatchingUnitOfWork` keeps the read model in the service's schema, and
`tests/support/fakes/matching.py` keeps it in memory for the fast tests.

In PostgreSQL every method runs inside the unit of work's transaction. Locking rules
(transaction-level advisory locks, so a crash releases them):

- region lock: a region's rounds, its student events and the responses to its matches;
- placement lock: a placement's events, and every round whose problem includes the placement.

A round takes its region lock first, then the placement locks in one sorted sweep, so two rounds
(or a round and a placement event) never wait for each other in a cycle, and everything a round
reads stays as it read it until the round commits.
"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from services.matching.domain.model import (
    Cancellation,
    CancelReason,
    MatchRow,
    NewProposal,
    RoundInput,
    RoundRecord,
    Standing,
)
from services.matching.domain.rules import capacity_left
from shared.contracts import events as ev
from shared.contracts.events import Event, parse_event
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.contracts.topics import ROUND_REQUESTS
from shared.contracts.vocabulary import Participant, Party
from shared.db import Connection
from shared.serialised import random_uuids
from shared.trusted import Trusted
from shared.uow import PostgresUnitOfWork, UnitOfWork

# ------------------------------------------------------------------------------- contract


class Regions(Protocol):
    async def lock(self, region: str) -> None:
        """Hold the region's lock until the transaction ends."""
        ...

    async def lock_all(self, regions: Iterable[str]) -> None:
        """Hold the regions' locks until the transaction ends (one sorted sweep)."""
        ...

    async def mark_changed(self, regions: Iterable[str]) -> None:
        """Bump the input version of regions whose problem changed (automatic mode reads it),
        once for each time a region is named (a batch names it once per event it changed)."""
        ...

    async def changed(self) -> list[str]:
        """Regions whose input changed after their last round, sorted."""
        ...

    async def input_changed(self, region: str) -> bool:
        """Whether the region's input changed after its last round."""
        ...


class Placements(Protocol):
    async def lock(self, placement_ids: Iterable[str]) -> None:
        """Hold the placements' locks until the transaction ends (one sorted sweep)."""
        ...

    async def upsert(self, offer: PlacementOffer) -> None:
        """Store the offer as published; a re-posted withdrawn placement is live again."""
        ...

    async def upsert_all(self, offers: Iterable[PlacementOffer]) -> None:
        """`upsert` of each offer in one statement (of one placement named twice, the last)."""
        ...

    async def withdraw(self, placement_id: str, region: str) -> bool:
        """Mark withdrawn; False, and nothing written, when the placement is unknown (a
        withdrawal never leaves a tombstone)."""
        ...

    async def regions_ranking(self, placement_id: str) -> list[str]:
        """The regions of the (not withdrawn) students who rank the placement."""
        ...

    async def live(self, placement_id: str) -> PlacementOffer | None:
        """The placement's offer; None when it is unknown or withdrawn."""
        ...


class Students(Protocol):
    async def lock_region_and_find(self, region: str, student_id: str) -> str | None:
        """Lock `region` and return the region the student had before (None if new)."""
        ...

    async def regions_of(self, student_ids: Iterable[str]) -> dict[str, str]:
        """The region each known student is in (unknown ones are left out)."""
        ...

    async def upsert(self, profile: StudentProfile) -> None:
        """Store the profile as published; a re-registered withdrawn student is live again."""
        ...

    async def upsert_all(self, profiles: Iterable[StudentProfile]) -> None:
        """`upsert` of each profile in one statement (of one student named twice, the last)."""
        ...

    async def withdraw(self, student_id: str, region: str) -> bool:
        """Mark withdrawn; False, and nothing written, when the student is unknown (a
        withdrawal never leaves a tombstone)."""
        ...

    async def live(self, student_id: str) -> StudentProfile | None:
        """The student's profile; None when unknown or withdrawn."""
        ...


class Matches(Protocol):
    async def for_update(self, match_id: uuid.UUID) -> MatchRow | None:
        """The match, locked; None if no round ever proposed it."""
        ...

    async def record_acceptance(self, match_id: str, by: Party) -> Standing:
        """Record that one side accepted; return the match as it is now."""
        ...

    async def confirm(self, match_id: str) -> None: ...

    async def close(
        self,
        cancellations: Sequence[Cancellation],
        status: Literal["cancelled", "declined"] = "cancelled",
    ) -> None:
        """Close standing matches (those that no longer stand are left as they are)."""
        ...

    async def cancel_standing_of_placement(
        self, placement_id: str, reason: CancelReason
    ) -> list[Standing]:
        """Cancel the placement's standing matches; return them in creation order."""
        ...

    async def cancel_standing_of_student(
        self, student_id: str, reason: CancelReason
    ) -> list[Standing]:
        """Cancel the student's standing matches; return them in creation order."""
        ...

    async def exclude(self, student_id: str, placement_id: str, match_id: str) -> None:
        """Never match the pair again (idempotent)."""
        ...

    async def insert_proposals(
        self, region: str, round_id: uuid.UUID, proposals: Sequence[NewProposal]
    ) -> list[tuple[str, NewProposal]]:
        """Record new proposals (a student has at most one standing match); return their new
        match ids (random UUIDs, as text), in order."""
        ...

    async def standing_at(self, placement_id: str) -> list[Standing]:
        """The placement's standing matches, of every region, in creation order."""
        ...

    async def exists(self, match_id: uuid.UUID) -> bool:
        """Whether a match with this id was ever recorded (standing or not)."""
        ...

    async def insert_override(
        self,
        match_id: uuid.UUID,
        region: str,
        round_id: uuid.UUID,
        proposal: NewProposal,
        reason: str | None,
    ) -> None:
        """Record a match assigned by hand (proposed, pinned by its `override` flag)."""
        ...


class Rounds(Protocol):
    async def recorded(self, round_id: uuid.UUID) -> bool: ...

    async def load_problem(
        self, region: str, *, whole_region: bool = False, participant: Participant = "student"
    ) -> tuple[RoundInput, int]:
        """The region's open problem and its input version. Call with the region lock held.

        Students: the region's, not withdrawn. Placements: every one they rank or hold a
        standing match at, from any region (with `whole_region`, for fill, every live placement
        of the region too), locked, with capacity reduced by other regions' standing matches.
        Only `participant`s (students or teachers) and placements of that kind, and only the
        standing matches at placements of that kind: rounds never mix the two.
        """
        ...

    async def record(self, record: RoundRecord) -> None:
        """Record the round and (unless a dry run) the input version it saw."""
        ...


class Inputs(Protocol):
    async def count_applied(self, event_id: uuid.UUID, producer: str, region: str) -> None:
        """One more input event of `producer` for `region` applied. An event dead-lettered
        before and now replayed is no longer counted as dead-lettered."""
        ...

    async def count_applied_all(self, applied: Sequence[tuple[uuid.UUID, str, str]]) -> None:
        """`count_applied` of each (event id, producer, region), in one statement: each
        (producer, region) counter is updated once."""
        ...

    async def record_dead(self, event_id: uuid.UUID, producer: str, region: str) -> None:
        """An input event was dead-lettered: rounds stop waiting for it (idempotent)."""
        ...

    async def settled(self, producer: str, region: str) -> tuple[int, int]:
        """(applied, dead-lettered) input events of `producer` for `region`."""
        ...


@dataclass(frozen=True)
class ParkedRequest:
    """A parked round request (migration 0007): the request and the trace of its handling."""

    request: ev.MatchingRoundRequested
    trace: Mapping[str, str]


class Parked(Protocol):
    """Round requests waiting for their inputs (services/matching/parking.py)."""

    async def park(self, request: ev.MatchingRoundRequested, trace: Mapping[str, str]) -> bool:
        """Park `request` behind the region's others; False if it is parked already."""
        ...

    async def waiting(self, region: str) -> bool:
        """Whether a request of `region` is parked."""
        ...

    async def head(self, region: str) -> ParkedRequest | None:
        """The region's request parked first, if any."""
        ...

    async def remove(self, event_id: uuid.UUID) -> None:
        """Forget a parked request (it ran, or ended as not run)."""
        ...

    async def regions(self) -> list[str]:
        """The regions with parked requests."""
        ...


class MatchingUnitOfWork(UnitOfWork, Protocol):
    """One transaction over the read model, with the inbox and the outbox."""

    async def claim_all(self, events: Sequence[Event]) -> list[bool]:
        """Claim events in the inbox at once: for each, False if it was applied before (or an
        earlier event of `events` has its id)."""
        ...

    @property
    def regions(self) -> Regions: ...
    @property
    def placements(self) -> Placements: ...
    @property
    def students(self) -> Students: ...
    @property
    def matches(self) -> Matches: ...
    @property
    def rounds(self) -> Rounds: ...
    @property
    def inputs(self) -> Inputs: ...
    @property
    def parked(self) -> Parked: ...


# ----------------------------------------------------------------------------- PostgreSQL

STANDING = ("proposed", "confirmed")
_Stored = TypeVar("_Stored", PlacementOffer, StudentProfile)
_REGION_LOCK = 1
_PLACEMENT_LOCK = 2
# The columns `_standing` reads, a fixed list interpolated into the statements below.
_MATCH_COLUMNS = (
    "match_id, student_id, placement_id, company_id, region, rank, status, "
    "student_accepted, company_accepted, override, filled"
)


# The read model's profiles and offers were validated by the contract when they were consumed.
_STORED_PROFILE = Trusted(StudentProfile)
_STORED_OFFER = Trusted(PlacementOffer)
_PROPOSAL_COLUMNS = (
    "match_id",
    "region",
    "round_id",
    "student_id",
    "placement_id",
    "company_id",
    "rank",
    "status",
    "filled",
)


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
        override=row["override"],
        filled=row["filled"],
    )


def _last_of_each(
    models: Iterable[_Stored], key: Callable[[_Stored], str]
) -> tuple[list[_Stored], list[str]]:
    """Of the models with the same id the last (what one upsert after the other leaves), in id
    order (so concurrent writers lock rows in one order), and their JSON: kept twice, as jsonb
    to query and as its bytes for rounds."""
    last = {key(m): m for m in models}
    rows = [last[k] for k in sorted(last)]
    return rows, [m.model_dump_json() for m in rows]


async def _lock_all(conn: Connection, kind: int, names: Iterable[str]) -> None:
    """Advisory locks of one kind (region or placement), taken in one sorted sweep."""
    wanted = sorted(set(names))
    if not wanted:
        return
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock($1, k)) FROM "
        "(SELECT DISTINCT hashtext(p) AS k FROM unnest($2::text[]) AS p ORDER BY 1) AS keys",
        kind,
        wanted,
    )


async def _lock_placements(conn: Connection, placement_ids: Iterable[str]) -> None:
    await _lock_all(conn, _PLACEMENT_LOCK, placement_ids)


class PostgresRegions:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def lock(self, region: str) -> None:
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", _REGION_LOCK, region
        )

    async def lock_all(self, regions: Iterable[str]) -> None:
        await _lock_all(self.conn, _REGION_LOCK, regions)

    async def mark_changed(self, regions: Iterable[str]) -> None:
        bumps = collections.Counter(regions)
        if not bumps:
            return
        named = sorted(bumps)
        await self.conn.execute(
            "INSERT INTO region_state (region, input_version) "
            "SELECT * FROM unnest($1::text[], $2::bigint[]) "
            "ON CONFLICT (region) DO UPDATE "
            "SET input_version = region_state.input_version + excluded.input_version, "
            "changed_at = now()",
            named,
            [bumps[r] for r in named],
        )

    async def changed(self) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT region FROM region_state WHERE input_version > round_version ORDER BY region"
        )
        return [r["region"] for r in rows]

    async def input_changed(self, region: str) -> bool:
        changed = await self.conn.fetchval(
            "SELECT input_version > round_version FROM region_state WHERE region = $1", region
        )
        return bool(changed)


class PostgresPlacements:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def lock(self, placement_ids: Iterable[str]) -> None:
        await _lock_placements(self.conn, placement_ids)

    async def upsert(self, offer: PlacementOffer) -> None:
        await self.upsert_all([offer])

    async def upsert_all(self, offers: Iterable[PlacementOffer]) -> None:
        rows, texts = _last_of_each(offers, lambda o: o.placement_id)
        if not rows:
            return
        await self.conn.execute(
            "INSERT INTO placements (placement_id, region, company_id, capacity, offer, kind, "
            "offer_json) SELECT p, r, c, n, o::jsonb, k, j FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::integer[], $5::text[], $6::text[], $7::bytea[]) AS t(p, r, c, n, o, "
            "k, j) ON CONFLICT (placement_id) DO UPDATE SET region = excluded.region, "
            "company_id = excluded.company_id, capacity = excluded.capacity, "
            "offer = excluded.offer, kind = excluded.kind, offer_json = excluded.offer_json, "
            "withdrawn = false, updated_at = now()",
            [o.placement_id for o in rows],
            [o.region for o in rows],
            [o.company_id for o in rows],
            [o.capacity for o in rows],
            texts,
            [o.kind for o in rows],
            [t.encode() for t in texts],
        )

    async def withdraw(self, placement_id: str, region: str) -> bool:
        found = await self.conn.fetchval(
            "UPDATE placements SET withdrawn = true, updated_at = now() "
            "WHERE placement_id = $1 RETURNING true",
            placement_id,
        )
        return bool(found)

    async def regions_ranking(self, placement_id: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT region FROM students "
            "WHERE NOT withdrawn AND profile -> 'preferences' ? $1 ORDER BY region",
            placement_id,
        )
        return [r["region"] for r in rows]

    async def live(self, placement_id: str) -> PlacementOffer | None:
        offer = await self.conn.fetchval(
            "SELECT offer FROM placements WHERE placement_id = $1 AND NOT withdrawn", placement_id
        )
        return None if offer is None else PlacementOffer.model_validate_json(offer)


class PostgresStudents:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def lock_region_and_find(self, region: str, student_id: str) -> str | None:
        row = await self.conn.fetchrow(  # one round trip for both
            "SELECT pg_advisory_xact_lock($1, hashtext($2)), "
            "(SELECT region FROM students WHERE student_id = $3) AS before",
            _REGION_LOCK,
            region,
            student_id,
        )
        if row is None:  # a SELECT without FROM always returns its one row
            raise RuntimeError("the region lock returned no row")
        before: str | None = row["before"]
        return before

    async def regions_of(self, student_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(student_ids))
        if not ids:
            return {}
        rows = await self.conn.fetch(
            "SELECT student_id, region FROM students WHERE student_id = ANY($1::text[])", ids
        )
        return {r["student_id"]: r["region"] for r in rows}

    async def upsert(self, profile: StudentProfile) -> None:
        await self.upsert_all([profile])

    async def upsert_all(self, profiles: Iterable[StudentProfile]) -> None:
        rows, texts = _last_of_each(profiles, lambda p: p.student_id)
        if not rows:
            return
        await self.conn.execute(
            "INSERT INTO students (student_id, region, profile, participant, profile_json) "
            "SELECT s, r, p::jsonb, k, j FROM unnest($1::text[], $2::text[], $3::text[], "
            "$4::text[], $5::bytea[]) AS t(s, r, p, k, j) "
            "ON CONFLICT (student_id) DO UPDATE SET region = excluded.region, "
            "profile = excluded.profile, participant = excluded.participant, "
            "profile_json = excluded.profile_json, withdrawn = false, updated_at = now()",
            [p.student_id for p in rows],
            [p.region for p in rows],
            texts,
            [p.participant for p in rows],
            [t.encode() for t in texts],
        )

    async def withdraw(self, student_id: str, region: str) -> bool:
        found = await self.conn.fetchval(
            "UPDATE students SET withdrawn = true, updated_at = now() "
            "WHERE student_id = $1 RETURNING true",
            student_id,
        )
        return bool(found)

    async def live(self, student_id: str) -> StudentProfile | None:
        profile = await self.conn.fetchval(
            "SELECT profile FROM students WHERE student_id = $1 AND NOT withdrawn", student_id
        )
        return None if profile is None else StudentProfile.model_validate_json(profile)


# The standing matches of a placement or of a student, closed in one statement (the old row's
# status is returned: the match as it stood). The column comes from this fixed table only.
_CANCEL_STANDING = {
    column: (
        "WITH closed AS ("  # noqa: S608 (the column is one of the fixed tuple below)
        " UPDATE matches m SET status = 'cancelled', cancel_reason = $2, closed_at = now()"
        " FROM matches old"
        f" WHERE m.match_id = old.match_id AND old.{column} = $1"
        " AND old.status IN ('proposed', 'confirmed')"
        " RETURNING m.match_id, m.student_id, m.placement_id, m.company_id, m.region, m.rank,"
        " old.status, m.student_accepted, m.company_accepted, m.override, m.filled,"
        " m.created_at)"
        " SELECT * FROM closed ORDER BY created_at, match_id"
    )
    for column in ("placement_id", "student_id")
}


class PostgresMatches:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def for_update(self, match_id: uuid.UUID) -> MatchRow | None:
        row = await self.conn.fetchrow(
            # only the fixed column list is interpolated
            f"SELECT {_MATCH_COLUMNS} FROM matches WHERE match_id = $1 FOR UPDATE",  # noqa: S608
            match_id,
        )
        if row is None:
            return None
        standing = _standing(row) if row["status"] in STANDING else None
        return MatchRow(standing, row["student_id"], row["placement_id"])

    async def record_acceptance(self, match_id: str, by: Party) -> Standing:
        column = {"student": "student_accepted", "company": "company_accepted"}[by]
        row = await self.conn.fetchrow(
            # the column comes from the fixed table above, the returned columns are fixed
            f"UPDATE matches SET {column} = true WHERE match_id = $1 RETURNING {_MATCH_COLUMNS}",  # noqa: S608
            uuid.UUID(match_id),
        )
        if row is None:
            raise LookupError(f"match {match_id} does not exist")
        return _standing(row)

    async def confirm(self, match_id: str) -> None:
        await self.conn.execute(
            "UPDATE matches SET status = 'confirmed' WHERE match_id = $1", uuid.UUID(match_id)
        )

    async def close(
        self,
        cancellations: Sequence[Cancellation],
        status: Literal["cancelled", "declined"] = "cancelled",
    ) -> None:
        await self.conn.executemany(
            "UPDATE matches SET status = $2, cancel_reason = $3, closed_at = now() "
            "WHERE match_id = $1 AND status IN ('proposed', 'confirmed')",
            [(uuid.UUID(c.match.match_id), status, c.reason) for c in cancellations],
        )

    async def cancel_standing_of_placement(
        self, placement_id: str, reason: CancelReason
    ) -> list[Standing]:
        rows = await self.conn.fetch(_CANCEL_STANDING["placement_id"], placement_id, reason)
        return [_standing(r) for r in rows]

    async def cancel_standing_of_student(
        self, student_id: str, reason: CancelReason
    ) -> list[Standing]:
        rows = await self.conn.fetch(_CANCEL_STANDING["student_id"], student_id, reason)
        return [_standing(r) for r in rows]

    async def exclude(self, student_id: str, placement_id: str, match_id: str) -> None:
        await self.conn.execute(
            "INSERT INTO exclusions (student_id, placement_id, match_id) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            student_id,
            placement_id,
            uuid.UUID(match_id),
        )

    async def insert_proposals(
        self, region: str, round_id: uuid.UUID, proposals: Sequence[NewProposal]
    ) -> list[tuple[str, NewProposal]]:
        made = list(zip(random_uuids(len(proposals)), proposals, strict=True))
        if not made:
            return made
        # The whole round in one binary COPY (no statement per row, no arrays to unpack).
        await self.conn.copy_records_to_table(
            "matches",
            columns=_PROPOSAL_COLUMNS,
            records=[
                (
                    mid,
                    region,
                    round_id,
                    p.student_id,
                    p.placement_id,
                    p.company_id,
                    p.rank,
                    "proposed",
                    p.filled,
                )
                for mid, p in made
            ],
        )
        return made

    async def standing_at(self, placement_id: str) -> list[Standing]:
        rows = await self.conn.fetch(
            # only the fixed column list is interpolated
            f"SELECT {_MATCH_COLUMNS} FROM matches WHERE placement_id = $1 "  # noqa: S608
            "AND status IN ('proposed', 'confirmed') ORDER BY created_at, match_id",
            placement_id,
        )
        return [_standing(r) for r in rows]

    async def exists(self, match_id: uuid.UUID) -> bool:
        return bool(
            await self.conn.fetchval("SELECT true FROM matches WHERE match_id = $1", match_id)
        )

    async def insert_override(
        self,
        match_id: uuid.UUID,
        region: str,
        round_id: uuid.UUID,
        proposal: NewProposal,
        reason: str | None,
    ) -> None:
        p = proposal
        await self.conn.execute(
            "INSERT INTO matches (match_id, region, round_id, student_id, placement_id, "
            "company_id, rank, status, override, override_reason) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, 'proposed', true, $8)",
            match_id,
            region,
            round_id,
            p.student_id,
            p.placement_id,
            p.company_id,
            p.rank,
            reason,
        )


class PostgresRounds:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def recorded(self, round_id: uuid.UUID) -> bool:
        return bool(
            await self.conn.fetchval("SELECT true FROM rounds WHERE round_id = $1", round_id)
        )

    async def record(self, record: RoundRecord) -> None:
        await self.conn.execute(
            "INSERT INTO rounds (round_id, region, policy, trigger, figures, unplaced, proposed, "
            "cancelled, kind, fill, dry_run, outcome_parts, participant) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            record.round_id,
            record.region,
            record.policy,
            record.trigger,
            record.figures.model_dump_json(),
            json.dumps(record.unplaced_by_reason),
            record.proposed,
            record.cancelled,
            record.kind,
            record.fill,
            record.dry_run,
            record.outcome_parts,
            record.participant,
        )
        if record.dry_run:
            return  # nothing committed: automatic mode still sees the input it saw as new
        await self.conn.execute(
            "INSERT INTO region_state (region, round_version) VALUES ($1, $2) "
            "ON CONFLICT (region) DO UPDATE "
            "SET round_version = GREATEST(region_state.round_version, $2)",
            record.region,
            record.seen_version,
        )

    async def _standing_of(
        self, region: str, student_ids: list[str], participant: Participant = "student"
    ) -> tuple[Standing, ...]:
        """The standing matches of the region's rounds and of the given students, at placements
        of the round's kind (a teacher round never sees students' matches, nor the reverse)."""
        rows = await self.conn.fetch(
            # only the fixed column list is interpolated
            f"SELECT {_MATCH_COLUMNS} FROM matches WHERE status IN ('proposed', 'confirmed') "  # noqa: S608
            "AND (region = $1 OR student_id = ANY($2::text[])) "
            "AND placement_id IN (SELECT placement_id FROM placements WHERE kind = $3) "
            "ORDER BY created_at, match_id",
            region,
            student_ids,
            participant,
        )
        return tuple(_standing(r) for r in rows)

    async def load_problem(
        self, region: str, *, whole_region: bool = False, participant: Participant = "student"
    ) -> tuple[RoundInput, int]:
        conn = self.conn
        rows = await conn.fetch(
            # the stored bytes of the profile (jsonb's text only for rows written before 0006)
            "SELECT coalesce(profile_json, convert_to(profile::text, 'UTF8')) FROM students "
            "WHERE region = $1 AND NOT withdrawn AND profile IS NOT NULL AND participant = $2 "
            "ORDER BY student_id",
            region,
            participant,
        )
        # Stored as ingest validated them: rebuilt, not validated again (shared/trusted.py).
        load_student = _STORED_PROFILE.load
        students = tuple([load_student(r[0]) for r in rows])
        student_ids = [s.student_id for s in students]
        first = await self._standing_of(region, student_ids, participant)
        wanted = {pid for s in students for pid in s.preferences} | {m.placement_id for m in first}
        if whole_region:  # fill: every vacancy of the region
            rows = await conn.fetch(
                "SELECT placement_id FROM placements WHERE region = $1 AND NOT withdrawn "
                "AND kind = $2",
                region,
                participant,
            )
            wanted |= {r["placement_id"] for r in rows}
        await _lock_placements(conn, wanted)
        # Again under the placement locks: a placement event (which takes only its placement's
        # lock) may have cancelled some of them meanwhile.
        standing = await self._standing_of(region, student_ids, participant)
        wanted |= {m.placement_id for m in standing}
        prow = await conn.fetch(  # a placement of the other kind is no choice of this round
            "SELECT placement_id, coalesce(offer_json, convert_to(offer::text, 'UTF8')) AS offer, "
            "withdrawn FROM placements "
            "WHERE placement_id = ANY($1::text[]) AND (kind = $2 OR withdrawn) "
            "ORDER BY placement_id",
            sorted(wanted),
            participant,
        )
        load_offer = _STORED_OFFER.load
        live = [load_offer(r["offer"]) for r in prow if not r["withdrawn"]]
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
        version = await conn.fetchval(
            "SELECT input_version FROM region_state WHERE region = $1", region
        )
        problem = RoundInput(
            region=region,
            students=students,
            placements=placements,
            standing=standing,
            excluded=frozenset((r["student_id"], r["placement_id"]) for r in excl),
            withdrawn_students=frozenset(r["student_id"] for r in gone),
            withdrawn_placements=withdrawn_p,
        )
        return problem, int(version or 0)


class PostgresInputs:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def count_applied(self, event_id: uuid.UUID, producer: str, region: str) -> None:
        await self.count_applied_all([(event_id, producer, region)])

    async def count_applied_all(self, applied: Sequence[tuple[uuid.UUID, str, str]]) -> None:
        counts = collections.Counter((producer, region) for _, producer, region in applied)
        if not counts:
            return
        keys = sorted(counts)
        # One statement per batch: each (producer, region) row is updated once.
        await self.conn.execute(
            "WITH replayed AS (DELETE FROM inputs_dead_lettered WHERE event_id = ANY($4::uuid[])) "
            "INSERT INTO inputs_applied (producer, region, events) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "
            "ON CONFLICT (producer, region) DO UPDATE "
            "SET events = inputs_applied.events + excluded.events",
            [p for p, _ in keys],
            [r for _, r in keys],
            [counts[k] for k in keys],
            [event_id for event_id, _, _ in applied],
        )

    async def record_dead(self, event_id: uuid.UUID, producer: str, region: str) -> None:
        await self.conn.execute(
            "INSERT INTO inputs_dead_lettered (event_id, producer, region) VALUES ($1, $2, $3) "
            "ON CONFLICT (event_id) DO NOTHING",
            event_id,
            producer,
            region,
        )

    async def settled(self, producer: str, region: str) -> tuple[int, int]:
        row = await self.conn.fetchrow(
            "SELECT (SELECT events FROM inputs_applied WHERE producer = $1 AND region = $2),"
            " (SELECT count(*) FROM inputs_dead_lettered WHERE producer = $1 AND region = $2)",
            producer,
            region,
        )
        if row is None:  # a SELECT without FROM always returns its one row
            raise RuntimeError("inputs_settled returned no row")
        return int(row[0] or 0), int(row[1])


class PostgresParked:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def park(self, request: ev.MatchingRoundRequested, trace: Mapping[str, str]) -> bool:
        status = await self.conn.execute(
            "INSERT INTO parked_rounds (event_id, region, producer, payload, traceparent, "
            "tracestate) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
            request.event_id,
            request.data.region,
            request.producer,
            request.to_json(),
            trace.get("traceparent"),
            trace.get("tracestate"),
        )
        return bool(status == "INSERT 0 1")

    async def waiting(self, region: str) -> bool:
        found = await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM parked_rounds WHERE region = $1)", region
        )
        return bool(found)

    async def head(self, region: str) -> ParkedRequest | None:
        row = await self.conn.fetchrow(
            "SELECT payload, traceparent, tracestate FROM parked_rounds WHERE region = $1 "
            "ORDER BY seq LIMIT 1",
            region,
        )
        if row is None:
            return None
        request = parse_event(ROUND_REQUESTS, bytes(row["payload"]))
        if not isinstance(request, ev.MatchingRoundRequested):  # only requests are parked
            raise TypeError(f"parked_rounds holds a {request.type}")
        trace = {k: row[k] for k in ("traceparent", "tracestate") if row[k]}
        return ParkedRequest(request, trace)

    async def remove(self, event_id: uuid.UUID) -> None:
        await self.conn.execute("DELETE FROM parked_rounds WHERE event_id = $1", event_id)

    async def regions(self) -> list[str]:
        rows = await self.conn.fetch("SELECT DISTINCT region FROM parked_rounds ORDER BY 1")
        return [row[0] for row in rows]


class PostgresMatchingUnitOfWork(PostgresUnitOfWork):
    """A transaction on the service's pool, with the read model's repositories."""

    regions: PostgresRegions
    placements: PostgresPlacements
    students: PostgresStudents
    matches: PostgresMatches
    rounds: PostgresRounds
    inputs: PostgresInputs
    parked: PostgresParked

    def bind(self, conn: Connection) -> None:
        self.regions = PostgresRegions(conn)
        self.placements = PostgresPlacements(conn)
        self.students = PostgresStudents(conn)
        self.matches = PostgresMatches(conn)
        self.rounds = PostgresRounds(conn)
        self.inputs = PostgresInputs(conn)
        self.parked = PostgresParked(conn)
