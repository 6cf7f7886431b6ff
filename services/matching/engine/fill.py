"""Fill: the second phase of a round (docs/product.md, "Fill option"), exact.

After the ordinary round, which it never changes, the students still unplaced may be placed
at a vacancy (a slot still free) of a placement of their own region that they did not rank
and are eligible for under rules 2 to 5 (skills, programme, period, travel limit) and a
teacher's available weeks, and that is not an excluded (declined) pair. Objective,
lexicographic: maximise the sum of (1 + priority) over the filled students, then minimise the
sum of their distances in whole km (haversine, rounded half to even; 0 where a coordinate is
absent).

As one integer cost, as in `optimal`: filled at q costs km(s, q), unplaced costs W * k(s),
with k(s) the 1-based rank of s's priority among the distinct priorities (the filled sets are
the independent sets of a transversal matroid, so only the order of the weights matters) and
W = 1 + the sum over students of a bound on their km (`_longest`: travel limit, or distance
to the centre of the block's sites plus their radius), more than level 2 can ever differ by.

Small rounds (up to `SolverOptions.fill_direct_pairs` candidate pairs) enumerate every
eligible pair (`fill_instance`, vectorised over blocks of one region's students of one
programme times the vacancies accepting it) and solve on all of them (`solve_fill` also
runs column generation on such an instance). Larger rounds run `fill_lazy`: column
generation on the successive shortest path solver (`ssp`) from each student's nearest
`SolverOptions.fill_nearest` pairs (k-d trees of the sites), taking the placements' prices
(the solver's potentials, an LP dual), checking that they certify the restricted optimum, and
adding every pair with km + price < the student's current cost, found by ball queries whose
radius the prices bound (`_LazyFill`), until none is left. Then the dual is feasible for
every eligible pair, built or not, with complementary slackness, so the assignment is
optimal for all pairs. Should the prices ever fail to certify the restricted solve, it
solves on every pair instead: exactness never depends on the prices, only speed does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from services.matching.engine.optimal import weight_classes
from services.matching.engine.options import DEFAULT_OPTIONS, SolverOptions
from services.matching.engine.problem import (
    EARTH_RADIUS_KM,
    F64,
    I64,
    Bools,
    Problem,
    factor_rows,
    haversine_km,
)
from services.matching.engine.ssp import min_cost_assignment_with_prices

_BLOCK_CELLS = 1 << 21  # pairs checked at once
_FEW_IN_REACH = 512  # sites within a student's travel limit that `nearest` checks all at once


@dataclass(frozen=True, slots=True)
class FillInstance:
    """Every eligible (unplaced student, vacancy) pair, as a CSR over the listed students.

    `students` are problem indices of the students unplaced after phase 1 (in the order
    enumerated: by region, programme, input order), `placements` the problem indices of the
    placements with a free slot, `slots` their free slots. Student i has the pairs
    `start[i]:start[i + 1]` of `pair_placement` (indices into `placements`) and `pair_km`
    (whole km). `nearest` marks each student's `SolverOptions.fill_nearest` nearest pairs.
    """

    students: I64
    placements: I64
    slots: I64
    start: I64
    pair_placement: I64
    pair_km: I64
    nearest: Bools
    weight_class: I64  # k(s) per listed student
    longest: I64  # per listed student, a bound on the km of any of its eligible pairs

    @property
    def n_pairs(self) -> int:
        return len(self.pair_placement)

    def pair_student(self) -> I64:
        """The listed student (index into `students`) of each pair."""
        out: I64 = np.repeat(np.arange(len(self.students), dtype=np.int64), np.diff(self.start))
        return out

    def unplaced_cost(self) -> I64:
        """W * k(s) per listed student: leaving s unfilled outweighs any distances."""
        out: I64 = (1 + int(self.longest.sum())) * self.weight_class
        return out


def vacancies(problem: Problem, assignment: I64) -> I64:
    """Free slots per placement after `assignment`."""
    used = np.bincount(assignment[assignment >= 0], minlength=problem.n_placements)
    out: I64 = problem.capacity - used
    return out


@dataclass(frozen=True, slots=True)
class _Blocks:
    """Phase 2's students and vacancies, in blocks of one region's students of one programme
    (`groups`, problem indices, by region, programme, input order) and the vacancies of that
    region accepting the programme (`cols`, ascending problem indices)."""

    free: I64
    open_v: I64  # placements with a free slot
    groups: list[I64]
    cols: list[I64]
    blocked: I64  # sorted student * n_placements + placement: ranked or excluded pairs

    @property
    def candidates(self) -> int:
        return sum(len(g) * len(c) for g, c in zip(self.groups, self.cols, strict=True))


def _blocks(problem: Problem, assignment: I64) -> _Blocks:
    pb, f = problem, problem.features
    n_p = pb.n_placements
    free = vacancies(pb, assignment)
    unplaced = np.flatnonzero(assignment < 0)
    open_v = np.flatnonzero(free > 0)
    # Ranked placements (every candidate edge) and excluded pairs are never filled.
    blocked = np.union1d(pb.edge_student * n_p + pb.edge_placement, pb.excluded_keys)
    # A student's programme as a bit number (-1: none, or one no placement names).
    n_words = f.mine.shape[1]
    prog_bit = np.full(pb.n_students, -1, dtype=np.int64)
    for w in range(n_words):
        word = f.mine[:, w]
        has = word != 0
        prog_bit[has] = 64 * w + np.log2(word[has].astype(np.float64)).astype(np.int64)
    p_region = f.placement_region[open_v]
    order = np.lexsort((unplaced, prog_bit[unplaced], f.student_region[unplaced]))
    unplaced = unplaced[order]
    groups: list[I64] = []
    cols_of: list[I64] = []
    keys = f.student_region[unplaced] * (64 * n_words + 1) + (prog_bit[unplaced] + 1)
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for group in np.split(unplaced, bounds):
        if len(group) == 0:
            continue
        s0 = int(group[0])
        cols = open_v[p_region == f.student_region[s0]]
        bit = int(prog_bit[s0])
        if len(f.programme_names):
            ok = f.open_all[cols].copy()
            if bit >= 0:
                ok |= (f.accepts[cols, bit >> 6] >> np.uint64(bit & 63)) & np.uint64(1) != 0
            cols = cols[ok]
        groups.append(group.astype(np.int64))
        cols_of.append(cols.astype(np.int64))
    return _Blocks(free, open_v.astype(np.int64), groups, cols_of, blocked)


def _unit(lat: F64, lon: F64) -> F64:
    """Points on the unit sphere (degrees in)."""
    phi, lmb = np.radians(lat), np.radians(lon)
    out: F64 = np.column_stack((np.cos(phi) * np.cos(lmb), np.cos(phi) * np.sin(lmb), np.sin(phi)))
    return out


def _longest(pb: Problem, group: I64, cols: I64) -> I64:
    """Per student of `group`, a bound on the whole km to any of `cols` it may be filled at:
    its travel limit, or the distance to the centre of the sites plus their radius (the
    triangle inequality on the sphere), plus one for rounding; 0 without coordinates."""
    f = pb.features
    out = np.zeros(len(group), dtype=np.int64)
    sited = cols[f.p_has[cols]]
    if len(sited) == 0:
        return out
    centre = _unit(f.p_lat[sited], f.p_lon[sited]).sum(axis=0)
    norm = float(np.linalg.norm(centre))
    if norm < 1e-9:
        reach = np.full(len(group), np.pi * EARTH_RADIUS_KM)
    else:
        x, y, z = centre / norm
        c_lat = np.full(1, np.degrees(np.arcsin(np.clip(z, -1.0, 1.0))))
        c_lon = np.full(1, np.degrees(np.arctan2(y, x)))
        radius = float(np.max(haversine_km(c_lat, c_lon, f.p_lat[sited], f.p_lon[sited])))
        reach = (
            haversine_km(
                np.full(len(group), c_lat[0]),
                np.full(len(group), c_lon[0]),
                f.h_lat[group],
                f.h_lon[group],
            )
            + radius
        )
    travel = f.travel[group]
    reach = np.where(travel >= 0, np.minimum(reach, travel), reach)
    reach = np.minimum(reach, np.pi * EARTH_RADIUS_KM)
    home = f.h_has[group]
    out[home] = np.ceil(np.nan_to_num(reach[home], nan=0.0)).astype(np.int64) + 1
    return out


def fill_instance(
    problem: Problem,
    assignment: I64,
    *,
    options: SolverOptions = DEFAULT_OPTIONS,
    blocks: _Blocks | None = None,
) -> FillInstance:
    """Every eligible pair of fill after phase 1's `assignment` (see the module); `blocks`:
    its `_blocks`, if the caller has them already."""
    pb = problem
    n_p = pb.n_placements
    blocks = _blocks(pb, assignment) if blocks is None else blocks
    k_nearest = max(1, options.fill_nearest)
    counts: list[I64] = []
    pair_p: list[I64] = []
    pair_km: list[I64] = []
    near: list[Bools] = []
    longest: list[I64] = []
    for group, cols in zip(blocks.groups, blocks.cols, strict=True):
        longest.append(_longest(pb, group, cols))
        if len(cols) == 0:
            counts.append(np.zeros(len(group), dtype=np.int64))
            continue
        _block_pairs(pb, group, cols, blocks.blocked, k_nearest, counts, pair_p, pair_km, near)
    listed = _cat(blocks.groups)
    per = _cat(counts)
    start = np.concatenate(([0], np.cumsum(per))).astype(np.int64)
    local_p = np.full(n_p, -1, dtype=np.int64)
    local_p[blocks.open_v] = np.arange(len(blocks.open_v))
    return FillInstance(
        students=listed,
        placements=blocks.open_v,
        slots=blocks.free[blocks.open_v].astype(np.int64),
        start=start,
        pair_placement=local_p[_cat(pair_p)],
        pair_km=_cat(pair_km),
        nearest=np.concatenate(near) if near else np.zeros(0, dtype=bool),
        weight_class=weight_classes(pb.priority, listed),
        longest=_cat(longest),
    )


def _cat(parts: list[I64]) -> I64:
    out: I64 = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
    return out


def _block_pairs(
    pb: Problem,
    group: I64,
    cols: I64,
    blocked: I64,
    k_nearest: int,
    counts: list[I64],
    pair_p: list[I64],
    pair_km: list[I64],
    near: list[Bools],
) -> None:
    """The eligible pairs of `group` (students of one region and programme, whose rule 3 the
    placements `cols` pass) with `cols`, in blocks of rows; appended per row, in order."""
    f = pb.features
    n_p, nc = pb.n_placements, len(cols)
    col_of = np.full(n_p, -1, dtype=np.int64)
    col_of[cols] = np.arange(nc)
    c_start, c_end = f.p_start[cols], f.p_end[cols]
    c_known = (c_start >= 0) & (c_end >= 0)
    big = np.iinfo(np.int64).max
    col_index = np.arange(nc, dtype=np.int64)
    for lo in range(0, len(group), max(1, _BLOCK_CELLS // nc)):
        rows = group[lo : lo + max(1, _BLOCK_CELLS // nc)]
        nr = len(rows)
        ok = np.ones((nr, nc), dtype=bool)
        for w in range(f.need.shape[1]) if len(f.skill_names) else ():
            ok &= (f.need[cols, w][None, :] & ~f.have[rows, w][:, None]) == 0
        a, b = f.s_from[rows], f.s_to[rows]
        r_known = (a >= 0) & (b >= 0)
        if r_known.any() and c_known.any():
            ok &= ~(
                (r_known[:, None] & c_known[None, :])
                & ((a[:, None] > c_start[None, :]) | (c_end[None, :] > b[:, None]))
            )
        if f.has_weeks:  # a teacher's available weeks
            ok &= f.weeks_fit(np.repeat(rows, nc), np.tile(cols, nr)).reshape(nr, nc)
        # Ranked placements and excluded pairs of these students.
        if len(blocked):
            lo_k = np.searchsorted(blocked, rows[0] * n_p)
            hi_k = np.searchsorted(blocked, (rows[-1] + 1) * n_p)
            keys = blocked[lo_k:hi_k]
            ks, kp = keys // n_p, keys % n_p
            row_of = np.full(int(rows[-1] - rows[0]) + 1, -1, dtype=np.int64)
            row_of[rows - rows[0]] = np.arange(nr)
            r_hit, c_hit = row_of[ks - rows[0]], col_of[kp]
            hit = (r_hit >= 0) & (c_hit >= 0)
            ok[r_hit[hit], c_hit[hit]] = False
        idx = np.flatnonzero(ok)
        r, c = idx // nc, idx % nc
        es, ep = rows[r], cols[c]
        dist = f.distance_km(es, ep)
        travel = f.travel[es]
        far = (travel >= 0) & (dist > travel)  # NaN (no coordinates) is never far
        keep = ~far
        r, c, ep, dist = r[keep], c[keep], ep[keep], dist[keep]
        km = np.rint(np.nan_to_num(dist, nan=0.0)).astype(np.int64)
        # Each row's nearest pairs: smallest (km, column), unique within the row.
        grid = np.full((nr, nc), big, dtype=np.int64)
        grid[r, c] = km * nc + col_index[c]
        if nc > k_nearest:
            kth = np.partition(grid, k_nearest - 1, axis=1)[:, k_nearest - 1]
            is_near = grid[r, c] <= kth[r]
        else:
            is_near = np.ones(len(r), dtype=bool)
        counts.append(np.bincount(r, minlength=nr).astype(np.int64))
        pair_p.append(ep)
        pair_km.append(km)
        near.append(is_near)


@dataclass(frozen=True, slots=True)
class FillStats:
    """What fill did: eligible pairs, the pairs in the last restricted solve, solves run."""

    pairs: int  # -1: not enumerated (the lazy solve of large rounds)
    pairs_used: int
    solves: int
    certified: bool  # False: the prices did not certify and every pair was solved at once
    build_seconds: float = 0.0  # lazy solve: finding the first pairs (the rest is solving)


def solve_fill(
    inst: FillInstance, *, options: SolverOptions = DEFAULT_OPTIONS
) -> tuple[I64, FillStats]:
    """The optimal fill: per listed student the index into `inst.placements`, or -1."""
    ns, nv = len(inst.students), len(inst.placements)
    if ns == 0 or inst.n_pairs == 0:
        return np.full(ns, -1, dtype=np.int64), FillStats(inst.n_pairs, 0, 0, certified=True)
    b = inst.unplaced_cost()
    ps = inst.pair_student()
    use = (
        inst.nearest.copy()
        if inst.n_pairs > options.fill_direct_pairs
        else np.ones(inst.n_pairs, bool)
    )
    solves = 0
    while True:
        at, price, sel = _restricted(inst, ps, use, b, options)
        solves += 1
        if sel is None or len(sel) == inst.n_pairs:
            return at, FillStats(inst.n_pairs, int(np.count_nonzero(use)), solves, certified=True)
        placed = at >= 0
        u = b.copy()
        a_cost = np.zeros(ns, dtype=np.int64)
        # The cost of each placed student's own pair (the cheapest of its used pairs there).
        own = sel[inst.pair_placement[sel] == at[ps[sel]]]
        a_cost[ps[own]] = inst.pair_km[own]
        u[placed] = a_cost[placed] + price[at[placed]]
        count = np.bincount(at[placed], minlength=nv)
        certified = (
            bool(np.all(price >= 0))
            and bool(np.all((price == 0) | (count == inst.slots)))
            and bool(np.all(u <= b))
            and bool(np.all(inst.pair_km[sel] + price[inst.pair_placement[sel]] >= u[ps[sel]]))
        )
        if not certified:
            use[:] = True
            at, _, _ = _restricted(inst, ps, use, b, options)
            return at, FillStats(inst.n_pairs, inst.n_pairs, solves + 1, certified=False)
        violates = (inst.pair_km + price[inst.pair_placement] < u[ps]) & ~use
        if not violates.any():
            return at, FillStats(inst.n_pairs, int(np.count_nonzero(use)), solves, certified=True)
        use |= violates


def _restricted(
    inst: FillInstance, ps: I64, use: Bools, b: I64, options: SolverOptions
) -> tuple[I64, I64, I64 | None]:
    """Solve on the pairs `use` marks: (assignment, prices, the pair indices used)."""
    ns, nv = len(inst.students), len(inst.placements)
    sel = np.flatnonzero(use)
    starts = np.searchsorted(ps[sel], np.arange(ns + 1)).astype(np.int64)
    degree = np.diff(np.searchsorted(ps, np.arange(ns + 1)))
    order = np.lexsort((np.arange(ns), degree, -inst.weight_class))
    got, prices = min_cost_assignment_with_prices(
        ns,
        nv,
        starts,
        inst.pair_placement[sel],
        inst.pair_km[sel],
        b,
        inst.slots,
        order,
        options=options,
    )
    return np.asarray(got, dtype=np.int64), np.asarray(prices, dtype=np.int64), sel


def fill_vacancies(
    problem: Problem, assignment: I64, *, options: SolverOptions = DEFAULT_OPTIONS
) -> tuple[I64, FillInstance, FillStats]:
    """Phase 2: `assignment` with the optimal fill added (phase 1's placements unchanged)."""
    blocks = _blocks(problem, assignment)  # one set of blocks for the choice and the fill
    if blocks.candidates <= options.fill_direct_pairs:
        inst = fill_instance(problem, assignment, options=options, blocks=blocks)
        at, stats = solve_fill(inst, options=options)
    else:
        at, inst, stats = fill_lazy(problem, assignment, options=options, blocks=blocks)
    out = assignment.copy()
    hit = at >= 0
    out[inst.students[hit]] = inst.placements[at[hit]]
    return out, inst, stats


def _pair_km(pb: Problem, es: I64, ep: I64, blocked: I64) -> tuple[Bools, I64]:
    """For pairs of one block (rule 3 passes): whether rules 2, 4, 5 and the weeks pass and
    the pair is neither ranked nor excluded, and its whole km (0 without coordinates)."""
    f = pb.features
    ok = np.ones(len(es), dtype=bool)
    if len(f.skill_names):
        ok &= ~np.any(f.need[ep] & ~f.have[es], axis=1)
    a, b, c, d = f.s_from[es], f.s_to[es], f.p_start[ep], f.p_end[ep]
    ok &= ~((a >= 0) & (b >= 0) & (c >= 0) & (d >= 0) & ((a > c) | (d > b)))
    if f.has_weeks:
        ok &= f.weeks_fit(es, ep)
    if len(blocked):
        keys = es * pb.n_placements + ep
        at = np.minimum(np.searchsorted(blocked, keys), len(blocked) - 1)
        ok &= blocked[at] != keys
    dist = f.distance_km(es, ep)
    travel = f.travel[es]
    ok &= ~((travel >= 0) & (dist > travel))  # NaN (no coordinates) is never far
    km: I64 = np.rint(np.nan_to_num(dist, nan=0.0)).astype(np.int64)
    return ok, km


def _signatures(
    pb: Problem, group: I64, cols: I64, local_p: I64, n_v: int
) -> dict[str, npt.NDArray[Any]]:
    """`_Block`'s signature fields for students `group` and vacancies `cols` (problem
    indices): rules 2 and 4 and the available weeks checked once per distinct (skills, period,
    weeks) pair."""
    f = pb.features
    s_key = np.column_stack(
        (f.have[group].view(np.int64), f.s_from[group], f.s_to[group], f.weeks.code[group])
    )
    c_key = np.column_stack((f.need[cols].view(np.int64), f.p_start[cols], f.p_end[cols]))
    s_first, row_sig = factor_rows(s_key)
    c_first, c_sig = factor_rows(c_key)
    rs, cs = group[s_first], cols[c_first]
    compat = np.ones((len(rs), len(cs)), dtype=bool)
    step = max(1, _BLOCK_CELLS // max(1, len(cs)))
    for lo in range(0, len(rs), step):
        part = rs[lo : lo + step]
        ok = np.ones((len(part), len(cs)), dtype=bool)
        if len(f.skill_names):
            lacks = f.need[cs][None, :, :] & ~f.have[part][:, None, :]
            ok &= ~np.any(lacks, axis=2)
        a, b = f.s_from[part][:, None], f.s_to[part][:, None]
        c, d = f.p_start[cs][None, :], f.p_end[cs][None, :]
        ok &= ~((a >= 0) & (b >= 0) & (c >= 0) & (d >= 0) & ((a > c) | (d > b)))
        if f.has_weeks:  # a teacher's available weeks: the week set is in the signature
            n_c = len(cs)
            fit = f.weeks_fit(np.repeat(part, n_c), np.tile(cs, len(part)))
            ok &= fit.reshape(len(part), n_c)
        compat[lo : lo + step] = ok
    col_sig = np.full(n_v, -1, dtype=np.int64)
    col_sig[local_p[cols]] = c_sig
    per_sig = np.bincount(c_sig, minlength=len(cs))
    fits = (compat.astype(np.int64) @ per_sig)[row_sig]
    return {"row_sig": row_sig, "col_sig": col_sig, "compat": compat, "fits": fits}


def _chord(km: F64) -> F64:
    """Chord on the unit sphere of great-circle distances in km (2 beyond half the globe)."""
    half = np.minimum(km, np.pi * EARTH_RADIUS_KM) / (2 * EARTH_RADIUS_KM)
    out: F64 = 2 * np.sin(np.maximum(half, 0.0))
    return out


@dataclass
class _Block:
    """One block of the lazy fill: its listed students (`rows`, indices into the listed
    students) and vacancies (`cols`, indices into the vacancies), with the sites' points."""

    rows: I64
    cols: I64
    sited: I64  # the cols with a site
    unsited: I64
    homed: I64  # the rows with a home
    unhomed: I64
    points: F64  # unit vectors of the sited cols' sites
    # Rules 2 and 4 (and the weeks) by signature: a student's (skills, period, weeks), a
    # vacancy's (required skills, period); compat[row_sig[row - rows[0]], col_sig[col]] says
    # whether they fit.
    row_sig: I64
    col_sig: I64  # per vacancy of the round (-1 outside the block)
    compat: Bools
    fits: I64  # per row, how many of the block's vacancies pass rules 2 and 4


class _LazyFill:
    """Column generation without enumerating every pair (docs/engine.md, "Fill"): pairs
    come from a k-d tree of each block's sites, nearest first, and each pricing step looks
    only where a violating pair can be. A pair (s, q) violates when km + price[q] < u[s];
    prices are non-negative, so within a set of vacancies whose prices are at least p, only
    those with km < u[s] - p can, hence with an arc below u[s] - p - 0.5 (km is the arc
    rounded), and a ball query of that radius (plus 10 m for floating point) finds them
    all. Students whose every eligible pair is known (`complete`) are priced on those pairs
    alone."""

    def __init__(
        self,
        pb: Problem,
        assignment: I64,
        options: SolverOptions,
        blocks: _Blocks | None = None,
    ) -> None:
        from scipy.spatial import cKDTree

        self._tree = cKDTree
        self.pb, self.options = pb, options
        f = pb.features
        blocks = _blocks(pb, assignment) if blocks is None else blocks
        self.blocked = blocks.blocked
        self.students = _cat(blocks.groups)
        self.placements = blocks.open_v
        self.slots = blocks.free[blocks.open_v].astype(np.int64)
        local_p = np.full(pb.n_placements, -1, dtype=np.int64)
        local_p[blocks.open_v] = np.arange(len(blocks.open_v))
        self.weight_class = weight_classes(pb.priority, self.students)
        longest: list[I64] = []
        self.blocks: list[_Block] = []
        lo = 0
        for group, cols in zip(blocks.groups, blocks.cols, strict=True):
            longest.append(_longest(pb, group, cols))
            rows = np.arange(lo, lo + len(group), dtype=np.int64)
            lo += len(group)
            if len(cols) == 0:
                continue
            has_site = f.p_has[cols]
            has_home = f.h_has[group]
            sited = local_p[cols[has_site]]
            self.blocks.append(
                _Block(
                    rows=rows,
                    cols=local_p[cols],
                    sited=sited,
                    unsited=local_p[cols[~has_site]],
                    homed=rows[has_home],
                    unhomed=rows[~has_home],
                    points=_unit(f.p_lat[self.placements[sited]], f.p_lon[self.placements[sited]]),
                    **_signatures(pb, group, cols, local_p, len(blocks.open_v)),
                )
            )
        self.longest = _cat(longest)
        self.home = np.zeros((len(self.students), 3))
        has = f.h_has[self.students]
        self.home[has] = _unit(f.h_lat[self.students[has]], f.h_lon[self.students[has]])
        self.complete = np.zeros(len(self.students), dtype=bool)
        # Every eligible pair of the complete students; the pairs in use.
        self.pool: tuple[I64, I64, I64] = (_empty(), _empty(), _empty())

    def unplaced_cost(self) -> I64:
        out: I64 = (1 + int(self.longest.sum())) * self.weight_class
        return out

    def _check(self, blk: _Block, rows: I64, cols: I64) -> tuple[I64, I64, I64]:
        """The eligible ones of pairs (rows, cols) of `blk` with their km."""
        fit = blk.compat[blk.row_sig[rows - blk.rows[0]], blk.col_sig[cols]]
        rows, cols = rows[fit], cols[fit]
        ok, km = _pair_km(self.pb, self.students[rows], self.placements[cols], self.blocked)
        return rows[ok], cols[ok], km[ok]

    def _enumerate(self, blk: _Block, rows: I64) -> tuple[I64, I64, I64]:
        """Every eligible pair of `rows` (students of `blk` that fit few vacancies): the
        pairs their signatures allow, all rows at once (up to _BLOCK_CELLS candidates a
        step), checked in one call a step (each row fits only a few vacancies, so a call per
        signature would check a few dozen pairs for its overhead)."""
        found: list[tuple[I64, I64, I64]] = []
        sig = blk.row_sig[rows - blk.rows[0]]
        col_sig = blk.col_sig[blk.cols]
        step = max(1, _BLOCK_CELLS // max(1, len(blk.cols)))
        for lo in range(0, len(rows), step):
            i, j = np.nonzero(blk.compat[sig[lo : lo + step]][:, col_sig])
            r, c = rows[lo : lo + step][i], blk.cols[j]
            ok, km = _pair_km(self.pb, self.students[r], self.placements[c], self.blocked)
            found.append((r[ok], c[ok], km[ok]))
        return _merge(found)

    def nearest(self) -> tuple[I64, I64, I64]:
        """Each student's `fill_nearest` nearest eligible pairs, smallest (km, vacancy) first,
        exactly as the dense enumeration picks them; fills `complete` and `pool`."""
        k = max(1, self.options.fill_nearest)
        out: list[tuple[I64, I64, I64]] = []
        pool: list[tuple[I64, I64, I64]] = []
        n_v = len(self.placements)
        for blk in self.blocks:
            tree = self._tree(blk.points) if len(blk.sited) else None
            # Students fitting few vacancies: all their pairs at once.
            few = blk.rows[blk.fits <= 4 * k]
            if len(few):
                r, c, km = self._enumerate(blk, few)
                self.complete[few] = True
                pool.append((r, c, km))
                out.append(_smallest(few, r, c, km, k, n_v, whole=True)[1])
            todo = blk.homed[~self.complete[blk.homed]]
            if tree is not None and len(todo):
                done_in_reach = self._within_reach(blk, tree, todo, k, pool)
                if done_in_reach is not None:
                    out.append(done_in_reach)
                    todo = todo[~self.complete[todo]]
            want = k + 8
            while len(todo):
                take = min(want, len(blk.sited))
                if take and tree is not None:
                    dist, idx = tree.query(self.home[todo], k=take)
                    dist = dist.reshape(len(todo), take)
                    idx = idx.reshape(len(todo), take)
                    rows = np.repeat(todo, take)
                    cols = blk.sited[idx.reshape(-1)]
                else:
                    dist = np.zeros((len(todo), 1))
                    rows = cols = _empty()
                if len(blk.unsited):
                    rows = np.concatenate((rows, np.repeat(todo, len(blk.unsited))))
                    cols = np.concatenate((cols, np.tile(blk.unsited, len(todo))))
                r, c, km = self._check(blk, rows, cols)
                whole = take == len(blk.sited)
                done, picked = _smallest(todo, r, c, km, k, n_v, whole=whole)
                out.append(picked)
                if whole:
                    self.complete[todo] = True
                    pool.append((r, c, km))
                    break
                todo = todo[~done]
                want *= 4
            if len(blk.unhomed[~self.complete[blk.unhomed]]):
                out.append(self._nearest_unhomed(blk, k, pool))
        self.pool = _merge(pool)
        return _merge(out)

    def _within_reach(
        self, blk: _Block, tree: Any, todo: I64, k: int, pool: list[tuple[I64, I64, I64]]
    ) -> tuple[I64, I64, I64] | None:
        """Students of `todo` with a travel limit and at most `_FEW_IN_REACH` sites within it:
        every site in reach, by one ball query each (a site beyond the limit is never
        eligible, so their every pair is then known: `complete`, in `pool`); their k smallest
        pairs, or None when there are none. Growing nearest-neighbour queries would scan
        many sites out of their reach before giving up."""
        f = self.pb.features
        reach = f.travel[self.students[todo]]
        limited = todo[reach >= 0]
        if len(limited) == 0:
            return None
        # a little beyond the limit (floating point): the check below decides eligibility
        radius = _chord(f.travel[self.students[limited]] + 0.01) * (1 + 1e-9)
        points = self.home[limited]
        counts = np.asarray(tree.query_ball_point(points, radius, return_length=True))
        few = counts <= _FEW_IN_REACH
        if not np.any(few):
            return None
        mine = limited[few]
        hits = tree.query_ball_point(points[few], radius[few], return_sorted=False)
        idx = np.fromiter(chain.from_iterable(hits), dtype=np.int64, count=int(counts[few].sum()))
        rows, cols = np.repeat(mine, counts[few]), blk.sited[idx]
        if len(blk.unsited):
            rows = np.concatenate((rows, np.repeat(mine, len(blk.unsited))))
            cols = np.concatenate((cols, np.tile(blk.unsited, len(mine))))
        r, c, km = self._check(blk, rows, cols)
        self.complete[mine] = True
        pool.append((r, c, km))
        return _smallest(mine, r, c, km, k, len(self.placements), whole=True)[1]

    def _nearest_unhomed(
        self, blk: _Block, k: int, pool: list[tuple[I64, I64, I64]]
    ) -> tuple[I64, I64, I64]:
        """Students without a home: every pair is at 0 km, so their nearest are their
        first eligible vacancies; scanned in chunks of vacancies until found."""
        found: list[tuple[I64, I64, I64]] = []
        todo = blk.unhomed[~self.complete[blk.unhomed]]
        have = np.zeros(len(self.students), dtype=np.int64)
        step = 4 * k
        for lo in range(0, len(blk.cols), step):
            chunk = blk.cols[lo : lo + step]
            r, c, km = self._check(blk, np.repeat(todo, len(chunk)), np.tile(chunk, len(todo)))
            room = k - have[r]
            rank = np.arange(len(r)) - np.searchsorted(r, r)
            keep = rank < room
            found.append((r[keep], c[keep], km[keep]))
            np.add.at(have, r[keep], 1)
            todo = todo[have[todo] < k]
            if len(todo) == 0:
                return _merge(found)
        self.complete[todo] = True  # scanned every vacancy: all their pairs are found
        r, c, km = _merge(found)
        mine = self.complete[r]
        pool.append((r[mine], c[mine], km[mine]))
        return r, c, km

    def violators(self, u: I64, price: I64, use_keys: I64) -> tuple[I64, I64, I64]:
        """Every eligible pair not in use (`use_keys`: sorted row * n_v + col) with
        km + price < u: exactly those of the dense enumeration."""
        n_v = len(self.placements)
        found: list[tuple[I64, I64, I64]] = []
        r, c, km = self.pool
        hit = km + price[c] < u[r]
        found.append((r[hit], c[hit], km[hit]))
        for blk in self.blocks:
            found.extend(self._block_violators(blk, u, price))
        r, c, km = _merge(found)
        keys = r * n_v + c
        keys, first = np.unique(keys, return_index=True)
        r, c, km = r[first], c[first], km[first]
        if len(use_keys):
            at = np.minimum(np.searchsorted(use_keys, keys), len(use_keys) - 1)
            fresh = use_keys[at] != keys
            r, c, km = r[fresh], c[fresh], km[fresh]
        return r, c, km

    def _block_violators(self, blk: _Block, u: I64, price: I64) -> list[tuple[I64, I64, I64]]:
        """The violating pairs of `blk` not yet complete: the candidates of every price
        bucket, of the sites without coordinates and of the students without a home,
        checked together (one `_violating` call: each check is elementwise, so the pairs
        come in the order of the candidates)."""
        rs: list[I64] = []
        cs: list[I64] = []
        open_rows = blk.homed[~self.complete[blk.homed]]
        # Sites by price bucket: [0], (0, 1], (1, 2], (2, 4], ... so that within a bucket a
        # ball of radius u - (its least price) over-reaches by less than the bucket's width.
        if len(open_rows) and len(blk.sited):
            p = price[blk.sited]
            bucket = np.where(p <= 0, 0, 1 + np.ceil(np.log2(np.maximum(p, 1))).astype(np.int64))
            for b in np.unique(bucket).tolist():
                mine = np.flatnonzero(bucket == b)
                least = int(p[mine].min())
                rows = open_rows[u[open_rows] > least]
                if len(rows) == 0:
                    continue
                # km < u - least needs the arc below u - least - 0.5 (rounding), 10 m slack.
                radius = _chord((u[rows] - least).astype(np.float64) - 0.49)
                tree = self._tree(blk.points[mine])
                hits = tree.query_ball_point(self.home[rows], radius, return_sorted=False)
                counts = np.fromiter(map(len, hits), dtype=np.int64, count=len(hits))
                idx = np.fromiter(
                    chain.from_iterable(hits), dtype=np.int64, count=int(counts.sum())
                )
                rs.append(np.repeat(rows, counts))
                cs.append(blk.sited[mine][idx])
        # Without coordinates a pair is at 0 km: it violates when price < u.
        every = blk.rows[~self.complete[blk.rows]]
        for q in blk.unsited.tolist():
            rows = every[u[every] > price[q]]
            rs.append(rows)
            cs.append(np.full(len(rows), q, dtype=np.int64))
        unhomed = blk.unhomed[~self.complete[blk.unhomed]]
        if len(unhomed) and len(blk.sited):
            order = np.argsort(price[blk.sited], kind="stable")
            sorted_p = price[blk.sited][order]
            n_below = np.searchsorted(sorted_p, u[unhomed], side="left")
            rows = np.repeat(unhomed, n_below)
            pos = np.arange(len(rows)) - np.repeat(np.cumsum(n_below) - n_below, n_below)
            rs.append(rows)
            cs.append(blk.sited[order][pos])
        if not rs:
            return []
        return [self._violating(blk, _cat(rs), _cat(cs), u, price)]

    def _violating(
        self, blk: _Block, rows: I64, cols: I64, u: I64, price: I64
    ) -> tuple[I64, I64, I64]:
        r, c, km = self._check(blk, rows, cols)
        hit = km + price[c] < u[r]
        return r[hit], c[hit], km[hit]


def _by_pairs(r: I64, minor: I64, span: int) -> I64:
    """`np.lexsort((minor, r))` for non-negative `minor` below `span`: one stable argsort of
    the combined key `r * span + minor` (the same order, equal keys in input order, several
    times faster than the two sorts of `lexsort`)."""
    out: I64 = np.argsort(r * span + minor, kind="stable")
    return out


def _empty() -> I64:
    return np.zeros(0, dtype=np.int64)


def _merge(parts: list[tuple[I64, I64, I64]]) -> tuple[I64, I64, I64]:
    if not parts:
        return _empty(), _empty(), _empty()
    return (
        _cat([p[0] for p in parts]),
        _cat([p[1] for p in parts]),
        _cat([p[2] for p in parts]),
    )


def _smallest(
    todo: I64, r: I64, c: I64, km: I64, k: int, n_v: int, *, whole: bool
) -> tuple[Bools, tuple[I64, I64, I64]]:
    """Per student of `todo` (ascending), its k smallest (km, col) among the eligible pairs
    (r, c, km) found; done where k were found, or all its pairs were (`whole`). Any near
    pairs will do as the first restricted set: the pricing proves the optimum whatever
    they are. Returns (done per `todo`, the picked pairs of the done students)."""
    order = _by_pairs(r, km * n_v + c, (int(km.max(initial=0)) + 1) * n_v)
    r, c, km = r[order], c[order], km[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r)
    pick = rank < k
    if whole:
        return np.ones(len(todo), dtype=bool), (r[pick], c[pick], km[pick])
    slot = np.searchsorted(todo, r)
    done = np.bincount(slot, minlength=len(todo)) >= k
    pick &= done[slot]
    return done, (r[pick], c[pick], km[pick])


def fill_lazy(
    problem: Problem,
    assignment: I64,
    *,
    options: SolverOptions = DEFAULT_OPTIONS,
    blocks: _Blocks | None = None,
) -> tuple[I64, FillInstance, FillStats]:
    """The optimal fill by column generation over pairs found as needed (`_LazyFill`):
    per listed student the index into the vacancies or -1, the instance of the pairs it
    used (its `longest`, hence its costs, equal `fill_instance`'s), and what it did.
    `blocks`: its `_blocks`, if the caller has them already."""
    started = time.perf_counter()
    lazy = _LazyFill(problem, assignment, options, blocks)
    ns, nv = len(lazy.students), len(lazy.placements)
    b = lazy.unplaced_cost()
    r, c, km = lazy.nearest()
    built = time.perf_counter() - started
    solves = 0
    while True:
        order = _by_pairs(r, c, nv)
        r, c, km = r[order], c[order], km[order]
        inst = FillInstance(
            students=lazy.students,
            placements=lazy.placements,
            slots=lazy.slots,
            start=np.searchsorted(r, np.arange(ns + 1)).astype(np.int64),
            pair_placement=c,
            pair_km=km,
            nearest=np.ones(len(r), dtype=bool),
            weight_class=lazy.weight_class,
            longest=lazy.longest,
        )
        if ns == 0 or len(r) == 0:
            return (
                np.full(ns, -1, dtype=np.int64),
                inst,
                FillStats(-1, 0, solves, certified=True, build_seconds=built),
            )
        at, price, _ = _restricted(inst, r, np.ones(len(r), dtype=bool), b, options)
        solves += 1
        placed = at >= 0
        u = b.copy()
        a_cost = np.zeros(ns, dtype=np.int64)
        own = c == at[r]
        a_cost[r[own]] = km[own]
        u[placed] = a_cost[placed] + price[at[placed]]
        count = np.bincount(at[placed], minlength=nv)
        certified = (
            bool(np.all(price >= 0))
            and bool(np.all((price == 0) | (count == lazy.slots)))
            and bool(np.all(u <= b))
            and bool(np.all(km + price[c] >= u[r]))
        )
        if not certified:
            full = fill_instance(problem, assignment, options=options, blocks=blocks)
            use = np.ones(full.n_pairs, dtype=bool)
            at, _, _ = _restricted(full, full.pair_student(), use, b, options)
            return (
                at,
                full,
                FillStats(
                    full.n_pairs, full.n_pairs, solves + 1, certified=False, build_seconds=built
                ),
            )
        vr, vc, vkm = lazy.violators(u, price, r * nv + c)
        if len(vr) == 0:
            return at, inst, FillStats(-1, len(r), solves, certified=True, build_seconds=built)
        r, c, km = np.concatenate((r, vr)), np.concatenate((c, vc)), np.concatenate((km, vkm))


def students_without_vacancy(problem: Problem) -> dict[str, int]:
    """Per region of the students, how many students no placement of their region fits at all
    (rules 2 to 5, whatever the capacity): the lower bound of the unplaced, fill or not."""
    f = problem.features
    counts: dict[str, int] = {}
    for region in np.unique(f.student_region).tolist():
        rows = np.flatnonzero(f.student_region == region)
        cols = np.flatnonzero(f.placement_region == region)
        name = f.region_names[int(region)]
        if len(cols) == 0:
            counts[name] = len(rows)
            continue
        step = max(1, 2_000_000 // len(cols))
        count = 0
        for lo in range(0, len(rows), step):
            block = rows[lo : lo + step]
            es, ep = np.repeat(block, len(cols)), np.tile(cols, len(block))
            ok = (f.pair_fails(es, ep) == 0).reshape(len(block), len(cols))
            count += int(np.count_nonzero(~ok.any(axis=1)))
        counts[name] = count
    return counts
