"""The `stable` policy: student-proposing deferred acceptance with capacities.

Each unplaced student proposes to its best eligible placement it has not yet proposed to; a
placement holds its best proposals up to its free slots and rejects the rest. A placement
orders students by its `ranking` (students absent from the ranking after all in it), then by
priority (higher first), then by input order; placements without a ranking by priority, then
input order. Pinned students keep their slots and are never displaced. The result is stable
(no blocking pair in the sense of docs/product.md among unpinned students) and student-optimal
among stable matchings for this tie-break.
"""

from __future__ import annotations

from heapq import heappush, heapreplace

import numpy as np

from services.matching.engine.problem import I64, Problem


def placement_order_key(problem: Problem, placement: int, student: int) -> int:
    """Position of `student` in `placement`'s ranking; absent (or no ranking) = after all."""
    pos = problem.ranking_pos.get(placement)
    if pos is None:
        return 0
    return pos.get(student, len(pos))


def assign_stable(problem: Problem) -> I64:
    """Deferred acceptance; returns the placement index per student, -1 unplaced."""
    n_s = problem.n_students
    result = problem.pinned.copy()
    use = problem.eligible & (problem.pinned[problem.edge_student] < 0)
    es = problem.edge_student[use]
    ep = problem.edge_placement[use].tolist()
    starts = np.searchsorted(es, np.arange(n_s + 1)).tolist()
    # Priorities may exceed int64, so rank them (order is all that matters here).
    prio_rank = {v: i for i, v in enumerate(sorted(set(problem.priority), reverse=True))}
    prio = [prio_rank[v] for v in problem.priority]
    free = problem.free.tolist()
    # Per placement a heap of held students, worst on top: key (-ranking pos, -prio rank,
    # -index) so the smallest tuple is the least preferred.
    held: list[list[tuple[int, int, int]]] = [[] for _ in range(problem.n_placements)]
    next_choice = starts[:-1]
    queue = [s for s in range(n_s) if problem.pinned[s] < 0 and starts[s] < starts[s + 1]]
    queue.reverse()  # pop() from the end proposes in input order
    while queue:
        s = queue.pop()
        while next_choice[s] < starts[s + 1]:
            p = ep[next_choice[s]]
            next_choice[s] += 1
            if free[p] <= 0:
                continue
            key = (-placement_order_key(problem, p, s), -prio[s], -s)
            heap = held[p]
            if len(heap) < free[p]:
                heappush(heap, key)
                break
            if key > heap[0]:
                loser = -heapreplace(heap, key)[2]
                queue.append(loser)
                break
    for p, heap in enumerate(held):
        for _, _, neg in heap:
            result[-neg] = p
    return result
