"""Fakes of the placements service: an in-memory unit of work whose repositories keep the tables
in plain dicts, with the same named methods (and the same answers) as the PostgreSQL ones in
`services/placements/adapters/postgres.py`.

The state of a block that raises is put back (`shared.uow.InMemoryUnitOfWork`); entering the
unit of work again while it is entered joins the open block, as the PostgreSQL one does
(`services.placements.ports.JoinsOuterBlock`).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from services.placements.domain.audit import AuditRecord
from services.placements.domain.commands import ListOutcomes
from services.placements.domain.errors import second_standing_match
from services.placements.domain.model import (
    Assignment,
    IdempotencyKey,
    MatchRecord,
    OutcomeRecord,
    Placement,
    Round,
    StoredResponse,
    Student,
    Withdrawn,
)
from services.placements.domain.outcomes import Opening, Unplaced
from services.placements.domain.reports import (
    STANDING,
    RegionOverview,
    RoundBreakdown,
    UnplacedStudent,
    distance_band,
    distance_km,
)
from services.placements.domain.rules import Channel, Match
from services.placements.domain.supervisors import (
    ReadinessSettings,
    SupervisorKey,
    SupervisorRecord,
)
from services.placements.ports import JoinsOuterBlock
from shared.contracts import events as ev
from shared.contracts.internal import DueReminder
from shared.contracts.links import ActionLink
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.profiles import StudentProfile
from shared.contracts.vocabulary import Participant
from shared.serialised import Serialised, as_models
from shared.uow import InMemoryUnitOfWork, stamped

OPEN_OR_CONFIRMED = ("proposed", "accepted", "confirmed")
PERSONAL = ("name", "email", "phone", "reason")
"""The fields a stored response about a student loses when they are erased."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Stored:
    """An idempotency key's row."""

    request_hash: str | None
    status: int | None = None
    body: Any = None
    student_id: str | None = None


class _Repository:
    def __init__(self, uow: InMemoryPlacementsUnitOfWork) -> None:
        self.uow = uow  # the state lives in the unit of work (a rollback replaces it)


class FakePlacements(_Repository):
    async def get(self, placement_id: str, *, for_update: bool = False) -> Placement | None:
        return self.uow.placement_rows.get(placement_id)

    async def get_many(self, placement_ids: Iterable[str]) -> dict[str, Placement]:
        rows = self.uow.placement_rows
        return {pid: rows[pid] for pid in placement_ids if pid in rows}

    async def add(self, placement: Placement) -> bool:
        return bool(await self.add_many([placement]))

    async def add_many(self, placements: Sequence[Placement]) -> set[str]:
        inserted = set()
        for placement in placements:
            if placement.placement_id not in self.uow.placement_rows:
                self.uow.placement_rows[placement.placement_id] = placement
                inserted.add(placement.placement_id)
        return inserted

    async def save(self, placement: Placement) -> None:
        current = self.uow.placement_rows[placement.placement_id]
        self.uow.placement_rows[placement.placement_id] = replace(
            placement, withdrawn=current.withdrawn
        )

    async def withdraw(self, placement_id: str, reason: str | None) -> None:
        current = self.uow.placement_rows[placement_id]
        self.uow.placement_rows[placement_id] = replace(current, withdrawn=True)

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
        found = [
            p
            for _, p in sorted(self.uow.placement_rows.items())
            if (region is None or p.offer.region == region)
            and (company_id is None or p.offer.company_id == company_id)
            and (include_withdrawn or not p.withdrawn)
            and (kind is None or p.offer.kind == kind)
        ]
        return found[offset : offset + limit]

    async def open_among(self, placement_ids: Iterable[str]) -> set[str]:
        rows = self.uow.placement_rows
        return {pid for pid in placement_ids if pid in rows and not rows[pid].withdrawn}

    async def open_kinds(self, placement_ids: Iterable[str]) -> dict[str, Participant]:
        rows = self.uow.placement_rows
        return {
            pid: rows[pid].offer.kind
            for pid in placement_ids
            if pid in rows and not rows[pid].withdrawn
        }

    async def with_free_slots(self, region: str, kind: Participant) -> list[tuple[Placement, int]]:
        found = await self.search(
            region=region,
            company_id=None,
            include_withdrawn=False,
            limit=10**9,
            offset=0,
            kind=kind,
        )
        held = await FakeMatches(self.uow).standing_counts(p.placement_id for p in found)
        return [
            (p, held.get(p.placement_id, 0))
            for p in found
            if p.offer.capacity > held.get(p.placement_id, 0)
        ]

    async def open_count(self, region: str, kind: Participant) -> int:
        return sum(
            1
            for p in self.uow.placement_rows.values()
            if p.offer.region == region and p.offer.kind == kind and not p.withdrawn
        )


