"""Benchmark of the matching engine against dense linear_sum_assignment and OR-Tools.

    .venv/bin/python -m bench.engine [--sizes 1000,7000,20000,100000] [--seed 7]
                                     [--dense-max-gb 8]

For each size one seeded synthetic round (`devtools.synthetic`: 13 regions, ~1.25 slots per
student, heavy-tailed company popularity, five choices, hard constraints) is solved by:

* engine        `solve(..., policy="optimal")` with the compiled kernel loaded, as in the
                matching service (`SolverOptions(kernel="compiled")`): solve = the
                assignment step (what the summary's `solve_seconds` reports), build = the
                rest of the call (eligibility from the profiles, then the outcomes and
                figures);
* engine-py     the same with the sparse solver's kernel interpreted
                (`SolverOptions(kernel="interpreted")`), as a one-off `apl match` below
                200,000 arcs runs it;
* engine-stable `solve(..., policy="stable")`, for its rank profile and blocking pairs;
* dense-lsa     `scipy.optimize.linear_sum_assignment` on the whole students x slots matrix
                (an ineligible cell costs what leaving the student unplaced costs), skipped
                when the matrix would not fit in --dense-max-gb;
* ortools-mcf   OR-Tools `SimpleMinCostFlow`, capacities on placement arcs.

All three exact methods minimise the same lexicographic objective (the integer costs of
`services.matching.engine.optimal`: rank squared placed, W * k(s) unplaced), and their
objectives must agree; the run fails if they do not. Peak memory is the peak resident set
size during the step minus the resident size before it (Linux VmHWM, reset through
/proc/self/clear_refs), so it includes memory of C++ libraries that tracemalloc cannot see.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment

from devtools.synthetic import generate_round
from services.matching.engine import (
    KernelMode,
    Policy,
    RoundResult,
    RoundSummary,
    SolverOptions,
    solve,
    ssp,
)
from services.matching.engine.optimal import weight_classes
from services.matching.engine.problem import I64, Problem, build_problem

T = TypeVar("T")


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def measure(fn: Callable[[], T]) -> tuple[T, float, float]:
    """Run fn; return (its result, wall seconds, peak RSS growth in MB)."""
    gc.collect()
    with contextlib.suppress(OSError):  # not Linux: VmHWM then covers the whole run
        Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = max(_status("VmHWM") - before, 0)
    return out, seconds, peak / 2**20


@dataclass
class Row:
    students: int
    method: str
    build_s: float | None
    solve_s: float | None
    peak_mb: float | None
    placed: int | None = None
    first_choice: int | None = None
    weight: int | None = None
    rank_cost: int | None = None
    blocking: int | None = None
    note: str = ""

    def line(self) -> str:
        def f(v: float | None, spec: str) -> str:
            return f"{'-':>8}" if v is None else format(v, spec)

        share = (
            "-" if self.first_choice is None else f"{100 * self.first_choice / self.students:.1f}%"
        )
        obj = "-" if self.weight is None else f"{self.weight}/{self.rank_cost}"
        return (
            f"{self.students:>8} {self.method:<14} {f(self.build_s, '8.3f')} "
            f"{f(self.solve_s, '8.3f')} {f(self.peak_mb, '8.1f')} "
            f"{'-' if self.placed is None else self.placed:>7} {share:>7} {obj:>16} "
            f"{'-' if self.blocking is None else self.blocking:>6}  {self.note}"
        )


HEADER = (
    f"{'students':>8} {'method':<14} {'build_s':>8} {'solve_s':>8} {'peak_MB':>8} "
    f"{'placed':>7} {'1st':>7} {'weight/rank2':>16} {'block':>6}"
)


Costs = tuple[I64, I64, I64, I64]


def lexicographic_costs(pb: Problem) -> Costs:
    """Eligible edges of unpinned students and the engine's integer costs for them.

    Placed at p: rank^2; unplaced: W * k(s) (no previous proposals in the benchmark).
    Returns (edge student, edge placement, placed cost, unplaced cost per student).
    """
    el = pb.eligible
    es, ep, er = pb.edge_student[el], pb.edge_placement[el], pb.edge_rank[el]
    k = weight_classes(pb.priority, np.arange(pb.n_students, dtype=np.int64))
    max_r2 = np.zeros(pb.n_students, dtype=np.int64)
    np.maximum.at(max_r2, es, er * er)
    big_w = 1 + int(max_r2.sum()) + pb.n_students
    return es, ep, er * er, big_w * k


def dense_lsa(pb: Problem, costs: Costs, max_gb: float) -> tuple[Row, I64 | None]:
    n = pb.n_students
    slots = int(pb.capacity.sum())
    cols = max(slots, n)  # every student gets a column; a non-slot column means unplaced
    gb = n * cols * 8 / 2**30
    if gb > max_gb:
        return Row(n, "dense-lsa", None, None, None, note=f"skipped: {gb:.1f} GB"), None
    es, ep, placed_cost, unplaced_cost = costs
    first_col = np.concatenate(([0], np.cumsum(pb.capacity)))
    slot_place = np.repeat(np.arange(pb.n_placements), pb.capacity)

    def build() -> np.ndarray:
        m = np.repeat(unplaced_cost.astype(np.float64)[:, None], cols, axis=1)
        for s, p, c in zip(es.tolist(), ep.tolist(), placed_cost.tolist(), strict=True):
            m[s, first_col[p] : first_col[p + 1]] = c
        return m

    matrix, build_s, build_mb = measure(build)
    (rows, cols_), solve_s, solve_mb = measure(lambda: linear_sum_assignment(matrix))
    assignment = np.full(n, -1, dtype=np.int64)
    for r, c in zip(rows.tolist(), cols_.tolist(), strict=True):
        if c < slots and matrix[r, c] != unplaced_cost[r]:
            assignment[r] = slot_place[c]
    row = Row(n, "dense-lsa", build_s, solve_s, build_mb + solve_mb, note=f"{gb:.1f} GB matrix")
    return row, assignment


def or_tools(pb: Problem, costs: Costs) -> tuple[Row, I64 | None]:
    n = pb.n_students
    try:
        from ortools.graph.python import min_cost_flow
    except ImportError:
        return Row(n, "ortools-mcf", None, None, None, note="skipped: ortools not installed"), None
    es, ep, placed_cost, unplaced_cost = costs
    m = pb.n_placements
    src, snk = n + m, n + m + 1

    def build() -> object:
        flow = min_cost_flow.SimpleMinCostFlow()
        tails = np.concatenate([np.full(n, src), es, np.arange(n), n + np.arange(m)])
        heads = np.concatenate([np.arange(n), n + ep, np.full(n, snk), np.full(m, snk)])
        caps = np.concatenate([np.ones(n + len(es) + n, dtype=np.int64), pb.capacity])
        # Same costs as the engine, shifted by the unplaced cost so unplaced arcs cost 0.
        unit_costs = np.concatenate(
            [np.zeros(n, np.int64), placed_cost - unplaced_cost[es], np.zeros(n + m, np.int64)]
        )
        flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, unit_costs)
        supply = np.zeros(n + m + 2, dtype=np.int64)
        supply[src], supply[snk] = n, -n
        flow.set_nodes_supplies(np.arange(n + m + 2), supply)
        return flow

    flow, build_s, build_mb = measure(build)
    status, solve_s, solve_mb = measure(lambda: flow.solve())  # type: ignore[attr-defined]
    if status != flow.OPTIMAL:  # type: ignore[attr-defined]
        return Row(n, "ortools-mcf", build_s, solve_s, None, note=f"status {status}"), None
    arcs = np.arange(n, n + len(es))
    used = flow.flows(arcs) > 0  # type: ignore[attr-defined]
    assignment = np.full(n, -1, dtype=np.int64)
    assignment[es[used]] = ep[used]
    return Row(n, "ortools-mcf", build_s, solve_s, build_mb + solve_mb), assignment


def bench_size(n: int, seed: int, dense_max_gb: float) -> list[Row]:
    rnd = generate_round(n, seed=seed)
    rows: list[Row] = []
    summaries: dict[Policy, RoundSummary] = {}
    engines: tuple[tuple[Policy, str, KernelMode], ...] = (
        ("optimal", "engine", "compiled"),
        ("optimal", "engine-py", "interpreted"),
        ("stable", "engine-stable", "auto"),
    )
    for policy, method, kernel in engines:
        options = SolverOptions(kernel=kernel)
        result, total_s, mb = measure(
            partial(solve, rnd.students, rnd.placements, policy=policy, options=options)
        )
        t = result.summary
        note = t.solver
        if method != "engine-py":
            summaries[policy] = t
        elif (t.placed_weight, t.total_rank_cost) != (
            summaries["optimal"].placed_weight,
            summaries["optimal"].total_rank_cost,
        ):
            note += " OBJECTIVE DIFFERS FROM ENGINE"
        rows.append(
            Row(
                n,
                method,
                total_s - t.solve_seconds,
                t.solve_seconds,
                mb,
                t.placed,
                t.first_choice,
                t.placed_weight,
                t.total_rank_cost,
                t.blocking_pairs,
                note=note,
            )
        )
    s = summaries["optimal"]
    pb = build_problem(rnd.students, rnd.placements)
    costs = lexicographic_costs(pb)
    peers: list[Callable[[], tuple[Row, I64 | None]]] = [
        lambda: dense_lsa(pb, costs, dense_max_gb),
        lambda: or_tools(pb, costs),
    ]
    for make in peers:
        row, assignment = make()
        if assignment is not None:
            f = RoundResult(pb, assignment, "optimal", 0.0, row.method).summary
            row.placed, row.first_choice = f.placed, f.first_choice
            row.weight, row.rank_cost = f.placed_weight, f.total_rank_cost
            if (row.weight, row.rank_cost) != (s.placed_weight, s.total_rank_cost):
                row.note += " OBJECTIVE DIFFERS FROM ENGINE"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="1000,7000,20000,100000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dense-max-gb", type=float, default=8.0)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    started = time.perf_counter()
    ssp.load_compiled()
    print(
        f"compiled kernel loaded in {time.perf_counter() - started:.2f} s "
        "(numba; the first time on a machine includes compiling it)"
    )
    print(HEADER)
    ok = True
    for n in sizes:
        for row in bench_size(n, args.seed, args.dense_max_gb):
            print(row.line(), flush=True)
            ok = ok and "DIFFERS" not in row.note
    print(
        "build_s: eligibility from profiles and the figures after solving (engine) or cost "
        "matrix/arcs (peers); solve_s: the "
        "assignment; peak_MB: peak RSS growth; 1st: share of all students at their first "
        "choice; weight/rank2: placed weight / total rank cost; block: blocking pairs."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
