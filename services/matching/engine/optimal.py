"""The default policy: an exact lexicographic optimum (docs/product.md, "The matching policy").

Objective, in order: (1) maximise the sum of (1 + priority) over placed students; (2) minimise
the sum of rank squared over placed students; (3) when previous proposals are given, keep as
many students as possible where they were (a tie-break among assignments optimal for 1 and 2).

How the three levels become one exact integer cost (minimised over a min-cost flow where each
student goes to a placement or to "unplaced"):

    placed at p:  A(s, p) = rank(s, p)^2 * P + moved(s, p)
    unplaced:     B(s)    = W * k(s) + moved_unplaced(s)

* moved(s, p) is 1 when s has a previous placement other than p, else 0; moved_unplaced(s)
  is 1 when s has a previous placement. Their sum over any assignment lies in [0, n_prev],
  so with P = n_prev + 1 a change of one unit in the rank level outweighs any change in the
  previous level: level 3 never overrides level 2.
* With W = 1 + sum over students of (max rank(s)^2 * P + 1), the whole A/moved part of any
  assignment lies in [0, W - 1], so one unit of the first level outweighs all of levels 2
  and 3 together: minimising sum(unplaced W * k) first is exactly maximising placed k.
* k(s) is the 1-based position of s's priority among the distinct priorities of the round,
  not 1 + priority itself. This is exact, not an approximation: the sets of students that can
  be placed together form a matroid (a transversal matroid: the students matched by some
  matching into the slots), and in a matroid the maximum-weight independent sets depend only
  on the order of the weights (a set is of maximum weight iff, for every threshold t, it
  holds as many elements of weight >= t as any independent set can). Any increasing
  relabelling of the weights therefore has the same optima for level 1, and so the same
  lexicographic optima. The relabelling keeps costs small however large priorities are.

Solving. Exact reductions first (see `_reduce`), then the connected components of what is
left: a small component goes to `scipy.optimize.linear_sum_assignment` over slot columns
(plus one "unplaced" column per student), the rest to the successive shortest path solver in
`ssp.py` (capacities on placements, no slot expansion, exact integers: 64-bit where every
value it forms fits, Python integers otherwise). Either way the
component's optimum under the same integer costs is found, so the objective does not depend
on the path taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from services.matching.engine.lsap import linear_sum_assignment
from services.matching.engine.options import DEFAULT_OPTIONS, SolverOptions
from services.matching.engine.problem import I64, Problem
from services.matching.engine.ssp import min_cost_assignment


@dataclass(slots=True)
class SolveStats:
    """What the optimiser did, for the summary's `solver`."""

    fixed_by_reduction: int = 0
    lsa_components: int = 0
    ssp_components: int = 0

    @property
    def solver(self) -> str:
        """The steps that ran, joined by "+"; "none" when no unpinned student had an
        eligible choice."""
        used = []
        if self.fixed_by_reduction:
            used.append("reduce")
        if self.lsa_components:
            used.append("lsa")
        if self.ssp_components:
            used.append("ssp")
        return "+".join(used) or "none"


def weight_classes(priority: tuple[int, ...], students: I64) -> I64:
    """k(s): 1-based rank of each listed student's priority among their distinct priorities."""
    if len(students) == 0:
        return np.zeros(0, dtype=np.int64)
    mine = [priority[s] for s in students.tolist()]
    try:
        # np.unique sorts the distinct values; inverse gives each one's 0-based position.
        _, inverse = np.unique(np.array(mine, dtype=np.int64), return_inverse=True)
        return inverse.astype(np.int64) + 1
    except OverflowError:  # unbounded Python ints: rank them without int64
        rank = {v: i + 1 for i, v in enumerate(sorted(set(mine)))}
        return np.fromiter((rank[v] for v in mine), np.int64, len(mine))


