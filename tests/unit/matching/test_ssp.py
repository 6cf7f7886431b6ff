"""The successive shortest path solver against dense linear_sum_assignment.

The engine's rounds only give it rank costs below the unplaced costs; here costs are
arbitrary non-negative integers (ties, zero costs, unplaced cheaper than a placement), so
every kind of augmenting path is exercised: into a free slot, along chains of moves, and
pushing a student (or the new one) out to unplaced. Each runs with the kernel compiled and
interpreted (the `kernel` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from devtools.synthetic import generate_round
from services.matching.engine import KernelMode, SolverOptions
from services.matching.engine.optimal import assign_optimal
from services.matching.engine.problem import build_problem
from services.matching.engine.ssp import KernelLoader, _jit, min_cost_assignment

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


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(inst=instances())
def test_min_cost_assignment_is_optimal(inst: Instance, kernel: KernelMode) -> None:
    n_s, n_p, starts, places, arc_costs, unplaced, free, order = inst
    options = SolverOptions(kernel=kernel)
    got = min_cost_assignment(
        n_s, n_p, starts, places, arc_costs, unplaced, free, order, options=options
    )
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
    assert got == min_cost_assignment(
        n_s, n_p, starts, places, arc_costs, unplaced, free, order, options=options
    )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(inst=instances())
def test_costs_beyond_64_bits_stay_exact(inst: Instance, kernel: KernelMode) -> None:
    """Scaling every cost by 2**70 keeps the same optimal assignments; the search takes the
    same steps in Python integers, so the answer is the same list."""
    n_s, n_p, starts, places, arc_costs, unplaced, free, order = inst
    options = SolverOptions(kernel=kernel)
    scale = 2**70
    big = min_cost_assignment(
        n_s,
        n_p,
        starts,
        places,
        [c * scale for c in arc_costs],
        [u * scale for u in unplaced],
        free,
        order,
        options=options,
    )
    assert big == min_cost_assignment(
        n_s, n_p, starts, places, arc_costs, unplaced, free, order, options=options
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_and_interpreted_kernels_agree(seed: int) -> None:
    """The same steps either way: identical assignments on generated rounds."""
    rnd = generate_round(1500, seed=seed)
    problem = build_problem(rnd.students, rnd.placements, ())
    got = {}
    modes: tuple[KernelMode, ...] = ("interpreted", "compiled")
    for mode in modes:
        # lsa_max_cells=0: every component through ssp.
        options = SolverOptions(kernel=mode, lsa_max_cells=0)
        got[mode], stats = assign_optimal(problem, {}, options=options)
        assert stats.ssp_components > 0
    assert np.array_equal(got["interpreted"], got["compiled"])


SMALL = (2, 1, [0, 1, 2], [0, 0], [1, 4], [9, 9], [1], [0, 1])


def test_kernel_compiles_without_a_cache_when_numba_has_nowhere_to_keep_it() -> None:
    def no_cache(*, cache: bool) -> Callable[..., Any]:
        if cache:
            raise RuntimeError("cannot cache function '_kernel': no locator available")
        return _jit(cache=False)

    loader = KernelLoader(jit=no_cache)
    options = SolverOptions(kernel="compiled")
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        assert min_cost_assignment(*SMALL, options=options, loader=loader) == [0, -1]
    assert loader.loaded


def test_auto_falls_back_to_the_interpreter_once_when_the_kernel_cannot_load() -> None:
    calls = []

    def broken(*, cache: bool) -> Callable[..., Any]:
        calls.append(cache)
        raise OSError("no compiler today")

    loader = KernelLoader(jit=broken)
    options = SolverOptions(kernel="auto", jit_min_arcs=0)
    with pytest.warns(RuntimeWarning, match="interpreted kernel"):
        assert min_cost_assignment(*SMALL, options=options, loader=loader) == [0, -1]
    assert min_cost_assignment(*SMALL, options=options, loader=loader) == [0, -1]
    assert calls == [True]
    assert not loader.loaded
