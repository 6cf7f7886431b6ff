"""Benchmark of fill: the demo's data set with and without fill, and fill against OR-Tools.

    .venv/bin/python -m bench.fill [--students 7000] [--seed 2027] [--large 100000]

* On the demo's data set (`devtools.synthetic.generate_round` with the demo's size and seed,
  preferences naming only posted placements, as `apl demo` posts them), solved as one round:
  placed without fill, placed with fill, filled, and the lower bound of the unplaced: students
  with no placement of their region they are eligible for at all (rules 2 to 5, whatever
  its capacity).
* The cost at that size: `solve` without and with fill, and `student_outcomes()` after each.
* At `--large` students: the fill phase alone as `solve` runs it there (`fill_lazy`: the
  first pairs from k-d trees, then column generation pricing only where a pair can
  violate), against OR-Tools `SimpleMinCostFlow` on every eligible pair (`fill_instance`,
  the same costs; its enumeration is timed apart, not as the engine's). The run fails
  (exit 1) if their objectives differ.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from devtools.synthetic import generate_round
from services.matching.engine import SolverOptions, solve, ssp
from services.matching.engine.fill import (
    FillInstance,
    fill_instance,
    fill_lazy,
    students_without_vacancy,
)
from services.matching.engine.problem import build_problem
from shared.contracts.profiles import PlacementOffer, StudentProfile


def demo_data_set(students: int, seed: int) -> tuple[list[StudentProfile], list[PlacementOffer]]:
    rnd = generate_round(students, seed=seed)
    known = {p.placement_id for p in rnd.placements}
    studs = [
        s.model_copy(update={"preferences": tuple(x for x in s.preferences if x in known)})
        for s in rnd.students
    ]
    return studs, list(rnd.placements)


def or_tools_fill(inst: FillInstance) -> tuple[int, float]:
    from ortools.graph.python import min_cost_flow

    b = inst.unplaced_cost()
    ns, nv = len(inst.students), len(inst.placements)
    flow = min_cost_flow.SimpleMinCostFlow()
    src, snk = ns + nv, ns + nv + 1
    tails = np.concatenate(
        [np.full(ns, src), inst.pair_student(), np.arange(ns), ns + np.arange(nv)]
    )
    heads = np.concatenate([np.arange(ns), ns + inst.pair_placement, np.full(ns + nv, snk)])
    caps = np.concatenate([np.ones(ns + inst.n_pairs + ns, np.int64), inst.slots])
    costs = np.concatenate([np.zeros(ns, np.int64), inst.pair_km, b, np.zeros(nv, np.int64)])
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supply = np.zeros(ns + nv + 2, dtype=np.int64)
    supply[src], supply[snk] = ns, -ns
    flow.set_nodes_supplies(np.arange(ns + nv + 2), supply)
    started = time.perf_counter()
    status = flow.solve()
    seconds = time.perf_counter() - started
    if status != flow.OPTIMAL:
        raise RuntimeError(f"OR-Tools status {status}")
    return int(flow.optimal_cost()), seconds


def fill_cost(inst: FillInstance, at: np.ndarray) -> int:
    b = inst.unplaced_cost()
    ps = inst.pair_student()
    mine = inst.pair_placement == at[ps]
    return int(b[at < 0].sum()) + int(inst.pair_km[mine].sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fill", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--students", type=int, default=7000)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args(argv)
    ssp.load_compiled()
    options = SolverOptions(kernel="compiled")
    studs, places = demo_data_set(args.students, args.seed)
    t0 = time.perf_counter()
    plain = solve(studs, places, options=options)
    t1 = time.perf_counter()
    plain.student_outcomes()
    t2 = time.perf_counter()
    filled = solve(studs, places, fill=True, options=options)
    t3 = time.perf_counter()
    filled.student_outcomes()
    t4 = time.perf_counter()
    bound = sum(students_without_vacancy(build_problem(studs, places)).values())
    n = args.students
    print(f"demo data set: {n} students, seed {args.seed}, one round over all regions")
    print(f"placed without fill: {plain.summary.placed}")
    print(f"placed with fill: {filled.summary.placed}")
    print(f"filled: {filled.summary.filled}")
    print(f"unplaced after fill (no_eligible_vacancy): {filled.summary.no_eligible_vacancy}")
    print(f"lower bound (no eligible placement in region at all): {bound}")
    print(f"solve without fill: {t1 - t0:.3f} s (assignment {plain.summary.solve_seconds:.3f} s)")
    print(
        f"solve with fill: {t3 - t2:.3f} s (assignment + fill {filled.summary.solve_seconds:.3f} s)"
    )
    print(f"outcomes+explanations without fill: {t2 - t1:.3f} s")
    print(f"outcomes+explanations with fill: {t4 - t3:.3f} s")
    ok = True
    if args.large:
        rnd = generate_round(args.large, seed=7)
        first = solve(rnd.students, rnd.placements, options=options)
        started = time.perf_counter()
        at, used, stats = fill_lazy(first.problem, first.assignment, options=options)
        lazy_s = time.perf_counter() - started
        mine = fill_cost(used, at)
        # The reference: every eligible pair, enumerated (the dense method) for OR-Tools.
        started = time.perf_counter()
        inst = fill_instance(first.problem, first.assignment, options=options)
        dense_s = time.perf_counter() - started
        theirs, or_seconds = or_tools_fill(inst)
        print(
            f"{args.large} students: fill pairs {inst.n_pairs} ({len(inst.students)} unplaced x "
            f"{len(inst.placements)} vacancies), filled {int(np.count_nonzero(at >= 0))}"
        )
        print(f"{args.large} engine fill pairs built: {stats.build_seconds:.3f} s")
        print(
            f"{args.large} engine fill solve: {lazy_s - stats.build_seconds:.3f} s "
            f"({stats.solves} solves on {stats.pairs_used} pairs, certified={stats.certified})"
        )
        print(f"{args.large} every pair enumerated (for OR-Tools): {dense_s:.3f} s")
        print(f"{args.large} ortools-mcf fill solve: {or_seconds:.3f} s")
        print(f"{args.large} objective engine {mine} ortools {theirs}")
        ok = mine == theirs
        if not ok:
            print("OBJECTIVE DIFFERS FROM ORTOOLS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
