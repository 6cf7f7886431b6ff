"""Fill against brute force and OR-Tools: same objective (filled weight, then km)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.synthetic import generate_round
from services.matching.engine import KernelMode, SolverOptions, solve
from services.matching.engine.fill import _by_pairs, fill_instance, fill_lazy, solve_fill
from services.matching.engine.problem import build_problem
from shared.contracts.profiles import PlacementOffer, StudentProfile

from .helpers import placement, student

PROGS = ("EE", "IN")
REGIONS = ("SE-AB", "SE-O")


@st.composite
def rounds(
    draw: st.DrawFn,
) -> tuple[list[StudentProfile], list[PlacementOffer], list[tuple[str, str]]]:
    n_p = draw(st.integers(1, 5))
    pids = [f"p{i}" for i in range(n_p)]
    point = st.one_of(
        st.none(),
        st.builds(
            lambda a, b: {"lat": 59 + a / 10, "lon": 18 + b / 10},
            st.integers(0, 9),
            st.integers(0, 9),
        ),
    )
    places = []
    for pid in pids:
        site = draw(point)
        places.append(
            placement(
                pid,
                draw(st.integers(0, 2)),
                region=draw(st.sampled_from(REGIONS)),
                programmes=draw(st.lists(st.sampled_from(PROGS), max_size=1)),
                required_skills=draw(st.lists(st.just("a"), max_size=1)),
                **({"site": site} if site else {}),
            )
        )
    studs = []
    for i in range(draw(st.integers(1, 6))):
        home = draw(point)
        extra: dict[str, object] = {"home": home} if home else {}
        travel = draw(st.sampled_from([None, 10.0, 40.0]))
        if travel is not None:
            extra["max_travel_km"] = travel
        studs.append(
            student(
                f"s{i}",
                draw(st.lists(st.sampled_from(pids), max_size=2, unique=True)),
                region=draw(st.sampled_from(REGIONS)),
                programme=draw(st.sampled_from(PROGS)),
                skills=draw(st.lists(st.just("a"), max_size=1)),
                priority=draw(st.integers(0, 2)),
                **extra,
            )
        )
    excluded = [(s.student_id, p) for s in studs for p in pids if draw(st.integers(0, 8)) == 0]
    return studs, places, excluded


def _brute_fill(studs, places, excluded, phase1) -> tuple[int, int]:
    """Best (filled weight, -km) over every way to fill phase 1's vacancies."""
    pb = build_problem(studs, places, (), excluded)
    f = pb.features
    free = pb.capacity - np.bincount(phase1[phase1 >= 0], minlength=pb.n_placements)
    options: list[list[tuple[int, int]]] = []
    for s in np.flatnonzero(phase1 < 0).tolist():
        mine = [(-1, 0)]
        for p in range(pb.n_placements):
            ranked = pb.placement_ids[p] in studs[s].preferences
            declined = (pb.student_ids[s], pb.placement_ids[p]) in excluded
            same = studs[s].region == places[p].region
            e_s, e_p = np.array([s]), np.array([p])
            fits = free[p] > 0 and same and not ranked and not declined
            if fits and f.pair_fails(e_s, e_p)[0] == 0:
                d = f.distance_km(e_s, e_p)[0]
                mine.append((p, 0 if np.isnan(d) else round(float(d))))
        options.append([(s, p, km) for p, km in mine])  # type: ignore[misc]
    best = (0, 0)
    for choice in itertools.product(*options):
        used = [0] * pb.n_placements
        weight = km = 0
        for s, p, d in choice:  # type: ignore[misc]
            if p >= 0:
                used[p] += 1
                weight += 1 + pb.priority[s]
                km += d
        if all(u <= int(c) for u, c in zip(used, free, strict=True)):
            best = max(best, (weight, -km))
    return best


def _filled_objective(res, studs) -> tuple[int, int]:
    pb = res.problem
    f = pb.features
    weight = km = 0
    for s in np.flatnonzero(res.filled).tolist():
        p = int(res.assignment[s])
        weight += 1 + pb.priority[s]
        d = f.distance_km(np.array([s]), np.array([p]))[0]
        km += 0 if np.isnan(d) else round(float(d))
    return weight, -km


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=rounds(),
    policy=st.sampled_from(["optimal", "stable"]),
    direct=st.sampled_from([0, 10**9]),
)
def test_fill_matches_brute_force(case, policy, direct: int, kernel: KernelMode) -> None:
    """direct=0: the lazy solve (k-d trees, pricing by distance bound) from one nearest
    pair; 10**9: one solve on every enumerated pair."""
    studs, places, excluded = case
    plain = solve(studs, places, excluded=excluded, policy=policy)
    res = solve(
        studs,
        places,
        excluded=excluded,
        policy=policy,
        fill=True,
        options=SolverOptions(kernel=kernel, fill_nearest=1, fill_direct_pairs=direct),
    )
    # Phase 1 never changes; the filled are new, at vacancies they did not rank.
    for before, after, s in zip(plain.outcomes, res.outcomes, studs, strict=True):
        if before.placement_id is not None:
            assert after == before
        elif after.placement_id is not None:
            assert after.filled
            assert after.rank is None
            assert after.reason is None
            assert after.placement_id not in s.preferences
            assert (s.student_id, after.placement_id) not in excluded
        else:
            assert after.reason == "no_eligible_vacancy"
    assert _filled_objective(res, studs) == _brute_fill(studs, places, excluded, plain.assignment)
    assert res.summary.filled == int(res.filled.sum())
    assert res.summary.no_eligible_vacancy == sum(o.placement_id is None for o in res.outcomes)
    again = solve(studs, places, excluded=excluded, policy=policy, fill=True)
    assert (
        again.outcomes == solve(studs, places, excluded=excluded, policy=policy, fill=True).outcomes
    )


