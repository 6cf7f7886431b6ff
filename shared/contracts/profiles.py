"""Placement and student profile models: the offline file format and the `data` of profile events.

These models are the single definition of what a placement and a student profile are. They
depend only on pydantic, so every service, the CLI and the benchmarks can share them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.contracts.email_address import EmailAddress
from shared.contracts.vocabulary import Language, Participant

MAX_PREFERENCES = 10
MAX_SKILLS = 50
"""Skills of a student or required by a placement, at most."""
MAX_PROGRAMMES = 50
"""Programmes a placement accepts, at most."""
MAX_RANKING = 10_000
"""Students a company's ranking of a placement names, at most."""
MAX_PRIORITY = 1_000_000
MAX_TRAVEL_KM = 20_000.0
"""Half the earth's circumference, near enough: no two points are farther apart."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
RegionCode = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Skill = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
Programme = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
IsoWeek = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$")]
"""An ISO 8601 week, `2027-W03`."""
MAX_AVAILABLE_WEEKS = 106


def iso_week_monday(week: str) -> date | None:
    """The Monday of an ISO week `2027-W03`; None for a week its year does not have (W53)."""
    try:
        return date.fromisocalendar(int(week[:4]), int(week[6:]), 1)
    except ValueError:
        return None


class _Strict(BaseModel):
    """Base for contract models: unknown fields are errors, values are not coerced across types,
    a number is finite (no NaN, no Infinity)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class GeoPoint(_Strict):
    """A point on the earth in WGS 84 degrees."""

    lat: float = Field(ge=-90, le=90, description="Latitude in degrees.", examples=[59.3293])
    lon: float = Field(ge=-180, le=180, description="Longitude in degrees.", examples=[18.0686])


class Supervisor(_Strict):
    """The workplace supervisor (handledare, työpaikkaohjaaja) who receives notices."""

    name: str = Field(
        min_length=1, max_length=200, description="Supervisor's name.", examples=["Anna Berg"]
    )
    email: EmailAddress = Field(description="Where notices are sent.", examples=["anna@example.se"])
    language: Language = Field(
        default="sv", description="Language of the notices.", examples=["sv"]
    )


class StudentProfile(_Strict):
    """A participant's matching profile: a student's or, with `participant: teacher`, a
    teacher's. Pseudonymous: no name, e-mail or phone number."""

    student_id: Id = Field(
        description="Pseudonymous id of the student (or teacher).", examples=["s-000123"]
    )
    participant: Participant = Field(
        default="student",
        description=(
            "`student`, or `teacher` for a teacher seeking a working-life period. A teacher is "
            "matched only in teacher rounds, to placements of kind `teacher`."
        ),
        examples=["student"],
    )
    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="A teacher's subject, in their words (teachers only).",
        examples=["Electrical installation"],
    )
    available_weeks: tuple[IsoWeek, ...] = Field(
        default=(),
        max_length=MAX_AVAILABLE_WEEKS,
        description=(
            "ISO weeks a teacher can spend at a company (teachers only). A period fits only when "
            "every week it touches is listed; empty: no week limit."
        ),
        examples=[["2027-W10", "2027-W11"]],
    )
    region: RegionCode = Field(
        description="Region code the student belongs to.", examples=["SE-AB"]
    )
    programme: str | None = Field(
        default=None,
        max_length=100,
        description="Vocational programme code (a teacher's: the programme they teach in).",
        examples=["EE"],
    )
    skills: tuple[Skill, ...] = Field(
        default=(),
        max_length=MAX_SKILLS,
        description="Skills the student has; a teacher's: the skills they want to update.",
        examples=[["welding", "cad"]],
    )
    preferences: tuple[Id, ...] = Field(
        default=(),
        max_length=MAX_PREFERENCES,
        description="Ranked placement ids, best first; at most 10, no repeats.",
        examples=[["p-1", "p-7"]],
    )
    available_from: date | None = Field(
        default=None, description="First day the student can start.", examples=["2027-01-11"]
    )
    available_to: date | None = Field(
        default=None, description="Last day the student can work.", examples=["2027-03-19"]
    )
    home: GeoPoint | None = Field(default=None, description="Where the student lives.")
    max_travel_km: float | None = Field(
        default=None,
        ge=0,
        le=MAX_TRAVEL_KM,
        description="Longest acceptable distance to a site.",
        examples=[40.0],
    )
    priority: int = Field(
        default=0,
        ge=0,
        le=MAX_PRIORITY,
        description="Placement priority; higher is placed first.",
        examples=[0],
    )

    @model_validator(mode="after")
    def _check(self) -> StudentProfile:
        seen: set[str] = set()
        for pid in self.preferences:
            if pid in seen:
                raise ValueError(f"preferences: {pid!r} is listed more than once")
            seen.add(pid)
        if self.available_from and self.available_to and self.available_from > self.available_to:
            raise ValueError("available_to: is before available_from")
        if self.participant != "teacher":
            if self.subject is not None:
                raise ValueError("subject: only a teacher has a subject")
            if self.available_weeks:
                raise ValueError("available_weeks: only a teacher gives available weeks")
        if len(set(self.available_weeks)) != len(self.available_weeks):
            raise ValueError("available_weeks: a week is listed more than once")
        for week in self.available_weeks:
            if iso_week_monday(week) is None:
                raise ValueError(f"available_weeks: {week} is not a week of the calendar")
        return self