def _reduce(es: I64, ep: I64, er: I64, free: I64, n_s: int) -> tuple[I64, I64]:
    """Exact reductions. Returns (alive edge mask as indices, fixed placement per student).

    A placement is non-binding when the students who can still use it are no more than its
    free slots: it has room for all of them in every assignment. If such a placement f is
    eligible for s at rank r, then in every optimal assignment s is placed at rank <= r:
    otherwise moving s to f keeps every other student where it is, places s (level 1) or
    improves its rank (level 2) strictly. So s's worse choices can be dropped, and when f is
    s's best remaining choice, s is at f in every optimal assignment and is fixed there.
    Dropping and fixing only lowers demand elsewhere, so this is repeated to a fixpoint.
    Edges must be sorted by student, then rank.
    """
    n_p = len(free)
    fixed = np.full(n_s, -1, dtype=np.int64)
    cap = free.copy()
    alive = np.arange(len(es), dtype=np.int64)
    big = np.iinfo(np.int64).max
    while len(alive):
        s, p, r = es[alive], ep[alive], er[alive]
        demand = np.bincount(p, minlength=n_p)
        open_e = (demand <= cap)[p]
        # Edges are sorted by student then rank: a student's first open edge is its best.
        oi = np.flatnonzero(open_e)
        first_open = np.ones(len(oi), dtype=bool)
        first_open[1:] = s[oi[1:]] != s[oi[:-1]]
        best_open = np.full(n_s, big, dtype=np.int64)
        best_open[s[oi[first_open]]] = r[oi[first_open]]
        keep = r <= best_open[s]
        first = np.ones(len(s), dtype=bool)
        first[1:] = s[1:] != s[:-1]
        fix = first & open_e
        if not fix.any() and keep.all():
            break
        fixed[s[fix]] = p[fix]
        cap -= np.bincount(p[fix], minlength=n_p)
        alive = alive[keep & (fixed[s] < 0)]
    return alive, fixed


def assign_optimal(
    problem: Problem,
    previous: Mapping[int, int] | None = None,
    *,
    options: SolverOptions = DEFAULT_OPTIONS,
) -> tuple[I64, SolveStats]:
    """The lexicographically optimal assignment: placement index per student, -1 unplaced.

    Pinned students are at their pinned placement. `previous` maps student index to the
    placement index of its previous proposal. `options` chooses the solver of each component
    (`lsa_max_cells`) and the sparse solver's kernel; the objective is the same either way.
    """
    stats = SolveStats()
    n_s, n_p = problem.n_students, problem.n_placements
    result = problem.pinned.copy()
    active = problem.pinned < 0
    use = problem.eligible & active[problem.edge_student]
    es = problem.edge_student[use]
    ep = problem.edge_placement[use]
    er = problem.edge_rank[use]
    if len(es) == 0:
        return result, stats

    alive, fixed = _reduce(es, ep, er, problem.free, n_s)
    stats.fixed_by_reduction = int(np.count_nonzero(fixed >= 0))
    result[fixed >= 0] = fixed[fixed >= 0]
    if len(alive) == 0:
        return result, stats
    es, ep, er = es[alive], ep[alive], er[alive]
    cap = problem.free - np.bincount(fixed[fixed >= 0], minlength=n_p)

    # Compact the remaining students and placements.
    stud, es_c = np.unique(es, return_inverse=True)
    plac, ep_c = np.unique(ep, return_inverse=True)
    ns, npl = len(stud), len(plac)
    demand = np.bincount(ep_c, minlength=npl)
    slots = np.minimum(cap[plac], demand)  # more slots than takers are never used
    k = weight_classes(problem.priority, stud)

    # Level 3: moved(s, p) and moved_unplaced(s).
    prev_c = np.full(ns, -2, dtype=np.int64)  # -2: no previous proposal
    if previous:
        p_pos = {int(p): i for i, p in enumerate(plac.tolist())}
        for i, s in enumerate(stud.tolist()):
            if s in previous:
                prev_c[i] = p_pos.get(previous[s], -1)
    has_prev = prev_c != -2
    big_p = 1 + int(np.count_nonzero(has_prev))
    moved = (has_prev[es_c] & (prev_c[es_c] != ep_c)).astype(np.int64)
    cost = er * er * big_p + moved
    max_cost = np.zeros(ns, dtype=np.int64)
    np.maximum.at(max_cost, es_c, cost)
    big_w = 1 + int(max_cost.sum()) + ns
    # The sparse solver checks its own int64 range and falls back to Python ints, so
    # exactness never depends on it; numpy computes these when they fit (they do unless
    # priorities have ~10^12 levels), Python ints otherwise.
    unplaced: I64 | list[int]
    if big_w * (int(k.max()) + 1) < 2**62:
        unplaced = big_w * k + has_prev
    else:
        unplaced = [big_w * kv + hp for kv, hp in zip(k.tolist(), has_prev.tolist(), strict=True)]

    # Components of the remaining bipartite graph.
    n_comp, label = connected_components(ns + npl, es_c, ns + ep_c)
    s_label = label[:ns]
    p_label = label[ns:]
    comp_students = np.bincount(s_label, minlength=n_comp)
    comp_slots = np.bincount(p_label, weights=slots, minlength=n_comp).astype(np.int64)
    cells = comp_students * (comp_slots + comp_students)
    dense = cells <= options.lsa_max_cells
    assigned = np.full(ns, -1, dtype=np.int64)

    # Small components: dense linear_sum_assignment over slot columns.
    if dense.any():
        edge_comp = s_label[es_c]
        order = np.argsort(edge_comp, kind="stable")
        bounds = np.searchsorted(edge_comp[order], np.arange(n_comp + 1))
        s_order = np.argsort(s_label, kind="stable")
        s_bounds = np.searchsorted(s_label[s_order], np.arange(n_comp + 1))
        for c in np.flatnonzero(dense).tolist():
            edges = order[bounds[c] : bounds[c + 1]]
            members = s_order[s_bounds[c] : s_bounds[c + 1]]
            _solve_dense(members, es_c[edges], ep_c[edges], cost[edges], slots, unplaced, assigned)
            stats.lsa_components += 1

    # The rest: successive shortest paths, all sparse components in one pass (they share no
    # nodes, so each is solved on its own).
    if not dense.all():
        sparse_s = ~dense[s_label]
        keep_e = sparse_s[es_c]
        sub_s = np.flatnonzero(sparse_s)
        local = np.full(ns, -1, dtype=np.int64)
        local[sub_s] = np.arange(len(sub_s))
        e_s = local[es_c[keep_e]]
        e_p = ep_c[keep_e]
        e_cost = cost[keep_e]
        starts = np.searchsorted(e_s, np.arange(len(sub_s) + 1))
        degree = np.diff(starts)
        # Order only affects speed: higher weight classes first, fewer choices first, more
        # contested first choice first.
        pressure = (demand / np.maximum(slots, 1))[e_p[starts[:-1]]]
        order_s = np.lexsort((np.arange(len(sub_s)), -pressure, degree, -k[sub_s]))
        got = min_cost_assignment(
            len(sub_s),
            npl,
            starts,
            e_p,
            e_cost,
            unplaced[sub_s] if isinstance(unplaced, np.ndarray) else [unplaced[i] for i in sub_s],
            slots,
            order_s,
            options=options,
        )
        assigned[sub_s] = np.asarray(got, dtype=np.int64)
        stats.ssp_components = int(np.count_nonzero(~dense))

    placed = assigned >= 0
    result[stud[placed]] = plac[assigned[placed]]
    return result, stats


