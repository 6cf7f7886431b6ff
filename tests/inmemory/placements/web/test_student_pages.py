"""The student's pages (entrypoints/web/student.py) over the in-memory unit of work: their
placement and profile, the placements they may rank checked against their profile, the ranking
saved in order (at most 10), the answer to a proposal, and who else may look."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from services.placements import handlers
from services.placements.domain.model import Contact, Placement, Student
from services.placements.domain.outcomes import pair_distance
from services.placements.entrypoints.web import student as pages
from services.placements.entrypoints.web.student import edit, fit
from shared.contracts import events as ev
from shared.contracts.profiles import GeoPoint, PlacementOffer, StudentProfile
from tests.inmemory.placements.web.conftest import Site
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork

UMEA = {"lat": 63.8258, "lon": 20.2630}
NEAR = {"lat": 63.8300, "lon": 20.2700}  # under 1 km from UMEA
SKELLEFTEA = {"lat": 64.7507, "lon": 20.9528}  # about 108 km from UMEA


def offer(pid: str, title: str, **kw: Any) -> PlacementOffer:
    body: dict[str, Any] = {
        "placement_id": pid,
        "company_id": "c-1",
        "region": "SE-AB",
        "capacity": 2,
        "title": title,
        "required_skills": ["welding"],
        "programmes": ["EE"],
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "site": NEAR,
        "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    }
    return PlacementOffer.model_validate({**body, **kw}, strict=False)


def profile(sid: str = "s-1", **kw: Any) -> StudentProfile:
    body: dict[str, Any] = {
        "student_id": sid,
        "region": "SE-AB",
        "programme": "EE",
        "skills": ["welding"],
        "available_from": "2027-01-11",
        "available_to": "2027-03-19",
        "home": UMEA,
        "max_travel_km": 30,
    }
    return StudentProfile.model_validate({**body, **kw}, strict=False)


def seed(fake: InMemoryPlacementsUnitOfWork, *offers: PlacementOffer, **student: Any) -> None:
    for o in offers:
        fake.placement_rows[o.placement_id] = Placement(o)
    for sid in ("s-1", "s-2"):
        fake.student_rows[sid] = Student(
            profile(sid, **student), Contact(f"Sara {sid}", f"{sid}@school.example.se")
        )


def world(fake: InMemoryPlacementsUnitOfWork, **student: Any) -> None:
    seed(
        fake,
        offer("p-near", "Electrician apprentice"),
        offer("p-far", "Line technician", site=SKELLEFTEA),
        offer("p-cad", "CAD drafter", required_skills=["cad", "welding"]),
        offer("p-in", "Machine operator", programmes=["IN"]),
        offer("p-late", "Summer electrician", starts_on="2027-06-01", ends_on="2027-08-01"),
        offer("p-away", "Stockholm electrician", region="SE-AB2"),
        offer("p-gone", "Withdrawn placement"),
        **student,
    )
    gone = fake.placement_rows["p-gone"]
    fake.placement_rows["p-gone"] = Placement(gone.offer, withdrawn=True)


async def propose(fake: InMemoryPlacementsUnitOfWork, pid: str, rank: int | None) -> uuid.UUID:
    data = ev.MatchProposedData(
        match_id=uuid.uuid4(),
        region="SE-AB",
        student_id="s-1",
        placement_id=pid,
        round_id=uuid.uuid4(),
        company_id="c-1",
        rank=rank,
    )
    await handlers.apply_match_proposed(ev.MatchProposed(producer="matching", data=data), fake)
    return data.match_id


def ranking_of(html: str) -> list[str]:
    """The placement ids of the page's ranking, in order."""
    match = re.search(r'<ol class="ranking".*?</ol>', html, re.S)
    return re.findall(r'<li data-id="([^"]+)"', match.group(0)) if match else []


def preferences(fake: InMemoryPlacementsUnitOfWork, sid: str = "s-1") -> tuple[str, ...]:
    found = fake.student_rows[sid]
    assert isinstance(found, Student)
    return found.profile.preferences


# --------------------------------------------------------------------------- the rules


