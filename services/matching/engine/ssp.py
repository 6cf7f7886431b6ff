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
taken as 0), so they are non-negative and only ever grow along a path. The searches are
short in practice (a handful of placements per student on national rounds) because the
potentials learn the prices of contested placements, and a fast path skips the heap
whenever the student's cheapest arc already ends the search.

One function, `_kernel`, runs two ways, with the same steps and so the same result:

* compiled by numba (machine integers, the GIL released), ten times faster, whenever every
  value the search can form fits in 64 bits (always, unless priorities or previous
  proposals run to astronomical counts) and the compiled kernel is loaded. It is loaded
  up front by long-running callers (`load_compiled`: the matching service at start-up, the
  benchmark), or on first need by a problem large enough to repay loading it
  (`SolverOptions.jit_min_arcs`; numba's import and its on-disk cache take about half a
  second; the very first compilation on a machine takes a few seconds and is cached beside
  this file, or in NUMBA_CACHE_DIR);
* interpreted, on Python integers (exact at any size), otherwise.

`SolverOptions.kernel` can force either way. The process keeps one `KernelLoader`, which
`load_compiled` fills; a caller may pass its own to `min_cost_assignment` (the tests do).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.matching.engine.options import DEFAULT_OPTIONS, SolverOptions

# The compiled kernel is used when (students + 4) * max(unplaced + 1, arc cost + 1) stays
# below this: a potential falls by less than `far` per student added, so every key,
# potential and path cost the search forms stays within that product.
_INT64_SAFE = 2**62

Ints = Sequence[int] | NDArray[np.int64]
Kernel = Callable[..., Any]


def _jit(*, cache: bool) -> Kernel:
    """numba's dispatcher for `_kernel`; it takes int64 arrays where `_kernel` takes lists."""
    import numba

    return numba.njit(cache=cache, nogil=True)(_kernel)


