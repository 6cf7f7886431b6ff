"""Request and response bodies of the HTTP API, and how they become commands and come back
from the handlers' values.

They reuse the contract models of `shared/contracts/profiles.py` (the same fields, so nothing is
defined twice) and add what only this service knows: personal details, notification channels,
states. A JSON body is first validated strictly, as the Kafka contract is (`inputs.py`: no
string or boolean for a number, no number for a date, no NaN, no NUL); the models themselves
parse leniently (dates as strings, lists for tuples), as the web pages' form fields need. The
business rules that need the database or name an index (`preferences[3]`) run in the handlers.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from shared.contracts.events import DeclineReason, Policy, RoundFigures, RoundKind
from shared.contracts.outcomes import Explanation, OutcomeReason, RuleFailure
from shared.contracts.profiles import (
    MAX_AVAILABLE_WEEKS,
    MAX_PREFERENCES,
    MAX_PROGRAMMES,
    MAX_RANKING,
    MAX_SKILLS,
    GeoPoint,
    Id,
    IsoWeek,
    PlacementOffer,
    Programme,
    RegionCode,
    Skill,
    StudentProfile,
    Supervisor,
)
from shared.contracts.vocabulary import Channel as ChannelKind
from shared.contracts.vocabulary import Language, Participant, Party

from ..domain import commands, outcomes
from ..domain.model import (
    MAX_SUBMITTED_PREFERENCES,
    Assignment,
    Contact,
    MatchRecord,
    OfferDraft,
    OutcomeRecord,
    PlacementView,
    Round,
    Student,
    StudentDraft,
)
from ..domain.rules import Channel

_LENIENT = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)
"""The models' own parsing: lenient, for the web pages' form fields (all text). A JSON body is
validated strictly before (`inputs.strict_input`), as the Kafka contract is."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=r"^[0-9+()\- ]+$")]


class NotificationSetting(BaseModel):
    """How the supervisor of a placement (or a company's placements) is told."""

    model_config = _LENIENT

    channel: ChannelKind = Field(
        default="email",
        description="E-mail to the supervisor, or a signed webhook.",
        examples=["webhook"],
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        description="Target of the webhook (channel=webhook).",
        examples=["https://hr.example.se/apl-hook"],
    )

    def value(self) -> Channel:
        return Channel(self.channel, self.webhook_url)

    @classmethod
    def of(cls, channel: Channel | None) -> NotificationSetting | None:
        return cls(channel=channel.kind, webhook_url=channel.webhook_url) if channel else None


class PlacementIn(OfferDraft):
    """A new placement offer: the contract's PlacementOffer plus an optional channel."""

    # An OfferDraft: the handler checks dates and ranking, naming each field.

    model_config = _LENIENT

    notification: NotificationSetting | None = Field(
        default=None, description="Overrides the company's default channel for this placement."
    )

    def command(self) -> commands.PostPlacement:
        offer = OfferDraft.model_validate(self.model_dump(exclude={"notification"}))
        return commands.PostPlacement(
            offer, self.notification.value() if self.notification else None
        )


class PlacementPatch(BaseModel):
    """Changes to a placement; fields left out stay as they are. Region and id cannot change."""

    model_config = _LENIENT

    company_id: Id | None = Field(default=None, description="Company id.")
    capacity: int | None = Field(default=None, ge=0, le=10_000, description="Student slots.")
    title: str | None = Field(default=None, max_length=200, description="Title.")
    required_skills: tuple[Skill, ...] | None = Field(
        default=None, max_length=MAX_SKILLS, description="Skills required."
    )
    programmes: tuple[Programme, ...] | None = Field(
        default=None, max_length=MAX_PROGRAMMES, description="Accepted programmes."
    )
    starts_on: date | None = Field(default=None, description="First day.")
    ends_on: date | None = Field(default=None, description="Last day.")
    site: GeoPoint | None = Field(default=None, description="Where the work is done.")
    supervisor: Supervisor | None = Field(default=None, description="Who receives notices.")
    ranking: tuple[Id, ...] | None = Field(
        default=None, max_length=MAX_RANKING, description="Company's student order."
    )
    notification: NotificationSetting | None = Field(default=None, description="Channel.")

    def command(self, placement_id: str) -> commands.PatchPlacement:
        """Fields left out stay; `notification` sent (even null) replaces the own channel."""
        return commands.PatchPlacement(
            placement_id,
            changes=self.model_dump(exclude_unset=True, exclude={"notification"}),
            channel=self.notification.value() if self.notification else None,
            set_channel="notification" in self.model_fields_set,
        )