def test_distance_is_the_haversine_of_the_policy() -> None:
    stockholm, gothenburg = GeoPoint(lat=59.3293, lon=18.0686), GeoPoint(lat=57.7089, lon=11.9746)
    home = profile(home=stockholm)
    there = offer("p", "t", site=gothenburg)
    assert pair_distance(home, there) == pytest.approx(396.892, abs=0.001)
    assert pair_distance(home, offer("p", "t", site=stockholm)) == 0.0


def test_fit_names_each_hard_rule_broken_and_skips_what_is_not_known() -> None:
    student = profile()
    assert fit(student, offer("p", "t")).eligible
    far = fit(student, offer("p", "t", site=SKELLEFTEA, required_skills=["cad"], programmes=["IN"]))
    assert [p.rule for p in far.problems] == ["required_skills", "programmes", "max_travel_km"]
    assert far.problems[0].missing == ("cad",)
    assert far.distance_km == pytest.approx(108.092, abs=0.001)
    late = fit(student, offer("p", "t", starts_on="2027-01-04"))
    assert [p.rule for p in late.problems] == ["period"]
    unknown = profile(home=None, available_to=None)
    assert fit(unknown, offer("p", "t", site=SKELLEFTEA, starts_on="2027-01-04")).eligible
    assert fit(profile(programme=None), offer("p", "t")).problems[0].programme is None
    assert fit(profile(programme=None), offer("p", "t", programmes=[])).eligible


def test_edit_adds_removes_and_moves() -> None:
    assert edit(["a", "b"], add="c", remove=None, move=None) == (["a", "b", "c"], "added")
    assert edit(["a", "b"], add="a", remove=None, move=None) == (["a", "b"], "added")
    assert edit(["a", "b"], add=None, remove="a", move=None) == (["b"], "removed")
    assert edit(["a", "b", "c"], add=None, remove=None, move="c:-1") == (["a", "c", "b"], "moved")
    assert edit(["a", "b"], add=None, remove=None, move="a:-1") == (["a", "b"], "moved")
    assert edit(["a", "b"], add=None, remove=None, move="a:5") == (["a", "b"], "moved")
    assert edit(["a", "", "b"], add=None, remove=None, move=None) == (["a", "b"], "saved")


# ------------------------------------------------------------------------ the placement


async def test_the_placement_page_shows_the_proposal_and_the_profile(site: Site) -> None:
    world(site.fake, preferences=["p-far", "p-near"])
    match_id = await propose(site.fake, "p-near", 2)
    r = await site.open("student", student_id="s-1").get("/students/s-1")
    assert r.status_code == 200
    html = r.text
    assert "<h1>My placement</h1>" in html
    assert "This placement is your 2nd choice." in html
    assert "Electrician apprentice" in html
    assert "c-1" in html
    assert "Jan 18, 2027 – Mar 12, 2027" in html  # the period
    assert "0.6 km" in html  # from home
    assert f'action="/matches/{match_id}/answer"' in html
    assert '<select id="reason" name="reason" required>' in html
    assert 'value="too_far"' in html
    assert "anna@example.se" not in html  # no supervisor before confirmation
    for fact in ("EE", "welding", "Jan 11, 2027 – Mar 19, 2027", "30.0 km", "latitude 63.8258"):
        assert fact in html
    assert "Sara s-1" in html
    assert "cannot be changed on this page" in html
    assert "<form" not in html.split("profile-h")[1].split("</section>")[0]  # read-only


async def test_a_placement_outside_the_ranking_says_so(site: Site) -> None:
    world(site.fake)
    await propose(site.fake, "p-near", None)
    r = await site.open("student", student_id="s-1").get("/students/s-1")
    assert "This placement is not one you ranked." in r.text