class FakeCompanies(_Repository):
    async def set_channel(self, company_id: str, channel: Channel) -> None:
        self.uow.company_channels[company_id] = channel

    async def channel(self, company_id: str) -> Channel | None:
        return self.uow.company_channels.get(company_id)

    async def channels(self, company_ids: Iterable[str]) -> dict[str, Channel]:
        found = self.uow.company_channels
        return {cid: found[cid] for cid in company_ids if cid in found}


class FakeStudents(_Repository):
    async def get(self, student_id: str, *, for_update: bool = False) -> Student | Withdrawn | None:
        return self.uow.student_rows.get(student_id)

    async def add(self, student: Student) -> bool:
        return bool(await self.add_many([student]))

    async def add_many(self, students: Sequence[Student]) -> set[str]:
        inserted = set()
        for student in students:
            if student.student_id not in self.uow.student_rows:
                self.uow.student_rows[student.student_id] = student
                inserted.add(student.student_id)
        return inserted

    async def get_many(self, student_ids: Iterable[str]) -> dict[str, Student | Withdrawn]:
        rows = self.uow.student_rows
        return {sid: rows[sid] for sid in student_ids if sid in rows}

    async def save_profile(self, profile: StudentProfile) -> Student:
        current = self.uow.student_rows.get(profile.student_id)
        if not isinstance(current, Student):
            raise LookupError(f"student {profile.student_id} is not registered")
        updated = Student(profile, current.contact)
        self.uow.student_rows[profile.student_id] = updated
        return updated

    async def erase(self, student_id: str) -> None:
        current = self.uow.student_rows[student_id]
        if isinstance(current, Student):
            profile = current.profile
            self.uow.student_rows[student_id] = Withdrawn(
                student_id, profile.region, profile.programme, profile.participant
            )

    async def live_count(self, region: str, participant: Participant) -> int:
        return sum(
            1
            for s in self.uow.student_rows.values()
            if isinstance(s, Student)
            and s.profile.region == region
            and s.profile.participant == participant
        )


