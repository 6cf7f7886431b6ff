"""Exact capacitated assignment by successive shortest paths, without slot expansion.

The network: each student is a source of one unit; it flows either to a placement (arc cost
`cost`, placements have `free` slots) or to the sink directly (arc cost `unplaced`, meaning the
student stays unplaced). Students are added one at a time; for each, a Dijkstra search over
the residual graph with reduced costs (Johnson potentials) finds the cheapest way to take the
student in: straight into a free slot, by moving other students along a chain of placements
until one reaches a free slot, or by pushing some student (perhaps the new one) out to
unplaced. Augmenting along a shortest path keeps the assignment of the students added so far
optimal (the successive shortest path theorem), so the final assignment is a min-cost flow.

Everything is Python integers, so costs of any size stay exact. The searches are short in
practice (a handful of nodes per student on national rounds) because the potentials learn
the prices of contested placements, and a fast path skips the heap whenever the student's
cheapest arc already ends the search.
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
    ns = n_students
    n_nodes = ns + n_placements
    # Node v < ns is a student, v >= ns is placement v - ns. Distances are integers; `far`
    # stands for infinity and exceeds any path cost.
    far = 1 + sum(unplaced_cost) + sum(adj_cost) if n_students else 1
    h = [0] * n_nodes  # potentials; reduced cost of arc (u, v) is c + h[u] - h[v] >= 0
    h_sink = 0
    dist = [far] * n_nodes
    prev = [-1] * n_nodes
    done = [False] * n_nodes
    spare = list(free)  # free slots per placement
    members: list[list[int]] = [[] for _ in range(n_placements)]
    at = [-1] * ns  # placement node of each student, -1 when unplaced
    at_cost = [0] * ns
    unplaced = list(unplaced_cost)
    pairs = list(zip([p + ns for p in adj_placement], adj_cost, strict=True))
    bounds = list(adj_start)
    arcs = [pairs[a:b] for a, b in pairwise(bounds)]

    for s0 in order:
        hs = h[s0]
        # Fast path: if the cheapest way to end the search right away (unplaced, or a free
        # slot at one of s0's placements) costs no more than the cheapest arc out of s0,
        # no longer path can beat it.
        best_arc = far
        end = unplaced[s0] + hs - h_sink
        end_node = s0
        end_cost = 0
        for v, c in arcs[s0]:
            rc = c + hs - h[v]
            if rc < best_arc:
                best_arc = rc
            if spare[v - ns] > 0 and rc + h[v] - h_sink < end:
                end, end_node, end_cost = rc + h[v] - h_sink, v, c
        if end <= best_arc:
            h[s0] = hs - end
            if end_node != s0:
                p = end_node - ns
                spare[p] -= 1
                members[p].append(s0)
                at[s0] = end_node
                at_cost[s0] = end_cost
            continue

        # Dijkstra from s0 over the residual graph.
        settled: list[int] = []
        touched: list[int] = [s0]
        dist[s0] = 0
        heap: list[tuple[int, int]] = [(0, s0)]
        d_end = far
        end_node = -1
        while heap:
            d, u = heappop(heap)
            if done[u]:
                continue
            if d >= d_end:
                break
            done[u] = True
            settled.append(u)
            hu = d + h[u]
            if u < ns:
                # A student: move it to another of its placements, or out to unplaced.
                cur = at[u]
                for v, c in arcs[u]:
                    if v == cur or done[v]:
                        continue
                    nd = c + hu - h[v]
                    if nd < dist[v]:
                        if dist[v] == far:
                            touched.append(v)
                        dist[v] = nd
                        prev[v] = u
                        heappush(heap, (nd, v))
                t = unplaced[u] + hu - h_sink
                if t < d_end:
                    d_end, end_node = t, u
            else:
                # A placement: a free slot ends the search; else move one of its students.
                p = u - ns
                if spare[p] > 0:
                    t = hu - h_sink
                    if t < d_end:
                        d_end, end_node = t, u
                for w in members[p]:
                    if done[w]:
                        continue
                    nd = hu - at_cost[w] - h[w]
                    if nd < dist[w]:
                        if dist[w] == far:
                            touched.append(w)
                        dist[w] = nd
                        prev[w] = u
                        heappush(heap, (nd, w))

        # Potentials: settled nodes closer than the end move down by their slack.
        for v in settled:
            dv = dist[v]
            if dv < d_end:
                h[v] += dv - d_end

        # Augment along the path s0 -> ... -> end_node.
        v = end_node
        if v < ns:
            if at[v] >= 0:  # pushed out to unplaced: frees its slot for the predecessor
                p = at[v] - ns
                members[p].remove(v)
                spare[p] += 1
                at[v] = -1
            v = prev[v] if v != s0 else -1
        while v >= 0:
            # v is a placement node; prev[v] is the student moving into it.
            s = prev[v]
            old = at[s]
            if old >= 0:
                members[old - ns].remove(s)
                spare[old - ns] += 1
            p = v - ns
            members[p].append(s)
            spare[p] -= 1
            at[s] = v
            for w, c in arcs[s]:
                if w == v:
                    at_cost[s] = c
                    break
            v = -1 if s == s0 else prev[s]

        for v in touched:
            dist[v] = far
            done[v] = False
            prev[v] = -1

    return [-1 if x < 0 else x - ns for x in at]
