"""Round diffing and read-model rules of the matching service (pure functions)."""

from __future__ import annotations

from services.matching.domain.model import Outcome, RoundInput, Standing
from services.matching.domain.rules import (
    capacity_left,
    pins_within_capacity,
    plan_round,
    round_problem,
)
from services.matching.settings import MatchingSettings
from tests.support.factories import placement, student


def _standing(mid: str, sid: str, pid: str, **kw: object) -> Standing:
    base: dict[str, object] = {
        "match_id": mid,
        "student_id": sid,
        "placement_id": pid,
        "company_id": "c-1",
        "region": "SE-AB",
        "rank": 1,
        "status": "proposed",
    }
    base.update(kw)
    return Standing(**base)  # type: ignore[arg-type]


def _problem(standing: tuple[Standing, ...] = (), **kw: object) -> RoundInput:
    base: dict[str, object] = {
        "region": "SE-AB",
        "students": (student("s-1", prefs=("p-1", "p-2")), student("s-2", prefs=("p-1",))),
        "placements": (placement("p-1", capacity=1), placement("p-2", capacity=1)),
        "standing": standing,
        "excluded": frozenset(),
    }
    base.update(kw)
    return RoundInput(**base)  # type: ignore[arg-type]


def test_unchanged_outcome_makes_no_proposal_and_no_cancellation() -> None:
    standing = (_standing("m1", "s-1", "p-1"),)
    plan = plan_round(
        _problem(standing),
        [Outcome("s-1", "p-1", 1, None), Outcome("s-2", None, None, "choices_full")],
    )
    assert plan.proposals == ()
    assert plan.cancellations == ()
    assert [m.match_id for m in plan.kept] == ["m1"]
    assert plan.unplaced_by_reason == {"choices_full": 1}


def test_moved_student_is_cancelled_as_superseded_and_proposed_anew() -> None:
    standing = (_standing("m1", "s-1", "p-1"),)
    plan = plan_round(
        _problem(standing), [Outcome("s-1", "p-2", 2, None), Outcome("s-2", "p-1", 1, None)]
    )
    assert [(c.match.match_id, c.reason) for c in plan.cancellations] == [("m1", "superseded")]
    assert sorted((p.student_id, p.placement_id, p.rank) for p in plan.proposals) == [
        ("s-1", "p-2", 2),
        ("s-2", "p-1", 1),
    ]


def test_cancellation_reasons() -> None:
    standing = (
        _standing("m1", "s-1", "p-gone"),
        _standing("m2", "s-9", "p-1"),
        _standing("m3", "s-2", "p-2"),
        _standing("m4", "s-3", "p-2"),
    )
    problem = _problem(
        standing,
        students=(
            student("s-1", prefs=("p-1",)),
            student("s-2", prefs=("p-2",)),
            student("s-3", prefs=("p-2",)),
        ),
        placements=(placement("p-1", capacity=1), placement("p-2", capacity=1)),
        withdrawn_students=frozenset({"s-9"}),
        withdrawn_placements=frozenset({"p-gone"}),
    )
    plan = plan_round(
        problem,
        [
            Outcome("s-1", None, None, "no_eligible_choice"),
            Outcome("s-2", "p-2", 1, None),
            Outcome("s-3", None, None, "choices_full"),
        ],
    )
    reasons = {c.match.match_id: c.reason for c in plan.cancellations}
    assert reasons == {
        "m1": "placement_withdrawn",
        "m2": "student_withdrawn",
        "m4": "capacity_reduced",
    }
    assert plan.proposals == ()


def test_capacity_left_subtracts_other_regions_use_and_never_goes_negative() -> None:
    offers = capacity_left(
        [placement("p-1", capacity=3), placement("p-2", capacity=1)], {"p-1": 1, "p-2": 5}
    )
    assert [(p.placement_id, p.capacity) for p in offers] == [("p-1", 2), ("p-2", 0)]