def _or_tools_cost(inst) -> int:
    from ortools.graph.python import min_cost_flow

    b = inst.unplaced_cost()
    ns, nv = len(inst.students), len(inst.placements)
    ps = inst.pair_student()
    flow = min_cost_flow.SimpleMinCostFlow()
    src, snk = ns + nv, ns + nv + 1
    tails = np.concatenate([np.full(ns, src), ps, np.arange(ns), ns + np.arange(nv)])
    heads = np.concatenate([np.arange(ns), ns + inst.pair_placement, np.full(ns + nv, snk)])
    caps = np.concatenate([np.ones(ns + inst.n_pairs + ns, np.int64), inst.slots])
    costs = np.concatenate([np.zeros(ns, np.int64), inst.pair_km, b, np.zeros(nv, np.int64)])
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supply = np.zeros(ns + nv + 2, dtype=np.int64)
    supply[src], supply[snk] = ns, -ns
    flow.set_nodes_supplies(np.arange(ns + nv + 2), supply)
    assert flow.solve() == flow.OPTIMAL
    return int(flow.optimal_cost())


def _cost(inst, at) -> int:
    b = inst.unplaced_cost()
    total = int(b[at < 0].sum())
    for i in np.flatnonzero(at >= 0).tolist():
        lo, hi = inst.start[i], inst.start[i + 1]
        j = lo + int(np.flatnonzero(inst.pair_placement[lo:hi] == at[i])[0])
        total += int(inst.pair_km[j])
    return total


@pytest.mark.parametrize(("n", "nearest"), [(1500, 1), (1500, 4), (4000, 16)])
def test_column_generation_matches_or_tools(n: int, nearest: int) -> None:
    """Generated rounds, from few nearest pairs: the prices add what is missing."""
    rnd = generate_round(n, seed=n + nearest)
    first = solve(rnd.students, rnd.placements)
    # Column generation even on small instances.
    options = SolverOptions(fill_nearest=nearest, fill_direct_pairs=0)
    inst = fill_instance(first.problem, first.assignment, options=options)
    assert inst.n_pairs > 0
    at, stats = solve_fill(inst, options=options)
    assert stats.certified
    assert stats.pairs_used < inst.n_pairs
    assert _cost(inst, at) == _or_tools_cost(inst)
    slots = np.bincount(at[at >= 0], minlength=len(inst.placements))
    assert np.all(slots <= inst.slots)


def _strip(rnd, seed: int):
    """Some students without a home or a travel limit, some placements without a site."""
    rng = np.random.default_rng(seed)
    studs = [
        s.model_copy(
            update={
                "home": None if rng.random() < 0.1 else s.home,
                "max_travel_km": None if rng.random() < 0.3 else s.max_travel_km,
            }
        )
        for s in rnd.students
    ]
    places = [
        p.model_copy(update={"site": None}) if rng.random() < 0.05 else p for p in rnd.placements
    ]
    return studs, places


@pytest.mark.parametrize(
    ("n", "nearest", "strip"),
    [(1500, 1, False), (1500, 4, True), (3000, 1, True), (4000, 16, False)],
)
def test_lazy_fill_matches_or_tools_on_every_pair(n: int, nearest: int, strip: bool) -> None:
    """The lazy solve builds a fraction of the pairs; its optimum is that of all of them."""
    rnd = generate_round(n, seed=n + nearest)
    studs, places = _strip(rnd, n) if strip else (rnd.students, rnd.placements)
    first = solve(studs, places)
    options = SolverOptions(fill_nearest=nearest, fill_direct_pairs=0)
    every = fill_instance(first.problem, first.assignment, options=options)
    at, used, stats = fill_lazy(first.problem, first.assignment, options=options)
    assert stats.certified
    assert 0 < stats.pairs_used < every.n_pairs
    assert np.array_equal(used.students, every.students)
    assert np.array_equal(used.unplaced_cost(), every.unplaced_cost())
    # Every pair used is an eligible pair, with its km.
    known = {
        (int(s), int(p)): int(k)
        for s, p, k in zip(every.pair_student(), every.pair_placement, every.pair_km, strict=True)
    }
    for s, p, k in zip(used.pair_student(), used.pair_placement, used.pair_km, strict=True):
        assert known[(int(s), int(p))] == int(k)
    assert _cost(used, at) == _or_tools_cost(every)
    slots = np.bincount(at[at >= 0], minlength=len(used.placements))
    assert np.all(slots <= used.slots)
    # solve() takes the lazy path beyond fill_direct_pairs, with the same objective.
    res = solve(studs, places, fill=True, options=options)
    direct = solve(studs, places, fill=True)
    assert res.summary.filled == direct.summary.filled
    assert res.summary.placed_weight == direct.summary.placed_weight


@settings(max_examples=50, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30)), max_size=300),
)
def test_pairs_are_ordered_as_lexsort_orders_them(pairs: list[tuple[int, int]]) -> None:
    """`_by_pairs`, fill's one-sort ordering of (student, minor) pairs, is `np.lexsort`'s order,
    ties (repeated pairs) in input order."""
    r = np.array([p[0] for p in pairs], dtype=np.int64)
    minor = np.array([p[1] for p in pairs], dtype=np.int64)
    assert _by_pairs(r, minor, 31).tolist() == np.lexsort((minor, r)).tolist()
