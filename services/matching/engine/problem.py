"""From profiles to arrays: eligibility of every (student, preference) pair, vectorised.

The solvers never see a profile. `build_problem` turns students, placements, pinned pairs and
excluded pairs into a `Problem`: index arrays over the candidate edges (every preference that
names a known placement), with the rank and the set of eligibility rules each edge fails.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain, repeat
from typing import Protocol

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


class Point(Protocol):
    """A point in WGS 84 degrees (`GeoPoint` fits)."""

    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...


class Student(Protocol):
    """What the engine reads of a student (`StudentProfile` fits)."""

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


def _flatten(sets: Sequence[Sequence[str]], vocab: dict[str, int]) -> tuple[I64, I64, I64]:
    """(row, position in row, vocabulary index or -1) of every entry of `sets`, in order."""
    lens = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    total = int(lens.sum())
    flat = list(chain.from_iterable(sets))
    ids = np.fromiter(map(vocab.get, flat, repeat(-1)), dtype=np.int64, count=total)
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


def _dates(values: Iterable[date | None], n: int) -> I64:
    return np.fromiter(map(_ordinal, values), dtype=np.int64, count=n)


def _points(values: Iterable[Point | None], n: int) -> tuple[F64, F64, Bools]:
    nan = float("nan")
    xy = np.array(
        [(nan, nan) if pt is None else (pt.lat, pt.lon) for pt in values], dtype=np.float64
    ).reshape(n, 2)
    has = ~np.isnan(xy[:, 0])
    return xy[:, 0].copy(), xy[:, 1].copy(), has


def _no_edges(n_edges: int) -> Bools:
    out: Bools = np.zeros(n_edges, dtype=np.bool_)
    return out


def _lacks_skills(
    students: Sequence[Student], placements: Sequence[Placement], es: I64, ep: I64
) -> Bools:
    """Edges failing rule 2: the placement's required skills are not a subset of the student's.

    Only skills some placement requires matter, so the vocabulary (and the masks) stay small."""
    required = [pl.required_skills for pl in placements]
    skill_vocab = _vocab(required)
    if not skill_vocab:
        return _no_edges(len(es))
    need = _masks(required, skill_vocab)
    have = _masks([st.skills for st in students], skill_vocab)
    missing: Bools = np.any(need[ep] & ~have[es], axis=1)
    return missing


def _refuses_programme(
    students: Sequence[Student], placements: Sequence[Placement], es: I64, ep: I64
) -> Bools:
    """Edges failing rule 3: the placement accepts neither every programme nor the student's."""
    programmes = [pl.programmes for pl in placements]
    prog_vocab = _vocab(programmes)
    if not prog_vocab:
        return _no_edges(len(es))
    accepts = _masks(programmes, prog_vocab)
    open_all = np.fromiter((len(ps) == 0 for ps in programmes), bool, len(placements))
    mine = _masks([(st.programme,) if st.programme else () for st in students], prog_vocab)
    ok = open_all[ep] | np.any(accepts[ep] & mine[es], axis=1)
    refused: Bools = ~ok
    return refused


def _outside_period(
    students: Sequence[Student], placements: Sequence[Placement], es: I64, ep: I64
) -> Bools:
    """Edges failing rule 4: the period does not fit the student's availability (checked only
    when all four dates are given)."""
    n_s, n_p = len(students), len(placements)
    s_from = _dates((st.available_from for st in students), n_s)
    s_to = _dates((st.available_to for st in students), n_s)
    p_start = _dates((pl.starts_on for pl in placements), n_p)
    p_end = _dates((pl.ends_on for pl in placements), n_p)
    a, b, c, d = s_from[es], s_to[es], p_start[ep], p_end[ep]
    known = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    outside: Bools = known & ((a > c) | (d > b))
    return outside


