"""The company staff's pages: post a placement through the form, change it, withdraw it, see
the students at it (named once confirmed), answer for the company, set the channel; and
nothing of another company's."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from services.placements.domain.model import Contact, MatchRecord, Placement, Student
from services.placements.domain.rules import Channel, MatchStateName
from shared.contracts.profiles import GeoPoint, PlacementOffer, StudentProfile, Supervisor
from tests.inmemory.placements.web.conftest import Site

MATCH = uuid.UUID("00000000-0000-4000-8000-00000000c001")
FORM: dict[str, str] = {
    "title": "Electrician apprentice",
    "region": "SE-AB",
    "capacity": "2",
    "required_skills": "wiring, safety",
    "programmes": "EE, IN",
    "starts_on": "2027-01-18",
    "ends_on": "2027-03-12",
    "site_lat": "63,8258",
    "site_lon": "20.2630",
    "supervisor_name": "Anna Berg",
    "supervisor_email": "anna@example.se",
    "supervisor_language": "fi",
}


def seed_placement(
    site: Site, pid: str = "p-1", company: str = "c-1", region: str = "SE-AB"
) -> None:
    offer = PlacementOffer(
        placement_id=pid,
        company_id=company,
        region=region,
        capacity=2,
        title=f"Welder {pid}",
        required_skills=("welding",),
        starts_on=date(2027, 1, 18),
        ends_on=date(2027, 3, 12),
        site=GeoPoint(lat=63.8258, lon=20.263),
        supervisor=Supervisor(name="Anna Berg", email="anna@example.se", language="sv"),
    )
    site.fake.placement_rows[pid] = Placement(offer)


def seed_match(site: Site, state: MatchStateName = "proposed", **flags: Any) -> None:
    profile = StudentProfile(
        student_id="s-1",
        region="SE-AB",
        programme="EE",
        skills=("welding", "cad"),
        available_from=date(2027, 1, 11),
        available_to=date(2027, 3, 19),
    )
    contact = Contact("Sara Nieminen", "sara@school.example.se", "+46 70 123 45 67")
    site.fake.student_rows["s-1"] = Student(profile, contact)
    site.fake.match_rows[MATCH] = MatchRecord(
        match_id=MATCH,
        round_id=None,
        region="SE-AB",
        student_id="s-1",
        placement_id="p-1",
        company_id="c-1",
        rank=1,
        state=state,
        accepted_by_student=flags.get("accepted_by_student", False),
        accepted_by_company=flags.get("accepted_by_company", False),
        declined_by=None,
        reason=None,
        updated_at=datetime.now(UTC),
    )
    site.fake.match_order[MATCH] = next(site.fake.sequence)


def field_of(html: str, name: str) -> str:
    """The `<input>` (or `<select>`) of the form field `name`."""
    found = re.search(rf'<(?:input|select)[^>]*name="{name}"[^>]*>', html)
    assert found, f"no field {name}"
    return found.group(0)


def error_of(html: str, name: str) -> str:
    found = re.search(rf'<span class="error" id="f-{name}-error">([^<]*)</span>', html)
    assert found, f"no error shown at {name}"
    return found.group(1)


async def test_a_placement_is_posted_through_the_form(site: Site) -> None:
    browser = site.open("company", company_id="c-1")
    r = await browser.get("/companies/c-1/placements/new")
    assert r.status_code == 200
    pid = re.search(r'name="placement_id" value="([^"]+)"', r.text)
    assert pid is not None
    for name in FORM:
        field_of(r.text, name)  # every field of the offer is asked
    r = await browser.post("/companies/c-1/placements/new", {"placement_id": pid.group(1), **FORM})
    assert r.status_code == 303
    assert r.headers["location"] == f"/placements/{pid.group(1)}?posted=1"
    offer = site.fake.placement_rows[pid.group(1)].offer
    assert (offer.company_id, offer.region, offer.capacity) == ("c-1", "SE-AB", 2)
    assert offer.required_skills == ("wiring", "safety")
    assert offer.programmes == ("EE", "IN")
    assert (offer.starts_on, offer.ends_on) == (date(2027, 1, 18), date(2027, 3, 12))
    assert offer.site == GeoPoint(lat=63.8258, lon=20.263)
    assert offer.supervisor == Supervisor(name="Anna Berg", email="anna@example.se", language="fi")
    assert [e.type for e in site.fake.published] == ["PlacementPosted"]

    page = await browser.get(r.headers["location"])
    assert page.status_code == 200
    assert 'role="status"' in page.text
    assert "The placement is posted." in page.text
    # Sent again (a second click): still the one placement, and on to it.
    again = await browser.post(
        "/companies/c-1/placements/new", {"placement_id": pid.group(1), **FORM}
    )
    assert again.status_code == 303
    assert len(site.fake.placement_rows) == 1
    listing = await browser.get("/companies/c-1")
    assert "Electrician apprentice" in listing.text
    assert f'href="/placements/{pid.group(1)}"' in listing.text


async def test_an_invalid_form_is_refused_with_its_values_and_the_fields_named(site: Site) -> None:
    browser = site.open("company", company_id="c-1")
    bad = {**FORM, "region": "", "capacity": "many", "supervisor_email": "anna"}
    r = await browser.post("/companies/c-1/placements/new", bad)
    assert r.status_code == 422
    assert site.fake.placement_rows == {}
    assert 'value="Electrician apprentice"' in field_of(r.text, "title")  # kept
    assert 'value="many"' in field_of(r.text, "capacity")
    for name in ("region", "capacity", "supervisor_email"):
        assert 'aria-invalid="true"' in field_of(r.text, name)
        assert f"f-{name}-error" in field_of(r.text, name)  # described by its error
    assert error_of(r.text, "capacity") == "Enter a whole number."
    assert error_of(r.text, "region") == "Fill in this field."
    assert 'href="#f-supervisor_email"' in r.text  # the summary links to the field
    assert 'aria-invalid="true"' not in field_of(r.text, "title")

    # A rule of the domain (the period), named at its field.
    r = await browser.post("/companies/c-1/placements/new", {**FORM, "ends_on": "2027-01-01"})
    assert r.status_code == 422
    assert "is before starts_on" in error_of(r.text, "ends_on")
    assert 'value="2027-01-01"' in field_of(r.text, "ends_on")
    assert site.fake.placement_rows == {}


async def test_a_coordinator_posts_for_a_company_in_their_regions_only(site: Site) -> None:
    browser = site.open("coordinator", regions=["SE-AB"])
    r = await browser.get("/companies/c-1/placements/new")
    assert r.status_code == 200
    assert '<option value="SE-AB"' in r.text  # their regions, to choose from
    r = await browser.post("/companies/c-1/placements/new", {**FORM, "region": "SE-O"})
    assert r.status_code == 403
    assert site.fake.placement_rows == {}
    r = await browser.post("/companies/c-1/placements/new", FORM)
    assert r.status_code == 303


async def test_a_placement_is_changed(site: Site) -> None:
    seed_placement(site)
    browser = site.open("company", company_id="c-1")
    r = await browser.get("/placements/p-1")
    assert r.status_code == 200
    assert 'value="Welder p-1"' in field_of(r.text, "title")
    assert 'value="welding"' in field_of(r.text, "required_skills")
    assert 'value="63.8258"' in field_of(r.text, "site_lat")
    changed = {**FORM, "capacity": "3", "site_lat": "", "site_lon": ""}
    r = await browser.post("/placements/p-1", changed)
    assert (r.status_code, r.headers["location"]) == (303, "/placements/p-1?saved=1")
    offer = site.fake.placement_rows["p-1"].offer
    assert (offer.capacity, offer.title, offer.site) == (3, "Electrician apprentice", None)
    assert offer.region == "SE-AB"
    assert [e.type for e in site.fake.published] == ["PlacementUpdated"]
    r = await browser.get(r.headers["location"])
    assert "Your changes are saved." in r.text


async def test_capacity_below_the_confirmed_is_refused_at_its_field(site: Site) -> None:
    seed_placement(site)
    seed_match(site, "confirmed")
    browser = site.open("company", company_id="c-1")
    r = await browser.post("/placements/p-1", {**FORM, "capacity": "0"})
    assert r.status_code == 422
    assert "already confirmed" in error_of(r.text, "capacity")
    assert 'value="0"' in field_of(r.text, "capacity")
    assert site.fake.placement_rows["p-1"].offer.capacity == 2


async def test_a_placement_is_withdrawn_only_when_the_form_confirms_it(site: Site) -> None:
    seed_placement(site)
    browser = site.open("company", company_id="c-1")
    page = await browser.get("/placements/p-1")
    assert 'action="/placements/p-1/withdraw" data-confirm=' in page.text
    r = await browser.post("/placements/p-1/withdraw", {"reason": "filled"})
    assert r.status_code == 422
    assert "Tick the box" in error_of(r.text, "confirm")
    assert not site.fake.placement_rows["p-1"].withdrawn
    r = await browser.post("/placements/p-1/withdraw", {"confirm": "yes", "reason": "filled"})
    assert (r.status_code, r.headers["location"]) == (303, "/placements/p-1?withdrawn=1")
    assert site.fake.placement_rows["p-1"].withdrawn
    assert [e.type for e in site.fake.published] == ["PlacementWithdrawn"]
    r = await browser.get(r.headers["location"])
    assert "The placement is withdrawn." in r.text
    assert 'action="/placements/p-1"' not in r.text  # no edit form any more
    listing = await browser.get("/companies/c-1")
    assert "Withdrawn" in listing.text


async def test_students_are_named_only_once_the_match_is_confirmed(site: Site) -> None:
    seed_placement(site)
    seed_match(site, "accepted", accepted_by_student=True)
    browser = site.open("company", company_id="c-1")
    for path in ("/placements/p-1", "/placements/p-1/matches"):
        r = await browser.get(path)
        assert r.status_code == 200
        assert "s-1" in r.text
        assert "<td>EE</td>" in r.text  # the programme
        assert "welding, cad" in r.text  # the skills
        for personal in ("Sara", "sara@school", "123 45"):
            assert personal not in r.text
    seed_match(site, "confirmed", accepted_by_student=True, accepted_by_company=True)
    r = await browser.get("/placements/p-1")
    assert "Sara Nieminen" in r.text
    assert 'href="mailto:sara@school.example.se"' in r.text
    assert "+46 70 123 45 67" in r.text
    assert "/company-answer" not in r.text  # nothing left to answer


async def test_the_company_accepts_and_declines_with_a_reason(site: Site) -> None:
    seed_placement(site)
    seed_match(site)
    browser = site.open("company", company_id="c-1")
    page = await browser.get("/placements/p-1")
    assert f'action="/matches/{MATCH}/company-answer"' in page.text
    assert '<option value="no_capacity">' in page.text
    r = await browser.post(f"/matches/{MATCH}/company-answer", {"answer": "accept"})
    assert r.status_code == 303
    assert r.headers["location"] == "/placements/p-1?answered=accept#students"
    match = site.fake.match_rows[MATCH]
    assert (match.state, match.accepted_by_company, match.accepted_by_student) == (
        "accepted",
        True,
        False,
    )
    assert [(e.type, e.data.by) for e in site.fake.published] == [("MatchAccepted", "company")]
    page = await browser.get("/placements/p-1")
    assert 'name="answer" value="accept"' not in page.text  # accepted once

    r = await browser.post(
        f"/matches/{MATCH}/company-answer", {"answer": "decline", "reason": "made-up"}
    )
    assert r.status_code == 422
    assert site.fake.match_rows[MATCH].state == "accepted"
    r = await browser.post(
        f"/matches/{MATCH}/company-answer", {"answer": "decline", "reason": "no_supervisor"}
    )
    assert r.status_code == 303
    match = site.fake.match_rows[MATCH]
    assert (match.state, match.declined_by, match.reason) == (
        "declined",
        "company",
        "no_supervisor",
    )


async def test_the_company_sets_its_notification_channel(site: Site) -> None:
    seed_placement(site)
    browser = site.open("company", company_id="c-1")
    r = await browser.post("/companies/c-1/channel", {"channel": "webhook", "webhook_url": ""})
    assert r.status_code == 422
    assert "required" in error_of(r.text, "webhook_url")
    assert "c-1" not in site.fake.company_channels
    url = "https://hr.example.se/apl-hook"
    r = await browser.post("/companies/c-1/channel", {"channel": "webhook", "webhook_url": url})
    assert (r.status_code, r.headers["location"]) == (303, "/companies/c-1?saved=channel")
    assert site.fake.company_channels["c-1"] == Channel("webhook", url)
    page = await browser.get(r.headers["location"])
    assert "The notification channel is saved." in page.text
    assert f'value="{url}"' in field_of(page.text, "webhook_url")
    assert re.search(r'value="webhook" checked', page.text)
    r = await browser.post("/companies/c-1/channel", {"channel": "email", "webhook_url": url})
    assert r.status_code == 303
    assert site.fake.company_channels["c-1"] == Channel("email", None)


async def test_a_coordinator_of_several_regions_sees_the_companys_placements_in_them(
    site: Site,
) -> None:
    seed_placement(site, "p-1", region="SE-AB")
    seed_placement(site, "p-2", region="SE-O")
    seed_placement(site, "p-3", region="SE-M")
    r = await site.open("coordinator", regions=["SE-AB", "SE-O"]).get("/companies/c-1")
    assert r.status_code == 200
    assert "/placements/p-1" in r.text
    assert "/placements/p-2" in r.text
    assert "/placements/p-3" not in r.text
    r = await site.open("company", company_id="c-1").get("/companies/c-1")
    assert all(f"/placements/p-{n}" in r.text for n in (1, 2, 3))


async def test_another_companys_pages_are_refused(site: Site) -> None:
    seed_placement(site)
    seed_match(site)
    other = site.open("company", company_id="c-2")
    for path in (
        "/companies/c-1",
        "/companies/c-1/placements/new",
        "/placements/p-1",
        "/placements/p-1/matches",
    ):
        r = await other.get(path)
        assert r.status_code == 403, path
        assert "You may not do this" in r.text
    for path, form in (
        ("/companies/c-1/placements/new", FORM),
        ("/companies/c-1/channel", {"channel": "email"}),
        ("/placements/p-1", FORM),
        ("/placements/p-1/withdraw", {"confirm": "yes"}),
        (f"/matches/{MATCH}/company-answer", {"answer": "accept"}),
    ):
        r = await other.post(path, form)
        assert r.status_code == 403, path
    assert site.fake.published == []
    assert site.fake.placement_rows["p-1"].offer.title == "Welder p-1"
    # The student of the match may not answer it as the company.
    student = site.open("student", student_id="s-1")
    r = await student.post(f"/matches/{MATCH}/company-answer", {"answer": "accept"})
    assert r.status_code == 403
    assert site.fake.match_rows[MATCH].state == "proposed"
