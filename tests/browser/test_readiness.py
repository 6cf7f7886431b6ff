"""Supervisor readiness in a real browser: the coordinator opens the readiness page from the
region's page, sees the placement whose supervisor has no course recorded, and sets the region's
course and "confirm only once the supervisor is ready" by keyboard; after a round, the
supervisor opens their confirm link at a phone's width, is told why the confirmation waits and
asked for the day they completed the course, gives a day in the future (refused, naming the
field), then a day that counts, and the proposal is confirmed for the company; the coordinator's
page no longer lists the placement. The placements and matching services run as separate OS
processes on the real Kafka and PostgreSQL (a topic prefix and a database of their own); the
coordinator signs in through the real Keycloak page; axe-core checks every page on the way.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import Page, expect

from shared.contracts import links
from shared.contracts.topics import Topics
from tests.browser.conftest import COMPANY, REGION, App, placements_and_matching
from tests.support.browser import OpenPage, assert_accessible, sign_in
from tests.support.infra import Infra
from tests.support.waiting import eventually

pytestmark = [pytest.mark.infra, pytest.mark.timeout(420)]

STUDENT = "s-000001"
COORDINATOR = "coordinator-se-ab"
PLACEMENT = "p-readiness-1"
TITLE = "Service technician"
SUPERVISOR = {"name": "Hanna Lind", "email": "hanna.lind@example.se", "language": "en"}
COURSE = "https://kurs.example.se/handledare"
LINK_SECRET = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
async def services(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[App]:
    async with placements_and_matching(
        infra,
        make_topics,
        tmp_path_factory.mktemp("readiness"),
        "apl_readiness",
        link_secret=LINK_SECRET,
    ) as app:
        offer = {
            "placement_id": PLACEMENT,
            "company_id": COMPANY,
            "region": REGION,
            "capacity": 1,
            "title": TITLE,
            "programmes": ["EE"],
            "starts_on": "2027-01-18",
            "ends_on": "2027-03-12",
            "supervisor": SUPERVISOR,
        }
        await app.api("company", "POST", "/placements", offer)
        student = {
            "student_id": STUDENT,
            "region": REGION,
            "programme": "EE",
            "preferences": [PLACEMENT],
            "name": f"Student {STUDENT}",
            "email": f"{STUDENT}@school.example.se",
        }
        await app.api("coordinator", "POST", "/students/batch", {"items": [student]})
        yield app


@pytest.fixture(scope="module")
def base_url(services: App) -> str:
    return services.url


async def _fits_a_phone(page: Page) -> None:
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None
    assert width <= viewport["width"], f"{page.url} scrolls sideways: {width} px wide"


async def _set_up_the_region(page: Page) -> None:
    """From the region's page to its readiness page; the settings saved by keyboard alone."""
    await page.goto(f"/regions/{REGION}")
    await page.get_by_role("link", name=re.compile(r"^Supervisor readiness")).click()
    await expect(page.locator("h1")).to_have_text(f"Supervisor readiness in {REGION}")
    card = page.locator(f"#placement-{PLACEMENT}")
    await expect(card).to_contain_text("No course recorded")
    await expect(card).to_contain_text(f"{SUPERVISOR['name']} ({SUPERVISOR['email']})")
    await assert_accessible(page)

    course = page.get_by_label("The supervisor course's web address")
    await course.focus()
    await page.keyboard.type(COURSE)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Years a completed course counts")).to_be_focused()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("3")
    await page.keyboard.press("Tab")
    require = page.get_by_label("Confirm a match only once its supervisor is ready")
    await expect(require).to_be_focused()
    await page.keyboard.press("Space")
    await expect(require).to_be_checked()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Save the settings")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text("The region's settings are saved.")
    await expect(page.get_by_label("The supervisor course's web address")).to_have_value(COURSE)
    await assert_accessible(page)


async def _the_match(app: App) -> uuid.UUID:
    """A round of the region proposes the placement to the student."""
    await app.api("coordinator", "POST", "/rounds", {"region": REGION, "policy": "optimal"})

    async def proposed() -> str | None:
        async with httpx.AsyncClient(base_url=f"{app.url}/v1", timeout=15) as http:
            r = await http.get(
                f"/students/{STUDENT}/match", headers=app.tokens.headers("coordinator")
            )
        return r.json()["match_id"] if r.status_code == 200 else None

    found = await eventually(proposed, wait=120, interval=0.5, what="the round's proposal")
    return uuid.UUID(found)


async def _the_supervisor_confirms(page: Page, match_id: uuid.UUID) -> None:
    """The confirm link at a phone's width: why it waits, a day refused, then confirmed."""
    made = links.new_link(uuid.uuid4(), match_id, "confirm", now=datetime.now(UTC))
    await page.goto(f"/v1/actions/{links.sign(LINK_SECRET.encode(), made)}")
    await expect(page.locator("h1")).to_have_text("Confirm the proposal?")
    readiness = page.locator("section.readiness")
    await expect(readiness).to_contain_text("No supervisor training is recorded for you.")
    await expect(readiness).to_contain_text(
        "Your region confirms a placement only once its supervisor has completed the "
        "supervisor course within the last 3 years."
    )
    await expect(readiness.get_by_role("link", name=COURSE)).to_have_attribute("href", COURSE)
    await assert_accessible(page)
    await _fits_a_phone(page)

    day = page.get_by_label("I completed the supervisor course on")
    today = datetime.now(UTC).date()
    await day.fill((today + timedelta(days=1)).isoformat())
    # the browser would refuse a day past `max` itself; the service must refuse it too
    await page.evaluate("() => document.getElementById('trained_on').removeAttribute('max')")
    await page.get_by_role("button", name="Record my course and confirm").click()
    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("The day is in the future.")
    await expect(page.get_by_label("I completed the supervisor course on")).to_have_attribute(
        "aria-invalid", "true"
    )
    await assert_accessible(page)

    await summary.get_by_role("link").click()  # the summary leads to the field
    await expect(day).to_be_focused()
    await day.fill((today - timedelta(days=90)).isoformat())
    await page.get_by_role("button", name="Record my course and confirm").click()
    await expect(page.locator("h1")).to_have_text("Thank you! The proposal is confirmed")
    await assert_accessible(page)
    await _fits_a_phone(page)


async def test_a_region_requires_readiness_and_the_supervisor_records_the_course(
    services: App, open_page: OpenPage, base_url: str
) -> None:
    coordinator = await open_page()
    await sign_in(coordinator, base_url, COORDINATOR)
    await _set_up_the_region(coordinator)

    match_id = await _the_match(services)
    supervisor = await open_page(phone=True)
    await _the_supervisor_confirms(supervisor, match_id)
    answered = await services.api("coordinator", "GET", f"/students/{STUDENT}/match")
    assert answered["accepted_by_company"] is True, answered

    await coordinator.reload()
    await expect(coordinator.locator(f"#placement-{PLACEMENT}")).to_have_count(0)
    await expect(
        coordinator.get_by_text("Every open placement of the region has a ready supervisor.")
    ).to_be_visible()
    await coordinator.goto(f"/regions/{REGION}/audit")
    await expect(coordinator.locator("tbody")).to_contain_text("A supervisor's course was recorded")
    await assert_accessible(coordinator)

    lines = services.process.log_path.read_text(errors="replace").splitlines()
    failures = [line for line in lines if re.search(r'"level": "(error|critical)"', line)]
    assert not failures, "placements logged errors:\n" + "\n".join(failures[:5])