class PlacementOffer(_Strict):
    """A company's placement offer."""

    placement_id: Id = Field(description="Placement id.", examples=["p-1"])
    kind: Participant = Field(
        default="student",
        description=(
            "Who it is for: `student` (a work placement) or `teacher` (a working-life period for "
            "teachers, matched only in teacher rounds). For a teacher period, `required_skills` "
            "are the skills it updates (a teacher fits when they want every one of them) and "
            "`programmes` the programmes whose teachers it accepts (empty: all)."
        ),
        examples=["student"],
    )
    company_id: Id = Field(description="Company id.", examples=["c-volvo-umea"])
    region: RegionCode = Field(description="Region code of the placement.", examples=["SE-AB"])
    capacity: int = Field(ge=0, le=10_000, description="Number of student slots.", examples=[2])
    title: str | None = Field(
        default=None, max_length=200, description="Title.", examples=["Electrician apprentice"]
    )
    required_skills: tuple[Skill, ...] = Field(
        default=(),
        max_length=MAX_SKILLS,
        description="Skills a student must have.",
        examples=[["welding"]],
    )
    programmes: tuple[Programme, ...] = Field(
        default=(),
        max_length=MAX_PROGRAMMES,
        description="Accepted programmes; empty accepts all.",
        examples=[["EE", "IN"]],
    )
    starts_on: date | None = Field(default=None, description="First day.", examples=["2027-01-18"])
    ends_on: date | None = Field(default=None, description="Last day.", examples=["2027-03-12"])
    site: GeoPoint | None = Field(default=None, description="Where the work is done.")
    supervisor: Supervisor | None = Field(default=None, description="Who receives the notices.")
    ranking: tuple[Id, ...] | None = Field(
        default=None,
        max_length=MAX_RANKING,
        description="The company's order of preference over students, best first.",
        examples=[["s-000123", "s-000007"]],
    )

    @model_validator(mode="after")
    def _check(self) -> PlacementOffer:
        if self.starts_on and self.ends_on and self.starts_on > self.ends_on:
            raise ValueError("ends_on: is before starts_on")
        if self.ranking is not None and len(set(self.ranking)) != len(self.ranking):
            raise ValueError("ranking: a student is listed more than once")
        return self


class PinnedPair(_Strict):
    """A confirmed or accepted (student, placement) pair that a round must keep."""

    student_id: Id = Field(description="Student id.", examples=["s-000123"])
    placement_id: Id = Field(description="Placement id.", examples=["p-1"])