class PlacementOut(PlacementOffer):
    model_config = _LENIENT

    notification: NotificationSetting | None = Field(default=None, description="Own channel.")
    status: Literal["open", "withdrawn"] = Field(description="Withdrawn placements take no one.")
    confirmed: int = Field(ge=0, description="Matches confirmed at this placement.")

    @classmethod
    def of(cls, view: PlacementView, *, redact: bool = False) -> PlacementOut:
        """The placement; `redact` (a student's view, `domain/policy.py`) leaves out the
        supervisor, the company's ranking of students and its own channel."""
        placement = view.placement
        hidden = {"supervisor": None, "ranking": None} if redact else {}
        channel = None if redact else placement.channel
        return cls.model_validate(
            {
                **placement.offer.model_dump(),
                **hidden,
                "notification": NotificationSetting.of(channel),
                "status": "withdrawn" if placement.withdrawn else "open",
                "confirmed": view.confirmed,
            }
        )


class InvitationIn(BaseModel):
    """An invitation of a company's staff member."""

    model_config = _LENIENT

    email: EmailStr = Field(
        description="Their work e-mail: the first sign-in with it (verified) links the account.",
        examples=["hr@volvo.example.se"],
    )


class InvitationOut(BaseModel):
    company_id: str
    email: str


class StudentIn(StudentDraft):
    """A student's registration: the contract's StudentProfile plus the personal details, which
    stay in this service."""

    # A StudentDraft: the handler checks preferences and dates, naming each field.

    model_config = _LENIENT

    name: Name = Field(
        description="Full name; never leaves this service.", examples=["Sara Nieminen"]
    )
    email: EmailStr = Field(
        description="E-mail; never leaves this service.", examples=["sara@example.fi"]
    )
    phone: Phone | None = Field(
        default=None, description="Phone number.", examples=["+358 40 123 4567"]
    )
    language: Language | None = Field(
        default=None,
        description=(
            "The language of the student's notices; left out: the region's (SE-* Swedish, "
            "FI-* Finnish, else English). Stays in this service."
        ),
        examples=["fi"],
    )

    def command(self) -> commands.RegisterStudent:
        profile = StudentDraft.model_validate(
            self.model_dump(exclude={"name", "email", "phone", "language"}), strict=False
        )
        contact = Contact(self.name, str(self.email), self.phone, self.language)
        return commands.RegisterStudent(profile, contact)


class StudentOut(StudentProfile):
    model_config = _LENIENT

    name: str = Field(description="Full name.")
    email: str = Field(description="E-mail.")
    phone: str | None = Field(default=None, description="Phone number.")
    language: Language = Field(
        default="en", description="The language of the student's notices (chosen or the region's)."
    )

    @classmethod
    def of(cls, student: Student) -> StudentOut:
        contact = student.contact
        return cls.model_validate(
            {
                **student.profile.model_dump(),
                "name": contact.name,
                "email": contact.email,
                "phone": contact.phone,
                "language": outcomes.language_of(student.profile.region, contact.language),
            }
        )


class TeacherIn(BaseModel):
    """A teacher's profile as the teacher keeps it: what they teach, what they want to learn at
    a company, when they can go."""

    model_config = _LENIENT

    subject: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="The subject the teacher teaches, in their words.",
        examples=["Electrical installation"],
    )
    skills: tuple[Skill, ...] = Field(
        default=(),
        max_length=MAX_SKILLS,
        description=(
            "The skills the teacher wants to update: a period fits when they want every skill "
            "it updates (its `required_skills`)."
        ),
        examples=[["battery-hv", "automation"]],
    )
    available_weeks: tuple[IsoWeek, ...] = Field(
        default=(),
        max_length=MAX_AVAILABLE_WEEKS,
        description=(
            "ISO weeks the teacher can spend at a company, `2027-W10`; a period fits only when "
            "every week it touches is listed. Empty: no week limit."
        ),
        examples=[["2027-W10", "2027-W11", "2027-W12"]],
    )

    def command(self, teacher_id: str) -> commands.UpdateTeacher:
        return commands.UpdateTeacher(
            teacher_id, self.subject, tuple(self.skills), tuple(self.available_weeks)
        )


class PreferencesIn(BaseModel):
    model_config = _LENIENT

    preferences: tuple[Id, ...] = Field(
        max_length=MAX_SUBMITTED_PREFERENCES,
        description=f"Ranked placement ids, best first; at most {MAX_PREFERENCES}, no repeats.",
        examples=[["p-1", "p-7"]],
    )

    def command(self, student_id: str) -> commands.SetPreferences:
        return commands.SetPreferences(student_id, self.preferences)


