"""The competence gap of a region in a term: for each skill and programme, the demand in the
region's placements against the supply in its students, and what each round of the term left
over for want of it (docs/placements.md "The competence gap").

Pure: the handler loads the region's placements, its completed rounds (not dry runs) with every
student's outcome, and the profiles of the rounds' students; this module counts and picks the
biggest gaps. The words are the entrypoints' (`entrypoints/reports.gap_text`).

**A term** is a half year: the spring term (1 January to 30 June) and the autumn term (1 July to
31 December), written `2027-spring` and `2027-autumn`; the Swedish `2027-VT` / `2027-HT` and
the Finnish `2027-kevät` / `2027-syksy` name the same terms (`parse_term`). A placement is of
the term it starts in (its last day when it has no first; with neither it is of no term). A
round is of the term most of the placements its outcomes name start in (where students were
placed, and the better choices explained; a tie goes to the earlier term).

**Demand** for a skill: the slots of the term's open placements (for students) that require it;
for a programme: the slots of those that accept only some programmes, that one among them (the
slots open to every programme are counted once, as `open_slots`). **Slots left empty for want
of a skill**: slots a round left free at a placement requiring it when no student the round
left unplaced who met the placement's programme, period and travel limit had the skill, while
some of them lacked it (students were there who could have taken the slot but for the skill).
For a programme: no such student who had the placement's skills, period and travel limit was of
a programme it accepts, while some of another programme were. A rule whose facts are not all
given is not checked, as in the engine.

**Supply**: the students of the term's rounds (still registered) who have the skill, or are of
the programme; **students left unplaced for want of it**: those the round left unplaced with a
choice at a placement of the term that they failed for the skill (`required_skills` missing it)
or for the programme (`programmes` accepting it), from the outcomes' explanations.

The latest round of the term gives the empty slots and the unplaced; the trend gives every
round's, oldest first. No count of students under MIN_GROUP is given: such a count is None
("< 5"); a programme's count is hidden too when it would give away hidden ones through the
total (the smallest shown ones are hidden until the hidden add up to MIN_GROUP or more).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from shared.contracts.profiles import PlacementOffer, StudentProfile

from .model import OutcomeRecord, Placement, Round
from .outcomes import MIN_GROUP
from .reports import EARTH_RADIUS_KM

TOP: Final = 5
"""Gaps said in words, unless asked for more."""
MAX_TOP: Final = 50
MAX_ROUNDS: Final = 12
"""The newest rounds of a term that its trend shows."""
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2100

Dimension = Literal["skill", "programme"]
Count = int | None
"""A count of students: None when under MIN_GROUP (shown as "< 5")."""
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]

SPRING: Final = 1
AUTUMN: Final = 2
SEASONS: Final[dict[str, int]] = {
    "spring": SPRING,
    "vt": SPRING,
    "vår": SPRING,
    "kevät": SPRING,
    "kevat": SPRING,
    "autumn": AUTUMN,
    "fall": AUTUMN,
    "ht": AUTUMN,
    "höst": AUTUMN,
    "syksy": AUTUMN,
}
_YEAR_FIRST = re.compile(r"^(\d{4})[\s_-]*([^\W\d_]+)$")
_SEASON_FIRST = re.compile(r"^([^\W\d_]+)[\s_-]*(\d{4})$")


# ----------------------------------------------------------------------------------- terms


@dataclass(frozen=True, order=True)
class Term:
    """A half year: `half` 1 is the spring term (January to June), 2 the autumn term."""

    year: int
    half: int

    @property
    def code(self) -> str:
        return f"{self.year}-{'spring' if self.half == SPRING else 'autumn'}"

    @property
    def starts_on(self) -> date:
        return date(self.year, 1 if self.half == SPRING else 7, 1)

    @property
    def ends_on(self) -> date:
        return date(self.year, 6, 30) if self.half == SPRING else date(self.year, 12, 31)

    @classmethod
    def of(cls, day: date) -> Term:
        return cls(day.year, SPRING if day.month <= 6 else AUTUMN)

    def __str__(self) -> str:
        return self.code


def parse_term(text: str) -> Term:
    """The term `text` names: `2027-spring`, `2027-autumn`, or the Swedish (`2027-VT`,
    `HT 2027`) or Finnish (`2027-kevät`, `syksy 2027`) names, in any case. ValueError (its
    message for the person who wrote it) otherwise."""
    value = text.strip().lower()
    found = _YEAR_FIRST.match(value)
    if found is not None:
        year, season = found.group(1), found.group(2)
    else:
        found = _SEASON_FIRST.match(value)
        if found is None:
            raise ValueError(
                "give a term as a year and a half year, like 2027-spring or 2027-autumn"
            )
        season, year = found.group(1), found.group(2)
    half = SEASONS.get(season)
    if half is None:
        raise ValueError(f"{season!r} is not a term: use spring or autumn (VT/HT, kevät/syksy)")
    number = int(year)
    if not FIRST_YEAR <= number <= LAST_YEAR:
        raise ValueError(f"a term's year is {FIRST_YEAR} to {LAST_YEAR}")
    return Term(number, half)


def placement_term(offer: PlacementOffer) -> Term | None:
    """The term a placement starts in (its last day's without a first day; None: no dates)."""
    day = offer.starts_on or offer.ends_on
    return Term.of(day) if day is not None else None


def round_term(records: Iterable[OutcomeRecord], dated: Mapping[str, Term]) -> Term | None:
    """The term most of the placements the outcomes name start in (placed at, or a better
    choice explained); a tie goes to the earlier term; None: they name no dated placement."""
    votes: Counter[Term] = Counter()
    for r in records:
        o = r.outcome
        if o.placement_id is not None and o.placement_id in dated:
            votes[dated[o.placement_id]] += 1
        for note in o.explanation.better_choices:
            if note.placement_id in dated:
                votes[dated[note.placement_id]] += 1
    if not votes:
        return None
    return min(votes, key=lambda t: (-votes[t], t))


def _sort_key(found: Round) -> tuple[float, str]:
    moment = found.completed_at or found.requested_at
    return (moment.timestamp() if moment is not None else 0.0, str(found.round_id))


@dataclass(frozen=True)
class RegionTerms:
    """A region's placements for students (withdrawn ones too) with their terms, and its
    completed rounds (not dry runs) with their outcomes and terms."""

    region: str
    placements: tuple[Placement, ...]
    dated: Mapping[str, Term]
    rounds: tuple[tuple[Round, tuple[OutcomeRecord, ...], Term | None], ...]

    @classmethod
    def of(
        cls,
        region: str,
        placements: Iterable[Placement],
        rounds: Iterable[tuple[Round, Sequence[OutcomeRecord]]],
    ) -> RegionTerms:
        mine = tuple(
            p for p in placements if p.offer.region == region and p.offer.kind == "student"
        )
        dated = {p.placement_id: t for p in mine if (t := placement_term(p.offer)) is not None}
        kept = [
            (r, tuple(records), round_term(records, dated))
            for r, records in rounds
            if r.region == region
            and r.status == "completed"
            and not r.dry_run
            and getattr(r, "participant", "student") == "student"  # teacher rounds apart
        ]
        kept.sort(key=lambda item: _sort_key(item[0]))
        return cls(region, mine, dated, tuple(kept))

    @property
    def terms(self) -> tuple[Term, ...]:
        """The terms of the region's open placements and of its rounds, oldest first."""
        found = {
            self.dated[p.placement_id]
            for p in self.placements
            if not p.withdrawn and p.placement_id in self.dated
        }
        found |= {t for _, _, t in self.rounds if t is not None}
        return tuple(sorted(found))

    @property
    def default(self) -> Term | None:
        """The newest term with a round, else the newest term."""
        with_round = [t for _, _, t in self.rounds if t is not None]
        if with_round:
            return max(with_round)
        return self.terms[-1] if self.terms else None

    def rounds_of(self, term: Term) -> tuple[tuple[Round, tuple[OutcomeRecord, ...]], ...]:
        """The term's rounds, oldest first: the newest MAX_ROUNDS."""
        found = [(r, records) for r, records, t in self.rounds if t == term]
        return tuple(found[-MAX_ROUNDS:])

    def students_of(self, term: Term) -> set[str]:
        return {rec.student_id for _, records in self.rounds_of(term) for rec in records}


# ---------------------------------------------------------------------------------- counts


def shown(n: int) -> Count:
    """A count of students as it may be shown: None under MIN_GROUP."""
    return n if n >= MIN_GROUP else None


def partition(counts: Mapping[str, int], left_out: int = 0) -> dict[str, Count]:
    """Counts of groups that split the students whose total is shown (their programmes), as
    they may be shown: under MIN_GROUP hidden, and then the smallest shown ones hidden too
    until the hidden ones (with `left_out`, the students of no group shown) add up to 0 or
    at least MIN_GROUP, so that the total does not give a small group away."""
    result: dict[str, Count] = {k: shown(n) for k, n in counts.items()}
    hidden = left_out + sum(n for k, n in counts.items() if result[k] is None)
    while 0 < hidden < MIN_GROUP:
        visible = [(n, k) for k, n in counts.items() if result[k] is not None]
        if not visible:
            break
        n, k = min(visible)
        result[k] = None
        hidden += n
    return result


def suppressed_of(**counts: Count) -> tuple[str, ...]:
    """The names of the counts hidden for being under MIN_GROUP."""
    return tuple(name for name, value in counts.items() if value is None)


@dataclass(frozen=True)
class KeyTrend:
    """One skill's or programme's figures after one round of the term."""

    round_id: str
    empty_slots: int
    students: Count
    unplaced_missing: Count

    @property
    def suppressed(self) -> tuple[str, ...]:
        return suppressed_of(students=self.students, unplaced_missing=self.unplaced_missing)


@dataclass(frozen=True)
class KeyGap:
    """A skill's or a programme's demand and supply in the term (the latest round's empty
    slots and unplaced), with every round's figures, oldest first."""

    dimension: Dimension
    key: str
    placements: int
    """Open placements of the term requiring the skill (accepting only programmes, this one
    among them)."""
    slots: int
    empty_slots: int
    """Slots the latest round left empty for want of it."""
    students: Count
    """Students of the term's rounds who have it (are of it)."""
    unplaced_missing: Count
    """Students the latest round left unplaced with a choice of the term failed for want of it."""
    trend: tuple[KeyTrend, ...] = ()
    supply_known: bool = True
    """False: the term has no round yet, so the supply is not known (None, not hidden)."""

    @property
    def suppressed(self) -> tuple[str, ...]:
        if not self.supply_known:
            return ()
        return suppressed_of(students=self.students, unplaced_missing=self.unplaced_missing)

    @property
    def shortfall(self) -> int:
        """Slots beyond the students shown to have it (a hidden count counts as none)."""
        return max(self.slots - (self.students or 0), 0)

    @property
    def is_gap(self) -> bool:
        return self.empty_slots > 0 or self.shortfall > 0


@dataclass(frozen=True)
class RoundGap:
    """One round of the term: its students, and what it left over at the term's placements."""

    round: Round
    students: Count
    unplaced: Count
    free_slots: int
    """Slots of the term's open placements the round left free."""
    empty_for_want: int
    """Of them, those left empty for want of a skill or a programme (each slot once)."""
    unplaced_missing: Count
    """Students left unplaced with a choice of the term failed for want of a skill or a
    programme (each student once)."""

    @property
    def suppressed(self) -> tuple[str, ...]:
        return suppressed_of(
            students=self.students,
            unplaced=self.unplaced,
            unplaced_missing=self.unplaced_missing,
        )


@dataclass(frozen=True)
class GapReport:
    region: str
    term: Term
    terms: tuple[Term, ...]
    """The region's terms (of its open placements and its rounds), oldest first."""
    placements: int
    """Open placements of the term (for students)."""
    slots: int
    open_slots: int
    """Of them, the slots open to every programme."""
    undated_slots: int
    """Slots of the region's open placements with no dates: of no term, left out."""
    students: Count
    """Students of the term's rounds (still registered or not); None: under 5, or no round."""
    rounds: tuple[RoundGap, ...]
    """The term's rounds, oldest first (the newest MAX_ROUNDS)."""
    skills: tuple[KeyGap, ...]
    programmes: tuple[KeyGap, ...]
    gaps: tuple[KeyGap, ...] = field(default=())
    """The biggest gaps, biggest first (`_rank`): most slots left empty for want of it, then
    most students left unplaced for want of it, then most slots beyond the students who have
    it."""

    @property
    def latest(self) -> RoundGap | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def suppressed(self) -> tuple[str, ...]:
        return suppressed_of(students=self.students) if self.rounds else ()


# ---------------------------------------------------------------------------- the counting


def _haversine(lat: Floats, lon: Floats, site_lat: float, site_lon: float) -> Floats:
    """`reports.distance_km` over arrays of homes (degrees) to one site."""
    p1, p2 = np.radians(lat), np.radians(site_lat)
    dphi = p2 - p1
    dlmb = np.radians(site_lon) - np.radians(lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    result: Floats = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return result


class Unplaced:
    """A round's unplaced students as arrays, to check the hard constraints of one placement
    against all of them at once (`outcomes.hard_failures`, rule by rule)."""

    def __init__(self, profiles: Sequence[StudentProfile], skills: Iterable[str]) -> None:
        self.n = len(profiles)
        dated = [p.available_from is not None and p.available_to is not None for p in profiles]
        self.dated: Bools = np.array(dated, dtype=bool)
        self.first = np.array(
            [p.available_from.toordinal() if p.available_from else 0 for p in profiles],
            dtype=np.int64,
        )
        self.last = np.array(
            [p.available_to.toordinal() if p.available_to else 0 for p in profiles],
            dtype=np.int64,
        )
        located = [p.home is not None and p.max_travel_km is not None for p in profiles]
        self.located: Bools = np.array(located, dtype=bool)
        self.lat = np.array([p.home.lat if p.home else 0.0 for p in profiles], dtype=np.float64)
        self.lon = np.array([p.home.lon if p.home else 0.0 for p in profiles], dtype=np.float64)
        self.limit = np.array(
            [p.max_travel_km if p.max_travel_km is not None else 0.0 for p in profiles],
            dtype=np.float64,
        )
        self.programmes = [p.programme for p in profiles]
        sets = [frozenset(p.skills) for p in profiles]
        self.has: dict[str, Bools] = {
            k: np.array([k in s for s in sets], dtype=bool) for k in set(skills)
        }

    def within_reach(self, offer: PlacementOffer) -> Bools:
        """Who passes the placement's period and travel limit (rules 4 and 5)."""
        ok: Bools = np.ones(self.n, dtype=bool)
        if offer.starts_on is not None and offer.ends_on is not None:
            starts, ends = offer.starts_on.toordinal(), offer.ends_on.toordinal()
            ok &= ~(self.dated & ((self.first > starts) | (ends > self.last)))
        if offer.site is not None and self.n:
            km = _haversine(self.lat, self.lon, offer.site.lat, offer.site.lon)
            ok &= ~(self.located & (km > self.limit))
        return ok

    def of_programmes(self, accepted: Sequence[str]) -> Bools:
        """Who passes the placement's programmes (rule 3: empty accepts all)."""
        if not accepted:
            return np.ones(self.n, dtype=bool)
        allowed = set(accepted)
        return np.array([p in allowed for p in self.programmes], dtype=bool)

    def with_skills(self, skills: Iterable[str]) -> Bools:
        """Who has every one of `skills` (rule 2)."""
        ok: Bools = np.ones(self.n, dtype=bool)
        for k in skills:
            ok &= self.has[k]
        return ok


@dataclass(frozen=True)
class Supply:
    """Students, each once, exactly: how many, by skill, by programme, and without one."""

    students: int = 0
    having_skill: Mapping[str, int] = field(default_factory=dict)
    of_programme: Mapping[str, int] = field(default_factory=dict)
    without_programme: int = 0


def supply(records: Iterable[OutcomeRecord], profiles: Mapping[str, StudentProfile]) -> Supply:
    """The students of `records` (teachers left out; an erased student counts with the
    programme of their tombstone and no skills)."""
    having: Counter[str] = Counter()
    of_programme: Counter[str] = Counter()
    without = total = 0
    for r in records:
        profile = profiles.get(r.student_id)
        if profile is not None and profile.participant != "student":
            continue
        total += 1
        if profile is not None:
            having.update(set(profile.skills))
        programme = profile.programme if profile is not None else r.programme
        if programme:
            of_programme[programme] += 1
        else:
            without += 1
    return Supply(total, having, of_programme, without)


@dataclass(frozen=True)
class Leftover:
    """The free slots a round left at the term's placements, and those left empty for want of
    a skill or a programme (a slot counts for every skill and programme it wanted; once in
    `empty_for_want`)."""

    free_slots: int = 0
    empty_for_want: int = 0
    empty_skill: Mapping[str, int] = field(default_factory=dict)
    empty_programme: Mapping[str, int] = field(default_factory=dict)


def leftover(
    term_offers: Sequence[PlacementOffer], placed: Mapping[str, int], unplaced: Unplaced
) -> Leftover:
    empty_skill: Counter[str] = Counter()
    empty_programme: Counter[str] = Counter()
    free_slots = empty_any = 0
    for offer in term_offers:
        free = max(offer.capacity - placed.get(offer.placement_id, 0), 0)
        free_slots += free
        if free == 0 or unplaced.n == 0 or not (offer.required_skills or offer.programmes):
            continue
        reach = unplaced.within_reach(offer)
        programme_ok = unplaced.of_programmes(offer.programmes)
        near = reach & programme_ok
        wanted = False
        for skill in dict.fromkeys(offer.required_skills):
            has = unplaced.has[skill]
            if not (near & has).any() and (near & ~has).any():
                empty_skill[skill] += free
                wanted = True
        if offer.programmes:
            able = reach & unplaced.with_skills(offer.required_skills)
            if not (able & programme_ok).any() and (able & ~programme_ok).any():
                for programme in dict.fromkeys(offer.programmes):
                    empty_programme[programme] += free
                wanted = True
        empty_any += free if wanted else 0
    return Leftover(free_slots, empty_any, empty_skill, empty_programme)


@dataclass(frozen=True)
class Missing:
    """Unplaced students with a choice of the term they failed for want of a skill (or a
    programme), by skill (programme); `any`: each student once."""

    skill: Mapping[str, int] = field(default_factory=dict)
    programme: Mapping[str, int] = field(default_factory=dict)
    any: int = 0


def missing(left: Iterable[OutcomeRecord], term_ids: frozenset[str]) -> Missing:
    """From the explanations: the `required_skills` failures (the skills missing) and the
    `programmes` failures (the programmes accepted) at placements of the term."""
    by_skill: Counter[str] = Counter()
    by_programme: Counter[str] = Counter()
    anyone = 0
    for r in left:
        skills: set[str] = set()
        programmes: set[str] = set()
        for note in r.outcome.explanation.better_choices:
            if note.status != "ineligible" or note.placement_id not in term_ids:
                continue
            for rule in note.rules:
                if rule.rule == "required_skills":
                    skills.update(rule.missing)
                elif rule.rule == "programmes":
                    programmes.update(rule.accepted)
        by_skill.update(skills)
        by_programme.update(programmes)
        anyone += bool(skills or programmes)
    return Missing(by_skill, by_programme, anyone)


@dataclass(frozen=True)
class RoundCounts:
    """What one round left over at the term's placements, exactly (before any suppression)."""

    supply: Supply
    unplaced: int
    leftover: Leftover
    missing: Missing


def count_round(
    term_offers: Sequence[PlacementOffer],
    term_ids: frozenset[str],
    records: Sequence[OutcomeRecord],
    profiles: Mapping[str, StudentProfile],
) -> RoundCounts:
    """One round's exact counts: `term_offers` are the term's open placements, `term_ids` the
    ids of all the term's placements (withdrawn ones too: their explained choices count)."""
    placed: Counter[str] = Counter(
        r.outcome.placement_id for r in records if r.outcome.placement_id is not None
    )
    demanded = {k for o in term_offers for k in o.required_skills}
    left = [r for r in records if r.outcome.placement_id is None]
    left_profiles = [
        p
        for r in left
        if (p := profiles.get(r.student_id)) is not None and p.participant == "student"
    ]
    return RoundCounts(
        supply=supply(records, profiles),
        unplaced=len(left),
        leftover=leftover(term_offers, placed, Unplaced(left_profiles, demanded)),
        missing=missing(left, term_ids),
    )


def _rank(g: KeyGap) -> tuple[int, int, int, int, int, str]:
    """Most slots left empty for want of it, then most students left unplaced for want of it
    (a hidden count as none), then most slots beyond the students who have it."""
    return (
        -g.empty_slots,
        -(g.unplaced_missing or 0),
        -g.shortfall,
        -g.slots,
        0 if g.dimension == "skill" else 1,
        g.key,
    )


@dataclass(frozen=True)
class Demand:
    """The term's open placements by skill and by programme: how many, and their slots."""

    skill_slots: Mapping[str, int]
    skill_placements: Mapping[str, int]
    programme_slots: Mapping[str, int]
    programme_placements: Mapping[str, int]


def demand(term_offers: Iterable[PlacementOffer]) -> Demand:
    skill_slots: Counter[str] = Counter()
    skill_placements: Counter[str] = Counter()
    programme_slots: Counter[str] = Counter()
    programme_placements: Counter[str] = Counter()
    for o in term_offers:
        for k in dict.fromkeys(o.required_skills):
            skill_slots[k] += o.capacity
            skill_placements[k] += 1
        for k in dict.fromkeys(o.programmes):
            programme_slots[k] += o.capacity
            programme_placements[k] += 1
    return Demand(skill_slots, skill_placements, programme_slots, programme_placements)


def _newest_records(
    rounds: Sequence[tuple[Round, Sequence[OutcomeRecord]]],
) -> list[OutcomeRecord]:
    """Each student of the rounds once, by their newest record."""
    newest: dict[str, OutcomeRecord] = {}
    for _, records in rounds:
        for r in records:
            newest[r.student_id] = r
    return list(newest.values())


def _programme_trends(
    rounds: Sequence[tuple[Round, Sequence[OutcomeRecord]]],
    counts: Sequence[RoundCounts],
    programme_keys: Iterable[str],
) -> dict[str, list[KeyTrend]]:
    """Every programme's figures after each round, oldest first (its students hidden with the
    round's other programmes', `partition`)."""
    keys = sorted(set(programme_keys))
    series: dict[str, list[KeyTrend]] = {k: [] for k in keys}
    for (r, _), c in zip(rounds, counts, strict=True):
        rid = str(r.round_id)
        programmes = partition(
            {k: c.supply.of_programme.get(k, 0) for k in keys}, c.supply.without_programme
        )
        for k in keys:
            series[k].append(
                KeyTrend(
                    rid,
                    c.leftover.empty_programme.get(k, 0),
                    programmes[k],
                    shown(c.missing.programme.get(k, 0)),
                )
            )
    return series


def report(
    terms: RegionTerms,
    term: Term,
    profiles: Mapping[str, StudentProfile],
    *,
    top: int = TOP,
) -> GapReport:
    """The term's competence gap (`profiles`: of the term's rounds' students still registered)."""
    open_offers = [p.offer for p in terms.placements if not p.withdrawn]
    term_offers = [o for o in open_offers if terms.dated.get(o.placement_id) == term]
    term_ids = frozenset(pid for pid, t in terms.dated.items() if t == term)
    rounds = terms.rounds_of(term)
    counts = [count_round(term_offers, term_ids, records, profiles) for _, records in rounds]
    everyone = supply(_newest_records(rounds), profiles)
    wanted = demand(term_offers)
    skill_keys = set(wanted.skill_slots) | {k for c in counts for k in c.missing.skill}
    programme_keys = set(wanted.programme_slots) | set(everyone.of_programme)
    programme_keys |= {k for c in counts for k in c.missing.programme}
    programme_students = partition(
        {k: everyone.of_programme.get(k, 0) for k in programme_keys},
        everyone.without_programme,
    )

    def skill_trend(key: str) -> tuple[KeyTrend, ...]:
        return tuple(
            KeyTrend(
                str(r.round_id),
                c.leftover.empty_skill.get(key, 0),
                shown(c.supply.having_skill.get(key, 0)),
                shown(c.missing.skill.get(key, 0)),
            )
            for (r, _), c in zip(rounds, counts, strict=True)
        )

    programme_trends = _programme_trends(rounds, counts, programme_keys)

    def key_gap(dimension: Dimension, key: str) -> KeyGap:
        if dimension == "skill":
            series = skill_trend(key)
            students = shown(everyone.having_skill.get(key, 0))
            slots, placements = wanted.skill_slots.get(key, 0), wanted.skill_placements.get(key, 0)
        else:
            series = tuple(programme_trends[key])
            students = programme_students[key]
            slots = wanted.programme_slots.get(key, 0)
            placements = wanted.programme_placements.get(key, 0)
        last = series[-1] if series else None
        return KeyGap(
            dimension=dimension,
            key=key,
            placements=placements,
            slots=slots,
            empty_slots=last.empty_slots if last else 0,
            students=students if rounds else None,
            unplaced_missing=last.unplaced_missing if last else None,
            trend=series,
            supply_known=bool(rounds),
        )

    skills = tuple(key_gap("skill", k) for k in sorted(skill_keys))
    programmes = tuple(key_gap("programme", k) for k in sorted(programme_keys))
    ranked = sorted((g for g in skills + programmes if g.is_gap), key=_rank) if rounds else []
    return GapReport(
        region=terms.region,
        term=term,
        terms=terms.terms,
        placements=len(term_offers),
        slots=sum(o.capacity for o in term_offers),
        open_slots=sum(o.capacity for o in term_offers if not o.programmes),
        undated_slots=sum(o.capacity for o in open_offers if o.placement_id not in terms.dated),
        students=shown(everyone.students) if rounds else None,
        rounds=tuple(
            RoundGap(
                round=r,
                students=shown(c.supply.students),
                unplaced=shown(c.unplaced),
                free_slots=c.leftover.free_slots,
                empty_for_want=c.leftover.empty_for_want,
                unplaced_missing=shown(c.missing.any),
            )
            for (r, _), c in zip(rounds, counts, strict=True)
        ),
        skills=skills,
        programmes=programmes,
        gaps=tuple(ranked[: max(0, min(top, MAX_TOP))]),
    )
