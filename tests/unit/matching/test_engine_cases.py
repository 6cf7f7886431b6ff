"""Hand-made rounds: reasons, pins, exclusions, previous proposals, stable policy, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.synthetic import generate_round
from services.matching.engine import MatchingInputError, SolverOptions, solve
from services.matching.engine.optimal import assign_optimal
from services.matching.engine.problem import build_problem
from shared.contracts.profiles import PinnedPair

from .helpers import placement, student


def test_priority_first_then_rank() -> None:
    # s2 (priority 1) outweighs two ranks; then ranks decide.
    studs = [student("s1", ["p1", "p2"]), student("s2", ["p1"], priority=1)]
    res = solve(studs, [placement("p1", 1), placement("p2", 1)])
    assert [(o.placement_id, o.rank) for o in res.outcomes] == [("p2", 2), ("p1", 1)]
    assert res.summary.placed == 2
    assert res.summary.placed_weight == 3
    assert res.summary.total_rank_cost == 5


def test_placing_more_beats_better_ranks() -> None:
    # Giving s1 its first choice would leave s2 unplaced.
    studs = [student("s1", ["p1", "p2"]), student("s2", ["p1"])]
    res = solve(studs, [placement("p1", 1), placement("p2", 1)])
    assert [o.placement_id for o in res.outcomes] == ["p2", "p1"]


def test_rank_counts_unknown_ids_and_reasons() -> None:
    studs = [
        student("s1", ["gone", "p1"], priority=1),
        student("s2", ["p1"], skills=[]),
        student("s3", ["p2"]),
        student("s4", []),
    ]
    places = [placement("p1", 1), placement("p2", 1, required_skills=["welding"])]
    res = solve(studs, places)
    assert res.outcomes[0].rank == 2  # the withdrawn id still takes position 1
    assert res.outcomes[1].reason == "choices_full"
    assert res.outcomes[2].reason == "no_eligible_choice"
    assert res.outcomes[3].reason == "no_eligible_choice"
    assert res.summary.unknown_preferences == 1
    held = res.explain("s2").explanation.better_choices[0].held_by
    assert held is not None
    assert (held.slots, held.higher_priority) == (1, 1)
    rule = res.explain("s3").explanation.better_choices[0].rules[0]
    assert (rule.rule, rule.missing) == ("required_skills", ("welding",))
    assert res.explain("s1").explanation.better_choices[0].status == "unknown"


def test_each_eligibility_rule() -> None:
    from datetime import date

    places = [
        placement("skill", 5, required_skills=["cad"]),
        placement("prog", 5, programmes=["IN"]),
        placement("period", 5, starts_on=str(date(2027, 1, 4)), ends_on=str(date(2027, 3, 1))),
        placement("far", 5, site={"lat": 63.8, "lon": 20.3}),
        placement("ok", 5, site={"lat": 59.4, "lon": 18.0}),
    ]
    s = student(
        "s",
        ["skill", "prog", "period", "far", "ok"],
        programme="EE",
        available_from="2027-01-11",
        available_to="2027-05-01",
        home={"lat": 59.33, "lon": 18.07},
        max_travel_km=50,
    )
    res = solve([s], places)
    assert res.outcomes[0].placement_id == "ok"
    notes = res.explain("s").explanation.better_choices
    assert [[r.rule for r in n.rules] for n in notes] == [
        ["required_skills"],
        ["programmes"],
        ["period"],
        ["max_travel_km"],
    ]
    skill, prog, period, far = (n.rules[0] for n in notes)
    assert skill.missing == ("cad",)
    assert (prog.programme, prog.accepted) == ("EE", ("IN",))
    assert (period.available_from, period.available_to) == (date(2027, 1, 11), date(2027, 5, 1))
    assert (period.starts_on, period.ends_on) == (date(2027, 1, 4), date(2027, 3, 1))
    assert far.limit_km == 50
    assert far.distance_km is not None
    assert far.distance_km > 500


def test_pinned_pairs_use_capacity_and_stay() -> None:
    studs = [student("s1", ["p1"]), student("s2", ["p1"], priority=5), student("s3", ["p2"])]
    pins = [
        PinnedPair(student_id="s1", placement_id="p1"),
        PinnedPair(student_id="s3", placement_id="p1"),
    ]
    res = solve(studs, [placement("p1", 2), placement("p2", 1)], pins)
    assert [o.placement_id for o in res.outcomes] == ["p1", None, "p1"]
    assert res.outcomes[2].rank is None  # pinned outside its preferences
    assert res.explain("s3").pinned
    assert res.outcomes[1].reason == "choices_full"


def test_pin_errors() -> None:
    studs = [student("s1", ["p1"]), student("s2", ["p1"])]
    places = [placement("p1", 1)]
    with pytest.raises(MatchingInputError) as err:
        solve(
            studs,
            places,
            [
                PinnedPair(student_id="s1", placement_id="p1"),
                PinnedPair(student_id="s2", placement_id="p1"),
                PinnedPair(student_id="nobody", placement_id="p9"),
            ],
        )
    got = [(p.kind, p.index, p.field) for p in err.value.problems]
    assert got == [
        ("pinned", 1, "placement_id"),
        ("pinned", 2, "student_id"),
        ("pinned", 2, "placement_id"),
    ]


def test_duplicate_ids_are_errors() -> None:
    with pytest.raises(MatchingInputError) as err:
        solve([student("s1", []), student("s1", [])], [placement("p1", 1)])
    assert [(p.kind, p.index) for p in err.value.problems] == [("student", 1)]


def test_excluded_pairs_are_never_matched() -> None:
    studs = [student("s1", ["p1", "p2"])]
    res = solve(studs, [placement("p1", 1), placement("p2", 1)], excluded=[("s1", "p1")])
    assert res.outcomes[0].placement_id == "p2"
    assert [r.rule for r in res.explain("s1").explanation.better_choices[0].rules] == ["declined"]


def test_previous_keeps_students_where_they_were() -> None:
    # Two optimal assignments with the same rank cost; previous decides.
    studs = [student("s1", ["p1", "p2"]), student("s2", ["p2", "p1"])]
    places = [placement("p1", 1), placement("p2", 1)]
    assert [o.placement_id for o in solve(studs, places).outcomes] == ["p1", "p2"]
    swapped = solve(studs, places, previous={"s1": "p1", "s2": "p2"})
    assert [o.placement_id for o in swapped.outcomes] == ["p1", "p2"]
    tie = [student("a", ["p1", "p2"]), student("b", ["p1", "p2"])]
    for prev in ({"a": "p2", "b": "p1"}, {"a": "p1", "b": "p2"}):
        res = solve(tie, places, previous=prev)
        assert {o.student_id: o.placement_id for o in res.outcomes} == prev


def test_decline_moves_few_students() -> None:
    rnd = generate_round(600, seed=3)
    first = solve(rnd.students, rnd.placements)
    prev = {o.student_id: o.placement_id for o in first.outcomes if o.placement_id}
    decliner = next(iter(prev))
    again = solve(
        rnd.students, rnd.placements, previous=prev, excluded=[(decliner, prev[decliner])]
    )
    cold = solve(rnd.students, rnd.placements, excluded=[(decliner, prev[decliner])])
    assert again.summary.placed_weight == cold.summary.placed_weight
    assert again.summary.total_rank_cost == cold.summary.total_rank_cost

    def moved(res) -> int:
        return sum(
            1 for o in res.outcomes if o.student_id in prev and o.placement_id != prev[o.student_id]
        )

    assert moved(again) <= moved(cold)
    assert moved(again) <= 10


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 120))
def test_stable_policy_has_no_blocking_pairs(seed: int, n: int) -> None:
    rnd = generate_round(n, seed=seed, ranking_share=0.6)
    res = solve(rnd.students, rnd.placements, policy="stable")
    assert res.summary.blocking_pairs == 0
    assert res.summary.solver == "deferred-acceptance"
    opt = solve(rnd.students, rnd.placements)
    assert opt.summary.placed_weight >= res.summary.placed_weight


def test_stable_respects_rankings() -> None:
    studs = [student("s1", ["p1"]), student("s2", ["p1"], priority=3)]
    places = [placement("p1", 1, ranking=["s1"])]
    assert solve(studs, places, policy="stable").outcomes[0].placement_id == "p1"
    # The optimal policy places the higher priority, which makes a blocking pair.
    opt = solve(studs, places)
    assert opt.outcomes[1].placement_id == "p1"
    assert opt.summary.blocking_pairs == 1


def test_ranking_names_students_outside_the_round() -> None:
    # The ranking lists s1 after two students not in this round; s2 is absent from it, so
    # p1 still prefers s1, whatever the priorities.
    studs = [student("s1", ["p1"]), student("s2", ["p1"], priority=3)]
    places = [placement("p1", 1, ranking=["g1", "g2", "s1"])]
    stable = solve(studs, places, policy="stable")
    assert [o.placement_id for o in stable.outcomes] == ["p1", None]
    assert stable.summary.blocking_pairs == 0
    opt = solve(studs, places)
    assert [o.placement_id for o in opt.outcomes] == [None, "p1"]
    assert opt.summary.blocking_pairs == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_or_tools_on_generated_rounds(seed: int) -> None:
    """The whole pipeline (reductions, components, both solvers) against OR-Tools' min-cost
    flow with the same exact lexicographic costs, on realistic rounds."""
    min_cost_flow = pytest.importorskip("ortools.graph.python.min_cost_flow")
    rnd = generate_round(1500, seed=seed)
    pb = build_problem(rnd.students, rnd.placements)
    got, _ = assign_optimal(pb)
    got_sparse, _ = assign_optimal(pb, options=SolverOptions(lsa_max_cells=0))
    el = pb.eligible
    es, ep, er = pb.edge_student[el], pb.edge_placement[el], pb.edge_rank[el]
    prio = np.array(pb.priority)
    w = 1 + int((er * er).max(initial=0)) * pb.n_students
    n, m = pb.n_students, pb.n_placements
    flow = min_cost_flow.SimpleMinCostFlow()
    src, snk = n + m, n + m + 1
    tails = np.concatenate([np.full(n, src), es, np.arange(n), n + np.arange(m)])
    heads = np.concatenate([np.arange(n), n + ep, np.full(n, snk), np.full(m, snk)])
    caps = np.concatenate([np.ones(n), np.ones(len(es)), np.ones(n), pb.capacity]).astype(np.int64)
    costs = np.concatenate([np.zeros(n), er * er - w * (1 + prio[es]), np.zeros(n + m)]).astype(
        np.int64
    )
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supply = np.zeros(n + m + 2, dtype=np.int64)
    supply[src], supply[snk] = n, -n
    flow.set_nodes_supplies(np.arange(n + m + 2), supply)
    assert flow.solve() == flow.OPTIMAL

    rank = {(int(s), int(p)): int(r) for s, p, r in zip(es, ep, er, strict=True)}

    def value(a: np.ndarray) -> int:
        return sum(
            rank[(s, int(a[s]))] ** 2 - w * (1 + int(prio[s]))
            for s in np.flatnonzero(a >= 0).tolist()
        )

    assert value(got) == flow.optimal_cost()
    assert value(got_sparse) == flow.optimal_cost()
