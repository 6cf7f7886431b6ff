"""After a round: the hard constraints of a pair, the free slots of a region and the vacancies
that fit each unplaced student, a round's report, two rounds side by side. Pure: the handlers
load what these need and render nothing (words come from the entrypoints' catalogues).

The hard constraints are rules 2 to 5 of docs/product.md "The matching policy" (skills,
programme, period, travel limit; a rule whose facts are not all given is not checked, as in the
matching engine), a teacher's available weeks (docs/teachers.md) and a pair declined earlier. A
vacancy fits only a participant of its kind (students or teachers). A free slot is the
placement's capacity less its standing matches (proposed, accepted, confirmed) and the
assignments by hand still waiting for matching's answer.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final, Generic, TypeVar

from shared.contracts.outcomes import OutcomeReason, RuleFailure
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.contracts.vocabulary import Language

from .model import MatchRecord, OutcomeRecord, Round
from .reports import distance_km

MIN_GROUP: Final = 5
"""Aggregates never show a group of fewer people (docs/product.md)."""
RANKS: Final = tuple(range(1, 11))
OTHER: Final = "other"
"""The group small groups are merged into."""


def language_of(region: str, chosen: Language | None = None) -> Language:
    """A student's language: their own choice, else their region's (SE-* Swedish, FI-* Finnish),
    else English."""
    if chosen is not None:
        return chosen
    code = region.upper()
    if code.startswith("SE-") or code == "SE":
        return "sv"
    if code.startswith("FI-") or code == "FI":
        return "fi"
    return "en"


# ---------------------------------------------------------------------- hard constraints


def pair_distance(student: StudentProfile, offer: PlacementOffer) -> float | None:
    """Home to site, km (None: either is not known)."""
    if student.home is None or offer.site is None:
        return None
    return distance_km(student.home.lat, student.home.lon, offer.site.lat, offer.site.lon)


def touched_weeks(starts: date, ends: date) -> list[str]:
    """The ISO weeks (`2027-W10`) a period from `starts` to `ends` touches, in order."""
    monday = starts - timedelta(days=starts.weekday())
    weeks = []
    while monday <= ends:
        year, week, _ = monday.isocalendar()
        weeks.append(f"{year:04d}-W{week:02d}")
        monday += timedelta(days=7)
    return weeks


def hard_failures(
    student: StudentProfile, offer: PlacementOffer, *, declined: bool = False
) -> tuple[RuleFailure, ...]:
    """Every hard constraint the pair fails, with its figures (none: eligible)."""
    failed: list[RuleFailure] = []
    have = set(student.skills)
    missing = tuple(s for s in offer.required_skills if s not in have)
    if missing:
        failed.append(RuleFailure(rule="required_skills", missing=missing))
    if offer.programmes and student.programme not in offer.programmes:
        failed.append(
            RuleFailure(rule="programmes", programme=student.programme, accepted=offer.programmes)
        )
    first, last, starts, ends = (
        student.available_from,
        student.available_to,
        offer.starts_on,
        offer.ends_on,
    )
    if (
        first is not None
        and last is not None
        and starts is not None
        and ends is not None
        and (first > starts or ends > last)
    ):
        failed.append(
            RuleFailure(
                rule="period",
                available_from=first,
                available_to=last,
                starts_on=starts,
                ends_on=ends,
            )
        )
    if student.available_weeks and starts is not None and ends is not None:
        listed = set(student.available_weeks)
        missing = tuple(w for w in touched_weeks(starts, ends) if w not in listed)
        if missing:
            failed.append(
                RuleFailure(
                    rule="available_weeks",
                    starts_on=starts,
                    ends_on=ends,
                    unavailable_weeks=missing,
                )
            )
    km = pair_distance(student, offer)
    limit = student.max_travel_km
    if km is not None and limit is not None and km > limit:
        failed.append(
            RuleFailure(rule="max_travel_km", distance_km=round(km, 1), limit_km=float(limit))
        )
    if declined:
        failed.append(RuleFailure(rule="declined"))
    return tuple(failed)


# ------------------------------------------------------------------------------ vacancies


@dataclass(frozen=True)
class Vacancy:
    """An open placement with slots still free."""

    offer: PlacementOffer
    standing: int
    """Standing matches and waiting assignments holding its slots."""

    @property
    def free_slots(self) -> int:
        return max(self.offer.capacity - self.standing, 0)


@dataclass(frozen=True)
class Fitting:
    """A vacancy that fits a student: its distance from their home (None: not known)."""

    vacancy: Vacancy
    distance_km: float | None

    @property
    def placement_id(self) -> str:
        return self.vacancy.offer.placement_id


def vacancies(open_offers: Iterable[PlacementOffer], standing: Mapping[str, int]) -> list[Vacancy]:
    """The open placements with a free slot, by id."""
    found = [Vacancy(o, standing.get(o.placement_id, 0)) for o in open_offers]
    return sorted((v for v in found if v.free_slots > 0), key=lambda v: v.offer.placement_id)


def fitting(
    student: StudentProfile, free: Iterable[Vacancy], declined: Iterable[str] = ()
) -> list[Fitting]:
    """The vacancies of the student's region the student is eligible for (hard constraints, no
    pair declined), nearest first (unknown distances last, then by id)."""
    refused = set(declined)
    found = [
        Fitting(v, pair_distance(student, v.offer))
        for v in free
        if v.offer.region == student.region
        and v.offer.kind == student.participant
        and v.offer.placement_id not in refused
        and not hard_failures(student, v.offer)
    ]
    found.sort(key=lambda f: (f.distance_km is None, f.distance_km or 0.0, f.placement_id))
    return found


@dataclass(frozen=True)
class Unplaced:
    """A student of the region the latest completed round (not a dry run) left unplaced, and
    who still has no standing match."""

    student_id: str
    reason: OutcomeReason | None
    programme: str | None = None


@dataclass(frozen=True)
class UnplacedVacancies:
    student_id: str
    programme: str | None
    reason: OutcomeReason | None
    vacancies: tuple[Fitting, ...]
    """At most the page's `per_student`, nearest first."""
    total: int
    """How many vacancies fit in all."""


