"""What the handlers may use: the placements unit of work and its repositories, as protocols.

Two implementations: PostgreSQL (`adapters/postgres.py`, production and the `infra` tier) and
in memory (`tests/support/fakes/placements.py`, the fast tier); the handler tests run against
both (`tests/handlers/placements/`).

A placements unit of work may be entered again while it is entered: the inner block joins the
outer one's transaction, and only the outermost exit commits (or rolls back). Handlers always
open their own block; an HTTP route that must write more in the same transaction (the
Idempotency-Key and the stored response) opens the outer one (`JoinsOuterBlock`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from types import TracebackType
from typing import Any, Protocol, Self, cast

from shared.contracts import events as ev
from shared.contracts.internal import DueReminder
from shared.contracts.links import ActionLink
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.profiles import StudentProfile
from shared.contracts.vocabulary import Participant
from shared.uow import UnitOfWork

from .domain.audit import AuditRecord
from .domain.commands import ListOutcomes
from .domain.model import (
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
from .domain.outcomes import Opening, Unplaced
from .domain.reports import RegionOverview, RoundBreakdown, UnplacedStudent
from .domain.rules import Channel, Match
from .domain.supervisors import ReadinessSettings, SupervisorKey, SupervisorRecord


class PlacementRepository(Protocol):
    async def get(self, placement_id: str, *, for_update: bool = False) -> Placement | None: ...

    async def get_many(self, placement_ids: Iterable[str]) -> dict[str, Placement]:
        """The placements among `placement_ids` that exist (withdrawn ones too), in one read."""
        ...

    async def add(self, placement: Placement) -> bool:
        """Insert a new placement; False if the id exists (nothing changes then)."""
        ...

    async def add_many(self, placements: Sequence[Placement]) -> set[str]:
        """Insert those whose id is new; return the ids inserted."""
        ...

    async def save(self, placement: Placement) -> None:
        """Replace the offer and the own channel of a placement the transaction has locked."""
        ...

    async def withdraw(self, placement_id: str, reason: str | None) -> None: ...

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
        """A page of placements ordered by id (of `kind` only, when given)."""
        ...

    async def open_among(self, placement_ids: Iterable[str]) -> set[str]:
        """The ids among `placement_ids` of placements that exist and are not withdrawn."""
        ...

    async def open_kinds(self, placement_ids: Iterable[str]) -> dict[str, Participant]:
        """The kind (`student` or `teacher`) of each open placement among `placement_ids`."""
        ...

    async def open_count(self, region: str, kind: Participant) -> int:
        """How many open placements of `kind` the region has."""
        ...

    async def with_free_slots(self, region: str, kind: Participant) -> list[tuple[Placement, int]]:
        """The region's open placements of `kind` with a slot no standing match or waiting
        assignment holds, by id, each with how many slots are held."""
        ...


class CompanyRepository(Protocol):
    async def set_channel(self, company_id: str, channel: Channel) -> None: ...

    async def channel(self, company_id: str) -> Channel | None: ...

    async def channels(self, company_ids: Iterable[str]) -> dict[str, Channel]:
        """`channel` of each of `company_ids` that has one, in one read."""
        ...


class StudentRepository(Protocol):
    async def get(
        self, student_id: str, *, for_update: bool = False
    ) -> Student | Withdrawn | None: ...

    async def add(self, student: Student) -> bool:
        """Insert a new student; False if the id exists (withdrawn or not)."""
        ...

    async def add_many(self, students: Sequence[Student]) -> set[str]:
        """Insert those whose id is new; return the ids inserted."""
        ...

    async def save_profile(self, profile: StudentProfile) -> Student:
        """Replace the profile of a student the transaction has locked."""
        ...

    async def get_many(self, student_ids: Iterable[str]) -> dict[str, Student | Withdrawn]:
        """The students among `student_ids` that exist (withdrawn ones as tombstones)."""
        ...

    async def erase(self, student_id: str) -> None:
        """Leave the tombstone (id, region, programme, withdrawal time); scrub every other trace
        this table and this schema's published-event history hold."""
        ...

    async def live_count(self, region: str, participant: Participant) -> int:
        """How many registered (not withdrawn) students or teachers the region has."""
        ...