async def test_without_a_proposal_the_page_says_why_it_can_be(site: Site) -> None:
    world(site.fake)
    student = site.open("student", student_id="s-1")
    r = await student.get("/students/s-1")
    assert r.status_code == 200
    assert "You have no proposal at the moment." in r.text
    assert "No placement is ranked yet." in r.text
    assert 'href="/students/s-1/choices"' in r.text

    site.fake.student_rows["s-1"] = Student(
        profile(preferences=["p-far", "p-cad", "p-gone"]), Contact("Sara", "s-1@school.example.se")
    )
    r = await student.get("/students/s-1")
    assert "None of the ranked placements can be proposed" in r.text
    assert "Distance 108.1 km &gt; your limit of 30.0 km" in r.text
    assert "Missing skills: cad" in r.text
    assert "no longer open" in r.text

    site.fake.student_rows["s-1"] = Student(
        profile(preferences=["p-far", "p-near"]), Contact("Sara", "s-1@school.example.se")
    )
    r = await student.get("/students/s-1")
    assert "A proposal appears here once a matching round of your region places you" in r.text


async def test_accepting_redirects_with_a_notice(site: Site) -> None:
    world(site.fake)
    match_id = await propose(site.fake, "p-near", 1)
    student = site.open("student", student_id="s-1")
    r = await student.post(f"/matches/{match_id}/answer", {"answer": "accept"})
    assert (r.status_code, r.headers["location"]) == (303, "/students/s-1?answered=accepted")
    record = site.fake.match_rows[match_id]
    assert (record.state, record.accepted_by_student) == ("accepted", True)
    assert [e.type for e in site.fake.published][-1] == "MatchAccepted"
    r = await student.get(r.headers["location"])
    assert '<p class="notice ok" role="status">You accepted the proposal.' in r.text
    assert "You have accepted." in r.text
    assert 'name="answer" value="accept"' not in r.text  # accepted once
    assert 'name="answer" value="decline"' in r.text  # still open: may decline
    r = await student.post(f"/matches/{match_id}/answer", {"answer": "accept"})
    assert r.status_code == 409


async def test_declining_takes_a_reason_code(site: Site) -> None:
    world(site.fake)
    match_id = await propose(site.fake, "p-near", 1)
    student = site.open("student", student_id="s-1")
    path = f"/matches/{match_id}/answer"
    r = await student.post(path, {"answer": "decline"})
    assert r.status_code == 422
    assert 'role="alert"' in r.text
    assert '<a href="#reason">Choose why you decline.</a>' in r.text
    assert 'aria-invalid="true" aria-describedby="reason-error"' in r.text
    r = await student.post(path, {"answer": "decline", "reason": "free text"})
    assert r.status_code == 422
    assert site.fake.match_rows[match_id].state == "proposed"

    r = await student.post(path, {"answer": "decline", "reason": "too_far"})
    assert (r.status_code, r.headers["location"]) == (303, "/students/s-1?answered=declined")
    record = site.fake.match_rows[match_id]
    assert (record.state, record.declined_by, record.reason) == ("declined", "student", "too_far")
    r = await student.get(r.headers["location"])
    assert "You declined the proposal." in r.text
    assert "You have no proposal at the moment." in r.text


# -------------------------------------------------------------------------- the choices


async def test_the_choices_are_the_open_placements_that_fit_unless_all_are_asked_for(
    site: Site,
) -> None:
    world(site.fake)
    student = site.open("student", student_id="s-1")
    r = await student.get("/students/s-1/choices")
    assert r.status_code == 200
    html = r.text
    assert "<h1>My choices</h1>" in html
    assert "Electrician apprentice" in html
    assert "that fit your profile, nearest first: 1 of 5." in html
    for hidden in ("Line technician", "CAD drafter", "Machine operator", "Summer electrician"):
        assert hidden not in html
    assert "Stockholm electrician" not in html  # another region
    assert "Withdrawn placement" not in html
    assert 'name="add" value="p-near"' in html
    assert "sortable.min.js" in html
    assert "anna@example.se" not in html

    html = (await student.get("/students/s-1/choices", params={"show": "all"})).text
    for shown in ("Line technician", "CAD drafter", "Machine operator", "Summer electrician"):
        assert shown in html
    assert "Distance 108.1 km &gt; your limit of 30.0 km" in html
    assert "Missing skills: cad" in html
    assert "Open to the programmes IN; yours is EE" in html
    assert (
        "The period Jun 1, 2027 – Aug 1, 2027 is not within the time you are available "
        "(Jan 11, 2027 – Mar 19, 2027)" in html
    )
    assert html.index("Electrician apprentice") < html.index("Line technician")  # nearest first
    assert "Withdrawn placement" not in html
    assert "All open placements of the region, nearest first: 5. Fitting your profile: 1." in html
    assert 'name="show" value="all"' in html  # the form keeps the view


