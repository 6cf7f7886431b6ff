"""A teacher's available weeks: a period fits only when every ISO week it touches is listed.

The engine's vectorised rule (week numbers, runs of listed weeks, one search a pair) is checked
against the rule written out day by day with `date.isocalendar()`, in rounds, in fill (the lazy
and the direct solve) and in the explanations' figures.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.matching.engine import KernelMode, SolverOptions, solve
from services.matching.engine.problem import RULE_WEEKS, build_problem, week_name, week_number
from shared.contracts.profiles import PlacementOffer, StudentProfile
from shared.explain import describe

from .helpers import brute_force, placement, student

# Around a year's end with a 53-week ISO year (2026) to cross: 2026-W50 ... 2027-W06.
FIRST_DAY = date(2026, 12, 7)
DAYS = 9 * 7


def _iso(d: date) -> str:
    year, week, _ = d.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _touched(starts: date, ends: date) -> list[str]:
    """Every ISO week of every day from `starts` to `ends`, in order (the rule as written)."""
    weeks: list[str] = []
    for k in range((ends - starts).days + 1):
        week = _iso(starts + timedelta(days=k))
        if week not in weeks:
            weeks.append(week)
    return weeks


def _fits(weeks: tuple[str, ...], offer: PlacementOffer) -> bool:
    if not weeks or offer.starts_on is None or offer.ends_on is None:
        return True
    return set(_touched(offer.starts_on, offer.ends_on)) <= set(weeks)


def teacher(tid: str, prefs: list[str], weeks: list[str], **kw: object) -> StudentProfile:
    return student(tid, prefs, participant="teacher", available_weeks=weeks, **kw)


def period(
    pid: str, capacity: int, starts: date | None, ends: date | None, **kw: object
) -> PlacementOffer:
    dates: dict[str, object] = {}
    if starts and ends:
        dates = {"starts_on": starts.isoformat(), "ends_on": ends.isoformat()}
    return placement(pid, capacity, kind="teacher", **dates, **kw)


WEEK_NAMES = sorted({_iso(FIRST_DAY + timedelta(days=k)) for k in range(DAYS)})


@st.composite
def periods(draw: st.DrawFn, pid: str) -> PlacementOffer:
    if draw(st.integers(0, 5)) == 0:
        return period(pid, draw(st.integers(0, 2)), None, None)
    start = draw(st.integers(0, DAYS - 1))
    length = draw(st.integers(0, 20))
    starts = FIRST_DAY + timedelta(days=start)
    ends = starts + timedelta(days=min(length, DAYS - 1 - start))
    return period(pid, draw(st.integers(0, 2)), starts, ends)


@st.composite
def teacher_rounds(draw: st.DrawFn) -> tuple[list[StudentProfile], list[PlacementOffer]]:
    n_p = draw(st.integers(1, 5))
    pids = [f"p{i}" for i in range(n_p)]
    places = [draw(periods(pid)) for pid in pids]
    teachers = []
    for i in range(draw(st.integers(1, 6))):
        weeks = draw(st.lists(st.sampled_from(WEEK_NAMES), max_size=7, unique=True))
        prefs = draw(st.lists(st.sampled_from(pids), max_size=3, unique=True))
        teachers.append(teacher(f"t{i}", prefs, weeks, priority=draw(st.integers(0, 1))))
    return teachers, places


def test_week_numbers_are_iso_weeks() -> None:
    for k in range(-400, 800):
        d = date(2027, 1, 1) + timedelta(days=k)
        assert week_name(week_number(d)) == _iso(d)
    assert week_number(date(2026, 12, 31)) + 1 == week_number(date(2027, 1, 4))  # 2026-W53


@settings(max_examples=300, deadline=None)
@given(case=teacher_rounds())
def test_the_rule_is_every_touched_week_listed(case) -> None:
    teachers, places = case
    pb = build_problem(teachers, places)
    for e in range(len(pb.edge_student)):
        s, p = int(pb.edge_student[e]), int(pb.edge_placement[e])
        failed = bool(pb.fails[e] & RULE_WEEKS)
        assert failed == (not _fits(teachers[s].available_weeks, places[p])), (s, p)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=teacher_rounds(), policy=st.sampled_from(["optimal", "stable"]))
def test_rounds_place_teachers_only_in_weeks_they_gave(case, policy, kernel: KernelMode) -> None:
    teachers, places = case
    res = solve(teachers, places, policy=policy, options=SolverOptions(kernel=kernel))
    by_id = {p.placement_id: p for p in places}
    for t, o in zip(teachers, res.outcomes, strict=True):
        if o.placement_id is not None:
            assert _fits(t.available_weeks, by_id[o.placement_id])
    if policy == "optimal":
        weight, neg_cost, _ = brute_force(teachers, places)
        assert res.summary.placed_weight == weight
        assert -res.summary.total_rank_cost == neg_cost


def _brute_fill(teachers, places, phase1) -> int:
    """The most teachers (weight) fill can add to phase 1, the rule written out."""
    used = {p.placement_id: 0 for p in places}
    for pid in phase1:
        if pid is not None:
            used[pid] += 1
    free = {p.placement_id: p.capacity - used[p.placement_id] for p in places}
    options = []
    for t, pid in zip(teachers, phase1, strict=True):
        if pid is not None:
            continue
        fit = [
            p.placement_id
            for p in places
            if p.placement_id not in t.preferences and _fits(t.available_weeks, p)
        ]
        options.append([(None, 0), *((q, 1 + t.priority) for q in fit)])
    best = 0
    for choice in itertools.product(*options):
        taken: dict[str, int] = {}
        for q, _ in choice:
            if q is not None:
                taken[q] = taken.get(q, 0) + 1
        if all(n <= free[q] for q, n in taken.items()):
            best = max(best, sum(w for _, w in choice))
    return best


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=teacher_rounds(), direct=st.sampled_from([0, 10**9]))
def test_fill_keeps_to_the_weeks(case, direct: int, kernel: KernelMode) -> None:
    """direct=0: the lazy solve (signatures with the week set); 10**9: every pair at once."""
    teachers, places = case
    plain = solve(teachers, places)
    res = solve(
        teachers,
        places,
        fill=True,
        options=SolverOptions(kernel=kernel, fill_nearest=1, fill_direct_pairs=direct),
    )
    by_id = {p.placement_id: p for p in places}
    weight = 0
    for t, o in zip(teachers, res.outcomes, strict=True):
        if o.filled:
            assert o.placement_id is not None
            assert _fits(t.available_weeks, by_id[o.placement_id])
            weight += 1 + t.priority
    assert weight == _brute_fill(teachers, places, [o.placement_id for o in plain.outcomes])


@settings(max_examples=150, deadline=None)
@given(case=teacher_rounds())
def test_explanations_name_the_weeks_not_listed(case) -> None:
    teachers, places = case
    res = solve(teachers, places)
    by_id = {p.placement_id: p for p in places}
    for t in teachers:
        outcome = res.explain(t.student_id)
        for note in outcome.explanation.better_choices:
            offer = by_id[note.placement_id]
            rules = [r for r in note.rules if r.rule == "available_weeks"]
            if _fits(t.available_weeks, offer):
                assert not rules
                continue
            assert note.status == "ineligible"
            (rule,) = rules
            assert offer.starts_on is not None
            assert offer.ends_on is not None
            touched = _touched(offer.starts_on, offer.ends_on)
            assert list(rule.unavailable_weeks) == [
                w for w in touched if w not in t.available_weeks
            ]
            assert (rule.starts_on, rule.ends_on) == (offer.starts_on, offer.ends_on)


def test_a_period_in_the_weeks_fits_and_one_beyond_says_which_week() -> None:
    teachers = [
        teacher("t1", ["p1", "p2"], ["2027-W10", "2027-W11"]),
        teacher("t2", ["p1"], []),  # no week limit
    ]
    places = [
        period("p1", 1, date(2027, 3, 10), date(2027, 3, 22)),  # W10, W11 and Monday of W12
        period("p2", 1, date(2027, 3, 8), date(2027, 3, 19)),  # W10 and W11
    ]
    res = solve(teachers, places)
    assert [(o.student_id, o.placement_id, o.rank) for o in res.outcomes] == [
        ("t1", "p2", 2),
        ("t2", "p1", 1),
    ]
    lines = describe(res.explain("t1"))
    assert lines == [
        "Placed at p2, choice 2.",
        "Choice 1 (p1): period 2027-03-10 to 2027-03-22 touches week 2027-W12, "
        "not among the available weeks",
    ]


def test_weeks_across_the_year_end_and_runs_in_words() -> None:
    teachers = [teacher("t1", ["p1"], ["2026-W52", "2027-W02"])]
    places = [period("p1", 1, date(2026, 12, 21), date(2027, 1, 15))]  # 2026-W52 ... 2027-W02
    res = solve(teachers, places)
    assert res.outcomes[0].placement_id is None
    (note,) = res.explain("t1").explanation.better_choices
    assert note.rules[0].unavailable_weeks == ("2026-W53", "2027-W01")
    assert describe(res.explain("t1"))[1] == (
        "Choice 1 (p1): period 2026-12-21 to 2027-01-15 touches weeks 2026-W53–2027-W01, "
        "not among the available weeks"
    )


def test_a_period_without_dates_is_not_limited_by_weeks() -> None:
    res = solve([teacher("t1", ["p1"], ["2027-W10"])], [period("p1", 1, None, None)])
    assert res.outcomes[0].placement_id == "p1"


def test_students_rounds_are_unchanged_by_the_rule() -> None:
    """A student has no weeks: the rule is not even evaluated (no cost for student rounds)."""
    pb = build_problem([student("s1", ["p1"])], [placement("p1", 1)])
    assert not pb.features.has_weeks
    assert np.all(pb.fails == 0)


@pytest.mark.parametrize(
    ("weeks", "message"),
    [
        (["2027-W53"], "2027-W53 is not a week of the calendar"),
        (["2027-W10", "2027-W10"], "a week is listed more than once"),
        (["2027-10"], "String should match pattern"),
    ],
)
def test_weeks_that_are_no_weeks_are_refused_naming_the_field(weeks, message) -> None:
    with pytest.raises(ValidationError) as caught:
        teacher("t1", [], weeks)
    assert "available_weeks" in str(caught.value)
    assert message in str(caught.value)


def test_only_a_teacher_gives_weeks() -> None:
    with pytest.raises(ValidationError, match="available_weeks: only a teacher"):
        student("s1", [], available_weeks=["2027-W10"])