class FakeMatches(_Repository):
    async def get(self, match_id: uuid.UUID, *, for_update: bool = False) -> MatchRecord | None:
        return self.uow.match_rows.get(match_id)

    async def propose(self, proposal: ev.MatchProposedData) -> None:
        if proposal.match_id in self.uow.match_rows:
            return
        if any(
            m.student_id == proposal.student_id and m.state in STANDING
            for m in self.uow.match_rows.values()
        ):
            raise second_standing_match(proposal)
        self.uow.match_rows[proposal.match_id] = MatchRecord(
            match_id=proposal.match_id,
            round_id=proposal.round_id,
            region=proposal.region,
            student_id=proposal.student_id,
            placement_id=proposal.placement_id,
            company_id=proposal.company_id,
            rank=proposal.rank,
            state="proposed",
            accepted_by_student=False,
            accepted_by_company=False,
            declined_by=None,
            reason=None,
            updated_at=_now(),
            filled=proposal.filled,
            override=proposal.override,
        )
        self.uow.match_order[proposal.match_id] = next(self.uow.sequence)

    async def record_cancelled(self, cancelled: ev.MatchCancelledData) -> MatchRecord:
        placement = self.uow.placement_rows.get(cancelled.placement_id)
        record = MatchRecord(
            match_id=cancelled.match_id,
            round_id=cancelled.round_id,
            region=cancelled.region,
            student_id=cancelled.student_id,
            placement_id=cancelled.placement_id,
            company_id=placement.offer.company_id if placement else None,
            rank=None,
            state="cancelled",
            accepted_by_student=False,
            accepted_by_company=False,
            declined_by=None,
            reason=cancelled.reason,
            updated_at=_now(),
            override=cancelled.match_id in self.uow.assignment_rows,
        )
        self.uow.match_rows[cancelled.match_id] = record
        self.uow.match_order.setdefault(cancelled.match_id, next(self.uow.sequence))
        return record

    async def standing_counts(self, placement_ids: Iterable[str]) -> dict[str, int]:
        wanted = set(placement_ids)
        counts: dict[str, int] = {}
        held = [m.placement_id for m in self.uow.match_rows.values() if m.state in STANDING]
        held += [
            a.placement_id
            for a in self.uow.assignment_rows.values()
            if a.match_id not in self.uow.match_rows
        ]
        for pid in held:
            if pid in wanted:
                counts[pid] = counts.get(pid, 0) + 1
        return counts

    async def declined_pairs(self, student_ids: Iterable[str]) -> set[tuple[str, str]]:
        wanted = set(student_ids)
        return {
            (m.student_id, m.placement_id)
            for m in self.uow.match_rows.values()
            if m.student_id in wanted and m.state == "declined"
        }

    async def save(self, match: Match) -> MatchRecord:
        match_id = uuid.UUID(match.match_id)
        current = self.uow.match_rows.get(match_id)
        if current is None:
            raise LookupError(f"match {match.match_id} is not known")
        updated = replace(
            current,
            state=match.state,
            accepted_by_student=match.accepted_by_student,
            accepted_by_company=match.accepted_by_company,
            declined_by=match.declined_by,
            reason=match.reason,
            updated_at=_now(),
        )
        self.uow.match_rows[match_id] = updated
        return updated

    def _ordered(self) -> list[MatchRecord]:
        order = self.uow.match_order
        return sorted(self.uow.match_rows.values(), key=lambda m: (order[m.match_id], m.match_id))

    async def of_placement(self, placement_id: str) -> list[MatchRecord]:
        return [m for m in self._ordered() if m.placement_id == placement_id]

    async def of_pair(self, placement_id: str, student_id: str) -> list[MatchRecord]:
        return [
            m
            for m in self._ordered()
            if m.placement_id == placement_id and m.student_id == student_id
        ]

    async def of_pairs(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[MatchRecord]]:
        wanted = set(pairs)
        found: dict[tuple[str, str], list[MatchRecord]] = {}
        for m in self._ordered():
            if (m.placement_id, m.student_id) in wanted:
                found.setdefault((m.placement_id, m.student_id), []).append(m)
        return found

    async def current_of_student(self, student_id: str) -> MatchRecord | None:
        mine = [
            m
            for m in self._ordered()
            if m.student_id == student_id and m.state in OPEN_OR_CONFIRMED
        ]
        return mine[-1] if mine else None

    async def confirmed_counts(self, placement_ids: Iterable[str]) -> dict[str, int]:
        wanted = set(placement_ids)
        counts: dict[str, int] = {}
        for m in self.uow.match_rows.values():
            if m.state == "confirmed" and m.placement_id in wanted:
                counts[m.placement_id] = counts.get(m.placement_id, 0) + 1
        return counts

    async def forget_reasons_of(self, student_id: str) -> None:
        for match_id, m in list(self.uow.match_rows.items()):
            words = m.reason is not None and m.reason not in ev.DECLINE_REASONS
            if m.student_id == student_id and m.declined_by is not None and words:
                self.uow.match_rows[match_id] = replace(m, reason=None)
        for match_id, a in list(self.uow.assignment_rows.items()):
            if a.student_id == student_id:
                self.uow.assignment_rows[match_id] = replace(a, reason="(erased)")


