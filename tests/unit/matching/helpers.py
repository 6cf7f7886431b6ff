"""Tiny rounds and a brute-force solver to check the engine against."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence

from services.matching.engine.problem import build_problem
from shared.contracts.profiles import PinnedPair, PlacementOffer, StudentProfile


def student(sid: str, prefs: Sequence[str], **kw: object) -> StudentProfile:
    return StudentProfile.model_validate_json(
        json.dumps({"student_id": sid, "region": "SE-AB", "preferences": list(prefs), **kw})
    )


def placement(pid: str, capacity: int, **kw: object) -> PlacementOffer:
    record = {
        "placement_id": pid,
        "company_id": "c-" + pid,
        "region": "SE-AB",
        "capacity": capacity,
    }
    return PlacementOffer.model_validate_json(json.dumps({**record, **kw}))


def brute_force(
    students: Sequence[StudentProfile],
    placements: Sequence[PlacementOffer],
    pinned: Sequence[PinnedPair] = (),
    excluded: Sequence[tuple[str, str]] = (),
    previous: Mapping[str, str] | None = None,
) -> tuple[int, int, int]:
    """Best (placed weight, -rank cost, kept previous) over every feasible assignment."""
    pb = build_problem(students, placements, pinned, excluded)
    options: list[list[int]] = []
    for s in range(pb.n_students):
        if pb.pinned[s] >= 0:
            options.append([-2])  # pinned: not chosen here
            continue
        mine = [
            int(p)
            for p, ok, st in zip(pb.edge_placement, pb.eligible, pb.edge_student, strict=True)
            if ok and st == s
        ]
        options.append([-1, *mine])
    rank = {
        (int(s), int(p)): int(r)
        for s, p, r in zip(pb.edge_student, pb.edge_placement, pb.edge_rank, strict=True)
    }
    previous = previous or {}
    best: tuple[int, int, int] | None = None
    for choice in itertools.product(*options):
        used = [0] * pb.n_placements
        for p in choice:
            if p >= 0:
                used[p] += 1
        if any(u > int(f) for u, f in zip(used, pb.free, strict=True)):
            continue
        weight = cost = kept = 0
        for s, p in enumerate(choice):
            q = int(pb.pinned[s]) if p == -2 else p
            if q >= 0:
                weight += 1 + pb.priority[s]
                cost += rank.get((s, q), 0) ** 2
            sid = pb.student_ids[s]
            if p != -2 and sid in previous:
                kept += int(q >= 0 and pb.placement_ids[q] == previous[sid])
        key = (weight, -cost, kept)
        if best is None or key > best:
            best = key
    assert best is not None
    return best
