"""Fakes of the matching service: an in-memory unit of work whose repositories keep the read
model in plain dicts, with the same named methods (and the same rules) as the PostgreSQL ones in
`services/matching/adapters/repository.py`.

Its transactions run one at a time (an `asyncio.Lock`, standing in for the database's locks), so
an automatic round in a background task and a subscriber never share one open transaction. The
state of a block that raises is put back (`shared.uow.InMemoryUnitOfWork`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Literal, Self

from services.matching.adapters.repository import ParkedRequest
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
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.contracts.vocabulary import Participant
from shared.uow import InMemoryUnitOfWork

STANDING = ("proposed", "confirmed")
MatchStatus = Literal["proposed", "confirmed", "cancelled", "declined"]


@dataclass
class PlacementRow:
    region: str
    offer: PlacementOffer | None  # None: a tombstone (withdrawn before it was seen)
    withdrawn: bool = False


@dataclass
class StudentRow:
    region: str
    profile: StudentProfile | None  # None: only its withdrawal was seen
    withdrawn: bool = False


@dataclass
class MatchRecord:
    match_id: uuid.UUID
    region: str
    round_id: uuid.UUID
    student_id: str
    placement_id: str
    company_id: str
    rank: int | None
    status: MatchStatus = "proposed"
    student_accepted: bool = False
    company_accepted: bool = False
    cancel_reason: str | None = None
    filled: bool = False
    override: bool = False
    override_reason: str | None = None

    @property
    def standing(self) -> bool:
        return self.status in STANDING

    def as_standing(self, status: MatchStatus | None = None) -> Standing:
        shown = status or self.status
        if shown not in STANDING:
            raise ValueError(f"match {self.match_id} is {shown}, not standing")
        return Standing(
            match_id=str(self.match_id),
            student_id=self.student_id,
            placement_id=self.placement_id,
            company_id=self.company_id,
            region=self.region,
            rank=self.rank,
            status="confirmed" if shown == "confirmed" else "proposed",
            student_accepted=self.student_accepted,
            company_accepted=self.company_accepted,
            override=self.override,
            filled=self.filled,
        )


@dataclass
class RegionState:
    input_version: int = 0
    round_version: int = 0


@dataclass
class ReadModel:
    """The tables of the matching schema (matches in creation order)."""

    placements: dict[str, PlacementRow] = field(default_factory=dict)
    students: dict[str, StudentRow] = field(default_factory=dict)
    matches: dict[uuid.UUID, MatchRecord] = field(default_factory=dict)
    exclusions: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    rounds: dict[uuid.UUID, RoundRecord] = field(default_factory=dict)
    region_state: dict[str, RegionState] = field(default_factory=dict)
    inputs_applied: dict[tuple[str, str], int] = field(default_factory=dict)
    inputs_dead_lettered: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)
    parked: dict[uuid.UUID, ParkedRequest] = field(default_factory=dict)  # in parking order

    def standing_of(
        self, region: str, student_ids: Iterable[str], participant: str = "student"
    ) -> tuple[Standing, ...]:
        ids = set(student_ids)
        return tuple(
            m.as_standing()
            for m in self.matches.values()
            if m.standing
            and (m.region == region or m.student_id in ids)
            and self.kind_of(m.placement_id) == participant
        )

    def kind_of(self, placement_id: str) -> str | None:
        """The placement's kind, as the real schema's `placements.kind` (a tombstone: student)."""
        row = self.placements.get(placement_id)
        if row is None:
            return None
        return row.offer.kind if row.offer is not None else "student"


class _Repository:
    def __init__(self, uow: InMemoryMatchingUnitOfWork) -> None:
        self._uow = uow

    @property
    def db(self) -> ReadModel:
        return self._uow.model  # read on every call: a rollback replaces the model


class InMemoryRegions(_Repository):
    async def lock(self, region: str) -> None:
        """Transactions of the fake run one at a time: nothing to lock."""

    async def lock_all(self, regions: Iterable[str]) -> None:
        """Nothing to lock (see `lock`)."""

    async def mark_changed(self, regions: Iterable[str]) -> None:
        for region in regions:  # once each time it is named
            self.db.region_state.setdefault(region, RegionState()).input_version += 1

    async def changed(self) -> list[str]:
        return sorted(
            r for r, s in self.db.region_state.items() if s.input_version > s.round_version
        )

    async def input_changed(self, region: str) -> bool:
        state = self.db.region_state.get(region)
        return state is not None and state.input_version > state.round_version


class InMemoryPlacements(_Repository):
    async def lock(self, placement_ids: Iterable[str]) -> None:
        """Nothing to lock (see InMemoryRegions.lock)."""

    async def upsert(self, offer: PlacementOffer) -> None:
        await self.upsert_all([offer])

    async def upsert_all(self, offers: Iterable[PlacementOffer]) -> None:
        for offer in offers:
            self.db.placements[offer.placement_id] = PlacementRow(offer.region, offer)

    async def withdraw(self, placement_id: str, region: str) -> bool:
        row = self.db.placements.get(placement_id)
        if row is None:
            return False
        row.withdrawn = True
        return True

    async def regions_ranking(self, placement_id: str) -> list[str]:
        return sorted(
            {
                s.region
                for s in self.db.students.values()
                if not s.withdrawn
                and s.profile is not None
                and placement_id in s.profile.preferences
            }
        )

    async def live(self, placement_id: str) -> PlacementOffer | None:
        row = self.db.placements.get(placement_id)
        return None if row is None or row.withdrawn else row.offer


class InMemoryStudents(_Repository):
    async def lock_region_and_find(self, region: str, student_id: str) -> str | None:
        row = self.db.students.get(student_id)
        return None if row is None else row.region

    async def regions_of(self, student_ids: Iterable[str]) -> dict[str, str]:
        rows = self.db.students
        return {sid: rows[sid].region for sid in set(student_ids) if sid in rows}

    async def upsert(self, profile: StudentProfile) -> None:
        await self.upsert_all([profile])

    async def upsert_all(self, profiles: Iterable[StudentProfile]) -> None:
        for profile in profiles:
            self.db.students[profile.student_id] = StudentRow(profile.region, profile)

    async def withdraw(self, student_id: str, region: str) -> bool:
        row = self.db.students.get(student_id)
        if row is None:
            return False
        row.withdrawn = True
        return True

    async def live(self, student_id: str) -> StudentProfile | None:
        row = self.db.students.get(student_id)
        return None if row is None or row.withdrawn else row.profile


class InMemoryMatches(_Repository):
    async def for_update(self, match_id: uuid.UUID) -> MatchRow | None:
        m = self.db.matches.get(match_id)
        if m is None:
            return None
        return MatchRow(m.as_standing() if m.standing else None, m.student_id, m.placement_id)

    async def record_acceptance(self, match_id: str, by: Literal["student", "company"]) -> Standing:
        m = self.db.matches.get(uuid.UUID(match_id))
        if m is None:
            raise LookupError(f"match {match_id} does not exist")
        if by == "student":
            m.student_accepted = True
        else:
            m.company_accepted = True
        return m.as_standing()

    async def confirm(self, match_id: str) -> None:
        self.db.matches[uuid.UUID(match_id)].status = "confirmed"

    async def close(
        self,
        cancellations: Sequence[Cancellation],
        status: Literal["cancelled", "declined"] = "cancelled",
    ) -> None:
        for c in cancellations:
            m = self.db.matches.get(uuid.UUID(c.match.match_id))
            if m is not None and m.standing:
                m.status, m.cancel_reason = status, c.reason

    async def _cancel_where(
        self, column: Literal["placement_id", "student_id"], value: str, reason: CancelReason
    ) -> list[Standing]:
        closed: list[Standing] = []
        for m in self.db.matches.values():
            if m.standing and getattr(m, column) == value:
                closed.append(m.as_standing())
                m.status, m.cancel_reason = "cancelled", reason
        return closed

    async def cancel_standing_of_placement(
        self, placement_id: str, reason: CancelReason
    ) -> list[Standing]:
        return await self._cancel_where("placement_id", placement_id, reason)

    async def cancel_standing_of_student(
        self, student_id: str, reason: CancelReason
    ) -> list[Standing]:
        return await self._cancel_where("student_id", student_id, reason)

    async def exclude(self, student_id: str, placement_id: str, match_id: str) -> None:
        self.db.exclusions.setdefault((student_id, placement_id), uuid.UUID(match_id))

    async def insert_proposals(
        self, region: str, round_id: uuid.UUID, proposals: Sequence[NewProposal]
    ) -> list[tuple[str, NewProposal]]:
        made = [(str(uuid.uuid4()), p) for p in proposals]
        standing = {m.student_id for m in self.db.matches.values() if m.standing}
        for mid, p in made:
            if p.student_id in standing:  # the partial unique index of the real schema
                raise ValueError(f"{p.student_id} would have two standing matches")
            standing.add(p.student_id)
            self.db.matches[uuid.UUID(mid)] = MatchRecord(
                uuid.UUID(mid),
                region,
                round_id,
                p.student_id,
                p.placement_id,
                p.company_id,
                p.rank,
                filled=p.filled,
            )
        return made

    async def standing_at(self, placement_id: str) -> list[Standing]:
        return [
            m.as_standing()
            for m in self.db.matches.values()
            if m.standing and m.placement_id == placement_id
        ]

    async def exists(self, match_id: uuid.UUID) -> bool:
        return match_id in self.db.matches

    async def insert_override(
        self,
        match_id: uuid.UUID,
        region: str,
        round_id: uuid.UUID,
        proposal: NewProposal,
        reason: str | None,
    ) -> None:
        p = proposal
        if match_id in self.db.matches:  # the primary key of the real schema
            raise ValueError(f"match {match_id} exists")
        if any(m.standing and m.student_id == p.student_id for m in self.db.matches.values()):
            raise ValueError(f"{p.student_id} would have two standing matches")
        self.db.matches[match_id] = MatchRecord(
            match_id,
            region,
            round_id,
            p.student_id,
            p.placement_id,
            p.company_id,
            p.rank,
            override=True,
            override_reason=reason,
        )


class InMemoryRounds(_Repository):
    async def recorded(self, round_id: uuid.UUID) -> bool:
        return round_id in self.db.rounds

    async def record(self, record: RoundRecord) -> None:
        if record.round_id in self.db.rounds:
            raise ValueError(f"round {record.round_id} is recorded already")
        self.db.rounds[record.round_id] = record
        if record.dry_run:
            return
        state = self.db.region_state.setdefault(record.region, RegionState())
        state.round_version = max(state.round_version, record.seen_version)

    async def load_problem(
        self, region: str, *, whole_region: bool = False, participant: Participant = "student"
    ) -> tuple[RoundInput, int]:
        db = self.db
        students = tuple(
            s.profile
            for _, s in sorted(db.students.items())
            if s.region == region
            and not s.withdrawn
            and s.profile is not None
            and s.profile.participant == participant
        )
        ids = {s.student_id for s in students}
        standing = db.standing_of(region, ids, participant)
        wanted = {pid for s in students for pid in s.preferences} | {
            m.placement_id for m in standing
        }
        if whole_region:
            wanted |= {
                pid
                for pid, r in db.placements.items()
                if r.region == region and not r.withdrawn and db.kind_of(pid) == participant
            }
        rows = {
            pid: db.placements[pid]
            for pid in sorted(wanted)
            if pid in db.placements
            and (db.kind_of(pid) == participant or db.placements[pid].withdrawn)
        }
        live = [r.offer for r in rows.values() if not r.withdrawn and r.offer is not None]
        live_ids = {p.placement_id for p in live}
        used: dict[str, int] = {}
        for m in db.matches.values():
            if (
                m.standing
                and m.placement_id in live_ids
                and m.region != region
                and m.student_id not in ids
            ):
                used[m.placement_id] = used.get(m.placement_id, 0) + 1
        gone = {
            m.student_id
            for m in standing
            if m.student_id in db.students and db.students[m.student_id].withdrawn
        }
        state = db.region_state.get(region)
        problem = RoundInput(
            region=region,
            students=students,
            placements=capacity_left(live, used),
            standing=standing,
            excluded=frozenset(pair for pair in db.exclusions if pair[0] in ids),
            withdrawn_students=frozenset(gone),
            withdrawn_placements=frozenset(pid for pid, r in rows.items() if r.withdrawn),
        )
        return problem, state.input_version if state else 0


class InMemoryInputs(_Repository):
    async def count_applied(self, event_id: uuid.UUID, producer: str, region: str) -> None:
        await self.count_applied_all([(event_id, producer, region)])

    async def count_applied_all(self, applied: Sequence[tuple[uuid.UUID, str, str]]) -> None:
        for event_id, producer, region in applied:
            self.db.inputs_dead_lettered.pop(event_id, None)
            key = (producer, region)
            self.db.inputs_applied[key] = self.db.inputs_applied.get(key, 0) + 1

    async def record_dead(self, event_id: uuid.UUID, producer: str, region: str) -> None:
        self.db.inputs_dead_lettered.setdefault(event_id, (producer, region))

    async def settled(self, producer: str, region: str) -> tuple[int, int]:
        dead = sum(1 for key in self.db.inputs_dead_lettered.values() if key == (producer, region))
        return self.db.inputs_applied.get((producer, region), 0), dead


class InMemoryParked(_Repository):
    async def park(self, request: ev.MatchingRoundRequested, trace: Mapping[str, str]) -> bool:
        if request.event_id in self.db.parked:
            return False
        self.db.parked[request.event_id] = ParkedRequest(request, dict(trace))
        return True

    async def waiting(self, region: str) -> bool:
        return any(p.request.data.region == region for p in self.db.parked.values())

    async def head(self, region: str) -> ParkedRequest | None:
        return next((p for p in self.db.parked.values() if p.request.data.region == region), None)

    async def remove(self, event_id: uuid.UUID) -> None:
        self.db.parked.pop(event_id, None)

    async def regions(self) -> list[str]:
        return sorted({p.request.data.region for p in self.db.parked.values()})


@dataclass
class InMemoryMatchingUnitOfWork(InMemoryUnitOfWork):
    """The matching service's unit of work over an in-memory read model (`model`)."""

    state_fields: ClassVar[tuple[str, ...]] = ("model",)
    model: ReadModel = field(default_factory=ReadModel)
    _serial: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def __aenter__(self) -> Self:
        await self._serial.acquire()
        try:
            return await super().__aenter__()
        except BaseException:
            self._serial.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            self._serial.release()

    @property
    def regions(self) -> InMemoryRegions:
        return InMemoryRegions(self)

    @property
    def placements(self) -> InMemoryPlacements:
        return InMemoryPlacements(self)

    @property
    def students(self) -> InMemoryStudents:
        return InMemoryStudents(self)

    @property
    def matches(self) -> InMemoryMatches:
        return InMemoryMatches(self)

    @property
    def rounds(self) -> InMemoryRounds:
        return InMemoryRounds(self)

    @property
    def inputs(self) -> InMemoryInputs:
        return InMemoryInputs(self)

    @property
    def parked(self) -> InMemoryParked:
        return InMemoryParked(self)