class FakeRounds(_Repository):
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
        if round_id not in self.uow.round_rows:
            self.uow.round_rows[round_id] = Round(
                round_id,
                region,
                policy,
                "requested",
                requested_at=_now(),
                kind=kind,
                fill=fill,
                dry_run=dry_run,
                requested_by=requested_by,
                participant=participant,
            )

    async def part_received(self, part: ev.MatchingRoundOutcomesData) -> None:
        current = self.uow.round_rows.get(part.round_id)
        if current is None:
            current = Round(
                part.round_id,
                part.region,
                "optimal",
                "requested",
                dry_run=part.dry_run,
                participant=part.participant,
            )
        self.uow.round_rows[part.round_id] = replace(
            current, parts_received=current.parts_received + 1
        )

    async def of_region(self, region: str, *, limit: int, offset: int) -> tuple[int, list[Round]]:
        rounds = [r for r in self.uow.round_rows.values() if r.region == region]
        dated = [r for r in rounds if (r.requested_at or r.completed_at) is not None]
        undated = [r for r in rounds if (r.requested_at or r.completed_at) is None]
        dated.sort(key=lambda r: (r.requested_at or r.completed_at, r.round_id), reverse=True)
        undated.sort(key=lambda r: r.round_id, reverse=True)
        ordered = [*dated, *undated]
        return len(ordered), ordered[offset : offset + limit]

    async def settled(self, round_id: uuid.UUID, grace_seconds: float) -> bool:
        found = self.uow.round_rows.get(round_id)
        if found is None:
            return False
        proposals = sum(1 for m in self.uow.match_rows.values() if m.round_id == round_id)
        applied = (
            found.status == "completed"
            and found.parts_received >= found.outcome_parts
            and (found.proposed or 0) <= proposals
        )
        late = found.completed_at is not None and (
            (_now() - found.completed_at).total_seconds() > grace_seconds
        )
        return applied or late

    async def latest_completed(
        self, region: str, participant: Participant = "student"
    ) -> Round | None:
        done = [
            r
            for r in self.uow.round_rows.values()
            if r.region == region
            and r.status == "completed"
            and not r.dry_run
            and r.participant == participant
        ]
        done.sort(key=lambda r: (r.completed_at or datetime.min.replace(tzinfo=UTC), r.round_id))
        return done[-1] if done else None

    async def complete(self, result: ev.MatchingRoundCompletedData) -> None:
        current = self.uow.round_rows.get(result.round_id)
        self.uow.round_rows[result.round_id] = Round(
            round_id=result.round_id,
            region=current.region if current else result.region,
            policy=result.policy,
            status="completed" if result.status == "matched" else "failed",
            requested_at=current.requested_at if current else None,
            completed_at=_now(),
            figures=result.figures,
            unplaced_by_reason=dict(result.unplaced_by_reason),
            proposed=result.proposed,
            cancelled=result.cancelled,
            kind=result.kind,
            fill=result.fill,
            dry_run=result.dry_run,
            outcome_parts=result.outcome_parts,
            parts_received=current.parts_received if current else 0,
            requested_by=current.requested_by if current else None,
            participant=result.participant,
            failure=result.detail if result.status != "matched" else None,
        )

    async def get(self, round_id: uuid.UUID) -> Round | None:
        return self.uow.round_rows.get(round_id)


@dataclass(frozen=True)
class _Outcome:
    round_id: uuid.UUID
    region: str
    dry_run: bool
    outcome: StudentOutcome
    seq: int