class MatchRepository(Protocol):
    async def get(self, match_id: uuid.UUID, *, for_update: bool = False) -> MatchRecord | None: ...

    async def propose(self, proposal: ev.MatchProposedData) -> None:
        """Record a proposal (state `proposed`, with `filled` and `override`) unless its id is
        known."""
        ...

    async def record_cancelled(self, cancelled: ev.MatchCancelledData) -> MatchRecord:
        """Record a match never proposed here as cancelled (matching refused an assignment by
        hand); its company is the placement's, if known."""
        ...

    async def standing_counts(self, placement_ids: Iterable[str]) -> dict[str, int]:
        """Per placement: its standing matches (proposed, accepted, confirmed) and the
        assignments by hand matching has not answered yet (placements without any left out)."""
        ...

    async def declined_pairs(self, student_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(student, placement) of every declined match of these students."""
        ...

    async def save(self, match: Match) -> MatchRecord:
        """Write the state machine's value of a match the transaction has locked."""
        ...

    async def of_placement(self, placement_id: str) -> list[MatchRecord]:
        """Oldest first."""
        ...

    async def of_pair(self, placement_id: str, student_id: str) -> list[MatchRecord]: ...

    async def of_pairs(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[MatchRecord]]:
        """`of_pair` of each (placement, student) in one read (pairs without a match left out)."""
        ...

    async def current_of_student(self, student_id: str) -> MatchRecord | None:
        """The newest proposed, accepted or confirmed match of the student."""
        ...

    async def confirmed_counts(self, placement_ids: Iterable[str]) -> dict[str, int]:
        """Confirmed matches per placement (placements without any are left out)."""
        ...

    async def forget_reasons_of(self, student_id: str) -> None:
        """Clear the words of every decline of the student's matches, the student's or the
        company's (a reason code stays), and the coordinators' reasons for assigning them."""
        ...


class RoundRepository(Protocol):
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
        """Record a requested round unless its id is known."""
        ...

    async def complete(self, result: ev.MatchingRoundCompletedData) -> None:
        """Record a round's figures, kind and options (the round need not be known here)."""
        ...

    async def part_received(self, part: ev.MatchingRoundOutcomesData) -> None:
        """Count an outcome part of the round (recording the round, requested, if unknown)."""
        ...

    async def get(self, round_id: uuid.UUID) -> Round | None: ...

    async def of_region(self, region: str, *, limit: int, offset: int) -> tuple[int, list[Round]]:
        """How many rounds the region has, and a page of them, newest first (by when asked
        for, else completed)."""
        ...

    async def latest_completed(
        self, region: str, participant: Participant = "student"
    ) -> Round | None:
        """The region's newest completed round of `participant`s that was not a dry run."""
        ...

    async def settled(self, round_id: uuid.UUID, grace_seconds: float) -> bool:
        """Whether the round is applied here in full: completed, every part of its outcomes
        and every proposal of it recorded; or completed more than `grace_seconds` ago."""
        ...


class OutcomeRepository(Protocol):
    """Every student's outcome of each round (`MatchingRoundOutcomes`)."""

    async def add_part(
        self,
        round_id: uuid.UUID,
        region: str,
        outcomes: Sequence[StudentOutcome],
        *,
        dry_run: bool,
    ) -> int:
        """Insert the outcomes (one per student and round: a repeat is left out); how many
        were new."""
        ...

    async def latest_of_student(self, student_id: str) -> OutcomeRecord | None:
        """The student's outcome of the latest round (not a dry run) that covered them."""
        ...

    async def of_round(self, query: ListOutcomes) -> tuple[int, list[OutcomeRecord]]:
        """How many of the round's outcomes match the filters, and a page of them by student
        id."""
        ...

    async def all_of_round(self, round_id: uuid.UUID) -> list[OutcomeRecord]:
        """Every outcome of the round, by student id."""
        ...

    async def unplaced(self, round_id: uuid.UUID) -> list[Unplaced]:
        """The students the round left unplaced who are still registered and have no standing
        match (nor an assignment waiting), by id."""
        ...


class AssignmentRepository(Protocol):
    async def add(self, assignment: Assignment) -> None: ...

    async def get(self, match_id: uuid.UUID) -> Assignment | None: ...


class OpeningRepository(Protocol):
    async def add(self, opening: Opening) -> None:
        """Keep a supplementary round opened (the students invited, until when)."""
        ...

    async def latest_of_student(self, student_id: str) -> Opening | None:
        """The newest opening that invited the student, if any."""
        ...

    async def forget_student(self, student_id: str) -> None:
        """Take an erased student out of every opening."""
        ...


class IdempotencyRepository(Protocol):
    async def reserve(self, key: IdempotencyKey) -> StoredResponse | None:
        """Reserve `key` for this transaction, or return the response given under it first.

        A concurrent request with the same key waits until the first commits (then sees its
        response) or rolls back (then reserves the key itself)."""
        ...

    async def store(
        self, key: IdempotencyKey, status: int, body: Any, student_id: str | None
    ) -> None:
        """Keep the response of the request that reserved `key`; `student_id` names whose
        personal details it may hold."""
        ...

    async def forget_student(self, student_id: str) -> None:
        """Scrub the personal fields (and the request hashes) of the student's responses."""
        ...


class AuditRepository(Protocol):
    async def record(self, events: Sequence[ev.Event]) -> None:
        """One record per event (with the event's actor), in this transaction. The unit of work
        calls it for every event it publishes; handlers never do."""
        ...

    async def of_region(self, region: str, *, limit: int, offset: int) -> list[AuditRecord]:
        """A page of the region's records, newest first."""
        ...


class ActionLinkRepository(Protocol):
    async def use(self, link: ActionLink) -> bool:
        """Record that `link` was acted on; False if it was before (nothing changes then). A
        concurrent use of the same link waits until the first commits or rolls back."""
        ...

    async def used(self, link_id: uuid.UUID) -> bool: ...


class AccountRepository(Protocol):
    """Which records a signed-in account (the token's `sub`) acts for (`adapters/accounts.py`)."""

    async def student_of(self, subject: str) -> str | None: ...

    async def company_of(self, subject: str) -> str | None: ...

    async def students_with_email(self, email: str) -> list[str]:
        """Ids of the registered (not withdrawn) students with this e-mail, any case."""
        ...

    async def link_student(self, subject: str, student_id: str) -> bool:
        """Link the account to the student; False if either is linked already (nothing
        changes then)."""
        ...

    async def invite(self, company_id: str, email: str) -> None:
        """An open invitation of `email` (lower-case) to the company; again: no change."""
        ...

    async def accept_invitation(self, subject: str, email: str) -> str | None:
        """Use an open invitation of `email` (the oldest) and link the account to its company;
        the company id, or None without one."""
        ...

    async def forget_student(self, student_id: str) -> None:
        """Unlink the student's account (erasure)."""
        ...


class ReportRepository(Protocol):
    """What a region's coordinator reads (`domain/reports.py`), counted in the store."""

    async def region_overview(self, region: str) -> RegionOverview:
        """The region's figures and its latest round, in one query."""
        ...

    async def round_breakdown(self, round_id: uuid.UUID) -> RoundBreakdown:
        """The round's new proposals counted by rank, programme and distance band."""
        ...

    async def unplaced(self, region: str, *, limit: int, offset: int) -> list[UnplacedStudent]:
        """A page of the region's registered students without a standing match, by id."""
        ...

    async def region_matches(self, region: str) -> list[MatchRecord]:
        """Every match of the region (the company from the placement where the match has
        none), by student id, oldest first."""
        ...


class ReadinessRepository(Protocol):
    """Supervisor readiness (`domain/supervisors.py`): the supervisors' courses and the regions'
    settings; each change writes its audit record (with `actor`) in the same transaction."""

    async def settings(self, region: str) -> ReadinessSettings:
        """The region's settings (the defaults when it has none)."""
        ...

    async def save_settings(
        self, settings: ReadinessSettings, *, actor: ev.Actor | None
    ) -> ReadinessSettings: ...

    async def supervisors(
        self, keys: Iterable[SupervisorKey]
    ) -> dict[SupervisorKey, SupervisorRecord]:
        """The records of those supervisors among `keys` that have one."""
        ...

    async def record_training(
        self,
        key: SupervisorKey,
        trained_on: date | None,
        *,
        region: str,
        actor: ev.Actor | None,
    ) -> SupervisorRecord:
        """Record (or clear, with None) the day the supervisor completed the course."""
        ...

    async def reminders_due(
        self, starts_from: date, starts_until: date, *, after: uuid.UUID | None, limit: int
    ) -> list[DueReminder]:
        """Confirmed matches (of students not withdrawn) at open placements starting between
        the two days (inclusive), by match id after `after`."""
        ...


class PlacementsUnitOfWork(UnitOfWork, Protocol):
    """One transaction over the placements schema, with the inbox and the outbox, and the audit
    trail: `publish` stamps the unit of work's `actor` on the events and records each in
    `audit` in the same transaction."""

    @property
    def placements(self) -> PlacementRepository: ...

    @property
    def companies(self) -> CompanyRepository: ...

    @property
    def students(self) -> StudentRepository: ...

    @property
    def matches(self) -> MatchRepository: ...

    @property
    def rounds(self) -> RoundRepository: ...

    @property
    def outcomes(self) -> OutcomeRepository: ...

    @property
    def assignments(self) -> AssignmentRepository: ...

    @property
    def openings(self) -> OpeningRepository: ...

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def action_links(self) -> ActionLinkRepository: ...

    @property
    def reports(self) -> ReportRepository: ...

    @property
    def readiness(self) -> ReadinessRepository: ...

    async def published_count(self, region: str, topics: Iterable[str]) -> int:
        """Events of `region` this service has put into its outbox on `topics`, ever
        (this transaction's included)."""
        ...


class JoinsOuterBlock:
    """Mixin for a unit of work (before its base class): entering it while it is entered joins
    the open block, and only the outermost exit commits or rolls back. An exception that leaves
    an inner block must leave the outer one too (it does, unless someone catches it there)."""

    _depth: int = 0

    async def __aenter__(self) -> Self:
        if self._depth == 0:
            await cast(Any, super()).__aenter__()
        self._depth += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            await cast(Any, super()).__aexit__(exc_type, exc, tb)