@dataclass(frozen=True)
class StudentVacancies:
    """The vacancies of the student's region that fit them now (a page, nearest first), with
    their standing match and latest outcome, if any."""

    student_id: str
    region: str
    vacancies: tuple[Fitting, ...]
    total: int
    limit: int
    offset: int
    match: MatchRecord | None = None
    outcome: OutcomeRecord | None = None
    opening: Opening | None = None
    """The newest supplementary round that invited the student, if any."""


@dataclass(frozen=True)
class StudentOutcomeView:
    """A student's latest outcome (not of a dry run) and their match now, if any."""

    record: OutcomeRecord
    round: Round | None
    match: MatchRecord | None


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of a longer list: `total` items in all."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class Opening:
    """A supplementary round opened (`SupplementaryRoundOpened`)."""

    opening_id: uuid.UUID
    region: str
    round_id: uuid.UUID | None
    student_ids: tuple[str, ...]
    ranks_until: date | None


@dataclass(frozen=True)
class RegionVacancyReport:
    """A region's free slots now, and a page of its unplaced students with what fits them."""

    region: str
    round_id: uuid.UUID | None
    """The latest completed round (not a dry run) the unplaced are of; None: none yet."""
    vacancies: tuple[Vacancy, ...]
    students: tuple[UnplacedVacancies, ...]
    students_total: int
    limit: int
    offset: int

    @property
    def free_slots(self) -> int:
        return sum(v.free_slots for v in self.vacancies)


# -------------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Group:
    """One group of a breakdown (a programme, a priority): None figures are suppressed."""

    key: str
    students: int | None
    placed: int | None
    first_choice: int | None
    filled: int | None

    @property
    def placement_rate(self) -> float | None:
        if self.students is None or self.placed is None or self.students == 0:
            return None
        return self.placed / self.students


@dataclass(frozen=True)
class SmallGroups:
    """What a breakdown hid: `merged` groups under MIN_GROUP people went into `other`
    (`merged_students` people); `suppressed`: even `other` was too small to show."""

    dimension: str
    merged: int
    merged_students: int
    suppressed: bool