async def test_a_ranking_is_saved_in_order_with_warnings_on_choices_that_do_not_fit(
    site: Site,
) -> None:
    world(site.fake)
    student = site.open("student", student_id="s-1")
    r = await student.post("/students/s-1/choices", {"choice": ["p-far", "p-near", "p-cad"]})
    assert r.status_code == 303
    assert r.headers["location"] == "/students/s-1/choices?saved=saved#ranking"
    assert preferences(site.fake) == ("p-far", "p-near", "p-cad")
    assert [e.type for e in site.fake.published][-1] == "StudentPreferencesUpdated"
    r = await student.get("/students/s-1/choices?saved=saved")
    assert '<p class="notice ok" role="status">Your ranking is saved.</p>' in r.text
    assert ranking_of(r.text) == ["p-far", "p-near", "p-cad"]
    ranking = r.text.split('<ol class="ranking"')[1].split("</ol>")[0]
    far, near, cad = ranking.split("<li ")[1:]
    assert "Does not fit your profile" in far
    assert "Distance 108.1 km" in far
    assert "Fits your profile" in near
    assert "Does not fit" not in near
    assert "Missing skills: cad" in cad
    assert 'data-move="-1"' in near
    assert 'name="move" value="p-near:-1"' in near
    assert 'data-remove aria-label="Remove: Electrician apprentice"' in near
    assert "On your ranking, place 2" in r.text


async def test_the_buttons_work_without_javascript(site: Site) -> None:
    world(site.fake)
    student = site.open("student", student_id="s-1")
    r = await student.post("/students/s-1/choices", {"choice": ["p-near"], "add": "p-far"})
    assert r.headers["location"] == "/students/s-1/choices?saved=added#ranking"
    assert preferences(site.fake) == ("p-near", "p-far")
    await student.post("/students/s-1/choices", {"choice": ["p-near", "p-far"], "move": "p-far:-1"})
    assert preferences(site.fake) == ("p-far", "p-near")
    r = await student.post(
        "/students/s-1/choices", {"choice": ["p-far", "p-near"], "remove": "p-far", "show": "all"}
    )
    assert r.headers["location"] == "/students/s-1/choices?show=all&saved=removed#ranking"
    assert preferences(site.fake) == ("p-near",)


async def test_eleven_choices_are_refused_with_a_field_error(site: Site) -> None:
    eleven = [offer(f"p-{i:02}", f"Placement {i}") for i in range(1, 12)]
    seed(site.fake, *eleven)
    student = site.open("student", student_id="s-1")
    ids = [o.placement_id for o in eleven]
    r = await student.post("/students/s-1/choices", {"choice": ids})
    assert r.status_code == 422
    assert "The ranking was not saved" in r.text
    message = "You can rank at most 10 placements, and this list has 11. Remove one to save it."
    assert f'<div class="error" id="ranking-error"><p>{message}</p></div>' in r.text
    assert 'aria-describedby="ranking-help ranking-error"' in r.text
    assert ranking_of(r.text) == ids  # the values are kept
    assert preferences(site.fake) == ()

    await student.post("/students/s-1/choices", {"choice": ids[:10]})
    assert preferences(site.fake) == tuple(ids[:10])
    r = await student.post("/students/s-1/choices", {"choice": ids[:10], "add": "p-11"})
    assert r.status_code == 422
    assert message in r.text
    assert preferences(site.fake) == tuple(ids[:10])


async def test_a_choice_that_is_no_longer_open_is_named_at_its_place(site: Site) -> None:
    world(site.fake)
    student = site.open("student", student_id="s-1")
    r = await student.post("/students/s-1/choices", {"choice": ["p-near", "p-gone", "p-near"]})
    assert r.status_code == 422
    assert ranking_of(r.text) == ["p-near", "p-gone", "p-near"]
    assert '<a href="#choice-2">Place 2, Withdrawn placement:' in r.text
    assert "This placement is no longer open; remove it to save your ranking." in r.text
    assert "This placement is already higher on your list; remove it here." in r.text
    assert 'id="choice-2" class="invalid"' in r.text