def connected_components(n: int, u: I64, v: I64) -> tuple[int, I64]:
    """(number of components, component of each node) of the undirected graph on nodes
    0..n-1 with edges (u[i], v[i]): what `scipy.sparse.csgraph.connected_components(...,
    directed=False)` gives, the same numbering too (components in the order of their lowest
    node), without importing `scipy.sparse` (a third of a second of every `apl match`).

    Union by hooking: each round, every edge whose ends are in different trees hooks the tree
    with the higher root under the lower root (`np.minimum.at`), then every node jumps to its
    root. A tree that hooks nowhere is a local minimum among its neighbours, whose trees all
    hook, so the trees at least halve on a path and the rounds are few (tests compare with
    SciPy's on random and adversarial graphs)."""
    root = np.arange(n, dtype=np.int64)
    while True:
        ru, rv = root[u], root[v]
        apart = ru != rv
        if not apart.any():
            break
        np.minimum.at(root, np.maximum(ru, rv)[apart], np.minimum(ru, rv)[apart])
        while True:  # every node to its root (a root is its own parent)
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up
    lowest, label = np.unique(root, return_inverse=True)  # roots are their trees' lowest nodes
    return len(lowest), label.astype(np.int64)


def _solve_dense(
    members: I64,
    es: I64,
    ep: I64,
    cost: I64,
    slots: I64,
    unplaced: I64 | list[int],
    assigned: I64,
) -> None:
    """One component by linear_sum_assignment: rows are students, columns are the slots of
    the component's placements followed by one "unplaced" column per student.

    The costs are integers below 2**53 (a component here has at most
    `SolverOptions.lsa_max_cells` cells, 4,096 by default, so W stays small), so float64
    holds them and every sum the solver forms exactly.
    """
    row = {int(s): i for i, s in enumerate(members.tolist())}
    places = np.unique(ep)
    first_col = np.concatenate(([0], np.cumsum(slots[places])))
    col_of = {int(p): int(first_col[i]) for i, p in enumerate(places.tolist())}
    n_rows = len(members)
    n_slot_cols = int(first_col[-1])
    matrix = np.full((n_rows, n_slot_cols + n_rows), np.inf)
    for s, p, c in zip(es.tolist(), ep.tolist(), cost.tolist(), strict=True):
        start = col_of[p]
        matrix[row[s], start : start + int(slots[p])] = c
    for s, i in row.items():
        matrix[i, n_slot_cols + i] = unplaced[s]
    rows, cols = linear_sum_assignment(matrix)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        s = int(members[i])
        if j < n_slot_cols:
            p_i = int(np.searchsorted(first_col, j, side="right")) - 1
            assigned[s] = places[p_i]
        else:
            assigned[s] = -1
