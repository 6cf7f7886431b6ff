"""The coordinator's supervisor readiness page over the in-memory unit of work (linked from the
region's page: the settings, the placements whose supervisor is not ready, a course recorded
from the page, refusals next to their field), and a confirmation the region refuses on the
company's and the student's pages, saying why."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

from services.placements import handlers
from services.placements.domain.commands import (
    PostPlacement,
    RegisterStudent,
    SetReadinessSettings,
)
from services.placements.domain.model import Contact, OfferDraft, StudentDraft
from shared.contracts import events as ev
from tests.support.factories import placement, student
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork

from .conftest import Site

REGION = "SE-AB"
TODAY = datetime.now(UTC).date()
COURSE = "https://kurs.example.se/handledare"
PAGE = f"/regions/{REGION}/readiness"
ANNA = {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"}


async def world(fake: InMemoryPlacementsUnitOfWork) -> uuid.UUID:
    """p-1 (Anna, no course recorded) with s-1 proposed there; p-2 without a supervisor."""
    for pid, supervisor in (("p-1", ANNA), ("p-2", None)):
        fields = {**placement(pid).model_dump(), "supervisor": supervisor}
        offer = OfferDraft.model_validate(fields, strict=False)
        await handlers.post_placement(PostPlacement(offer), fake)
    draft = StudentDraft.model_validate(
        {**student("s-1", prefs=()).model_dump(), "preferences": ()}, strict=False
    )
    contact = Contact("Sara Nieminen", "sara@school.example.se")
    await handlers.register_student(RegisterStudent(draft, contact), fake)
    match_id = uuid.uuid4()
    data = ev.MatchProposedData(
        match_id=match_id,
        region=REGION,
        student_id="s-1",
        placement_id="p-1",
        round_id=uuid.uuid4(),
        company_id="c-1",
        rank=1,
    )
    await handlers.apply_match_proposed(ev.MatchProposed(producer="matching", data=data), fake)
    return match_id


def cards(html: str) -> list[str]:
    return re.findall(r'<li class="card" id="placement-([^"]+)">', html)


async def test_the_region_links_to_its_readiness_page_which_lists_the_unready(site: Site) -> None:
    await world(site.fake)
    browser = site.open("coordinator", regions=[REGION])
    region = await browser.get(f"/regions/{REGION}")
    assert f'href="{PAGE}"' in region.text
    r = await browser.get(PAGE)
    assert r.status_code == 200, r.text
    html = r.text
    assert "<h1>Supervisor readiness in SE-AB</h1>" in html
    assert sorted(cards(html)) == ["p-1", "p-2"]
    assert "Anna Berg (anna@example.se)" in html
    assert "No course recorded" in html
    assert "No supervisor named" in html
    assert '<label for="trained_on-p-1">Anna Berg completed the course on</label>' in html
    assert 'id="trained_on-p-2"' not in html  # nobody to record a course for
    assert '<label for="course_url">' in html
    assert '<label for="validity_years">' in html
    assert '<label for="require_readiness">' in html


async def test_the_settings_are_saved_and_a_bad_value_is_named_at_its_field(site: Site) -> None:
    await world(site.fake)
    browser = site.open("coordinator", regions=[REGION])
    form = {"course_url": "kurs.example.se", "validity_years": "0", "require_readiness": "1"}
    r = await browser.post(f"{PAGE}/settings", form)
    assert r.status_code == 422, r.text
    summary = re.search(r'<div class="errors" role="alert".*?</div>', r.text, flags=re.S)
    assert summary is not None
    assert 'href="#course_url"' in summary.group(0)
    assert 'href="#validity_years"' in summary.group(0)
    assert 'value="kurs.example.se"' in r.text  # what was typed, shown again
    assert re.search(r'id="validity_years"[^>]*aria-invalid="true"', r.text)
    assert site.fake.region_settings_rows == {}
    form = {"course_url": COURSE, "validity_years": "4", "require_readiness": "1"}
    r = await browser.post(f"{PAGE}/settings", form)
    assert (r.status_code, r.headers["location"]) == (303, f"{PAGE}?saved=settings#notice")
    saved = site.fake.region_settings_rows[REGION]
    assert (saved.course_url, saved.validity_years, saved.require_readiness) == (COURSE, 4, True)
    page = await browser.get(f"{PAGE}?saved=settings")
    assert "The region&#39;s settings are saved." in page.text
    assert f'value="{COURSE}"' in page.text
    assert re.search(r'id="require_readiness"[^>]* checked', page.text)
    audit = await browser.get(f"/regions/{REGION}/audit")
    assert "The region&#39;s supervisor readiness settings were changed" in audit.text


async def test_a_course_is_recorded_from_the_page_and_a_future_day_is_refused(
    site: Site,
) -> None:
    await world(site.fake)
    browser = site.open("coordinator", regions=[REGION])
    form = {
        "placement_id": "p-1",
        "company_id": "c-1",
        "email": "anna@example.se",
        "trained_on": (TODAY + timedelta(days=1)).isoformat(),
    }
    r = await browser.post(f"{PAGE}/training", form)
    assert r.status_code == 422, r.text
    assert 'href="#trained_on-p-1"' in r.text
    assert "The day is in the future." in unescape(r.text)
    assert re.search(r'id="trained_on-p-1"[^>]*aria-invalid="true"', r.text)
    assert site.fake.supervisor_rows == {}
    r = await browser.post(
        f"{PAGE}/training", {**form, "email": "bert@example.se", "trained_on": "2026-01-05"}
    )
    assert r.status_code == 422
    assert "No placement of this company in the region names this supervisor now." in r.text
    r = await browser.post(f"{PAGE}/training", {**form, "trained_on": "yesterday"})
    assert r.status_code == 422
    assert "Give the day as YYYY-MM-DD." in r.text
    day = (TODAY - timedelta(days=60)).isoformat()
    r = await browser.post(f"{PAGE}/training", {**form, "trained_on": day})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{PAGE}?saved=training&placement=p-1#notice"
    page = await browser.get(f"{PAGE}?saved=training&placement=p-1")
    assert "The course of the supervisor of p-1 is recorded." in page.text
    assert cards(page.text) == ["p-2"]
    audit = await browser.get(f"/regions/{REGION}/audit")
    assert "A supervisor&#39;s course was recorded" in audit.text


async def test_another_regions_coordinator_is_refused(site: Site) -> None:
    await world(site.fake)
    other = site.open("coordinator", regions=["SE-O"])
    assert (await other.get(PAGE)).status_code == 403
    form = {"validity_years": "3", "require_readiness": "1"}
    assert (await other.post(f"{PAGE}/settings", form)).status_code == 403
    assert site.fake.region_settings_rows == {}


async def test_a_refused_confirmation_says_why_on_the_company_and_student_pages(
    site: Site,
) -> None:
    match_id = await world(site.fake)
    await handlers.set_readiness_settings(
        SetReadinessSettings(REGION, COURSE, 3, require_readiness=True), site.fake
    )
    company = site.open("company", company_id="c-1")
    r = await company.post(f"/matches/{match_id}/company-answer", {"answer": "accept"})
    assert r.status_code == 409, r.text
    assert "The placement&#39;s supervisor is not ready yet" in r.text
    assert "anna@example.se has no supervisor training recorded" in r.text
    assert not [e for e in site.fake.published if isinstance(e, ev.MatchAccepted)]
    # the student accepts first (taken), then the company's acceptance would confirm
    pupil = site.open("student", student_id="s-1")
    r = await pupil.post(f"/matches/{match_id}/answer", {"answer": "accept"})
    assert r.status_code == 303, r.text
    r = await company.post(f"/matches/{match_id}/company-answer", {"answer": "accept"})
    assert r.status_code == 409
    accepted = [e for e in site.fake.published if isinstance(e, ev.MatchAccepted)]
    assert [e.data.by for e in accepted] == ["student"]
