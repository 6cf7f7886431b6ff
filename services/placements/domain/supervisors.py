"""Supervisor readiness: a placement supervisor's training for the region's supervisor course
(handledarutbildning), the region's settings, and the rule a region may set that no match is
confirmed before the supervisor is ready. Pure.

A supervisor is known by e-mail within a company (`SupervisorKey`: the company id and the
address in lower case), so one person supervising several placements of a company has one
record. Their training is the day they completed the course (`trained_on`; None: not started);
the region whose placement is judged says how many years it stays valid. A placement's
supervisor is *ready* when their training is valid today; a placement that names no supervisor
has nobody ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal

from shared.contracts.internal import NoticeReadiness, TrainingStatus
from shared.contracts.profiles import PlacementOffer, Supervisor

from .errors import Conflict, FieldError

ReadinessStatus = Literal["ready", "not_started", "expired", "no_supervisor"]
"""A placement's readiness: its supervisor's training valid, not recorded, expired, or no
supervisor named."""

DEFAULT_VALIDITY_YEARS: Final = 3
MIN_VALIDITY_YEARS: Final = 1
MAX_VALIDITY_YEARS: Final = 50
MAX_COURSE_URL: Final = 2000
EARLIEST_TRAINING: Final = date(1950, 1, 1)
"""A course completed before this day is taken for a typing error."""


@dataclass(frozen=True)
class SupervisorKey:
    """Who a supervisor is: an e-mail address (any case) within a company."""

    company_id: str
    email: str

    @classmethod
    def of(cls, company_id: str, email: str) -> SupervisorKey:
        return cls(company_id, email.strip().lower())

    @classmethod
    def at(cls, offer: PlacementOffer) -> SupervisorKey | None:
        """The key of an offer's supervisor (None when it names none)."""
        if offer.supervisor is None:
            return None
        return cls.of(offer.company_id, str(offer.supervisor.email))


@dataclass(frozen=True)
class SupervisorRecord:
    """What is recorded of one supervisor: the day they completed the course (None: not
    started, or cleared), when and by whom (the role) it was recorded."""

    key: SupervisorKey
    trained_on: date | None
    recorded_at: datetime | None = None
    recorded_by: str | None = None


@dataclass(frozen=True)
class ReadinessSettings:
    """A region's settings: its supervisor course's address, how many years a course counts,
    and whether a match is confirmed only once the placement's supervisor is ready."""

    region: str
    course_url: str | None = None
    validity_years: int = DEFAULT_VALIDITY_YEARS
    require_readiness: bool = False
    updated_at: datetime | None = None


def expires_on(trained_on: date, years: int) -> date:
    """The first day a course completed on `trained_on` no longer counts (a 29 February moves
    to 28 February in a year without one)."""
    year = trained_on.year + years
    try:
        return trained_on.replace(year=year)
    except ValueError:  # 29 February
        return date(year, 2, 28)


@dataclass(frozen=True)
class Training:
    """A supervisor's training as a region judges it on a day."""

    status: TrainingStatus
    trained_on: date | None = None
    expires_on: date | None = None

    @property
    def valid(self) -> bool:
        return self.status == "valid"


def training_of(trained_on: date | None, settings: ReadinessSettings, today: date) -> Training:
    """`not_started` without a day, `valid` until `expires_on`, then `expired`."""
    if trained_on is None:
        return Training("not_started")
    ends = expires_on(trained_on, settings.validity_years)
    return Training("valid" if today < ends else "expired", trained_on, ends)


@dataclass(frozen=True)
class PlacementReadiness:
    """A placement and its supervisor's readiness."""

    offer: PlacementOffer
    training: Training | None
    """None: the placement names no supervisor."""
    standing: int = 0
    """Standing matches at the placement (proposed, accepted, confirmed)."""

    @property
    def supervisor(self) -> Supervisor | None:
        return self.offer.supervisor

    @property
    def status(self) -> ReadinessStatus:
        if self.training is None:
            return "no_supervisor"
        if self.training.valid:
            return "ready"
        return "expired" if self.training.status == "expired" else "not_started"

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def readiness_of(
    offer: PlacementOffer,
    record: SupervisorRecord | None,
    settings: ReadinessSettings,
    today: date,
    *,
    standing: int = 0,
) -> PlacementReadiness:
    if offer.supervisor is None:
        return PlacementReadiness(offer, None, standing)
    trained_on = record.trained_on if record is not None else None
    return PlacementReadiness(offer, training_of(trained_on, settings, today), standing)


