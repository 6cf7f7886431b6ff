"""`build_problem` on duck-typed records: the arrays it reads off each attribute.

The records here are plain objects (lists where the contract models have tuples, optional
attributes absent), so that what the engine reads is only what the `Student` and
`Placement` protocols name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np

from services.matching.engine.problem import (
    RULE_DISTANCE,
    RULE_PERIOD,
    RULE_PROGRAMME,
    RULE_SKILLS,
    build_problem,
)

from .helpers import placement, student


@dataclass
class Pt:
    lat: float
    lon: float


@dataclass
class Stud:
    student_id: str
    preferences: list[str] = field(default_factory=list)
    programme: str | None = None
    skills: list[str] = field(default_factory=list)
    available_from: date | None = None
    available_to: date | None = None
    home: Pt | None = None
    max_travel_km: float | None = None
    priority: int = 0
    region: str = "R1"


@dataclass
class Place:
    placement_id: str
    capacity: int = 1
    required_skills: list[str] = field(default_factory=list)
    programmes: list[str] = field(default_factory=list)
    starts_on: date | None = None
    ends_on: date | None = None
    site: Pt | None = None
    ranking: list[str] | None = None
    region: str = "R1"


def test_features_of_each_attribute() -> None:
    jan, feb, mar = date(2027, 1, 11), date(2027, 2, 19), date(2027, 3, 5)
    studs = [
        Stud("a", ["p1", "p2"], "TE", ["weld", "cad"], jan, mar, Pt(59.5, 18.0), 10.0, 2, "R2"),
        Stud("b", ["p2", "gone", "p1"], "", ["cad"], None, feb, None, None, 10**30, "R1"),
        Stud("c", [], None, [], jan, None, Pt(60.0, 17.0), -0.0),
    ]
    places = [
        Place("p1", 2, ["cad"], ["TE"], jan, feb, Pt(59.5, 18.0), None, "R3"),
        Place("p2", 1, ["weld"], [], None, mar, None, ["c", "x", "a", "c"], "R2"),
    ]
    pb = build_problem(studs, places)
    f = pb.features
    assert f.skill_names == ("cad", "weld")
    assert f.need[:, 0].tolist() == [1, 2]
    assert f.have[:, 0].tolist() == [3, 1, 0]
    assert f.programme_names == ("TE",)
    assert f.accepts[:, 0].tolist() == [1, 0]
    assert f.open_all.tolist() == [False, True]
    assert f.mine[:, 0].tolist() == [1, 0, 0]  # an empty programme is no programme
    assert f.student_programme == ("TE", "", None)
    assert f.placement_programmes == (("TE",), ())
    assert f.s_from.tolist() == [jan.toordinal(), -1, jan.toordinal()]
    assert f.s_to.tolist() == [mar.toordinal(), feb.toordinal(), -1]
    assert f.p_start.tolist() == [jan.toordinal(), -1]
    assert f.p_end.tolist() == [feb.toordinal(), mar.toordinal()]
    assert f.p_week0.tolist() == [(jan.toordinal() - 1) // 7, -1]
    assert f.travel.tolist() == [10.0, -1.0, 0.0]
    assert np.signbit(f.travel[2])  # -0.0 is kept as given
    assert f.h_has.tolist() == [True, False, True]
    assert f.h_lat[[0, 2]].tolist() == [59.5, 60.0]
    assert np.isnan(f.h_lat[1])
    assert np.isnan(f.h_lon[1])
    assert f.p_has.tolist() == [True, False]
    assert f.region_names == ("R2", "R1", "R3")  # students' first, in order of appearance
    assert f.student_region.tolist() == [0, 1, 1]
    assert f.placement_region.tolist() == [2, 0]
    assert not f.has_weeks
    # Edges in student-then-rank order; ranks count the unknown id.
    assert pb.edge_student.tolist() == [0, 0, 1, 1]
    assert pb.edge_placement.tolist() == [0, 1, 1, 0]
    assert pb.edge_rank.tolist() == [1, 2, 1, 3]
    assert pb.unknown_preferences == 1
    assert pb.fails.tolist() == [0, 0, RULE_SKILLS, RULE_PROGRAMME]
    assert pb.priority == (2, 10**30, 0)
    assert pb.capacity.tolist() == [2, 1]
    assert pb.preferences == (("p1", "p2"), ("p2", "gone", "p1"), ())
    # Ranked students who are not in the round are skipped; a repeat keeps its first place.
    assert pb.ranking_pos == {1: {2: 0, 0: 1}}
    assert pb.excluded_keys.dtype == np.int64
    assert len(pb.excluded_keys) == 0


def test_period_and_distance_rules() -> None:
    jan, feb = date(2027, 1, 11), date(2027, 2, 19)
    studs = [
        Stud("near", ["p"], home=Pt(59.0, 18.0), max_travel_km=5.0),
        Stud("far", ["p"], home=Pt(60.0, 18.0), max_travel_km=5.0),
        Stud("late", ["p"], available_from=date(2027, 2, 1), available_to=feb),
    ]
    pb = build_problem(studs, [Place("p", 3, starts_on=jan, ends_on=feb, site=Pt(59.0, 18.01))])
    assert pb.fails.tolist() == [0, RULE_DISTANCE, RULE_PERIOD]


def test_lists_and_tuples_give_the_same_problem() -> None:
    studs = [
        student("s1", ["p1", "p2"], skills=["cad"], programme="TE"),
        student("s2", ["p2"], home={"lat": 59.0, "lon": 18.0}, max_travel_km=30.0),
    ]
    places = [
        placement("p1", 1, required_skills=["cad"], programmes=["TE"], ranking=["s2", "s1"]),
        placement("p2", 2, site={"lat": 59.1, "lon": 18.1}),
    ]
    as_lists = [
        Stud(
            s.student_id,
            list(s.preferences),
            s.programme,
            list(s.skills),
            s.available_from,
            s.available_to,
            None if s.home is None else Pt(s.home.lat, s.home.lon),
            s.max_travel_km,
            s.priority,
            s.region,
        )
        for s in studs
    ]
    places_as_lists = [
        Place(
            p.placement_id,
            p.capacity,
            list(p.required_skills),
            list(p.programmes),
            p.starts_on,
            p.ends_on,
            None if p.site is None else Pt(p.site.lat, p.site.lon),
            None if p.ranking is None else list(p.ranking),
            p.region,
        )
        for p in places
    ]
    a, b = build_problem(studs, places), build_problem(as_lists, places_as_lists)
    for name in ("edge_student", "edge_placement", "edge_rank", "fails", "capacity", "free"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("have", "need", "accepts", "mine", "travel", "h_lat", "p_lat", "s_from"):
        x, y = getattr(a.features, name), getattr(b.features, name)
        assert np.array_equal(x, y, equal_nan=True), name
    assert a.preferences == b.preferences
    assert a.features.placement_programmes == b.features.placement_programmes
    assert a.ranking_pos == b.ranking_pos == {0: {1: 0, 0: 1}}


def test_ids_are_indexed_as_given() -> None:
    class Name(str):
        pass

    # An id holding the NUL character, and a `str` subclass, are indexed like any other.
    studs = [Stud(Name("s\0one"), ["p\0one", "p2"]), Stud("s2", ["p2"])]
    places = [Place("p\0one", ranking=["s2", "s\0one"]), Place("p2", 2)]
    pb = build_problem(studs, places)
    assert pb.student_ids == ("s\0one", "s2")
    assert type(pb.student_ids[0]) is Name  # the ids as the records give them
    assert pb.student_index == {"s\0one": 0, "s2": 1}
    assert pb.placement_index == {"p\0one": 0, "p2": 1}
    assert pb.edge_placement.tolist() == [0, 1, 1]
    assert pb.ranking_pos == {0: {1: 0, 0: 1}}


def test_no_records() -> None:
    pb = build_problem([], [])
    assert (pb.n_students, pb.n_placements, len(pb.edge_student)) == (0, 0, 0)
    assert pb.features.have.shape == (0, 1)
    assert pb.features.region_names == ()
    pb = build_problem([Stud("s", ["p"], skills=["x"], home=Pt(1.0, 2.0))], [])
    assert pb.unknown_preferences == 1
    assert pb.features.have.shape == (1, 1)
    assert pb.features.h_has.tolist() == [True]
    pb = build_problem([], [replace(Place("p"), required_skills=["x"], site=None)])
    assert pb.features.need[:, 0].tolist() == [1]
    assert pb.features.p_has.tolist() == [False]