def _too_far(
    students: Sequence[Student], placements: Sequence[Placement], es: I64, ep: I64
) -> Bools:
    """Edges failing rule 5: the site is beyond the student's travel distance (checked only
    when the distance, the home and the site are given)."""
    n_s, n_p = len(students), len(placements)
    travel = np.fromiter(
        (st.max_travel_km if st.max_travel_km is not None else -1.0 for st in students),
        dtype=np.float64,
        count=n_s,
    )
    h_lat, h_lon, h_has = _points((st.home for st in students), n_s)
    s_lat, s_lon, s_has = _points((pl.site for pl in placements), n_p)
    check = (travel[es] >= 0) & h_has[es] & s_has[ep]
    far = _no_edges(len(es))
    if np.any(check):
        idx = np.flatnonzero(check)
        dist = haversine_km(h_lat[es[idx]], h_lon[es[idx]], s_lat[ep[idx]], s_lon[ep[idx]])
        far[idx[dist > travel[es[idx]]]] = True
    return far


def _excluded_edges(
    excluded: Collection[tuple[str, str]],
    s_index: dict[str, int],
    p_index: dict[str, int],
    es: I64,
    ep: I64,
) -> Bools:
    """Edges of excluded pairs (declined proposals): they are never matched. Pairs naming
    unknown ids are ignored."""
    n_p = len(p_index)
    keys = [
        s_index[sid] * n_p + p_index[pid]
        for sid, pid in excluded
        if sid in s_index and pid in p_index
    ]
    if not keys:
        return _no_edges(len(es))
    hit: Bools = np.isin(es * n_p + ep, np.asarray(keys, dtype=np.int64))
    return hit


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
    placements: Sequence[Placement], s_index: dict[str, int]
) -> dict[int, dict[int, int]]:
    """Per placement with a ranking: student -> 0-based position among the round's students.

    Positions count only the round's students, so that an absent student (position
    len(order), `stable.placement_order_key`) comes after every listed one even when the
    ranking names students who are not in this round."""
    ranking_pos: dict[int, dict[int, int]] = {}
    for pi, pl in enumerate(placements):
        if pl.ranking is not None:
            order: dict[int, int] = {}
            for sid in pl.ranking:
                si = s_index.get(sid)
                if si is not None:
                    order.setdefault(si, len(order))
            ranking_pos[pi] = order
    return ranking_pos


def build_problem(
    students: Sequence[Student],
    placements: Sequence[Placement],
    pinned: Sequence[Pin] = (),
    excluded: Collection[tuple[str, str]] = (),
) -> Problem:
    """Index the input and compute the eligibility of every candidate edge.

    Raises `MatchingInputError` for duplicate student or placement ids, pins naming an unknown
    student or placement, a student pinned twice, a pin that is also excluded, and pins beyond
    a placement's capacity. Excluded pairs naming unknown ids are ignored.
    """
    s_index = _index([s.student_id for s in students], "student", "student_id")
    p_index = _index([p.placement_id for p in placements], "placement", "placement_id")

    # Candidate edges: every preference naming a known placement, in student-then-rank order.
    prefs = tuple(tuple(st.preferences) for st in students)
    rows, pos, ids = _flatten(prefs, p_index)
    known_id = ids >= 0
    unknown = int(len(ids) - np.count_nonzero(known_id))
    es, ep, er = rows[known_id], ids[known_id], pos[known_id] + 1

    # Rule 1 holds for every candidate edge; rules 2 to 5 and the exclusions as RULE_* bits.
    fails = np.zeros(len(es), dtype=np.uint8)
    fails[_lacks_skills(students, placements, es, ep)] |= RULE_SKILLS
    fails[_refuses_programme(students, placements, es, ep)] |= RULE_PROGRAMME
    fails[_outside_period(students, placements, es, ep)] |= RULE_PERIOD
    fails[_too_far(students, placements, es, ep)] |= RULE_DISTANCE
    fails[_excluded_edges(excluded, s_index, p_index, es, ep)] |= RULE_EXCLUDED

    capacity = np.fromiter(
        (pl.capacity for pl in placements), dtype=np.int64, count=len(placements)
    )
    free, pinned_at = _apply_pins(pinned, excluded, s_index, p_index, capacity)

    return Problem(
        student_ids=tuple(s_index),
        placement_ids=tuple(p_index),
        student_index=s_index,
        placement_index=p_index,
        priority=tuple(st.priority for st in students),
        capacity=capacity,
        free=free,
        pinned=pinned_at,
        edge_student=es,
        edge_placement=ep,
        edge_rank=er,
        fails=fails,
        unknown_preferences=unknown,
        preferences=prefs,
        ranking_pos=_ranking_positions(placements, s_index),
    )
