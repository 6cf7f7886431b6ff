"""From profiles to arrays: eligibility of every (student, preference) pair, vectorised.

The solvers never see a profile. `build_problem` turns students, placements, pinned pairs and
excluded pairs into a `Problem`: index arrays over the candidate edges (every preference that
names a known placement), with the rank and the set of eligibility rules each edge fails.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain, compress, repeat
from operator import attrgetter
from typing import Any, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

EARTH_RADIUS_KM = 6371.0

# Eligibility rules of docs/product.md ("The matching policy"), as bits of `Problem.fails`.
# Rule 1 (the placement is in the student's preferences) holds for every candidate edge.
RULE_SKILLS = 1
RULE_PROGRAMME = 2
RULE_PERIOD = 4
RULE_DISTANCE = 8
RULE_EXCLUDED = 16
RULE_WEEKS = 32  # a teacher's available weeks (`available_weeks`): not a rule of students

# Week numbers: the Monday-based week of a date ordinal (day 1, 0001-01-01, is a Monday), so
# that an ISO week is one number and the weeks a period touches are a range of numbers.
_WEEK_SPAN = 1 << 20  # more week numbers than the calendar has (9999-12-31 is week 521,722)


class Point(Protocol):
    """A point in WGS 84 degrees (`GeoPoint` fits)."""

    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...


class Student(Protocol):
    """What the engine reads of a student (`StudentProfile` fits). A teacher's
    `available_weeks` (ISO weeks, `2027-W03`) is read when the object has it: an object without
    it has no week limit."""

    @property
    def student_id(self) -> str: ...
    @property
    def programme(self) -> str | None: ...
    @property
    def skills(self) -> Sequence[str]: ...
    @property
    def preferences(self) -> Sequence[str]: ...
    @property
    def available_from(self) -> date | None: ...
    @property
    def available_to(self) -> date | None: ...
    @property
    def home(self) -> Point | None: ...
    @property
    def max_travel_km(self) -> float | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def region(self) -> str: ...


class Placement(Protocol):
    """What the engine reads of a placement (`PlacementOffer` fits)."""

    @property
    def placement_id(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def required_skills(self) -> Sequence[str]: ...
    @property
    def programmes(self) -> Sequence[str]: ...
    @property
    def starts_on(self) -> date | None: ...
    @property
    def ends_on(self) -> date | None: ...
    @property
    def site(self) -> Point | None: ...
    @property
    def ranking(self) -> Sequence[str] | None: ...
    @property
    def region(self) -> str: ...


class Pin(Protocol):
    """A pinned (confirmed or accepted) pair (`PinnedPair` fits)."""

    @property
    def student_id(self) -> str: ...
    @property
    def placement_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One problem in the engine's input, with where it was found.

    `kind` is "student", "placement" or "pinned"; `index` is the position in that input
    sequence (the CLI turns it into a file line); `field` is the offending field.
    """

    kind: str
    index: int
    field: str
    message: str