def test_pins_beyond_capacity_keep_confirmed_first() -> None:
    accepted = _standing("m1", "s-1", "p-1", student_accepted=True)
    confirmed = _standing("m2", "s-2", "p-1", status="confirmed")
    plain = _standing("m3", "s-3", "p-1")
    kept, dropped = pins_within_capacity([accepted, confirmed, plain], {"p-1": 1})
    assert kept == [confirmed]
    assert dropped == [accepted]


def test_round_problem_pins_accepted_and_confirmed_and_passes_previous_and_exclusions() -> None:
    standing = (
        _standing("m1", "s-1", "p-1", company_accepted=True),
        _standing("m2", "s-2", "p-2"),
    )
    excluded = frozenset({("s-2", "p-1")})
    problem = round_problem(_problem(standing, excluded=excluded), "stable")
    assert [(p.student_id, p.placement_id) for p in problem.pinned] == [("s-1", "p-1")]
    assert problem.previous == {"s-1": "p-1", "s-2": "p-2"}
    assert problem.excluded == excluded
    assert problem.policy == "stable"
    assert [s.student_id for s in problem.students] == ["s-1", "s-2"]


def test_a_supplementary_round_pins_every_standing_match_within_capacity() -> None:
    confirmed = _standing("m1", "s-1", "p-1", status="confirmed")
    proposed = _standing("m2", "s-2", "p-2")
    override = _standing("m3", "s-3", "p-2", override=True)
    students = tuple(student(sid, prefs=("p-1",)) for sid in ("s-1", "s-2", "s-3"))
    problem = _problem((confirmed, proposed, override), students=students)
    ordinary = round_problem(problem, "optimal")
    assert [(p.student_id, p.placement_id) for p in ordinary.pinned] == [
        ("s-1", "p-1"),
        ("s-3", "p-2"),
    ]
    supplementary = round_problem(problem, "optimal", kind="supplementary", fill=True)
    # p-2 has one slot: the override is kept before the plain proposal
    assert [(p.student_id, p.placement_id) for p in supplementary.pinned] == [
        ("s-1", "p-1"),
        ("s-3", "p-2"),
    ]
    assert supplementary.fill is True
    wider = _problem(
        (confirmed, proposed),
        students=students,
        placements=(placement("p-1", capacity=1), placement("p-2", capacity=2)),
    )
    pinned = round_problem(wider, "optimal", kind="supplementary").pinned
    assert [(p.student_id, p.placement_id) for p in pinned] == [("s-1", "p-1"), ("s-2", "p-2")]


def test_a_pinned_pair_is_not_excluded_and_withdrawn_placements_are_passed_on() -> None:
    override = _standing("m1", "s-1", "p-1", override=True, rank=None)
    excluded = frozenset({("s-1", "p-1"), ("s-2", "p-1")})
    problem = round_problem(
        _problem((override,), excluded=excluded, withdrawn_placements=frozenset({"p-7"})),
        "optimal",
        explain=False,
    )
    assert [(p.student_id, p.placement_id) for p in problem.pinned] == [("s-1", "p-1")]
    assert problem.excluded == frozenset({("s-2", "p-1")})
    assert problem.withdrawn == frozenset({"p-7"})
    assert problem.explain is False


def test_a_filled_outcome_is_proposed_without_a_rank() -> None:
    plan = plan_round(
        _problem(),
        [Outcome("s-1", "p-2", None, None, filled=True), Outcome("s-2", None, None, "x")],
    )
    assert [(p.student_id, p.placement_id, p.rank, p.filled) for p in plan.proposals] == [
        ("s-1", "p-2", None, True)
    ]
    assert plan.unplaced_by_reason == {"x": 1}


def test_settings_auto_regions_and_group_id() -> None:
    s = MatchingSettings(auto_regions="SE-AB, SE-O")
    assert s.is_automatic("SE-O")
    assert not s.is_automatic("FI-19")
    assert s.any_automatic
    assert not MatchingSettings(auto_regions=" ").any_automatic
    assert MatchingSettings(auto_regions="*").is_automatic("FI-19")
    assert MatchingSettings(topic_prefix="t1.").group_id == "t1.matching"
    assert not hasattr(MatchingSettings(), "test_pause_after_commit_seconds")