class FakeOutcomes(_Repository):
    def _record(self, row: _Outcome) -> OutcomeRecord:
        student = self.uow.student_rows.get(row.outcome.student_id)
        programme = (
            student.profile.programme
            if isinstance(student, Student)
            else student.programme
            if student is not None
            else None
        )
        return OutcomeRecord(row.round_id, row.region, row.dry_run, row.outcome, programme)

    async def add_part(
        self,
        round_id: uuid.UUID,
        region: str,
        outcomes: Sequence[StudentOutcome],
        *,
        dry_run: bool,
    ) -> int:
        added = 0
        for o in outcomes:
            key = (round_id, o.student_id)
            if key not in self.uow.outcome_rows:
                seq = next(self.uow.sequence)
                self.uow.outcome_rows[key] = _Outcome(round_id, region, dry_run, o, seq)
                added += 1
        return added

    async def latest_of_student(self, student_id: str) -> OutcomeRecord | None:
        mine = [
            r
            for r in self.uow.outcome_rows.values()
            if r.outcome.student_id == student_id and not r.dry_run
        ]
        return self._record(max(mine, key=lambda r: r.seq)) if mine else None

    async def all_of_round(self, round_id: uuid.UUID) -> list[OutcomeRecord]:
        rows = [r for r in self.uow.outcome_rows.values() if r.round_id == round_id]
        return [self._record(r) for r in sorted(rows, key=lambda r: r.outcome.student_id)]

    async def of_round(self, query: ListOutcomes) -> tuple[int, list[OutcomeRecord]]:
        found = [
            r
            for r in await self.all_of_round(query.round_id)
            if (query.reason is None or r.outcome.reason == query.reason)
            and (query.programme is None or r.programme == query.programme)
            and (query.placed is None or (r.outcome.placement_id is not None) == query.placed)
            and (query.moved is None or r.moved == query.moved)
        ]
        return len(found), found[query.offset : query.offset + query.limit]

    async def unplaced(self, round_id: uuid.UUID) -> list[Unplaced]:
        standing = {m.student_id for m in self.uow.match_rows.values() if m.state in STANDING}
        standing |= {
            a.student_id
            for a in self.uow.assignment_rows.values()
            if a.match_id not in self.uow.match_rows
        }
        found = []
        for r in await self.all_of_round(round_id):
            live = isinstance(self.uow.student_rows.get(r.student_id), Student)
            if r.outcome.placement_id is None and live and r.student_id not in standing:
                found.append(Unplaced(r.student_id, r.outcome.reason, r.programme))
        return found


class FakeAssignments(_Repository):
    async def add(self, assignment: Assignment) -> None:
        if assignment.match_id in self.uow.assignment_rows:
            raise ValueError(f"assignment {assignment.match_id} exists")  # the primary key
        self.uow.assignment_rows[assignment.match_id] = assignment

    async def get(self, match_id: uuid.UUID) -> Assignment | None:
        return self.uow.assignment_rows.get(match_id)


class FakeOpenings(_Repository):
    async def add(self, opening: Opening) -> None:
        self.uow.opening_rows.append(opening)

    async def latest_of_student(self, student_id: str) -> Opening | None:
        for opening in reversed(self.uow.opening_rows):
            if student_id in opening.student_ids:
                return replace(opening, student_ids=(student_id,))
        return None

    async def forget_student(self, student_id: str) -> None:
        self.uow.opening_rows = [
            replace(o, student_ids=tuple(s for s in o.student_ids if s != student_id))
            for o in self.uow.opening_rows
        ]


class FakeIdempotency(_Repository):
    @staticmethod
    def _id(key: IdempotencyKey) -> tuple[str, str, str]:
        return (key.key, key.method, key.path)

    async def reserve(self, key: IdempotencyKey) -> StoredResponse | None:
        stored = self.uow.idempotency_rows.get(self._id(key))
        if stored is None:
            self.uow.idempotency_rows[self._id(key)] = _Stored(key.request_hash)
            return None
        if stored.status is None:
            raise LookupError(f"idempotency key {key.key!r} has no stored response")
        return StoredResponse(stored.status, stored.body, stored.request_hash)

    async def store(
        self, key: IdempotencyKey, status: int, body: Any, student_id: str | None
    ) -> None:
        stored = self.uow.idempotency_rows[self._id(key)]
        stored.status, stored.body, stored.student_id = status, body, student_id

    async def forget_student(self, student_id: str) -> None:
        for stored in self.uow.idempotency_rows.values():
            if stored.student_id == student_id:
                stored.request_hash = None
                if isinstance(stored.body, dict):
                    stored.body = {k: v for k, v in stored.body.items() if k not in PERSONAL}