class MatchingInputError(ValueError):
    """The input cannot be matched as given: duplicate ids, or pins that cannot be kept."""

    def __init__(self, problems: Sequence[InputProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.kind} {p.index}: {p.field}: {p.message}" for p in problems))


@dataclass(frozen=True, slots=True)
class Problem:
    """A round as arrays. Edges are the candidate pairs, sorted by student then rank."""

    student_ids: tuple[str, ...]
    placement_ids: tuple[str, ...]
    student_index: dict[str, int]
    placement_index: dict[str, int]
    priority: tuple[int, ...]  # exact priorities (Python ints: the contract does not bound them)
    capacity: I64  # per placement, as offered
    free: I64  # per placement, capacity left after the pinned pairs
    pinned: I64  # per student, the pinned placement or -1
    edge_student: I64
    edge_placement: I64
    edge_rank: I64  # 1-based position in the student's preferences
    fails: U8  # per edge, RULE_* bits; 0 = eligible
    unknown_preferences: int  # preference entries naming no known placement
    preferences: tuple[tuple[str, ...], ...]  # as given, per student
    # placement -> student -> 0-based position among the round's students in its ranking
    ranking_pos: dict[int, dict[int, int]]
    features: Features  # per student and placement, what rules 2 to 5 read
    excluded_keys: I64  # sorted student * n_placements + placement of the excluded pairs

    @property
    def n_students(self) -> int:
        return len(self.student_ids)

    @property
    def n_placements(self) -> int:
        return len(self.placement_ids)

    @property
    def eligible(self) -> Bools:
        out: Bools = self.fails == 0
        return out


def _index(ids: Sequence[str], kind: str, field: str) -> dict[str, int]:
    index = dict(zip(ids, range(len(ids)), strict=True))
    if len(index) == len(ids):
        return index
    first: dict[str, int] = {}
    problems: list[InputProblem] = []
    for i, key in enumerate(ids):
        if key in first:
            problems.append(
                InputProblem(
                    kind, i, field, f"{key!r} appears more than once (first at {first[key]})"
                )
            )
        else:
            first[key] = i
    raise MatchingInputError(problems)


def _compact(ids: list[str]) -> list[str]:
    """The same ids as new `str` objects allocated one after the other: the keys of the
    student and placement indexes, which are looked up many times (with the ids that
    preferences and rankings name, and later by the solvers and the results).

    Why: a lookup reads the key it finds, to compare it with the string looked up. Ids read
    from records lie each among its record's objects, scattered over memory, and at national
    scale each of those reads is a cache miss; compact copies are read from the cache.
    Joining the ids and splitting them again makes the copies in one go (a copy is a plain
    `str`, equal to its id). `ids` itself is returned when it holds a non-string, or an id
    holding the separator (the split would give more pieces than there are ids)."""
    try:
        copies = "\0".join(ids).split("\0")
    except TypeError:  # not all strings: `_index` takes them as they are
        return ids
    return copies if len(copies) == len(ids) else ids


def _column(records: Iterable[object], name: str) -> list[Any]:
    """Attribute `name` of every record, in order. `map(attrgetter(name), ...)` reads it
    without a Python frame per record, which matters at 100,000 records."""
    return list(map(attrgetter(name), records))


def _optional_column(records: Sequence[object], name: str, default: object) -> list[Any]:
    """Attribute `name` of every record, `default` for a record without it: one `_column`
    pass when every record has it (the usual case), else a `getattr` per record."""
    try:
        return _column(records, name)
    except AttributeError:
        return [getattr(record, name, default) for record in records]


_K = TypeVar("_K", bound=Hashable)


class _Codes(dict[_K, int]):
    """Distinct values numbered in order of first appearance, as they are looked up:
    `codes[value]` is the value's number, a new one for a value not seen before."""

    def __missing__(self, key: _K) -> int:
        code = self[key] = len(self)
        return code


def _encode_together(n: int, *columns: tuple[Iterable[Any], _Codes[Any]]) -> list[I64]:
    """Per column of values (one value per record, `n` records), the numbers of its values in
    the column's `_Codes` (numbering the values not seen before).

    The columns are looked up in one pass: `zip` takes the values of one record after the
    other, while the record's objects are in the cache. At national scale the records do
    not fit in the cache, and a pass per column (measured: about 1.5 times slower) would read
    each record's objects from memory again."""
    lookups = [map(codes.__getitem__, values) for values, codes in columns]
    flat = np.fromiter(
        chain.from_iterable(zip(*lookups, strict=True)), dtype=np.int64, count=n * len(columns)
    )
    rows = flat.reshape(n, len(columns))
    return [rows[:, j].copy() for j in range(len(columns))]


def _flatten(sets: Sequence[Sequence[str]], vocab: dict[str, int]) -> tuple[I64, I64, I64]:
    """(row, position in row, vocabulary index or -1) of every entry of `sets`, in order."""
    lens = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    total = int(lens.sum())
    lookup = map(vocab.get, chain.from_iterable(sets), repeat(-1))
    ids = np.fromiter(lookup, dtype=np.int64, count=total)
    rows = np.repeat(np.arange(len(sets), dtype=np.int64), lens)
    starts = np.cumsum(lens) - lens
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts, lens)
    return rows, pos, ids