class CompanyChannelIn(NotificationSetting):
    """A company's default channel for all its placements."""

    def command(self, company_id: str) -> commands.SetCompanyChannel:
        return commands.SetCompanyChannel(company_id, self.value())


class MatchOut(BaseModel):
    match_id: uuid.UUID
    round_id: uuid.UUID | None
    region: str
    student_id: str
    placement_id: str
    company_id: str | None
    rank: int | None
    state: Literal["proposed", "accepted", "confirmed", "declined", "cancelled"]
    accepted_by_student: bool
    accepted_by_company: bool
    declined_by: Party | None
    reason: str | None
    updated_at: datetime
    filled: bool = Field(default=False, description="Proposed by fill (not among the choices).")
    override: bool = Field(default=False, description="Assigned by hand by a coordinator.")

    @classmethod
    def of(cls, match: MatchRecord) -> MatchOut:
        return cls(
            match_id=match.match_id,
            round_id=match.round_id,
            region=match.region,
            student_id=match.student_id,
            placement_id=match.placement_id,
            company_id=match.company_id,
            rank=match.rank,
            state=match.state,
            accepted_by_student=match.accepted_by_student,
            accepted_by_company=match.accepted_by_company,
            declined_by=match.declined_by,
            reason=match.reason,
            updated_at=match.updated_at,
            filled=match.filled,
            override=match.override,
        )


class AcceptIn(BaseModel):
    model_config = _LENIENT

    by: Party = Field(description="Who accepts.", examples=["student"])

    def command(self, match_id: uuid.UUID) -> commands.AnswerMatch:
        return commands.AnswerMatch(match_id, self.by, "accept")


class DeclineIn(BaseModel):
    model_config = _LENIENT

    by: Party = Field(description="Who declines.", examples=["student"])
    reason_code: DeclineReason | None = Field(
        default=None,
        description=(
            "Why, as a code: the one the MatchDeclined event carries. Left out: `reason` when it "
            "is a code, `other` when it holds words, else none."
        ),
        examples=["too_far"],
    )
    reason: str | None = Field(
        default=None,
        max_length=1000,
        description=(
            "Why, in words (or a code). Words stay in this service, never on an event, and are "
            "erased with the student."
        ),
        examples=["too far"],
    )

    def command(self, match_id: uuid.UUID) -> commands.AnswerMatch:
        return commands.AnswerMatch(
            match_id, self.by, "decline", self.reason, reason_code=self.reason_code
        )


class RoundIn(BaseModel):
    model_config = _LENIENT

    region: RegionCode = Field(description="Region to match.", examples=["SE-AB"])
    policy: Policy = Field(default="optimal", description="Matching policy.")
    requested_by: str | None = Field(default=None, max_length=200, description="Who asks.")
    kind: RoundKind = Field(
        default="ordinary",
        description=(
            "`supplementary`: every standing match is pinned and only the unplaced students "
            "are placed (refused, naming `kind`, when the region has none)."
        ),
    )
    fill: bool = Field(
        default=False,
        description=(
            "After the round, place students still unplaced at vacancies of their region they "
            "did not rank but are eligible for (docs/product.md, fill option)."
        ),
    )
    dry_run: bool = Field(
        default=False,
        description="Compute and report only: no match proposed or cancelled, no notice.",
    )
    participant: Participant = Field(
        default="student",
        description=(
            "`teacher`: a round of the region's teachers at its working-life periods "
            "(placements of kind `teacher`), never mixed with students'. Refused, naming "
            "`participant`, when the region has no open period or no registered teacher."
        ),
        examples=["student"],
    )

    def command(self) -> commands.RequestRound:
        return commands.RequestRound(
            self.region,
            self.policy,
            self.requested_by,
            kind=self.kind,
            fill=self.fill,
            dry_run=self.dry_run,
            participant=self.participant,
        )


class RoundAccepted(BaseModel):
    round_id: uuid.UUID
    status: Literal["requested"]