class KernelLoader:
    """The compiled kernel, compiled (or loaded from numba's cache) once and then kept.

    `jit(cache=...)` makes numba's dispatcher (`_jit` unless given). Thread-safe. When the
    kernel cannot be compiled, `load_or_none` warns once and then keeps returning None, so
    "auto" stays interpreted instead of trying again each time.
    """

    def __init__(self, jit: Callable[..., Kernel] | None = None) -> None:
        self._jit = jit or _jit
        self._kernel: Kernel | None = None
        self._lock = threading.Lock()
        self._failed = False

    @property
    def loaded(self) -> bool:
        return self._kernel is not None

    def load(self) -> Kernel:
        """The kernel, compiled or loaded now if it was not yet; raises when it cannot be.

        Where numba finds no writable cache directory (set NUMBA_CACHE_DIR), the kernel is
        compiled without caching and a RuntimeWarning says so.
        """
        with self._lock:
            if self._kernel is None:
                try:
                    kernel = self._jit(cache=True)
                except RuntimeError as exc:  # no writable cache locator
                    warnings.warn(
                        f"matching kernel compiled without a cache ({exc}); set NUMBA_CACHE_DIR "
                        "to a writable directory to keep it between runs",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    kernel = self._jit(cache=False)
                # One student, one placement: compiles now (or loads from the cache).
                one = np.ones(1, dtype=np.int64)
                zero = np.zeros(1, dtype=np.int64)
                kernel(zero, np.array([0, 1], dtype=np.int64), zero, zero, one, one, 1, 2)
                self._kernel = kernel
            return self._kernel

    def load_or_none(self) -> Kernel | None:
        """The kernel, or None (with a warning, once) when it cannot be loaded."""
        if self._failed:
            return None
        try:
            return self.load()
        except Exception as exc:
            self._failed = True
            warnings.warn(
                f"matching kernel could not be compiled ({exc!r}); using the interpreted kernel",
                RuntimeWarning,
                stacklevel=3,
            )
            return None


_LOADER = KernelLoader()  # the process's compiled kernel


def load_compiled() -> Kernel:
    """Compile the process's kernel with numba (or load it from numba's cache) once.

    Thread-safe; later calls return at once. Long-running callers call it up front (the
    matching service at start-up, the benchmark) so that rounds need not.
    """
    return _LOADER.load()


def min_cost_assignment(
    n_students: int,
    n_placements: int,
    adj_start: Ints,
    adj_placement: Ints,
    adj_cost: Ints,
    unplaced_cost: Ints,
    free: Ints,
    order: Ints,
    *,
    options: SolverOptions = DEFAULT_OPTIONS,
    loader: KernelLoader | None = None,
) -> list[int]:
    """Assign every student in `order` to a placement or to unplaced, at minimum total cost.

    Student `s` has arcs `adj_placement[adj_start[s]:adj_start[s + 1]]` (placement indices,
    0-based) with costs `adj_cost[...]`, and costs `unplaced_cost[s]` if unplaced. All costs
    must be non-negative integers. Returns, per student, the placement index or -1.

    `options.kernel` and `options.jit_min_arcs` choose the kernel (see the module); `loader`
    holds the compiled kernel (the process's one unless given).
    """
    at, _ = min_cost_assignment_with_prices(
        n_students,
        n_placements,
        adj_start,
        adj_placement,
        adj_cost,
        unplaced_cost,
        free,
        order,
        options=options,
        loader=loader,
    )
    return at


def min_cost_assignment_with_prices(
    n_students: int,
    n_placements: int,
    adj_start: Ints,
    adj_placement: Ints,
    adj_cost: Ints,
    unplaced_cost: Ints,
    free: Ints,
    order: Ints,
    *,
    options: SolverOptions = DEFAULT_OPTIONS,
    loader: KernelLoader | None = None,
) -> tuple[list[int], list[int]]:
    """`min_cost_assignment`, and the placements' prices: an optimal dual.

    The price of placement q is `-h[q]` for the kernel's final potentials h: 0 where a slot
    is free, and with u(s) = the cost of s's arc in the assignment plus its placement's price
    (or its unplaced cost), every arc satisfies cost + price >= u(s) and u(s) <= unplaced
    cost. That is the LP dual of the assignment, so it proves optimality, and a pair not
    given (fill's column generation) that violates it is one that could improve it. Callers
    check the certificate rather than trust it.
    """
    if len(free) != n_placements or len(adj_start) != n_students + 1:
        raise ValueError("free needs one entry per placement, adj_start one per student + 1")
    loader = loader or _LOADER
    far = 1 + _largest(unplaced_cost)
    top = max(far, 1 + _largest(adj_cost))
    kernel = None
    if (n_students + 4) * top < _INT64_SAFE:
        if options.kernel == "compiled":
            kernel = loader.load()
        elif options.kernel == "auto" and (
            loader.loaded or len(adj_placement) >= options.jit_min_arcs
        ):
            kernel = loader.load_or_none()
    if kernel is not None:
        args = (order, adj_start, adj_placement, adj_cost, unplaced_cost, free)
        at, h = kernel(*(np.ascontiguousarray(a, dtype=np.int64) for a in args), n_students, far)
        return at, [-x for x in h]  # numba returns Python lists
    at, h = _kernel(
        _ints(order),
        _ints(adj_start),
        _ints(adj_placement),
        _ints(adj_cost),
        _ints(unplaced_cost),
        _ints(free),
        n_students,
        far,
    )
    return at, [-x for x in h]


def _largest(values: Ints) -> int:
    if len(values) == 0:
        return 0
    if isinstance(values, np.ndarray):
        return int(values.max())
    return int(max(values))


def _ints(values: Ints) -> list[int]:
    """Python integers, which the interpreted kernel needs to stay exact."""
    if isinstance(values, np.ndarray):
        return list(values.tolist())
    return [int(v) for v in values]


def _kernel(  # noqa: C901 - compiled by numba: one flat, hot loop nest kept whole for speed
    order: Sequence[int],
    adj_start: Sequence[int],
    adj_placement: Sequence[int],
    adj_cost: Sequence[int],
    unplaced: Sequence[int],
    free: Sequence[int],
    n_students: int,
    far: int,
) -> tuple[list[int], list[int]]:
    """The solver proper, written for both numba and the interpreter: only indexing, ranges,
    integer arithmetic, lists built inside and heapq.

    `far` is 1 + the largest unplaced cost. A search from s ends by s's unplaced arc at key
    unplaced[s] at the latest, and keys at or beyond the end are never stored, so `far`
    acts as infinity. The students of placement p are member[first[p]:first[p] + count[p]];
    the last cell of `member` holds the student being added during its search.
    """
    n_placements = len(free)
    h = [0] * n_placements  # potentials (<= 0); the sink's is 0
    dist = [far] * n_placements  # search keys, `far` when not reached
    via = [-1] * n_placements  # the student moving into the placement on the best path
    via_cost = [0] * n_placements  # that student's cost there
    count = [0] * n_placements
    first = [0] * (n_placements + 1)
    for p in range(n_placements):
        first[p + 1] = first[p] + free[p]
    scratch = first[n_placements]
    member = [-1] * (scratch + 1)
    at = [-1] * n_students  # placement of each student, -1 when unplaced (or not yet added)
    at_cost = [0] * n_students
    touched = [0] * n_placements  # placements whose dist was set, to reset after a search
    settled = [0] * n_placements

    for s0 in order:
        # First hop: the key of placement q is c - h[q]; a free slot at q ends at key c
        # (h[q] = 0 there), unplaced at key unplaced[s0]. If an end is no dearer than the
        # cheapest first hop, no longer path can beat it. The end found is a free slot
        # (end_q, entered by end_w at cost end_c) or end_w out to unplaced (end_q = -1).
        d_end = unplaced[s0]
        end_q = -1
        end_w = s0
        end_c = 0
        best = far
        for a in range(adj_start[s0], adj_start[s0 + 1]):
            q = adj_placement[a]
            c = adj_cost[a]
            k = c - h[q]
            if k < best:
                best = k
            if k < d_end and count[q] < free[q]:
                d_end = k
                end_q = q
                end_c = c

        if d_end > best:
            # Dijkstra over full placements. s0 is expanded first, as the one member of a
            # placement of its own (the scratch cell at the end of `member`) at distance 0:
            # its unplaced end and free slots are no better than the end found above, so
            # only its full placements are queued. The sentinel (far, -1) is popped last and
            # ends the search (every stored key is below the end, which is below far).
            n_touched = 0
            n_settled = 0
            heap = [(far, -1)]
            member[scratch] = s0
            p = -1
            base = 0  # the path's cost up to p
            lo = scratch
            hi = scratch + 1
            while True:
                for i in range(lo, hi):
                    w = member[i]
                    bw = base - at_cost[w]
                    t = bw + unplaced[w]
                    if t < d_end:
                        d_end = t
                        end_q = -1
                        end_w = w
                    for a in range(adj_start[w], adj_start[w + 1]):
                        q = adj_placement[a]
                        if q == p:
                            continue
                        c = adj_cost[a]
                        k = bw + c - h[q]
                        if k < d_end and k < dist[q]:
                            if count[q] < free[q]:
                                d_end = k
                                end_q = q
                                end_w = w
                                end_c = c
                                continue
                            if dist[q] == far:
                                touched[n_touched] = q
                                n_touched += 1
                            dist[q] = k
                            via[q] = w
                            via_cost[q] = c
                            heappush(heap, (k, q))
                d, p = heappop(heap)
                while d < d_end and d > dist[p]:  # stale entries
                    d, p = heappop(heap)
                if d >= d_end:
                    break
                settled[n_settled] = p
                n_settled += 1
                base = d + h[p]
                lo = first[p]
                hi = lo + count[p]

            # Potentials: settled placements closer than the end move down by their slack.
            for i in range(n_settled):
                p = settled[i]
                if dist[p] < d_end:
                    h[p] += dist[p] - d_end
            for i in range(n_touched):
                dist[touched[i]] = far

        # Augment: the end student moves into end_q (or out to unplaced), then each student
        # on the path moves into the placement the one after it left.
        q = end_q
        w = end_w
        c = end_c
        while True:
            old = at[w]
            if q >= 0:
                member[first[q] + count[q]] = w
                count[q] += 1
            at[w] = q
            at_cost[w] = c
            if old < 0:
                break
            i = first[old]
            while member[i] != w:
                i += 1
            count[old] -= 1
            member[i] = member[first[old] + count[old]]
            q = old
            w = via[old]
            c = via_cost[old]

    return at, h