def _vocab(sets: Iterable[Sequence[str]]) -> dict[str, int]:
    """Index of every distinct entry of `sets`, in order of first appearance."""
    return {key: i for i, key in enumerate(dict.fromkeys(chain.from_iterable(sets)))}


def _masks(sets: Sequence[Sequence[str]], vocab: dict[str, int]) -> npt.NDArray[np.uint64]:
    """Bit masks (one row of 64-bit words per set) of which vocabulary entries each set holds;
    entries not in `vocab` are ignored."""
    rows, _, ids = _flatten(sets, vocab)
    keep = ids >= 0
    r, b = rows[keep], ids[keep]
    masks = np.zeros((len(sets), max((len(vocab) + 63) // 64, 1)), dtype=np.uint64)
    np.bitwise_or.at(masks, (r, b >> 6), np.left_shift(np.uint64(1), (b & 63).astype(np.uint64)))
    return masks


_PACK_LIMIT = 1 << 62


def _packed(keys: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    """The columns of the 2-D integer `keys` packed into as few int64 words as their ranges
    allow (mixed radix, the first column the most significant): rows compare in the words as
    they do column by column, and equal rows have equal words. A column whose range is too
    wide for a word stays a word of its own, as it is; other dtypes stay column by column."""
    columns = [keys[:, j] for j in range(keys.shape[1])]
    if keys.dtype.kind not in "iu":
        return columns
    words: list[npt.NDArray[Any]] = []
    word: npt.NDArray[Any] | None = None
    capacity = 1
    for col in columns:
        lo, hi = int(col.min()), int(col.max())
        span = hi - lo + 1
        if hi >= _PACK_LIMIT or lo <= -_PACK_LIMIT:  # too wide to shift safely
            if word is not None:
                words.append(word)
                word, capacity = None, 1
            words.append(col)
            continue
        digit = col.astype(np.int64) - lo
        if word is not None and capacity * span < _PACK_LIMIT:
            word, capacity = word * span + digit, capacity * span
        else:
            if word is not None:
                words.append(word)
            word, capacity = digit, span
    if word is not None:
        words.append(word)
    return words


def factor_rows(keys: npt.NDArray[Any]) -> tuple[I64, I64]:
    """(the first row of each distinct row of the 2-D `keys`, and per row the number of its
    distinct row): a factorisation, for sharing one model among equal keys. Distinct rows
    are numbered in their lexicographic order (`np.lexsort` of the columns, the first the
    most significant), sorted on the columns packed into few words (`_packed`)."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    words = _packed(keys)
    order = np.argsort(words[0], kind="stable") if len(words) == 1 else np.lexsort(words[::-1])
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for word in words:
        ranked = word[order]
        new[1:] |= ranked[1:] != ranked[:-1]
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    first: I64 = order[new].astype(np.int64)
    return first, inverse


def haversine_km(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    """Great-circle distance in km on a sphere of radius 6371.0 km (inputs in degrees)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    out: F64 = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out


def _ordinal(d: date | None) -> int:
    return -1 if d is None else d.toordinal()


def _ordinals(dates: Iterable[date | None]) -> I64:
    """The date ordinals (-1 for None) of distinct dates (a round has few)."""
    return np.fromiter(map(_ordinal, dates), dtype=np.int64)


_LAT_LON = attrgetter("lat", "lon")


def _points(values: Sequence[Point | None]) -> tuple[F64, F64, Bools]:
    """(latitudes, longitudes, has) of the points: NaN where a point is absent, and `has`
    false where the latitude is NaN (an absent point, or one given a NaN latitude)."""
    given = [pt is not None for pt in values]
    present = values if all(given) else list(compress(values, given))
    xy = np.fromiter(
        chain.from_iterable(map(_LAT_LON, present)), dtype=np.float64, count=2 * len(present)
    )
    if len(present) == len(values):
        lat, lon = xy[0::2].copy(), xy[1::2].copy()
    else:
        at = np.flatnonzero(np.asarray(given, dtype=np.bool_))
        lat = np.full(len(values), np.nan, dtype=np.float64)
        lon = np.full(len(values), np.nan, dtype=np.float64)
        lat[at], lon[at] = xy[0::2], xy[1::2]
    has: Bools = ~np.isnan(lat)
    return lat, lon, has


def _no_edges(n_edges: int) -> Bools:
    out: Bools = np.zeros(n_edges, dtype=np.bool_)
    return out


def week_number(d: date) -> int:
    """The number of the ISO week `d` falls in (weeks begin on Mondays)."""
    return (d.toordinal() - 1) // 7


def week_name(number: int) -> str:
    """The ISO week of a week number, `2027-W03`."""
    year, week, _ = date.fromordinal(number * 7 + 1).isocalendar()
    return f"{year:04d}-W{week:02d}"


def _week_of_name(name: str) -> int | None:
    try:
        return week_number(date.fromisocalendar(int(name[:4]), int(name[6:]), 1))
    except ValueError:  # not a week of the calendar (W53 of a 52-week year): never touched
        return None


@dataclass(frozen=True, slots=True)
class Weeks:
    """Teachers' available weeks as arrays (`Features.weeks`): per student the code of its set
    of weeks (-1: no week limit), and over all sets the sorted keys code * _WEEK_SPAN + week
    with the last week of the run of consecutive weeks each key begins or continues."""

    code: I64  # per student
    keys: I64  # sorted
    run_end: I64  # per key: the last week of its run of consecutive listed weeks
    sets: tuple[tuple[int, ...], ...]  # per code, its sorted week numbers

    def fits(self, es: I64, first: I64, last: I64) -> Bools:
        """Whether every week from `first` to `last` (week numbers; -1: no period) is listed
        by student `es`, for each pair; true without a limit or without a period."""
        code = self.code[es]
        check = (code >= 0) & (first >= 0) & (last >= 0)
        out: Bools = np.ones(len(es), dtype=np.bool_)
        if not np.any(check) or len(self.keys) == 0:
            out[check] = False
            return out
        idx = np.flatnonzero(check)
        key = code[idx] * _WEEK_SPAN + first[idx]
        at = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        out[idx] = (self.keys[at] == key) & (self.run_end[at] >= last[idx])
        return out

    def missing(self, code: int, first: int, last: int) -> tuple[str, ...]:
        """The weeks from `first` to `last` that set `code` does not list, as ISO weeks."""
        listed = set(self.sets[code])
        return tuple(week_name(w) for w in range(first, last + 1) if w not in listed)


def _weeks(students: Sequence[Student]) -> Weeks:
    """`Weeks` of the students: the optional `available_weeks` of a teacher's profile (objects
    without the attribute have no week limit)."""
    given = _optional_column(students, "available_weeks", ())
    code = np.full(len(students), -1, dtype=np.int64)
    sets: dict[tuple[int, ...], int] = {}
    for i in compress(range(len(given)), given):  # the students that list weeks
        weeks = tuple(sorted({w for w in map(_week_of_name, given[i]) if w is not None}))
        code[i] = sets.setdefault(weeks, len(sets))
    keys: list[int] = []
    run_end: list[int] = []
    for c, weeks in enumerate(sets):
        ends = [0] * len(weeks)
        end = -1
        for j in range(len(weeks) - 1, -1, -1):
            if end < 0 or weeks[j] + 1 != weeks[j + 1]:
                end = weeks[j]
            ends[j] = end
        keys += [c * _WEEK_SPAN + w for w in weeks]
        run_end += ends
    return Weeks(
        code=code,
        keys=np.asarray(keys, dtype=np.int64),
        run_end=np.asarray(run_end, dtype=np.int64),
        sets=tuple(sets),
    )


def _week_numbers(days: I64) -> I64:
    """Week numbers of date ordinals (-1 stays -1)."""
    out: I64 = np.where(days >= 0, (days - 1) // 7, -1)
    return out


def _flag(fails: U8, where: Bools, rule: int) -> None:
    """Set bit `rule` of `fails` where `where` holds: a multiply over every pair, faster than
    a masked update (which gathers, then scatters, the pairs it changes)."""
    fails |= where.astype(np.uint8) * np.uint8(rule)


@dataclass(frozen=True, slots=True)
class Features:
    """What eligibility (rules 2 to 5, and a teacher's available weeks) reads of every student
    and placement, as arrays, so that any (student, placement) pairs can be checked at once
    (`pair_fails`): the candidate edges of the round, and the vacancies of fill."""

    skill_names: tuple[str, ...]  # the skills some placement requires (the masks' bits)
    need: npt.NDArray[np.uint64]  # per placement, bit mask of required skills
    have: npt.NDArray[np.uint64]  # per student, bit mask of those it has
    programme_names: tuple[str, ...]
    accepts: npt.NDArray[np.uint64]  # per placement, bit mask of programmes accepted
    open_all: Bools  # per placement: accepts every programme
    mine: npt.NDArray[np.uint64]  # per student, bit mask of its programme
    student_programme: tuple[str | None, ...]
    placement_programmes: tuple[tuple[str, ...], ...]
    s_from: I64  # date ordinals, -1 when absent
    s_to: I64
    p_start: I64
    p_end: I64
    travel: F64  # per student, km, -1 when absent
    h_lat: F64
    h_lon: F64
    h_has: Bools
    p_lat: F64
    p_lon: F64
    p_has: Bools
    student_region: I64  # region codes (one numbering for students and placements)
    placement_region: I64
    region_names: tuple[str, ...]  # the region of each code
    weeks: Weeks  # teachers' available weeks
    p_week0: I64  # per placement, the week numbers of its first and last day (-1: no period)
    p_week1: I64

    @property
    def has_weeks(self) -> bool:
        """Some student limits the weeks it is available (only teachers do)."""
        return bool(np.any(self.weeks.code >= 0))

    def weeks_fit(self, es: I64, ep: I64) -> Bools:
        """The available-weeks rule of each pair: a placement with both dates fits a student
        with available weeks only when every week its period touches is among them."""
        return self.weeks.fits(es, self.p_week0[ep], self.p_week1[ep])

    def distance_km(self, es: I64, ep: I64) -> F64:
        """Haversine distance of each pair, NaN where the home or the site is absent."""
        out = np.full(len(es), np.nan, dtype=np.float64)
        both = self.h_has[es] & self.p_has[ep]
        if np.any(both):
            i = np.flatnonzero(both)
            s, p = es[i], ep[i]
            out[i] = haversine_km(self.h_lat[s], self.h_lon[s], self.p_lat[p], self.p_lon[p])
        return out

    def pair_fails(self, es: I64, ep: I64, dist: F64 | None = None) -> U8:
        """RULE_* bits of rules 2 to 5 and of the available weeks for each (student, placement)
        pair; `dist` is `distance_km(es, ep)` when already computed."""
        fails = np.zeros(len(es), dtype=np.uint8)
        if len(self.skill_names):
            lacks = np.any(self.need[ep] & ~self.have[es], axis=1)
            _flag(fails, lacks, RULE_SKILLS)
        if len(self.programme_names):
            ok = self.open_all[ep] | np.any(self.accepts[ep] & self.mine[es], axis=1)
            _flag(fails, ~ok, RULE_PROGRAMME)
        a, b, c, d = self.s_from[es], self.s_to[es], self.p_start[ep], self.p_end[ep]
        outside = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0) & ((a > c) | (d > b))
        _flag(fails, outside, RULE_PERIOD)
        if self.has_weeks:
            _flag(fails, ~self.weeks_fit(es, ep), RULE_WEEKS)
        travel = self.travel[es]
        check = (travel >= 0) & self.h_has[es] & self.p_has[ep]
        if np.any(check):
            idx = np.flatnonzero(check)
            if dist is None:
                s, p = es[idx], ep[idx]
                km = haversine_km(self.h_lat[s], self.h_lon[s], self.p_lat[p], self.p_lon[p])
            else:
                km = dist[idx]
            fails[idx[km > travel[idx]]] |= RULE_DISTANCE
        return fails


def _features(students: Sequence[Student], placements: Sequence[Placement]) -> Features:
    """`Features` of the round. Each attribute is read in one pass over the records, without
    a Python function call per record (`map` and `attrgetter`), and what is derived from a
    value (masks, ordinals) is computed once per distinct value: a round has few distinct
    skill sets, programmes, regions and dates."""
    n_s, n_p = len(students), len(placements)
    student_programme = tuple(map(attrgetter("programme"), students))
    programmes = tuple(map(tuple, map(attrgetter("programmes"), placements)))
    # Skill sets, programmes, regions and dates numbered by value (`_Codes`), in one pass over
    # the students and one over the placements.
    skill_sets: _Codes[tuple[str, ...]] = _Codes()
    programme: _Codes[str | None] = _Codes()
    regions: _Codes[str] = _Codes()
    s_dates: _Codes[date | None] = _Codes()
    skills_code, programme_code, student_region, from_code, to_code = _encode_together(
        n_s,
        (map(tuple, map(attrgetter("skills"), students)), skill_sets),
        (student_programme, programme),
        (map(attrgetter("region"), students), regions),  # one numbering for both
        (map(attrgetter("available_from"), students), s_dates),
        (map(attrgetter("available_to"), students), s_dates),
    )
    required: _Codes[tuple[str, ...]] = _Codes()
    accepted: _Codes[tuple[str, ...]] = _Codes()
    p_dates: _Codes[date | None] = _Codes()
    required_code, accepted_code, placement_region, start_code, end_code = _encode_together(
        n_p,
        (map(tuple, map(attrgetter("required_skills"), placements)), required),
        (programmes, accepted),
        (map(attrgetter("region"), placements), regions),
        (map(attrgetter("starts_on"), placements), p_dates),
        (map(attrgetter("ends_on"), placements), p_dates),
    )
    s_days, p_days = _ordinals(s_dates), _ordinals(p_dates)
    s_from, s_to = s_days[from_code], s_days[to_code]
    p_start, p_end = p_days[start_code], p_days[end_code]
    # A vocabulary over the distinct sets is the one over all the sets: the same entries in
    # the same order of first appearance.
    skill_vocab = _vocab(required)
    prog_vocab = _vocab(accepted)
    open_all = np.fromiter(map(len, accepted), dtype=np.int64, count=len(accepted)) == 0  # per set
    travel = np.array(
        [-1.0 if km is None else km for km in map(attrgetter("max_travel_km"), students)],
        dtype=np.float64,
    )
    h_lat, h_lon, h_has = _points(_column(students, "home"))
    p_lat, p_lon, p_has = _points(_column(placements, "site"))
    dated = (p_start >= 0) & (p_end >= 0)
    return Features(
        skill_names=tuple(skill_vocab),
        need=_masks(tuple(required), skill_vocab)[required_code],
        have=_masks(tuple(skill_sets), skill_vocab)[skills_code],
        programme_names=tuple(prog_vocab),
        accepts=_masks(tuple(accepted), prog_vocab)[accepted_code],
        open_all=open_all[accepted_code],
        mine=_masks([(p,) if p else () for p in programme], prog_vocab)[programme_code],
        student_programme=student_programme,
        placement_programmes=programmes,
        s_from=s_from,
        s_to=s_to,
        p_start=p_start,
        p_end=p_end,
        travel=travel,
        h_lat=h_lat,
        h_lon=h_lon,
        h_has=h_has,
        p_lat=p_lat,
        p_lon=p_lon,
        p_has=p_has,
        student_region=student_region,
        placement_region=placement_region,
        region_names=tuple(regions),
        weeks=_weeks(students),
        p_week0=np.where(dated, _week_numbers(p_start), -1),
        p_week1=np.where(dated, _week_numbers(p_end), -1),
    )


def _excluded_keys(
    excluded: Collection[tuple[str, str]], s_index: dict[str, int], p_index: dict[str, int]
) -> I64:
    """Sorted keys (student * placements + placement) of the excluded pairs (declined
    proposals): they are never matched. Pairs naming unknown ids are ignored."""
    if not excluded:
        return np.zeros(0, dtype=np.int64)
    n_p = len(p_index)
    keys = [
        s_index[sid] * n_p + p_index[pid]
        for sid, pid in excluded
        if sid in s_index and pid in p_index
    ]
    return np.unique(np.asarray(keys, dtype=np.int64))


def _apply_pins(
    pinned: Sequence[Pin],
    excluded: Collection[tuple[str, str]],
    s_index: dict[str, int],
    p_index: dict[str, int],
    capacity: I64,
) -> tuple[I64, I64]:
    """(capacity left per placement, pinned placement per student or -1) after the pins.

    Raises `MatchingInputError` for pins naming an unknown student or placement, a student
    pinned twice, a pin that is also excluded, and pins beyond a placement's capacity."""
    free = capacity.copy()
    pinned_at = np.full(len(s_index), -1, dtype=np.int64)
    problems: list[InputProblem] = []
    excluded_set = set(excluded) if pinned else set()
    for k, pin in enumerate(pinned):
        si = s_index.get(pin.student_id)
        pi = p_index.get(pin.placement_id)
        if si is None:
            problems.append(
                InputProblem("pinned", k, "student_id", f"unknown student {pin.student_id!r}")
            )
        if pi is None:
            problems.append(
                InputProblem("pinned", k, "placement_id", f"unknown placement {pin.placement_id!r}")
            )
        if si is None or pi is None:
            continue
        if pinned_at[si] >= 0:
            problems.append(
                InputProblem(
                    "pinned",
                    k,
                    "student_id",
                    f"student {pin.student_id!r} is pinned more than once",
                )
            )
            continue
        if (pin.student_id, pin.placement_id) in excluded_set:
            problems.append(
                InputProblem("pinned", k, "placement_id", "pair is both pinned and excluded")
            )
            continue
        pinned_at[si] = pi
        free[pi] -= 1
        if free[pi] < 0:
            problems.append(
                InputProblem(
                    "pinned",
                    k,
                    "placement_id",
                    f"placement {pin.placement_id!r} has capacity {capacity[pi]}, pinned beyond it",
                )
            )
    if problems:
        raise MatchingInputError(problems)
    return free, pinned_at


def _ranking_positions(
    rankings: Sequence[Sequence[str] | None], s_index: dict[str, int]
) -> dict[int, dict[int, int]]:
    """Per placement with a ranking (`rankings`, per placement): student -> 0-based position
    among the round's students.

    Positions count only the round's students, so that an absent student (position: the
    number of listed students, `stable.placement_order_key`) comes after every listed one even
    when the ranking names students who are not in this round. A student listed twice keeps
    its first position."""
    ranking_pos: dict[int, dict[int, int]] = {}
    for pi, ranking in enumerate(rankings):
        if ranking is not None:
            listed = dict.fromkeys(map(s_index.get, ranking))  # in order, without repeats
            listed.pop(None, None)  # the students who are not in the round
            known = cast("dict[int, None]", listed)
            ranking_pos[pi] = dict(zip(known, range(len(known)), strict=True))
    return ranking_pos


def _mixed(students: Sequence[Student], placements: Sequence[Placement]) -> None:
    """Refuse a round that mixes students and teachers: every student's `participant` and every
    placement's `kind` (attributes read when present; absent: `student`) must be the round's,
    which is the first student's (without students, the first placement's)."""
    who = _optional_column(students, "participant", "student")
    kinds = _optional_column(placements, "kind", "student")
    if len({*who, *kinds}) <= 1:
        return
    mine = who[0] if who else kinds[0]
    first = "the first student's" if who else "the first placement's"
    names = {"student": "students", "teacher": "teachers"}
    why = f"a round of {names.get(mine, mine)} (by {first}); rounds never mix students and teachers"
    problems = [
        InputProblem("student", i, "participant", f"a {w} in {why}")
        for i, w in enumerate(who)
        if w != mine
    ]
    problems += [
        InputProblem("placement", j, "kind", f"a placement for {names.get(k, k)} in {why}")
        for j, k in enumerate(kinds)
        if k != mine
    ]
    raise MatchingInputError(problems)


def build_problem(
    students: Sequence[Student],
    placements: Sequence[Placement],
    pinned: Sequence[Pin] = (),
    excluded: Collection[tuple[str, str]] = (),
) -> Problem:
    """Index the input and compute the eligibility of every candidate edge.

    Raises `MatchingInputError` for duplicate student or placement ids, students and teachers
    (or placements of both kinds) in one round, pins naming an unknown student or placement, a
    student pinned twice, a pin that is also excluded, and pins beyond a placement's capacity.
    Excluded pairs naming unknown ids are ignored.
    """
    student_ids = _column(students, "student_id")
    placement_ids = _column(placements, "placement_id")
    s_index = _index(_compact(student_ids), "student", "student_id")
    p_index = _index(_compact(placement_ids), "placement", "placement_id")
    _mixed(students, placements)

    # Candidate edges: every preference naming a known placement, in student-then-rank order.
    prefs = tuple(map(tuple, map(attrgetter("preferences"), students)))
    rows, pos, ids = _flatten(prefs, p_index)
    known_id = ids >= 0
    unknown = int(len(ids) - np.count_nonzero(known_id))
    es, ep, er = rows[known_id], ids[known_id], pos[known_id] + 1

    # Rule 1 holds for every candidate edge; rules 2 to 5, a teacher's available weeks and the
    # exclusions as RULE_* bits.
    features = _features(students, placements)
    fails = features.pair_fails(es, ep)
    excluded_keys = _excluded_keys(excluded, s_index, p_index)
    if len(excluded_keys):
        fails[np.isin(es * len(p_index) + ep, excluded_keys)] |= RULE_EXCLUDED

    capacity = np.fromiter(
        map(attrgetter("capacity"), placements), dtype=np.int64, count=len(placements)
    )
    free, pinned_at = _apply_pins(pinned, excluded, s_index, p_index, capacity)

    return Problem(
        student_ids=tuple(student_ids),
        placement_ids=tuple(placement_ids),
        student_index=s_index,
        placement_index=p_index,
        priority=tuple(map(attrgetter("priority"), students)),
        capacity=capacity,
        free=free,
        pinned=pinned_at,
        edge_student=es,
        edge_placement=ep,
        edge_rank=er,
        fails=fails,
        unknown_preferences=unknown,
        preferences=prefs,
        ranking_pos=_ranking_positions(_column(placements, "ranking"), s_index),
        features=features,
        excluded_keys=excluded_keys,
    )
