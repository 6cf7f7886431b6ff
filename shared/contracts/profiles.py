"""Placement and student profile models: the offline file format and the `data` of profile events.

These models are the single definition of what a placement and a student profile are. They
depend only on pydantic, so every service, the CLI and the benchmarks can share them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from shared.contracts.vocabulary import Language

MAX_PREFERENCES = 10

Id = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
RegionCode = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Skill = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class _Strict(BaseModel):
    """Base for contract models: unknown fields are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class GeoPoint(_Strict):
    """A point on the earth in WGS 84 degrees."""

    lat: float = Field(ge=-90, le=90, description="Latitude in degrees.", examples=[59.3293])
    lon: float = Field(ge=-180, le=180, description="Longitude in degrees.", examples=[18.0686])


class Supervisor(_Strict):
    """The workplace supervisor (handledare, työpaikkaohjaaja) who receives notices."""

    name: str = Field(
        min_length=1, max_length=200, description="Supervisor's name.", examples=["Anna Berg"]
    )
    email: EmailStr = Field(description="Where notices are sent.", examples=["anna@example.se"])
    language: Language = Field(
        default="sv", description="Language of the notices.", examples=["sv"]
    )


class StudentProfile(_Strict):
    """A student's matching profile. Pseudonymous: no name, e-mail or phone number."""

    student_id: Id = Field(description="Pseudonymous student id.", examples=["s-000123"])
    region: RegionCode = Field(
        description="Region code the student belongs to.", examples=["SE-AB"]
    )
    programme: str | None = Field(
        default=None, max_length=100, description="Vocational programme code.", examples=["EE"]
    )
    skills: tuple[Skill, ...] = Field(
        default=(), description="Skills the student has.", examples=[["welding", "cad"]]
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
        default=None, ge=0, description="Longest acceptable distance to a site.", examples=[40.0]
    )
    priority: int = Field(
        default=0, ge=0, description="Placement priority; higher is placed first.", examples=[0]
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
        return self


class PlacementOffer(_Strict):
    """A company's placement offer."""

    placement_id: Id = Field(description="Placement id.", examples=["p-1"])
    company_id: Id = Field(description="Company id.", examples=["c-volvo-umea"])
    region: RegionCode = Field(description="Region code of the placement.", examples=["SE-AB"])
    capacity: int = Field(ge=0, le=10_000, description="Number of student slots.", examples=[2])
    title: str | None = Field(
        default=None, max_length=200, description="Title.", examples=["Electrician apprentice"]
    )
    required_skills: tuple[Skill, ...] = Field(
        default=(), description="Skills a student must have.", examples=[["welding"]]
    )
    programmes: tuple[str, ...] = Field(
        default=(), description="Accepted programmes; empty accepts all.", examples=[["EE", "IN"]]
    )
    starts_on: date | None = Field(default=None, description="First day.", examples=["2027-01-18"])
    ends_on: date | None = Field(default=None, description="Last day.", examples=["2027-03-12"])
    site: GeoPoint | None = Field(default=None, description="Where the work is done.")
    supervisor: Supervisor | None = Field(default=None, description="Who receives the notices.")
    ranking: tuple[Id, ...] | None = Field(
        default=None,
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