def notice_readiness(
    readiness: PlacementReadiness, settings: ReadinessSettings
) -> NoticeReadiness | None:
    """What a notice to the supervisor says of their readiness (None: no supervisor)."""
    training = readiness.training
    if training is None:
        return None
    return NoticeReadiness(
        status=training.status,
        trained_on=training.trained_on,
        expires_on=training.expires_on,
        validity_years=settings.validity_years,
        course_url=settings.course_url,
        required=settings.require_readiness,
    )


@dataclass(frozen=True)
class SupervisorStatus:
    """A supervisor's record and their training as the region judges it today."""

    region: str
    record: SupervisorRecord
    training: Training


@dataclass(frozen=True)
class NotReadyPage:
    """A page of the region's open placements whose supervisor is not ready, with the region's
    settings and how many open placements it has and how many of them are ready."""

    settings: ReadinessSettings
    items: tuple[PlacementReadiness, ...]
    total: int
    limit: int
    offset: int
    placements: int
    ready: int


# ------------------------------------------------------------------------------ checks


def check_trained_on(
    trained_on: date | None, today: date, field: str = "trained_on"
) -> list[FieldError]:
    """A course is recorded on a day that has come (not in the future), not absurdly long ago."""
    if trained_on is None:
        return []
    if trained_on > today:
        message = (
            f"{trained_on.isoformat()} is in the future: give the day the course was completed "
            f"(today is {today.isoformat()})"
        )
        return [FieldError(field, message)]
    if trained_on < EARLIEST_TRAINING:
        return [FieldError(field, f"{trained_on.isoformat()} is before {EARLIEST_TRAINING}")]
    return []


def check_settings(course_url: str | None, validity_years: int) -> list[FieldError]:
    """The course's address is an http(s) URL; a course counts 1 to 50 years."""
    errors: list[FieldError] = []
    if course_url is not None:
        if len(course_url) > MAX_COURSE_URL:
            errors.append(FieldError("course_url", f"at most {MAX_COURSE_URL} characters"))
        elif not course_url.startswith(("https://", "http://")) or len(course_url) < 10:
            errors.append(FieldError("course_url", "must be an http:// or https:// address"))
        elif any(c.isspace() for c in course_url):
            errors.append(FieldError("course_url", "must not contain spaces"))
    if not MIN_VALIDITY_YEARS <= validity_years <= MAX_VALIDITY_YEARS:
        errors.append(
            FieldError(
                "validity_years",
                f"must be {MIN_VALIDITY_YEARS} to {MAX_VALIDITY_YEARS} years, got {validity_years}",
            )
        )
    return errors


class NotReady(Conflict):
    """A confirmation refused because the region requires a ready supervisor (HTTP 409);
    `reason` is the placement's readiness (`not_started`, `expired`, `no_supervisor`)."""

    title = "Supervisor not ready"

    def __init__(self, detail: str, reason: ReadinessStatus, errors: list[FieldError]) -> None:
        super().__init__(detail, errors)
        self.reason: ReadinessStatus = reason


REFUSALS: Final[dict[ReadinessStatus, str]] = {
    "not_started": "the supervisor {email} has no supervisor training recorded",
    "expired": "the supervisor {email}'s training of {trained_on} expired on {expires_on}",
    "no_supervisor": "the placement names no supervisor",
}


def refusal(
    readiness: PlacementReadiness, settings: ReadinessSettings, match_id: str
) -> NotReady | None:
    """Why the region refuses to confirm a match at this placement now (None: it does not)."""
    if not settings.require_readiness or readiness.ready:
        return None
    status = readiness.status
    training = readiness.training
    supervisor = readiness.supervisor
    why = REFUSALS[status].format(
        email=supervisor.email if supervisor else "",
        trained_on=training.trained_on if training else "",
        expires_on=training.expires_on if training else "",
    )
    detail = (
        f"match {match_id}: region {settings.region} confirms a match only once the placement's "
        f"supervisor has a valid supervisor training, and {why} ({status})"
    )
    field = "supervisor" if status == "no_supervisor" else "supervisor.training"
    return NotReady(detail, status, [FieldError(field, f"{status}: {why}")])
