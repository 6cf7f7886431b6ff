"""The successive shortest path solver against dense linear_sum_assignment.

The engine's rounds only give it rank costs below the unplaced costs; here costs are
arbitrary non-negative integers (ties, zero costs, unplaced cheaper than a placement), so
every kind of augmenting path is exercised: into a free slot, along chains of moves, and
pushing a student (or the new one) out to unplaced.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from services.matching.engine.ssp import min_cost_assignment

Instance = tuple[int, int, list[int], list[int], list[int], list[int], list[int], list[int]]


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    n_p = draw(st.integers(1, 6))
    n_s = draw(st.integers(0, 14))
    costs = st.one_of(st.sampled_from([0, 1, 4, 9, 16]), st.integers(0, 40))
    starts, places, arc_costs = [0], [], []
    for _ in range(n_s):
        mine = draw(st.lists(st.integers(0, n_p - 1), max_size=min(n_p, 4), unique=True))
        places += mine
        arc_costs += [draw(costs) for _ in mine]
        starts.append(len(places))
    unplaced = [draw(st.integers(0, 60)) for _ in range(n_s)]
    free = [draw(st.integers(0, 3)) for _ in range(n_p)]
    order = draw(st.permutations(range(n_s)))
    return n_s, n_p, starts, places, arc_costs, unplaced, free, list(order)


def _optimum(inst: Instance) -> int:
    n_s, _, starts, places, arc_costs, unplaced, free, _ = inst
    first = np.concatenate(([0], np.cumsum(free))).astype(int)
    slots = int(first[-1])
    matrix = np.full((n_s, slots + n_s), 10.0**9)
    for s in range(n_s):
        for e in range(starts[s], starts[s + 1]):
            matrix[s, first[places[e]] : first[places[e] + 1]] = arc_costs[e]
        matrix[s, slots + s] = unplaced[s]
    rows, cols = linear_sum_assignment(matrix)
    return int(matrix[rows, cols].sum())


@settings(max_examples=300, deadline=None)
@given(inst=instances())
def test_min_cost_assignment_is_optimal(inst: Instance) -> None:
    n_s, n_p, starts, places, arc_costs, unplaced, free, order = inst
    got = min_cost_assignment(n_s, n_p, starts, places, arc_costs, unplaced, free, order)
    assert len(got) == n_s
    used = [0] * n_p
    total = 0
    for s, p in enumerate(got):
        if p < 0:
            total += unplaced[s]
            continue
        used[p] += 1
        arcs = range(starts[s], starts[s + 1])
        assert p in [places[e] for e in arcs]
        total += next(arc_costs[e] for e in arcs if places[e] == p)
    assert all(u <= f for u, f in zip(used, free, strict=True))
    assert total == _optimum(inst)
    assert got == min_cost_assignment(n_s, n_p, starts, places, arc_costs, unplaced, free, order)