@dataclass(frozen=True)
class Distances:
    """Home to site of the placed students whose both places are known."""

    measured: int
    median_km: float | None
    p90_km: float | None
    suppressed: bool = False


@dataclass(frozen=True)
class VacancyFigures:
    placements: int
    slots: int
    taken: int
    free_slots: int
    placements_with_free_slots: int


@dataclass(frozen=True)
class Report:
    """A round's figures (docs/product.md "Reports a coordinator can use")."""

    round: Round
    students: int
    placed: int
    ranks: dict[str, int]
    """"1" ... "10", "unranked" (kept or assigned without a rank), "filled", "unplaced"."""
    unplaced_by_reason: dict[str, int]
    vacancies: VacancyFigures
    by_programme: tuple[Group, ...]
    by_priority: tuple[Group, ...]
    distance: Distances
    blocking_pairs: int
    small_groups: tuple[SmallGroups, ...] = ()
    pinned: int = 0
    moved: int = 0

    @property
    def placement_rate(self) -> float | None:
        return self.placed / self.students if self.students else None


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile with linear interpolation between closest ranks (None: no values)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rank_key(record: OutcomeRecord) -> str:
    o = record.outcome
    if o.placement_id is None:
        return "unplaced"
    if o.filled:
        return "filled"
    return str(o.rank) if o.rank is not None else "unranked"


def _groups(
    records: Sequence[OutcomeRecord], key: Callable[[OutcomeRecord], str], dimension: str
) -> tuple[tuple[Group, ...], SmallGroups | None]:
    by: dict[str, list[OutcomeRecord]] = {}
    for r in records:
        by.setdefault(key(r), []).append(r)
    shown: list[Group] = []
    small: list[OutcomeRecord] = []
    merged = 0
    for name in sorted(by):
        members = by[name]
        if len(members) < MIN_GROUP or name == OTHER:
            small += members
            merged += name != OTHER
        else:
            shown.append(_group(name, members))
    if not small:
        return tuple(shown), None
    suppressed = len(small) < MIN_GROUP
    if suppressed:
        shown.append(Group(OTHER, None, None, None, None))
    else:
        shown.append(_group(OTHER, small))
    note = SmallGroups(dimension, merged, len(small), suppressed) if merged else None
    return tuple(shown), note


def _group(name: str, members: Sequence[OutcomeRecord]) -> Group:
    return Group(
        key=name,
        students=len(members),
        placed=sum(1 for m in members if m.outcome.placement_id is not None),
        first_choice=sum(1 for m in members if m.outcome.rank == 1 and not m.outcome.filled),
        filled=sum(1 for m in members if m.outcome.filled),
    )


