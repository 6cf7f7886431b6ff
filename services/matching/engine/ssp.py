"""Exact capacitated assignment by successive shortest paths, without slot expansion.

The network: each student is a source of one unit; it flows either to a placement (arc cost
`cost`, placements have `free` slots) or to the sink directly (arc cost `unplaced`, meaning the
student stays unplaced). Students are added one at a time; for each, a Dijkstra search over
the residual graph with reduced costs (Johnson potentials) finds the cheapest way to take the
student in: straight into a free slot, by moving other students along a chain of placements
until one reaches a free slot, or by pushing some student (perhaps the new one) out to
unplaced. Augmenting along a shortest path keeps the assignment of the students added so far
optimal (the successive shortest path theorem), so the final assignment is a min-cost flow.

The search runs over placements only. A placed student's arc from its placement is on the
flow, so its reduced cost is 0 and the student's potential is its placement's minus its arc
cost: settling a placement settles its students at the same distance, and the search goes
straight on to the placements they could move to (or out to unplaced). The sink keeps
potential 0, and so does every placement with a free slot (potentials only fall, and only
for placements settled closer than the end of the search, which a free slot ends), so
reaching a free slot ends a path at the distance of the slot's placement. Keys of the
search are path costs minus the potential of the node reached (the new student's potential
taken as 0), so they are non-negative and only ever grow along a path.

Everything is Python integers, so costs of any size stay exact. The searches are short in
practice (a handful of placements per student on national rounds) because the potentials
learn the prices of contested placements, and a fast path skips the heap whenever the
student's cheapest arc already ends the search.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappop, heappush
from itertools import pairwise


def min_cost_assignment(
    n_students: int,
    n_placements: int,
    adj_start: Sequence[int],
    adj_placement: Sequence[int],
    adj_cost: Sequence[int],
    unplaced_cost: Sequence[int],
    free: Sequence[int],
    order: Sequence[int],
) -> list[int]:
    """Assign every student in `order` to a placement or to unplaced, at minimum total cost.

    Student `s` has arcs `adj_placement[adj_start[s]:adj_start[s + 1]]` (placement indices,
    0-based) with costs `adj_cost[...]`, and costs `unplaced_cost[s]` if unplaced. All costs
    must be non-negative integers. Returns, per student, the placement index or -1.
    """
    unplaced = list(unplaced_cost)
    # A search from s ends by s's unplaced arc at key unplaced[s] at the latest, and keys
    # at or beyond the end are never stored, so `far` acts as infinity.
    far = 1 + max(unplaced, default=0)
    h = [0] * n_placements  # potentials (<= 0); the sink's is 0
    dist = [far] * n_placements  # search keys, `far` when not reached
    via = [-1] * n_placements  # the student moving into the placement on the best path
    via_cost = [0] * n_placements  # that student's cost there
    spare = list(free)  # free slots per placement
    members: list[list[int]] = [[] for _ in range(n_placements)]
    at = [-1] * n_students  # placement of each student, -1 when unplaced (or not yet added)
    at_cost = [0] * n_students
    pairs = list(zip(adj_placement, adj_cost, strict=True))
    arcs = [pairs[a:b] for a, b in pairwise(adj_start)]

    for s0 in order:
        # First hop: the key of placement q is c - h[q]; a free slot at q ends at key c
        # (h[q] = 0 there), unplaced at key unplaced[s0]. If an end is no dearer than the
        # cheapest first hop, no longer path can beat it.
        mine = arcs[s0]
        d_end = unplaced[s0]
        end_q = -1
        end_c = 0
        best = far
        for q, c in mine:
            k = c - h[q]
            if k < best:
                best = k
            if k < d_end and spare[q] > 0:
                d_end, end_q, end_c = k, q, c
        if d_end <= best:
            if end_q >= 0:
                spare[end_q] -= 1
                members[end_q].append(s0)
                at[s0] = end_q
                at_cost[s0] = end_c
            continue

        # Dijkstra over placements. The end is a free slot (end_q, entered by end_w at cost
        # end_c) or a student end_w pushed out to unplaced (end_q = -1).
        end_w = s0
        touched: list[int] = []
        heap: list[tuple[int, int]] = []
        for q, c in mine:
            k = c - h[q]
            if k < d_end and k < dist[q] and spare[q] <= 0:
                if dist[q] == far:
                    touched.append(q)
                dist[q] = k
                via[q] = s0
                via_cost[q] = c
                heappush(heap, (k, q))
        settled: list[int] = []
        while heap:
            d, p = heappop(heap)
            if d >= d_end:
                break
            if d > dist[p]:
                continue  # stale entry
            settled.append(p)
            base = d + h[p]  # the path's cost up to p
            for w in members[p]:
                bw = base - at_cost[w]
                t = bw + unplaced[w]
                if t < d_end:
                    d_end, end_q, end_w = t, -1, w
                for q, c in arcs[w]:
                    if q == p:
                        continue
                    k = bw + c - h[q]
                    if k < d_end and k < dist[q]:
                        if spare[q] > 0:
                            d_end, end_q, end_w, end_c = k, q, w, c
                            continue
                        if dist[q] == far:
                            touched.append(q)
                        dist[q] = k
                        via[q] = w
                        via_cost[q] = c
                        heappush(heap, (k, q))

        # Potentials: settled placements closer than the end move down by their slack.
        for p in settled:
            dp = dist[p]
            if dp < d_end:
                h[p] += dp - d_end

        # Augment: walk back from the end, each student moving into the placement after it.
        if end_q >= 0:
            spare[end_q] -= 1
            q, w, c = end_q, end_w, end_c
        else:
            q = at[end_w]
            if q >= 0:  # pushed out to unplaced: its slot goes to the student before it
                members[q].remove(end_w)
                at[end_w] = -1
                w, c = via[q], via_cost[q]
        while q >= 0:
            old = at[w]
            members[q].append(w)
            at[w] = q
            at_cost[w] = c
            if old < 0:
                break
            members[old].remove(w)
            q, w, c = old, via[old], via_cost[old]

        for q in touched:
            dist[q] = far

    return at