class FakeAudit(_Repository):
    async def record(self, events: Sequence[ev.Event]) -> None:
        for e in events:
            if e.event_id in self.uow.audit_rows:  # the primary key
                raise ValueError(f"event {e.event_id} is audited already")
            self.uow.audit_rows[e.event_id] = AuditRecord(
                e.event_id, e.type, e.region, e.actor, _now()
            )

    async def of_region(self, region: str, *, limit: int, offset: int) -> list[AuditRecord]:
        found = [r for r in self.uow.audit_rows.values() if r.region == region]
        return found[::-1][offset : offset + limit]  # insertion order is time order here


class FakeActionLinks(_Repository):
    async def use(self, link: ActionLink) -> bool:
        if link.link_id in self.uow.used_links:
            return False
        self.uow.used_links[link.link_id] = link
        return True

    async def used(self, link_id: uuid.UUID) -> bool:
        return link_id in self.uow.used_links


class FakeAccounts(_Repository):
    async def student_of(self, subject: str) -> str | None:
        return self.uow.student_accounts.get(subject)

    async def company_of(self, subject: str) -> str | None:
        return self.uow.company_accounts.get(subject)

    async def students_with_email(self, email: str) -> list[str]:
        return sorted(
            sid
            for sid, s in self.uow.student_rows.items()
            if isinstance(s, Student) and s.contact.email.lower() == email.lower()
        )

    async def link_student(self, subject: str, student_id: str) -> bool:
        accounts = self.uow.student_accounts
        if subject in accounts or student_id in accounts.values():
            return False
        accounts[subject] = student_id
        return True

    async def invite(self, company_id: str, email: str) -> None:
        self.uow.invitations.setdefault((email.lower(), company_id), None)

    async def accept_invitation(self, subject: str, email: str) -> str | None:
        for (invited, company_id), used_by in self.uow.invitations.items():
            if invited == email.lower() and used_by is None:
                self.uow.invitations[(invited, company_id)] = subject
                self.uow.company_accounts.setdefault(subject, company_id)
                return company_id
        return None

    async def forget_student(self, student_id: str) -> None:
        accounts = self.uow.student_accounts
        for subject in [s for s, sid in accounts.items() if sid == student_id]:
            del accounts[subject]