class RoundOut(BaseModel):
    round_id: uuid.UUID
    region: str
    policy: str
    status: Literal["requested", "completed", "failed"] = Field(
        description=(
            "requested: waiting for the matching service; completed; failed: completed "
            "without running (`failure` says why; request a new round)."
        )
    )
    failure: str | None = Field(
        default=None,
        description="Why a failed round did not run, e.g. its inputs never all arrived.",
    )
    requested_at: datetime | None
    completed_at: datetime | None
    figures: RoundFigures | None
    unplaced_by_reason: dict[str, int] | None
    proposed: int | None
    cancelled: int | None
    kind: RoundKind = "ordinary"
    fill: bool = False
    dry_run: bool = False
    outcome_parts: int = Field(default=0, description="Outcome parts the round published.")
    parts_received: int = Field(default=0, description="Outcome parts received here.")
    participant: Participant = Field(
        default="student", description="Whom the round places: students or teachers."
    )

    @classmethod
    def of(cls, found: Round) -> RoundOut:
        return cls(
            round_id=found.round_id,
            region=found.region,
            policy=found.policy,
            status=found.status,
            requested_at=found.requested_at,
            completed_at=found.completed_at,
            figures=found.figures,
            unplaced_by_reason=found.unplaced_by_reason,
            proposed=found.proposed,
            cancelled=found.cancelled,
            kind=found.kind,
            fill=found.fill,
            dry_run=found.dry_run,
            outcome_parts=found.outcome_parts,
            parts_received=found.parts_received,
            participant=found.participant,
            failure=found.failure,
        )


