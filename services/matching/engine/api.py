"""The engine's one entry point: `solve`."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

from services.matching.engine.fill import fill_vacancies
from services.matching.engine.gcpause import paused_gc
from services.matching.engine.optimal import assign_optimal
from services.matching.engine.options import DEFAULT_OPTIONS, SolverOptions
from services.matching.engine.problem import Pin, Placement, Student, build_problem
from services.matching.engine.result import Policy, RoundResult
from services.matching.engine.stable import assign_stable


def solve(
    students: Sequence[Student],
    placements: Sequence[Placement],
    pinned: Sequence[Pin] = (),
    *,
    previous: Mapping[str, str] | None = None,
    policy: Policy = "optimal",
    excluded: Collection[tuple[str, str]] = (),
    options: SolverOptions | None = None,
    fill: bool = False,
    withdrawn: Collection[str] = (),
) -> RoundResult:
    """Match one round.

    `students`, `placements` and `pinned` are the contract models (`StudentProfile`,
    `PlacementOffer`, `PinnedPair`) or anything with the same attributes. `previous` maps
    student id to the placement id of its previous proposal: among optimal assignments the
    one keeping most of them is chosen (ignored by the `stable` policy). `excluded` are
    (student id, placement id) pairs never to match, such as declined proposals.
    `options` are the solver's knobs (`SolverOptions`; the defaults when None): they change
    how fast the optimal policy solves, never its objective.
    `fill`: after the round (either policy), place the students still unplaced at vacancies
    of their own region they did not rank but are eligible for (`fill.py`; docs/engine.md).
    `withdrawn`: placement ids known to be withdrawn, so explanations tell them from ids
    that were never known.

    Raises `MatchingInputError` for duplicate ids and for pins that cannot be kept.

    The cyclic garbage collector is paused for the whole process, every thread included,
    while the round is built and solved (`gcpause`).
    """
    with paused_gc():
        problem = build_problem(students, placements, pinned, excluded)
        started = time.perf_counter()
        if policy == "optimal":
            prev: dict[int, int] = {}
            if previous:
                s_index, p_index = problem.student_index, problem.placement_index
                for sid, pid in previous.items():
                    s = s_index.get(sid)
                    if s is not None:
                        prev[s] = p_index.get(pid, -1)
            assignment, stats = assign_optimal(problem, prev, options=options or DEFAULT_OPTIONS)
            solver = stats.solver
        elif policy == "stable":
            assignment = assign_stable(problem)
            solver = "deferred-acceptance"
        else:
            raise ValueError(f"unknown policy {policy!r}")
        filled = None
        if fill:
            opts = options or DEFAULT_OPTIONS
            before = assignment
            assignment, _, _ = fill_vacancies(problem, before, options=opts)
            filled = (before < 0) & (assignment >= 0)
            solver += "+fill"
        elapsed = time.perf_counter() - started
        return RoundResult(
            problem, assignment, policy, elapsed, solver, filled=filled, withdrawn=withdrawn
        )