class FakeReports(_Repository):
    def _live(self, region: str) -> list[Student]:
        return [
            s
            for s in self.uow.student_rows.values()
            if isinstance(s, Student) and s.profile.region == region
        ]

    def _standing(self) -> set[str]:
        return {m.student_id for m in self.uow.match_rows.values() if m.state in STANDING}

    async def region_overview(self, region: str) -> RegionOverview:
        students = [s for s in self._live(region) if s.profile.participant == "student"]
        standing = self._standing()
        open_here = [
            p
            for p in self.uow.placement_rows.values()
            if p.offer.region == region and not p.withdrawn and p.offer.kind == "student"
        ]
        rounds = [r for r in self.uow.round_rows.values() if r.region == region]
        dated = [r for r in rounds if (r.requested_at or r.completed_at) is not None]
        undated = [r for r in rounds if (r.requested_at or r.completed_at) is None]
        dated.sort(key=lambda r: (r.requested_at or r.completed_at, r.round_id), reverse=True)
        undated.sort(key=lambda r: r.round_id, reverse=True)
        latest = [*dated, *undated]
        return RegionOverview(
            region=region,
            students=len(students),
            ranked=sum(1 for s in students if s.profile.preferences),
            standing=sum(1 for s in students if s.student_id in standing),
            placements=len(open_here),
            slots=sum(p.offer.capacity for p in open_here),
            last_round=latest[0] if latest else None,
        )

    def _distance(self, student_id: str, placement_id: str) -> int | None:
        student = self.uow.student_rows.get(student_id)
        placement = self.uow.placement_rows.get(placement_id)
        home = student.profile.home if isinstance(student, Student) else None
        site = placement.offer.site if placement is not None else None
        if home is None or site is None:
            return None
        return distance_band(distance_km(home.lat, home.lon, site.lat, site.lon))

    async def round_breakdown(self, round_id: uuid.UUID) -> RoundBreakdown:
        by_rank: dict[int | None, int] = {}
        by_programme: dict[str | None, int] = {}
        by_distance: dict[int | None, int] = {}
        for m in self.uow.match_rows.values():
            if m.round_id != round_id:
                continue
            student = self.uow.student_rows.get(m.student_id)
            programme = (
                student.profile.programme
                if isinstance(student, Student)
                else student.programme
                if student is not None
                else None
            )
            band = self._distance(m.student_id, m.placement_id)
            by_rank[m.rank] = by_rank.get(m.rank, 0) + 1
            by_programme[programme] = by_programme.get(programme, 0) + 1
            by_distance[band] = by_distance.get(band, 0) + 1
        return RoundBreakdown(sum(by_rank.values()), by_rank, by_programme, by_distance)

    async def unplaced(self, region: str, *, limit: int, offset: int) -> list[UnplacedStudent]:
        standing = self._standing()
        found = [
            UnplacedStudent(s.student_id, s.profile.programme, len(s.profile.preferences))
            for s in sorted(self._live(region), key=lambda s: s.student_id)
            if s.student_id not in standing
        ]
        return found[offset : offset + limit]

    async def region_matches(self, region: str) -> list[MatchRecord]:
        found = []
        for m in self.uow.match_rows.values():
            if m.region != region:
                continue
            placement = self.uow.placement_rows.get(m.placement_id)
            if m.company_id is None and placement is not None:
                m = replace(m, company_id=placement.offer.company_id)
            found.append(m)
        order = self.uow.match_order
        return sorted(found, key=lambda m: (m.student_id, order[m.match_id], m.match_id))


class FakeReadiness(_Repository):
    """`adapters/readiness.py` in memory: the supervisors' courses, the regions' settings, an
    audit record per change."""

    def _audit(self, kind: str, region: str, actor: ev.Actor | None) -> None:
        record_id = uuid.uuid4()
        self.uow.audit_rows[record_id] = AuditRecord(record_id, kind, region, actor, _now())

    async def settings(self, region: str) -> ReadinessSettings:
        return self.uow.region_settings_rows.get(region) or ReadinessSettings(region)

    async def save_settings(
        self, settings: ReadinessSettings, *, actor: ev.Actor | None
    ) -> ReadinessSettings:
        saved = replace(settings, updated_at=_now())
        self.uow.region_settings_rows[settings.region] = saved
        self._audit("ReadinessSettingsChanged", settings.region, actor)
        return saved

    async def supervisors(
        self, keys: Iterable[SupervisorKey]
    ) -> dict[SupervisorKey, SupervisorRecord]:
        rows = self.uow.supervisor_rows
        return {k: rows[k] for k in set(keys) if k in rows}

    async def record_training(
        self,
        key: SupervisorKey,
        trained_on: date | None,
        *,
        region: str,
        actor: ev.Actor | None,
    ) -> SupervisorRecord:
        record = SupervisorRecord(key, trained_on, _now(), actor.role if actor else None)
        self.uow.supervisor_rows[key] = record
        self._audit("SupervisorTrainingRecorded", region, actor)
        return record

    async def reminders_due(
        self, starts_from: date, starts_until: date, *, after: uuid.UUID | None, limit: int
    ) -> list[DueReminder]:
        found = []
        for m in sorted(self.uow.match_rows.values(), key=lambda m: m.match_id):
            placement = self.uow.placement_rows.get(m.placement_id)
            starts = placement.offer.starts_on if placement else None
            student = self.uow.student_rows.get(m.student_id)
            if (
                m.state != "confirmed"
                or placement is None
                or placement.withdrawn
                or starts is None
                or not starts_from <= starts <= starts_until
                or isinstance(student, Withdrawn)
                or (after is not None and m.match_id <= after)
            ):
                continue
            found.append(
                DueReminder(
                    match_id=m.match_id,
                    region=m.region,
                    placement_id=m.placement_id,
                    student_id=m.student_id,
                    starts_on=starts,
                )
            )
        return found[:limit]