class RoundPage(BaseModel):
    """A page of a region's rounds, newest first."""

    items: list[RoundOut]
    total: int = Field(ge=0, description="Rounds of the region in all.")
    limit: int
    offset: int

    @classmethod
    def of(cls, page: outcomes.Page[Round]) -> RoundPage:
        return cls(
            items=[RoundOut.of(r) for r in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )


# -------------------------------------------------------------------------------- outcomes


class OutcomeItem(BaseModel):
    """One student's outcome of a round: codes with parameters (no words)."""

    student_id: str
    programme: str | None = Field(description="The student's programme (now).")
    placement_id: str | None
    rank: int | None
    filled: bool
    pinned: bool
    reason: OutcomeReason | None
    previous_placement_id: str | None
    moved: bool = Field(description="Placed elsewhere (or nowhere) than the standing match.")
    explanation: Explanation

    @classmethod
    def of(cls, record: OutcomeRecord) -> OutcomeItem:
        o = record.outcome
        return cls(
            student_id=o.student_id,
            programme=record.programme,
            placement_id=o.placement_id,
            rank=o.rank,
            filled=o.filled,
            pinned=o.pinned,
            reason=o.reason,
            previous_placement_id=o.previous_placement_id,
            moved=record.moved,
            explanation=o.explanation,
        )


class OutcomePage(BaseModel):
    items: list[OutcomeItem]
    total: int = Field(ge=0, description="Outcomes matching the filters in all.")
    limit: int
    offset: int

    @classmethod
    def of(cls, page: outcomes.Page[OutcomeRecord]) -> OutcomePage:
        return cls(
            items=[OutcomeItem.of(r) for r in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )


class StudentOutcomeOut(OutcomeItem):
    """A student's latest outcome with its explanation in words, and their match now."""

    round_id: uuid.UUID
    region: str
    round: RoundOut | None
    lang: Language = Field(description="The language of `text`.")
    text: list[str] = Field(
        description="The explanation in words: a headline, then one line per better choice."
    )
    match: MatchOut | None = Field(description="The student's standing match now, if any.")

    @classmethod
    def render(
        cls, view: outcomes.StudentOutcomeView, lang: Language, text: list[str]
    ) -> StudentOutcomeOut:
        item = OutcomeItem.of(view.record)
        return cls(
            **item.model_dump(),
            round_id=view.record.round_id,
            region=view.record.region,
            round=RoundOut.of(view.round) if view.round else None,
            lang=lang,
            text=text,
            match=MatchOut.of(view.match) if view.match else None,
        )


# ------------------------------------------------------------------------------ vacancies


class VacancyOut(BaseModel):
    """An open placement with free slots."""

    placement_id: str
    company_id: str
    title: str | None
    capacity: int
    held: int = Field(description="Slots held by standing matches and waiting assignments.")
    free_slots: int
    starts_on: date | None
    ends_on: date | None

    @classmethod
    def of(cls, v: outcomes.Vacancy) -> VacancyOut:
        o = v.offer
        return cls(
            placement_id=o.placement_id,
            company_id=o.company_id,
            title=o.title,
            capacity=o.capacity,
            held=v.standing,
            free_slots=v.free_slots,
            starts_on=o.starts_on,
            ends_on=o.ends_on,
        )


class FittingOut(BaseModel):
    """A vacancy a student is eligible for."""

    placement_id: str
    company_id: str
    title: str | None
    free_slots: int
    distance_km: float | None = Field(description="From the student's home (None: unknown).")
    starts_on: date | None
    ends_on: date | None

    @classmethod
    def of(cls, f: outcomes.Fitting) -> FittingOut:
        o = f.vacancy.offer
        return cls(
            placement_id=o.placement_id,
            company_id=o.company_id,
            title=o.title,
            free_slots=f.vacancy.free_slots,
            distance_km=round(f.distance_km, 1) if f.distance_km is not None else None,
            starts_on=o.starts_on,
            ends_on=o.ends_on,
        )


class UnplacedVacanciesOut(BaseModel):
    student_id: str
    programme: str | None
    reason: OutcomeReason | None
    vacancies: list[FittingOut] = Field(description="Nearest first, at most `per_student`.")
    vacancies_total: int = Field(description="How many vacancies fit the student in all.")


class UnplacedPage(BaseModel):
    items: list[UnplacedVacanciesOut]
    total: int
    limit: int
    offset: int


class RegionVacanciesOut(BaseModel):
    """The region's free slots now, and its unplaced students with what fits each."""

    region: str
    round_id: uuid.UUID | None = Field(
        description="The latest completed round (not a dry run) whose unplaced are listed."
    )
    free_slots: int
    placements: list[VacancyOut] = Field(description="Open placements with free slots, by id.")
    students: UnplacedPage

    @classmethod
    def of(cls, report: outcomes.RegionVacancyReport) -> RegionVacanciesOut:
        return cls(
            region=report.region,
            round_id=report.round_id,
            free_slots=report.free_slots,
            placements=[VacancyOut.of(v) for v in report.vacancies],
            students=UnplacedPage(
                items=[
                    UnplacedVacanciesOut(
                        student_id=u.student_id,
                        programme=u.programme,
                        reason=u.reason,
                        vacancies=[FittingOut.of(f) for f in u.vacancies],
                        vacancies_total=u.total,
                    )
                    for u in report.students
                ],
                total=report.students_total,
                limit=report.limit,
                offset=report.offset,
            ),
        )


class OpeningOut(BaseModel):
    """A supplementary round that invited the student."""

    opening_id: uuid.UUID
    round_id: uuid.UUID | None = Field(description="The round whose unplaced were invited.")
    ranks_until: date | None = Field(description="Last day to rank the vacancies, if set.")


class StudentVacanciesOut(BaseModel):
    """The vacancies of the student's region that fit them now, nearest first."""

    student_id: str
    region: str
    match: MatchOut | None = Field(description="The student's standing match, if any.")
    reason: OutcomeReason | None = Field(
        description="Why the latest round left the student unplaced (None: placed, or none)."
    )
    items: list[FittingOut]
    total: int
    limit: int
    offset: int
    opening: OpeningOut | None = Field(
        default=None, description="The newest supplementary round that invited the student."
    )

    @classmethod
    def of(cls, found: outcomes.StudentVacancies) -> StudentVacanciesOut:
        return cls(
            student_id=found.student_id,
            region=found.region,
            match=MatchOut.of(found.match) if found.match else None,
            reason=found.outcome.outcome.reason if found.outcome else None,
            items=[FittingOut.of(f) for f in found.vacancies],
            total=found.total,
            limit=found.limit,
            offset=found.offset,
            opening=OpeningOut(
                opening_id=found.opening.opening_id,
                round_id=found.opening.round_id,
                ranks_until=found.opening.ranks_until,
            )
            if found.opening
            else None,
        )


class SupplementaryIn(BaseModel):
    model_config = _LENIENT

    ranks_until: date | None = Field(
        default=None, description="Last day to rank the vacancies (optional; not in the past)."
    )
    participant: Participant = Field(
        default="student",
        description=(
            "Whom it invites: the unplaced of the region's latest round of students (default), "
            "or of teachers (`teacher`: working-life periods)."
        ),
    )

    def command(self, region: str) -> commands.OpenSupplementary:
        return commands.OpenSupplementary(region, self.ranks_until, self.participant)


class SupplementaryOut(BaseModel):
    opening_id: uuid.UUID
    region: str
    round_id: uuid.UUID | None = Field(description="The round whose unplaced are invited.")
    students: int = Field(description="How many unplaced students are invited.")
    student_ids: list[str]
    ranks_until: date | None

    @classmethod
    def of(cls, opening: outcomes.Opening) -> SupplementaryOut:
        return cls(
            opening_id=opening.opening_id,
            region=opening.region,
            round_id=opening.round_id,
            students=len(opening.student_ids),
            student_ids=list(opening.student_ids),
            ranks_until=opening.ranks_until,
        )


# ------------------------------------------------------------------------------ overrides


class AssignIn(BaseModel):
    """A coordinator assigns a student to a placement by hand."""

    model_config = _LENIENT

    student_id: Id = Field(description="The student.", examples=["s-000123"])
    placement_id: Id = Field(description="The placement.", examples=["p-1"])
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        max_length=1000, description="Why (required; audited).", examples=["agreed with school"]
    )
    override_hard_constraints: bool = Field(
        default=False,
        description="Assign even though the pair fails hard constraints (they are listed).",
    )

    def command(self) -> commands.AssignMatch:
        return commands.AssignMatch(
            self.student_id, self.placement_id, self.reason, self.override_hard_constraints
        )


class AssignmentOut(BaseModel):
    match_id: uuid.UUID = Field(description="The match matching will propose (or cancel).")
    status: Literal["requested"]
    region: str
    student_id: str
    placement_id: str
    override_hard_constraints: bool
    constraints_overridden: list[RuleFailure] = Field(
        description="The hard constraints the pair fails, with their figures, overridden."
    )

    @classmethod
    def of(cls, assignment: Assignment, failures: tuple[RuleFailure, ...]) -> AssignmentOut:
        return cls(
            match_id=assignment.match_id,
            status="requested",
            region=assignment.region,
            student_id=assignment.student_id,
            placement_id=assignment.placement_id,
            override_hard_constraints=assignment.override_hard_constraints,
            constraints_overridden=list(failures),
        )


# ---------------------------------------------------------------------------- comparing


class MoverOut(BaseModel):
    student_id: str
    previous_placement_id: str
    placement_id: str | None


class SideOut(BaseModel):
    round: RoundOut
    students: int
    placed: int
    ranks: dict[str, int] = Field(description='"1" ... "10", "unranked", "filled", "unplaced".')
    blocking_pairs: int
    movers: int = Field(description="Students placed elsewhere than their standing match.")
    movers_listed: list[MoverOut] = Field(description="The first `limit` of them, by id.")

    @classmethod
    def of(cls, side: outcomes.Side) -> SideOut:
        return cls(
            round=RoundOut.of(side.round),
            students=side.students,
            placed=side.placed,
            ranks=side.ranks,
            blocking_pairs=side.blocking_pairs,
            movers=side.movers,
            movers_listed=[MoverOut(**vars(m)) for m in side.movers_listed],
        )


class DifferenceOut(BaseModel):
    student_id: str
    a_placement_id: str | None
    a_rank: int | None
    b_placement_id: str | None
    b_rank: int | None


class ComparisonOut(BaseModel):
    a: SideOut
    b: SideOut
    different: int = Field(description="Students the two rounds place differently.")
    differences: list[DifferenceOut] = Field(description="The first `limit` of them, by id.")

    @classmethod
    def of(cls, c: outcomes.Comparison) -> ComparisonOut:
        return cls(
            a=SideOut.of(c.a),
            b=SideOut.of(c.b),
            different=c.different,
            differences=[DifferenceOut(**vars(d)) for d in c.differences],
        )


class ProblemField(BaseModel):
    field: str = Field(examples=["preferences[3]"])
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str
    errors: list[ProblemField] = Field(
        default_factory=list, description="The bad fields, the first 50 of them."
    )
    errors_total: int = Field(
        default=0, ge=0, description="How many bad fields there are in all.", examples=[1]
    )


MAX_BATCH = 500


class PlacementBatchIn(BaseModel):
    """Many placements in one request: all are posted, or none (one transaction)."""

    model_config = _LENIENT

    items: list[PlacementIn] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} placements."
    )

    def command(self) -> commands.PostPlacements:
        return commands.PostPlacements(tuple(item.command() for item in self.items))


class StudentBatchIn(BaseModel):
    """Many students in one request: all are registered, or none (one transaction)."""

    model_config = _LENIENT

    items: list[StudentIn] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} students."
    )

    def command(self) -> commands.RegisterStudents:
        return commands.RegisterStudents(tuple(item.command() for item in self.items))


class BatchCreated(BaseModel):
    created: int = Field(ge=0, description="How many were created.", examples=[500])
    ids: list[str] = Field(description="Their ids, in request order.")
