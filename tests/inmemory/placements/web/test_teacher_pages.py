"""A teacher's pages over the in-memory unit of work: their working-life period (the students'
page in a teacher's words), the region's periods for teachers only, checked against their
weeks and the skills they want to update, the ranking, the answer to a proposal, and their own
profile page (subject, skills, weeks) with its errors."""

from __future__ import annotations

import re
import uuid
from typing import Any

from services.placements import handlers
from services.placements.domain.model import Contact, Placement, Student
from shared.contracts import events as ev
from shared.contracts.profiles import PlacementOffer, StudentProfile
from tests.inmemory.placements.web.conftest import Site

WEEKS = ["2027-W10", "2027-W11", "2027-W12"]


def offer(pid: str, title: str, **kw: Any) -> PlacementOffer:
    body: dict[str, Any] = {
        "placement_id": pid,
        "company_id": "c-1",
        "region": "SE-AB",
        "capacity": 1,
        "title": title,
        "kind": "teacher",
        "required_skills": ["battery-hv"],
        "starts_on": "2027-03-08",
        "ends_on": "2027-03-26",
        "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    }
    return PlacementOffer.model_validate({**body, **kw}, strict=False)


def world(site: Site, **teacher: Any) -> None:
    for o in (
        offer("w-fit", "Battery cell production"),
        offer("w-late", "Recycling line", starts_on="2027-04-05", ends_on="2027-04-16"),
        offer("w-plc", "Automation cell", required_skills=["plc"]),
        offer("p-student", "Electrician apprentice", kind="student"),
    ):
        site.fake.placement_rows[o.placement_id] = Placement(o)
    body: dict[str, Any] = {
        "student_id": "t-1",
        "region": "SE-AB",
        "participant": "teacher",
        "subject": "Electrical installation",
        "programme": "EE",
        "skills": ["battery-hv"],
        "available_weeks": WEEKS,
        **teacher,
    }
    profile = StudentProfile.model_validate(body, strict=False)
    site.fake.student_rows["t-1"] = Student(profile, Contact("Liisa K", "t-1@school.example.fi"))


def me(site: Site) -> Any:
    return site.open("teacher", student_id="t-1")


def listed(html: str) -> list[str]:
    return re.findall(r'name="add" value="([^"]+)"', html)


async def test_a_teachers_page_speaks_of_working_life_periods(site: Site) -> None:
    world(site)
    r = await me(site).get("/students/t-1")
    assert r.status_code == 200
    assert "<h1>My working-life period</h1>" in r.text
    for fact in ("Electrical installation", "battery-hv", "2027-W10, 2027-W11, 2027-W12"):
        assert fact in r.text
    assert 'href="/teachers/t-1/profile"' in r.text
    assert "cannot be changed on this page" not in r.text  # a teacher changes it themselves
    nav = await me(site).get("/")
    assert nav.headers["location"] == "/students/t-1"


async def test_a_teacher_sees_and_ranks_periods_only(site: Site) -> None:
    world(site)
    r = await me(site).get("/students/t-1/choices?show=all")
    assert r.status_code == 200
    assert "p-student" not in r.text  # a placement for students is no choice of a teacher
    assert set(listed(r.text)) == {"w-fit", "w-late", "w-plc"}
    assert "touches weeks you did not list as available: 2027-W14, 2027-W15" in r.text
    assert "It updates skills you did not list among those you want to update: plc" in r.text
    r = await me(site).get("/students/t-1/choices")
    assert listed(r.text) == ["w-fit"]  # what fits them
    r = await me(site).post("/students/t-1/choices", {"add": "w-fit"})
    assert r.status_code == 303
    found = site.fake.student_rows["t-1"]
    assert isinstance(found, Student)
    assert found.profile.preferences == ("w-fit",)
    r = await me(site).post("/students/t-1/choices", {"choice": "w-fit", "add": "p-student"})
    assert r.status_code == 422  # the handler names preferences[1]: not saved
    assert found.profile.preferences == ("w-fit",)


async def test_a_teacher_answers_their_proposal(site: Site) -> None:
    world(site, preferences=["w-fit"])
    data = ev.MatchProposedData(
        match_id=uuid.uuid4(),
        region="SE-AB",
        student_id="t-1",
        placement_id="w-fit",
        round_id=uuid.uuid4(),
        company_id="c-1",
        rank=1,
    )
    await handlers.apply_match_proposed(ev.MatchProposed(producer="matching", data=data), site.fake)
    r = await me(site).get("/students/t-1")
    assert "Battery cell production" in r.text
    assert f'action="/matches/{data.match_id}/answer"' in r.text
    r = await me(site).post(f"/matches/{data.match_id}/answer", {"answer": "accept"})
    assert (r.status_code, r.headers["location"]) == (303, "/students/t-1?answered=accepted")
    [*_, accepted] = site.fake.published
    assert isinstance(accepted, ev.MatchAccepted)
    assert (accepted.data.student_id, accepted.data.by) == ("t-1", "student")


async def test_the_profile_page_saves_subject_skills_and_weeks(site: Site) -> None:
    world(site)
    page = await me(site).get("/teachers/t-1/profile")
    assert page.status_code == 200
    assert "<h1>My teacher profile</h1>" in page.text
    for label in ('for="f-subject"', 'for="f-skills"', 'for="f-available_weeks"'):
        assert label in page.text
    r = await me(site).post(
        "/teachers/t-1/profile",
        {
            "subject": "Automation",
            "skills": "plc, battery-hv",
            "available_weeks": "2027-W14 2027-W15",
        },
    )
    assert (r.status_code, r.headers["location"]) == (303, "/teachers/t-1/profile?saved=1")
    found = site.fake.student_rows["t-1"]
    assert isinstance(found, Student)
    assert (found.profile.subject, found.profile.skills) == ("Automation", ("plc", "battery-hv"))
    assert found.profile.available_weeks == ("2027-W14", "2027-W15")
    assert isinstance(site.fake.published[-1], ev.StudentRegistered)
    saved = await me(site).get("/teachers/t-1/profile?saved=1")
    assert "The profile is saved." in saved.text


async def test_a_bad_profile_is_named_and_nothing_is_saved(site: Site) -> None:
    world(site)
    before = list(site.fake.published)
    for form, field in (
        ({"subject": "", "skills": "", "available_weeks": ""}, "subject"),
        ({"subject": "Maths", "skills": "", "available_weeks": "week 10"}, "available_weeks"),
        ({"subject": "Maths", "skills": "", "available_weeks": "2027-W53"}, "available_weeks"),
        (
            {"subject": "Maths", "skills": "", "available_weeks": "2027-W10 2027-W10"},
            "available_weeks",
        ),
    ):
        r = await me(site).post("/teachers/t-1/profile", form)
        assert r.status_code == 422, form
        assert 'id="error-summary"' in r.text
        assert f'href="#f-{field}"' in r.text
        assert f'aria-describedby="f-{field}-help f-{field}-error"' in r.text
        assert 'aria-invalid="true"' in r.text
    assert site.fake.published == before


async def test_who_else_may_open_a_teachers_profile(site: Site) -> None:
    world(site)
    other = site.open("teacher", student_id="t-2")
    assert (await other.get("/teachers/t-1/profile")).status_code == 403
    student = site.open("student", student_id="t-1")  # a student's token names no teacher
    assert (await student.get("/teachers/t-1/profile")).status_code == 403
    assert (await student.get("/students/t-1")).status_code == 403
    coordinator = site.open("coordinator", regions=["SE-AB"])
    r = await coordinator.get("/teachers/t-1/profile")
    assert r.status_code == 200
    assert "Teacher profile of t-1" in r.text


async def test_a_coordinator_runs_a_round_of_teachers(site: Site) -> None:
    coordinator = site.open("coordinator", regions=["SE-AB"])
    page = await coordinator.get("/regions/SE-AB")
    assert 'name="participant" id="participant-teacher" value="teacher"' in page.text
    form = {"policy": "optimal", "kind": "ordinary", "participant": "teacher"}
    refused = await coordinator.post("/regions/SE-AB/rounds", form)
    assert refused.status_code == 422  # no period, no teacher yet
    assert 'href="#participant-student"' in refused.text
    assert 'id="participant-error"' in refused.text
    assert not site.fake.round_rows
    world(site)
    r = await coordinator.post("/regions/SE-AB/rounds", form)
    assert r.status_code == 303
    [requested] = site.fake.round_rows.values()
    assert requested.participant == "teacher"
    round_page = await coordinator.get(r.headers["location"])
    assert "of teachers, at working-life periods" in round_page.text