@dataclass
class InMemoryPlacementsUnitOfWork(JoinsOuterBlock, InMemoryUnitOfWork):
    """The placements unit of work in memory. Its tables are the `*_rows` fields."""

    state_fields: ClassVar[tuple[str, ...]] = (
        "placement_rows",
        "company_channels",
        "student_rows",
        "match_rows",
        "match_order",
        "round_rows",
        "outcome_rows",
        "assignment_rows",
        "opening_rows",
        "idempotency_rows",
        "audit_rows",
        "used_links",
        "student_accounts",
        "company_accounts",
        "invitations",
        "supervisor_rows",
        "region_settings_rows",
    )
    placement_rows: dict[str, Placement] = field(default_factory=dict)
    company_channels: dict[str, Channel] = field(default_factory=dict)
    student_rows: dict[str, Student | Withdrawn] = field(default_factory=dict)
    match_rows: dict[uuid.UUID, MatchRecord] = field(default_factory=dict)
    match_order: dict[uuid.UUID, int] = field(default_factory=dict)
    round_rows: dict[uuid.UUID, Round] = field(default_factory=dict)
    outcome_rows: dict[tuple[uuid.UUID, str], _Outcome] = field(default_factory=dict)
    assignment_rows: dict[uuid.UUID, Assignment] = field(default_factory=dict)
    opening_rows: list[Opening] = field(default_factory=list)
    idempotency_rows: dict[tuple[str, str, str], _Stored] = field(default_factory=dict)
    audit_rows: dict[uuid.UUID, AuditRecord] = field(default_factory=dict)
    used_links: dict[uuid.UUID, ActionLink] = field(default_factory=dict)
    student_accounts: dict[str, str] = field(default_factory=dict)
    company_accounts: dict[str, str] = field(default_factory=dict)
    invitations: dict[tuple[str, str], str | None] = field(default_factory=dict)
    """(e-mail, company id) -> the subject that used the invitation (None: open)."""
    supervisor_rows: dict[SupervisorKey, SupervisorRecord] = field(default_factory=dict)
    region_settings_rows: dict[str, ReadinessSettings] = field(default_factory=dict)
    sequence: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def __post_init__(self) -> None:
        self.placements = FakePlacements(self)
        self.companies = FakeCompanies(self)
        self.students = FakeStudents(self)
        self.matches = FakeMatches(self)
        self.rounds = FakeRounds(self)
        self.outcomes = FakeOutcomes(self)
        self.assignments = FakeAssignments(self)
        self.openings = FakeOpenings(self)
        self.idempotency = FakeIdempotency(self)
        self.audit = FakeAudit(self)
        self.action_links = FakeActionLinks(self)
        self.accounts = FakeAccounts(self)
        self.reports = FakeReports(self)
        self.readiness = FakeReadiness(self)

    async def publish(self, events: Iterable[ev.Event | Serialised]) -> None:
        """The outbox and the audit trail, as the PostgreSQL one: stamped, in this block."""
        batch = stamped(events, self.actor)
        await super().publish(batch)
        await self.audit.record(as_models(batch))

    async def published_count(self, region: str, topics: Iterable[str]) -> int:
        wanted = set(topics)
        return sum(
            1 for e in (*self.published, *self._pending) if e.topic in wanted and e.region == region
        )