# ---------------------------------------------------------------------------- who looks


async def test_another_students_pages_are_refused(site: Site) -> None:
    world(site.fake)
    match_id = await propose(site.fake, "p-near", 1)
    other = site.open("student", student_id="s-2")
    for path in ("/students/s-1", "/students/s-1/choices"):
        r = await other.get(path)
        assert r.status_code == 403
        assert "You may not do this" in r.text
    r = await other.post("/students/s-1/choices", {"choice": ["p-near"]})
    assert r.status_code == 403
    r = await other.post(f"/matches/{match_id}/answer", {"answer": "accept"})
    assert r.status_code == 403
    assert preferences(site.fake) == ()
    assert site.fake.match_rows[match_id].state == "proposed"
    staff = site.open("company", company_id="c-1")
    r = await staff.post(f"/matches/{match_id}/answer", {"answer": "accept"})
    assert r.status_code == 403  # the company answers as the company, not here


async def test_a_coordinator_of_the_region_may_look(site: Site) -> None:
    world(site.fake, preferences=["p-near"])
    await propose(site.fake, "p-near", 1)
    coordinator = site.open("coordinator", regions=["SE-AB"])
    r = await coordinator.get("/students/s-1")
    assert r.status_code == 200
    assert "<h1>Placement of student s-1</h1>" in r.text
    assert "Electrician apprentice" in r.text
    assert 'name="answer"' not in r.text  # the student answers
    r = await coordinator.get("/students/s-1/choices")
    assert r.status_code == 200
    assert ranking_of(r.text) == ["p-near"]
    outside = site.open("coordinator", regions=["SE-O"])
    assert (await outside.get("/students/s-1")).status_code == 403


async def test_an_unknown_student_is_not_found(site: Site) -> None:
    coordinator = site.open("coordinator", regions=["SE-AB"])
    r = await coordinator.get("/students/s-none")
    assert r.status_code == 404
    assert "<h1>Not found</h1>" in r.text


async def test_many_placements_come_in_pages(site: Site) -> None:
    seed(site.fake, *(offer(f"p-{i:02}", f"Placement {i:02}") for i in range(1, 31)))
    student = site.open("student", student_id="s-1")
    html = (await student.get("/students/s-1/choices")).text
    assert html.count('name="add"') == 25
    assert "Page 1 of 2" in html
    assert 'href="?page=2">Next page</a>' in html
    html = (await student.get("/students/s-1/choices", params={"page": 2})).text
    assert html.count('name="add"') == 5
    assert "Placement 30" in html
    assert 'href="?page=1">Previous page</a>' in html
    r = await student.post("/students/s-1/choices", {"choice": [], "add": "p-30", "page": "2"})
    assert r.headers["location"] == "/students/s-1/choices?page=2&saved=added#ranking"
    assert preferences(site.fake) == ("p-30",)


async def test_answering_an_unknown_match_is_not_found(site: Site) -> None:
    world(site.fake)
    r = await site.open("student", student_id="s-1").post(
        f"/matches/{uuid.uuid4()}/answer", {"answer": "decline"}
    )
    assert r.status_code == 404


async def test_a_regions_list_is_reused_for_a_few_seconds_then_read_again(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = {"now": 1000.0}
    monkeypatch.setattr(pages, "monotonic", lambda: clock["now"])
    world(site.fake)
    student = site.open("student", student_id="s-1")
    assert "Welder trainee" not in (await student.get("/students/s-1/choices")).text
    site.fake.placement_rows["p-new"] = Placement(offer("p-new", "Welder trainee"))
    clock["now"] += pages.LISTED_SECONDS - 1
    assert "Welder trainee" not in (await student.get("/students/s-1/choices")).text
    clock["now"] += 2
    assert "Welder trainee" in (await student.get("/students/s-1/choices")).text
