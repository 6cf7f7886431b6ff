"""The competence gap (`domain/gap.py`) and its words (`entrypoints/reports.gap_text`): terms,
the rounds of a term, demand against supply per skill and programme, the slots left empty and
the students left unplaced for want of one, the trend, the biggest gaps, and no count of
students under 5 shown, in JSON, in words and in the downloads."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.placements.domain import gap
from services.placements.domain.model import OutcomeRecord, Placement, Round
from services.placements.domain.outcomes import hard_failures
from services.placements.entrypoints import reports
from services.placements.entrypoints.web.i18n import Words
from shared.contracts.outcomes import ChoiceNote, Explanation, RuleFailure, StudentOutcome
from shared.contracts.profiles import GeoPoint, PlacementOffer, StudentProfile

REGION = "SE-AB"
SPRING = gap.Term(2027, gap.SPRING)
EN = Words("en")
HOME = GeoPoint(lat=59.3, lon=18.0)
FAR = GeoPoint(lat=60.5, lon=18.0)  # about 133 km north of HOME
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def offer(
    pid: str,
    capacity: int = 1,
    skills: Sequence[str] = (),
    programmes: Sequence[str] = (),
    *,
    starts: date | None = date(2027, 1, 18),
    ends: date | None = date(2027, 3, 12),
    site: GeoPoint | None = HOME,
    kind: str = "student",
    region: str = REGION,
) -> PlacementOffer:
    return PlacementOffer.model_validate(
        {
            "placement_id": pid,
            "kind": kind,
            "company_id": "c-1",
            "region": region,
            "capacity": capacity,
            "required_skills": tuple(skills),
            "programmes": tuple(programmes),
            "starts_on": starts,
            "ends_on": ends,
            "site": site,
        },
        strict=False,
    )


def student(
    sid: str,
    skills: Sequence[str] = (),
    programme: str | None = "EE",
    *,
    home: GeoPoint | None = HOME,
    travel: float | None = 40.0,
    available: tuple[date, date] | None = None,
) -> StudentProfile:
    first, last = available or (None, None)
    return StudentProfile.model_validate(
        {
            "student_id": sid,
            "region": REGION,
            "programme": programme,
            "skills": tuple(skills),
            "home": home,
            "max_travel_km": travel,
            "available_from": first,
            "available_to": last,
        },
        strict=False,
    )


def missing_skill(pid: str, *skills: str) -> ChoiceNote:
    rule = RuleFailure(rule="required_skills", missing=tuple(skills))
    return ChoiceNote(rank=1, placement_id=pid, status="ineligible", rules=(rule,))


def wrong_programme(pid: str, mine: str, *accepted: str) -> ChoiceNote:
    rule = RuleFailure(rule="programmes", programme=mine, accepted=tuple(accepted))
    return ChoiceNote(rank=1, placement_id=pid, status="ineligible", rules=(rule,))


def record(
    round_id: uuid.UUID,
    sid: str,
    pid: str | None = None,
    notes: Sequence[ChoiceNote] = (),
    *,
    programme: str | None = "EE",
) -> OutcomeRecord:
    o = StudentOutcome(
        student_id=sid,
        placement_id=pid,
        rank=1 if pid else None,
        reason=None if pid else "no_eligible_choice",
        explanation=Explanation(better_choices=tuple(notes), choices=len(notes)),
    )
    return OutcomeRecord(round_id, REGION, dry_run=False, outcome=o, programme=programme)


def completed(n: int = 0, **kw: object) -> Round:
    values: dict[str, object] = {
        "round_id": uuid.uuid4(),
        "region": REGION,
        "policy": "optimal",
        "status": "completed",
        "requested_at": T0 + timedelta(days=n),
        "completed_at": T0 + timedelta(days=n, minutes=1),
    }
    values.update(kw)
    return Round(**values)  # type: ignore[arg-type]


def the_report(
    offers: Sequence[PlacementOffer],
    rounds: Sequence[tuple[Round, Sequence[OutcomeRecord]]],
    profiles: Sequence[StudentProfile],
    term: gap.Term = SPRING,
    *,
    withdrawn: Sequence[str] = (),
    top: int = gap.TOP,
) -> gap.GapReport:
    placements = [Placement(o, withdrawn=o.placement_id in withdrawn) for o in offers]
    terms = gap.RegionTerms.of(REGION, placements, rounds)
    return gap.report(terms, term, {p.student_id: p for p in profiles}, top=top)


def key(found: gap.GapReport, dimension: str, name: str) -> gap.KeyGap:
    items = found.skills if dimension == "skill" else found.programmes
    return next(g for g in items if g.key == name)


# ----------------------------------------------------------------------------------- terms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-spring", SPRING),
        ("2027-autumn", gap.Term(2027, gap.AUTUMN)),
        (" 2027-VT ", SPRING),
        ("2026-ht", gap.Term(2026, gap.AUTUMN)),
        ("HT 2026", gap.Term(2026, gap.AUTUMN)),
        ("2027-kevät", SPRING),
        ("syksy 2027", gap.Term(2027, gap.AUTUMN)),
        ("2027 Spring", SPRING),
    ],
)
def test_a_term_is_read_in_every_language(text: str, expected: gap.Term) -> None:
    assert gap.parse_term(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "like 2027-spring"),
        ("2027", "like 2027-spring"),
        ("spring", "like 2027-spring"),
        ("2027-03", "like 2027-spring"),
        ("2027-winter", "'winter' is not a term"),
        ("1999-spring", "2000 to 2100"),
        ("2027-spring; DROP", "like 2027-spring"),
    ],
)
def test_what_is_not_a_term_is_refused_with_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        gap.parse_term(text)


def test_a_term_is_a_half_year_and_a_placement_is_of_the_term_it_starts_in() -> None:
    assert (SPRING.code, SPRING.starts_on, SPRING.ends_on) == (
        "2027-spring",
        date(2027, 1, 1),
        date(2027, 6, 30),
    )
    autumn = gap.Term(2027, gap.AUTUMN)
    assert (autumn.starts_on, autumn.ends_on) == (date(2027, 7, 1), date(2027, 12, 31))
    assert gap.Term.of(date(2027, 6, 30)) == SPRING
    assert gap.Term.of(date(2027, 7, 1)) == autumn
    assert SPRING < autumn < gap.Term(2028, gap.SPRING)
    assert gap.placement_term(offer("p", starts=date(2027, 6, 20), ends=date(2027, 8, 1))) == SPRING
    assert gap.placement_term(offer("p", starts=None, ends=date(2027, 9, 1))) == autumn
    assert gap.placement_term(offer("p", starts=None, ends=None)) is None


def test_a_round_is_of_the_term_most_of_its_placements_start_in() -> None:
    dated = {"p-spring": SPRING, "p-spring2": SPRING, "p-autumn": gap.Term(2027, gap.AUTUMN)}
    rid = uuid.uuid4()
    records = [
        record(rid, "s-1", "p-autumn"),
        record(rid, "s-2", "p-spring"),
        record(rid, "s-3", None, [missing_skill("p-spring2", "x")]),
        record(rid, "s-4", None, [missing_skill("p-unknown", "x")]),
    ]
    assert gap.round_term(records, dated) == SPRING
    tie = [record(rid, "s-1", "p-autumn"), record(rid, "s-2", "p-spring")]
    assert gap.round_term(tie, dated) == SPRING  # a tie goes to the earlier term
    assert gap.round_term([record(rid, "s-1", "p-unknown")], dated) is None


def test_the_regions_terms_the_default_and_what_is_left_out() -> None:
    autumn = gap.Term(2026, gap.AUTUMN)
    old, new, dry, teachers = completed(0), completed(5), completed(9, dry_run=True), completed(7)
    offers = [
        offer("p-a", starts=date(2026, 9, 1), ends=date(2026, 10, 1)),
        offer("p-s"),
        offer("p-2028", starts=date(2028, 2, 1), ends=date(2028, 3, 1)),
        offer("p-gone", starts=date(2029, 2, 1), ends=date(2029, 3, 1)),
        offer("p-teacher", starts=date(2030, 2, 1), ends=date(2030, 3, 1), kind="teacher"),
        offer("p-other", starts=date(2031, 2, 1), ends=date(2031, 3, 1), region="SE-O"),
    ]
    placements = [Placement(o, withdrawn=o.placement_id == "p-gone") for o in offers]
    rounds = [
        (new, [record(new.round_id, "s-1", "p-s")]),
        (old, [record(old.round_id, "s-1", "p-a")]),
        (dry, [record(dry.round_id, "s-1", "p-2028")]),
        (teachers, [record(teachers.round_id, "t-1", "p-teacher")]),
    ]
    terms = gap.RegionTerms.of(REGION, placements, rounds)
    # Withdrawn, teachers', other regions' placements and dry runs make no term.
    assert [t.code for t in terms.terms] == ["2026-autumn", "2027-spring", "2028-spring"]
    assert terms.default == SPRING  # the newest term with a round
    assert [r.round_id for r, _ in terms.rounds_of(autumn)] == [old.round_id]
    assert terms.students_of(SPRING) == {"s-1"}
    nothing = gap.RegionTerms.of(REGION, [], [])
    assert (nothing.terms, nothing.default) == ((), None)


# ------------------------------------------------------------------- demand against supply


def battery_world() -> tuple[
    list[PlacementOffer], list[StudentProfile], Round, list[OutcomeRecord]
]:
    """p-hv (8 slots) and p-hv2 (4) need battery-hv; p-weld (2) welding; p-ee (3) accepts EE
    only. 30 EE students: s-00 .. s-02 have battery-hv (all placed at p-hv), s-03 .. s-12
    weld; the round places 3 at p-hv, 2 at p-weld, 3 at p-ee; 7 students lacking battery-hv
    stay unplaced."""
    offers = [
        offer("p-hv", 8, ["battery-hv"], ["EE", "IN"]),
        offer("p-hv2", 4, ["battery-hv"]),
        offer("p-weld", 2, ["welding"]),
        offer("p-ee", 3, (), ["EE"]),
    ]
    profiles = [
        student(f"s-{i:02d}", ["battery-hv"] if i < 3 else ["welding"] if i < 13 else [])
        for i in range(30)
    ]
    found = completed()
    rid = found.round_id
    records = [record(rid, f"s-{i:02d}", "p-hv") for i in range(3)]
    records += [record(rid, f"s-{i:02d}", "p-weld") for i in (3, 4)]
    records += [record(rid, f"s-{i:02d}", "p-ee") for i in (5, 6, 7)]
    records += [
        record(rid, f"s-{i:02d}", None, [missing_skill("p-hv", "battery-hv")])
        for i in range(13, 20)
    ]
    records += [record(rid, f"s-{i:02d}", f"p-elsewhere-{i}") for i in range(20, 30)]
    records += [record(rid, f"s-{i:02d}", "p-elsewhere") for i in range(8, 13)]
    return offers, profiles, found, records


def test_twelve_slots_needed_battery_hv_and_fewer_than_five_students_had_it() -> None:
    offers, profiles, found, records = battery_world()
    report = the_report(offers, [(found, records)], profiles)
    hv = key(report, "skill", "battery-hv")
    assert (hv.placements, hv.slots) == (2, 12)
    assert hv.students is None  # 3 students: hidden
    assert "students" in hv.suppressed
    # 5 + 4 slots free at the two, and 7 unplaced within reach lack battery-hv, none has it.
    assert hv.empty_slots == 9
    assert hv.unplaced_missing == 7
    assert "unplaced_missing" not in hv.suppressed
    assert reports.gap_text(hv, EN) == (
        "12 slots needed `battery-hv`; fewer than 5 students had it. 9 slots stayed empty "
        "for want of it. 7 students were left unplaced for want of it."
    )
    assert report.gaps[0] is hv
    weld = key(report, "skill", "welding")
    assert (weld.slots, weld.students, weld.empty_slots, weld.unplaced_missing) == (2, 10, 0, None)
    assert not weld.is_gap  # 10 students have it for 2 slots, and none stayed empty
    assert reports.gap_text(weld, EN) == "2 slots needed `welding`; 10 students had it."
    ee = key(report, "programme", "EE")
    assert (ee.placements, ee.slots, ee.students) == (2, 11, 30)
    assert (report.placements, report.slots, report.open_slots) == (4, 17, 6)
    assert report.students == 30
    assert report.suppressed == ()
    latest = report.latest
    assert latest is not None
    # free: 5 at p-hv, 4 at p-hv2, 0 at p-weld, 0 at p-ee; unplaced 7
    assert (latest.students, latest.unplaced, latest.free_slots) == (30, 7, 9)
    assert (latest.empty_for_want, latest.unplaced_missing) == (9, 7)


def test_a_slot_is_empty_for_want_of_a_skill_only_when_someone_within_reach_lacked_it() -> None:
    found = completed()
    rid = found.round_id
    cases = {
        # an unplaced student nearby has the skill (they did not rank it): not for want of it
        "has-it": ([student("u", ["cnc"])], 0),
        # the only unplaced student lives beyond their travel limit: not for want of it
        "out-of-reach": ([student("u", [], home=FAR)], 0),
        # the only unplaced student is available after the placement starts
        "not-available": (
            [student("u", [], available=(date(2027, 2, 1), date(2027, 6, 1)))],
            0,
        ),
        # nearby, available, lacking it: the two slots count
        "lacks-it": ([student("u", [])], 2),
        # no coordinates, no dates, no limit: the rules are not checked, so they count
        "unknown": ([student("u", [], home=None, travel=None)], 2),
        # of a programme the placement does not take: not within reach of it
        "wrong-programme": ([student("u", [], "BA")], 0),
    }
    placed = student("v")  # placed elsewhere in the term: the round is of the term
    offers = [offer("p-cnc", 2, ["cnc"], ["EE"]), offer("p-other")]
    for name, (profiles, expected) in cases.items():
        records = [record(rid, "u", None), record(rid, "v", "p-other")]
        report = the_report(offers, [(found, records)], [*profiles, placed])
        assert key(report, "skill", "cnc").empty_slots == expected, name


def test_a_slot_is_empty_for_want_of_a_programme_when_students_of_others_could_take_it() -> None:
    found = completed()
    rid = found.round_id
    offers = [offer("p-ee", 3, (), ["EE", "IN"])]
    others = [student(f"u-{i}", [], "BA") for i in range(6)]
    records = [
        record(rid, s.student_id, None, [wrong_programme("p-ee", "BA", "EE", "IN")]) for s in others
    ]
    report = the_report(offers, [(found, records)], others)
    ee, inp = key(report, "programme", "EE"), key(report, "programme", "IN")
    assert (ee.empty_slots, inp.empty_slots) == (3, 3)
    assert (ee.unplaced_missing, inp.unplaced_missing) == (6, 6)
    assert ee.students is None  # no EE and no IN student: "< 5"
    assert inp.students is None
    assert reports.gap_text(ee, EN) == (
        "3 slots asked for the programme `EE`; fewer than 5 students were in it. 3 slots "
        "stayed empty for want of it. 6 students were left unplaced for want of it."
    )
    # An EE student nearby left unplaced: the slots are not empty for want of a programme.
    ee_student = student("u-ee", [], "EE")
    records.append(record(rid, "u-ee", None))
    again = the_report(offers, [(found, records)], [*others, ee_student])
    assert key(again, "programme", "EE").empty_slots == 0


def test_programmes_small_and_the_smallest_shown_are_hidden_so_the_total_gives_none_away() -> None:
    assert gap.partition({"EE": 40, "IN": 3, "BA": 7, "HA": 9}) == {
        "EE": 40,
        "IN": None,
        "BA": None,
        "HA": 9,
    }
    assert gap.partition({"EE": 40, "IN": 3, "BA": 2, "HA": 9}) == {
        "EE": 40,
        "IN": None,
        "BA": None,
        "HA": 9,
    }
    assert gap.partition({"EE": 40, "HA": 9, "RL": 0}) == {"EE": 40, "HA": 9, "RL": None}
    # 2 students without a programme are no group shown: the smallest shown hides with them
    assert gap.partition({"EE": 40, "HA": 9}, left_out=2) == {"EE": 40, "HA": None}
    assert gap.partition({"EE": 3}) == {"EE": None}


def test_a_programme_under_five_hides_the_next_smallest_in_the_report() -> None:
    found = completed()
    rid = found.round_id
    profiles = [student(f"e-{i}", [], "EE") for i in range(20)]
    profiles += [student(f"i-{i}", [], "IN") for i in range(3)]
    profiles += [student(f"b-{i}", [], "BA") for i in range(6)]
    records = [record(rid, p.student_id, "p-x", programme=p.programme) for p in profiles]
    report = the_report([offer("p-x", 40)], [(found, records)], profiles)
    shown = {g.key: g.students for g in report.programmes}
    assert shown == {"BA": None, "EE": 20, "IN": None}
    assert report.students == 29


def test_the_trend_across_the_terms_rounds_oldest_first() -> None:
    """The ordinary round leaves 8 students lacking battery-hv unplaced and all 10 slots
    empty; two students who have it register, and the supplementary round places them."""
    offers = [offer("p-hv", 10, ["battery-hv"])]
    lacking = [student(f"s-{i}") for i in range(8)]
    newcomers = [student(f"n-{i}", ["battery-hv"]) for i in range(2)]
    first, second = completed(0), completed(3, kind="supplementary")
    note = [missing_skill("p-hv", "battery-hv")]
    first_records = [record(first.round_id, s.student_id, None, note) for s in lacking]
    second_records = [record(second.round_id, s.student_id, "p-hv") for s in newcomers]
    second_records += [record(second.round_id, s.student_id, None, note) for s in lacking]
    report = the_report(
        offers, [(second, second_records), (first, first_records)], [*lacking, *newcomers]
    )
    hv = key(report, "skill", "battery-hv")
    assert [x.round_id for x in hv.trend] == [str(first.round_id), str(second.round_id)]
    assert [x.empty_slots for x in hv.trend] == [10, 8]
    assert [x.unplaced_missing for x in hv.trend] == [8, 8]
    assert [x.students for x in hv.trend] == [None, None]  # 0, then 2: "< 5"
    assert (hv.empty_slots, hv.unplaced_missing, hv.students) == (8, 8, None)
    assert [r.round.kind for r in report.rounds] == ["ordinary", "supplementary"]
    assert [r.students for r in report.rounds] == [8, 10]
    assert report.students == 10
    assert reports.gap_text(hv, EN) == (
        "10 slots needed `battery-hv`; fewer than 5 students had it. 8 slots stayed empty for "
        "want of it. 8 students were left unplaced for want of it. Slots empty for want of it "
        "after each round: 10 → 8."
    )
    ee = key(report, "programme", "EE")  # nothing ever stayed empty for want of EE
    assert [x.empty_slots for x in ee.trend] == [0, 0]
    assert "after each round" not in reports.gap_text(ee, EN)


def test_the_biggest_gaps_first_and_only_as_many_as_asked() -> None:
    found = completed()
    rid = found.round_id
    offers = [
        offer("p-a", 6, ["a"]),
        offer("p-b", 9, ["b"]),
        offer("p-c", 20, ["c"], site=None),
        offer("p-d", 1, ["d"]),
    ]
    profiles = [student(f"s-{i}", ["c", "d"] if i < 6 else []) for i in range(12)]
    records = [record(rid, f"s-{i}", "p-c") for i in range(6)]
    records += [record(rid, f"s-{i}", None) for i in range(6, 12)]
    report = the_report(offers, [(found, records)], profiles, top=3)
    # Empty for want of it: c 14 (20 less the 6 placed), b 9, a 6, d 1 (6 have d: no shortfall)
    assert [g.key for g in report.gaps] == ["c", "b", "a"]
    everything = the_report(offers, [(found, records)], profiles, top=50)
    assert [(g.key, g.empty_slots, g.shortfall) for g in everything.gaps] == [
        ("c", 14, 14),
        ("b", 9, 9),
        ("a", 6, 6),
        ("d", 1, 0),
    ]
    # EE: no placement asks for a programme, and 12 students are of it: no gap
    assert not key(everything, "programme", "EE").is_gap


def test_without_a_round_only_the_demand_is_known() -> None:
    report = the_report([offer("p-hv", 12, ["battery-hv"])], [], [])
    hv = key(report, "skill", "battery-hv")
    assert (hv.slots, hv.students, hv.suppressed, report.gaps, report.rounds) == (
        12,
        None,
        (),
        (),
        (),
    )
    assert report.students is None
    assert report.suppressed == ()
    assert reports.gap_text(hv, EN) == (
        "12 slots needed `battery-hv`; no round of the term has counted the students yet."
    )


def test_teachers_withdrawn_and_undated_placements_and_other_terms_are_left_out() -> None:
    found = completed()
    rid = found.round_id
    offers = [
        offer("p-hv", 5, ["battery-hv"]),
        offer("p-gone", 7, ["battery-hv"]),
        offer("p-teach", 4, ["battery-hv"], kind="teacher"),
        offer("p-undated", 3, ["battery-hv"], starts=None, ends=None),
        offer("p-autumn", 2, ["battery-hv"], starts=date(2027, 8, 16), ends=date(2027, 9, 10)),
    ]
    profiles = [student(f"s-{i}", ["battery-hv"]) for i in range(6)]
    records = [record(rid, f"s-{i}", "p-hv") for i in range(5)] + [record(rid, "s-5", None)]
    report = the_report(offers, [(found, records)], profiles, withdrawn=["p-gone"])
    hv = key(report, "skill", "battery-hv")
    assert (hv.placements, hv.slots, hv.students) == (1, 5, 6)
    assert (report.undated_slots, [t.code for t in report.terms]) == (
        3,
        ["2027-spring", "2027-autumn"],
    )


def test_an_erased_student_counts_with_the_programme_of_their_tombstone() -> None:
    found = completed()
    rid = found.round_id
    profiles = [student(f"s-{i}", ["x"]) for i in range(5)]
    records = [record(rid, f"s-{i}", "p-x") for i in range(5)]
    records.append(record(rid, "s-erased", "p-x", programme="EE"))
    report = the_report([offer("p-x", 10, ["x"])], [(found, records)], profiles)
    assert report.students == 6
    assert key(report, "programme", "EE").students == 6
    assert key(report, "skill", "x").students == 5


# ---------------------------------------------------------------- the rules, all at once


def _profile(draw: st.DrawFn) -> StudentProfile:
    first = draw(st.one_of(st.none(), st.dates(date(2027, 1, 1), date(2027, 3, 1))))
    return StudentProfile.model_validate(
        {
            "student_id": "s",
            "region": REGION,
            "programme": draw(st.sampled_from(["EE", "IN", None])),
            "skills": tuple(draw(st.sets(st.sampled_from("abc")))),
            "home": draw(
                st.one_of(
                    st.none(),
                    st.builds(
                        GeoPoint,
                        lat=st.floats(59.0, 60.5),
                        lon=st.floats(17.5, 18.5),
                    ),
                )
            ),
            "max_travel_km": draw(st.one_of(st.none(), st.floats(0, 150))),
            "available_from": first,
            "available_to": first + timedelta(days=draw(st.integers(0, 120))) if first else None,
        },
        strict=False,
    )


@st.composite
def pairs(draw: st.DrawFn) -> tuple[list[StudentProfile], PlacementOffer]:
    students = [_profile(draw) for _ in range(draw(st.integers(1, 6)))]
    starts = draw(st.one_of(st.none(), st.dates(date(2027, 1, 1), date(2027, 4, 1))))
    placement = offer(
        "p",
        1,
        tuple(draw(st.sets(st.sampled_from("abc"), max_size=2))),
        tuple(draw(st.sets(st.sampled_from(["EE", "IN"])))),
        starts=starts,
        ends=starts + timedelta(days=draw(st.integers(0, 60))) if starts else None,
        site=draw(st.one_of(st.none(), st.just(HOME), st.just(FAR))),
    )
    return students, placement


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_the_rules_at_once_agree_with_the_hard_constraints_one_pair_at_a_time(
    case: tuple[list[StudentProfile], PlacementOffer],
) -> None:
    students, placement = case
    unplaced = gap.Unplaced(students, "abc")
    reach = unplaced.within_reach(placement)
    programmes = unplaced.of_programmes(placement.programmes)
    skills = unplaced.with_skills(placement.required_skills)
    for i, s in enumerate(students):
        failed = {f.rule for f in hard_failures(s, placement)}
        assert bool(reach[i]) == ("period" not in failed and "max_travel_km" not in failed)
        assert bool(programmes[i]) == ("programmes" not in failed)
        assert bool(skills[i]) == ("required_skills" not in failed)


# -------------------------------------------------------------------- JSON and downloads


def test_hidden_counts_are_null_and_named_in_json_and_read_less_than_five_in_files() -> None:
    offers, profiles, found, records = battery_world()
    out = reports.render_gap(the_report(offers, [(found, records)], profiles), EN)
    hv = next(g for g in out.skills if g.key == "battery-hv")
    assert (hv.students, hv.suppressed, hv.slots) == (None, ["students"], 12)
    assert hv.trend[0].suppressed == ["students"]
    assert out.gaps[0].text.startswith("12 slots needed `battery-hv`; fewer than 5 students")
    assert (out.term, out.term_name, out.terms) == (
        "2027-spring",
        "spring term 2027",
        ["2027-spring"],
    )
    rows = list(csv.reader(io.StringIO(reports.gap_csv(out).decode("utf-8"))))
    assert rows[0] == ["section", "key", "figure", "value"]
    assert ["skill", "battery-hv", "students", "< 5"] in rows
    assert ["skill", "battery-hv", "slots", "12"] in rows
    assert ["skill", "battery-hv", "round 1 empty_slots", "9"] in rows
    assert ["summary", "students", "value", "30"] in rows
    assert any(r[0] == "gap" and r[1] == "1" and "battery-hv" in r[3] for r in rows)
    book = zipfile.ZipFile(io.BytesIO(reports.gap_xlsx(out)))
    strings = book.read("xl/sharedStrings.xml").decode("utf-8")
    assert "&lt; 5" in strings
    assert "battery-hv" in strings
    sheets = book.read("xl/workbook.xml").decode("utf-8")
    for name in ("Gaps", "Skills", "Programmes", "Rounds", "Report"):
        assert f'name="{name}"' in sheets
    said = " ".join(
        value for row in rows for value in row if value and not value.replace(".", "").isdigit()
    )
    assert "s-0" not in said  # no student is named anywhere