def report(
    found: Round,
    records: Sequence[OutcomeRecord],
    profiles: Mapping[str, StudentProfile],
    offers: Mapping[str, PlacementOffer],
    open_ids: Iterable[str],
) -> Report:
    """The figures of a round from its outcomes, the students' profiles (those not erased) and
    the region's placements (`offers`, withdrawn ones too: distances; the open ones, `open_ids`,
    count as slots)."""
    ranks = {str(r): 0 for r in RANKS} | {"unranked": 0, "filled": 0, "unplaced": 0}
    reasons: dict[str, int] = {}
    taken: dict[str, int] = {}
    km: list[float] = []
    for r in records:
        o = r.outcome
        ranks[rank_key(r)] = ranks.get(rank_key(r), 0) + 1
        if o.placement_id is None:
            reason = o.reason or "unknown"
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        taken[o.placement_id] = taken.get(o.placement_id, 0) + 1
        profile, offer = profiles.get(o.student_id), offers.get(o.placement_id)
        if profile is not None and offer is not None:
            d = pair_distance(profile, offer)
            if d is not None:
                km.append(d)
    still_open = set(open_ids)
    open_offers = [
        o for pid, o in sorted(offers.items()) if o.region == found.region and pid in still_open
    ]
    free = {o.placement_id: max(o.capacity - taken.get(o.placement_id, 0), 0) for o in open_offers}
    slots = sum(o.capacity for o in open_offers)
    figures = VacancyFigures(
        placements=len(open_offers),
        slots=slots,
        taken=sum(min(taken.get(o.placement_id, 0), o.capacity) for o in open_offers),
        free_slots=sum(free.values()),
        placements_with_free_slots=sum(1 for n in free.values() if n > 0),
    )

    def programme(r: OutcomeRecord) -> str:
        p = profiles.get(r.student_id)
        value = p.programme if p is not None else r.programme
        return value or "none"

    def priority(r: OutcomeRecord) -> str:
        p = profiles.get(r.student_id)
        return str(p.priority) if p is not None else "unknown"

    by_programme, small_programmes = _groups(records, programme, "programme")
    by_priority, small_priorities = _groups(records, priority, "priority")
    suppressed = 0 < len(km) < MIN_GROUP
    distances = Distances(
        measured=len(km),
        median_km=None if suppressed else quantile(km, 0.5),
        p90_km=None if suppressed else quantile(km, 0.9),
        suppressed=suppressed,
    )
    figures_of = found.figures
    return Report(
        round=found,
        students=len(records),
        placed=sum(1 for r in records if r.outcome.placement_id is not None),
        ranks=ranks,
        unplaced_by_reason=dict(sorted(reasons.items())),
        vacancies=figures,
        by_programme=by_programme,
        by_priority=by_priority,
        distance=distances,
        blocking_pairs=figures_of.blocking_pairs if figures_of else 0,
        small_groups=tuple(n for n in (small_programmes, small_priorities) if n is not None),
        pinned=sum(1 for r in records if r.outcome.pinned),
        moved=sum(1 for r in records if r.moved),
    )


# ------------------------------------------------------------------------ side by side


@dataclass(frozen=True)
class Mover:
    """A student the round would place elsewhere than their standing match (None: nowhere)."""

    student_id: str
    previous_placement_id: str
    placement_id: str | None


@dataclass(frozen=True)
class Side:
    round: Round
    students: int
    placed: int
    ranks: dict[str, int]
    blocking_pairs: int
    movers: int
    movers_listed: tuple[Mover, ...]


@dataclass(frozen=True)
class Difference:
    student_id: str
    a_placement_id: str | None
    a_rank: int | None
    b_placement_id: str | None
    b_rank: int | None


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    different: int
    """Students the two rounds place differently (elsewhere, or only one of them)."""
    differences: tuple[Difference, ...] = field(default=())


def side(found: Round, records: Sequence[OutcomeRecord], limit: int) -> Side:
    ranks = {str(r): 0 for r in RANKS} | {"unranked": 0, "filled": 0, "unplaced": 0}
    movers: list[Mover] = []
    for r in records:
        ranks[rank_key(r)] = ranks.get(rank_key(r), 0) + 1
        previous = r.outcome.previous_placement_id
        if r.moved and previous is not None:
            movers.append(Mover(r.student_id, previous, r.outcome.placement_id))
    movers.sort(key=lambda m: m.student_id)
    return Side(
        round=found,
        students=len(records),
        placed=sum(1 for r in records if r.outcome.placement_id is not None),
        ranks=ranks,
        blocking_pairs=found.figures.blocking_pairs if found.figures else 0,
        movers=len(movers),
        movers_listed=tuple(movers[:limit]),
    )


def compare(
    a: Round,
    a_records: Sequence[OutcomeRecord],
    b: Round,
    b_records: Sequence[OutcomeRecord],
    limit: int,
) -> Comparison:
    """Two rounds side by side; a student in only one of them counts as placed differently
    when that one placed them."""
    in_a = {r.student_id: r.outcome for r in a_records}
    in_b = {r.student_id: r.outcome for r in b_records}
    differences: list[Difference] = []
    for sid in sorted(in_a.keys() | in_b.keys()):
        oa, ob = in_a.get(sid), in_b.get(sid)
        pa = oa.placement_id if oa else None
        pb = ob.placement_id if ob else None
        if pa != pb:
            differences.append(
                Difference(sid, pa, oa.rank if oa else None, pb, ob.rank if ob else None)
            )
    return Comparison(
        a=side(a, a_records, limit),
        b=side(b, b_records, limit),
        different=len(differences),
        differences=tuple(differences[:limit]),
    )
