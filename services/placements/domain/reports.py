"""What a region's coordinator reads: the region's figures, a round's new proposals counted by
rank, programme and distance, the students without a standing match, the matches to export.

Plain values. The repositories count in the database (`ports.ReportRepository`); the distance
from a student's home to a placement's site is measured on the same sphere as the matching
engine (`services/matching/engine/problem.py`), here and in SQL alike.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Final

from .model import Round

EARTH_RADIUS_KM: Final = 6371.0
DISTANCE_BOUNDS_KM: Final[tuple[float, ...]] = (5.0, 10.0, 25.0, 50.0, 100.0)
"""Lower bounds of the distance bands after the first: band 0 is under 5 km, band 1 is 5 km up
to 10, ..., band 5 is 100 km or more (PostgreSQL's `width_bucket` over this array)."""
STANDING: Final = ("proposed", "accepted", "confirmed")
"""The states of a match that still stands: a student with one is not unplaced."""


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi = p2 - p1
    dlmb = math.radians(lon2) - math.radians(lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


def distance_band(km: float) -> int:
    """The band of `DISTANCE_BOUNDS_KM` a distance falls in (a bound belongs to the band it
    starts)."""
    return bisect.bisect_right(DISTANCE_BOUNDS_KM, km)


@dataclass(frozen=True)
class RegionOverview:
    """A region's figures now: registered students (not withdrawn), how many ranked at least
    one placement, how many have a standing match; open placements and their slots (students
    and placements for students only: teachers and their periods are docs/teachers.md's); the
    region's latest round (by when it was asked for, else completed; a teacher round too)."""

    region: str
    students: int
    ranked: int
    standing: int
    placements: int
    slots: int
    last_round: Round | None = None

    @property
    def unranked(self) -> int:
        return self.students - self.ranked

    @property
    def without_match(self) -> int:
        return self.students - self.standing


@dataclass(frozen=True)
class RoundBreakdown:
    """The new proposals of one round (matches carrying its id), counted three ways: by the
    rank the student gave the placement (None: not among their choices), by the student's
    programme (None: none recorded), and by the band of the distance from the student's home
    to the placement's site (None: either place unknown, or the student erased). A round's kept
    matches are not proposed again, so they are not counted here."""

    proposals: int = 0
    by_rank: dict[int | None, int] = field(default_factory=dict)
    by_programme: dict[str | None, int] = field(default_factory=dict)
    by_distance: dict[int | None, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundReport:
    """A round with the breakdown of its new proposals (empty while it is requested)."""

    round: Round
    breakdown: RoundBreakdown


@dataclass(frozen=True)
class UnplacedStudent:
    """A registered student of the region without a standing match: the pseudonymous id, the
    programme and how many placements they ranked."""

    student_id: str
    programme: str | None
    choices: int


@dataclass(frozen=True)
class UnplacedQuery:
    """A page of a region's students without a standing match, ordered by id."""

    region: str
    limit: int = 50
    offset: int = 0
