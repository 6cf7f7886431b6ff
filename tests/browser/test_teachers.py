"""A teacher's working-life period, in a real browser: the dev user `teacher` (t-000001) signs
in through the real Keycloak page at a phone's width, keeps their profile (a bad week is named
in the error summary, then saved), sees only the periods for teachers that fit their weeks and
ranks one; the coordinator runs a round of teachers from the region's page and reads its report;
the teacher accepts the period proposed. The placements and matching services run as separate
OS processes on the real Kafka and PostgreSQL (a database and a topic prefix of their own);
axe-core checks every page on the way.

The world: the period W_FIT (2027-W10 to W11, one place), W_LATE (2027-W14 to W15), and a
placement for students, P_STUDENT, which a teacher never sees.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from shared.contracts.topics import Topics
from tests.browser.conftest import COMPANY, REGION, App, placements_and_matching
from tests.support.browser import OpenPage, assert_accessible, sign_in
from tests.support.infra import Infra

pytestmark = [pytest.mark.infra, pytest.mark.timeout(420)]

TEACHER = "t-000001"  # the dev user `teacher`
COORDINATOR = "coordinator-se-ab"
W_FIT, W_LATE, P_STUDENT = "w-browser-fit", "w-browser-late", "p-browser-student"
TITLE_FIT = "Battery cell production"
WAIT_MS = 120_000


def _offer(pid: str, title: str, starts: str, ends: str, kind: str = "teacher") -> dict[str, Any]:
    return {
        "placement_id": pid,
        "kind": kind,
        "company_id": COMPANY,
        "region": REGION,
        "capacity": 1,
        "title": title,
        "required_skills": ["battery-hv"],
        "starts_on": starts,
        "ends_on": ends,
        "supervisor": {"name": "Handledare", "email": "handledare@example.se", "language": "sv"},
    }


@pytest.fixture(scope="module")
async def services(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[App]:
    async with placements_and_matching(
        infra, make_topics, tmp_path_factory.mktemp("teachers"), "apl_teachers"
    ) as app:
        for body in (
            _offer(W_FIT, TITLE_FIT, "2027-03-08", "2027-03-19"),
            _offer(W_LATE, "Recycling line", "2027-04-05", "2027-04-16"),
            _offer(P_STUDENT, "Electrician's apprentice", "2027-01-18", "2027-03-12", "student"),
        ):
            await app.api("company", "POST", "/placements", body)
        teacher = {
            "student_id": TEACHER,
            "participant": "teacher",
            "region": REGION,
            "programme": "EE",
            "subject": "Electrical installation",
            "skills": ["battery-hv"],
            "available_weeks": ["2027-W10", "2027-W11", "2027-W12"],
            "name": "Liisa Korhonen",
            "email": f"{TEACHER}@school.example.se",
        }
        await app.api("coordinator", "POST", "/students", teacher)
        yield app


@pytest.fixture(scope="module")
def base_url(services: App) -> str:
    return services.url


async def _profile(page: Page) -> None:
    """The teacher's own profile: a week that is no week is named, then the weeks are saved."""
    await page.get_by_role("link", name="My teacher profile").first.click()
    await expect(page.locator("h1")).to_have_text("My teacher profile")
    await assert_accessible(page)
    weeks = page.get_by_label("Weeks you can spend at a company")
    await weeks.fill("2027-W10, 2027-W11, 2027-W53")
    await page.get_by_role("button", name="Save the profile").click()
    summary = page.locator("#error-summary")
    await expect(summary).to_contain_text("Weeks you can spend at a company")
    await expect(weeks).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page)
    await summary.get_by_role("link").first.click()
    await expect(weeks).to_be_focused()
    await weeks.fill("2027-W10 2027-W11 2027-W12 2027-W13")
    await page.get_by_role("button", name="Save the profile").click()
    await expect(page.get_by_role("status")).to_contain_text("The profile is saved.")


async def _choices(page: Page) -> None:
    """Only the periods for teachers, only those in the teacher's weeks unless all are shown."""
    await page.goto(f"/students/{TEACHER}/choices")
    await expect(
        page.get_by_text("These are the working-life periods for teachers")
    ).to_be_visible()
    offers = page.locator("ul.offers > li h3")
    await expect(offers).to_have_text([TITLE_FIT])
    await assert_accessible(page)
    await page.goto(f"/students/{TEACHER}/choices?show=all")
    await expect(page.get_by_text("touches weeks you did not list as available")).to_be_visible()
    await expect(page.get_by_text("Electrician's apprentice")).to_have_count(0)
    await page.goto(f"/students/{TEACHER}/choices")
    await page.get_by_role("button", name="Add to my ranking").click()
    await expect(page.get_by_role("status")).to_have_text(
        "The placement was added to your ranking, and the ranking is saved."
    )
    await expect(page.locator("ol.ranking > li")).to_have_attribute("data-id", W_FIT)


async def _round_of_teachers(page: Page) -> None:
    await page.goto(f"/regions/{REGION}")
    await page.get_by_role("radio", name=re.compile(r"^Teachers, at working-life periods")).check()
    await assert_accessible(page)
    await page.get_by_role("button", name="Run the round").click()
    await page.wait_for_url(re.compile(r"/rounds/[0-9a-f-]{36}\?requested=1$"))
    await expect(page.locator("#outcome-ranks-h")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_text("of teachers, at working-life periods")).to_be_visible()
    figures = page.locator("#round-report dl.figures")
    await expect(figures.locator('dt:text-is("Placed") + dd')).to_have_text("1")
    await assert_accessible(page)


async def _accept(page: Page) -> None:
    await page.goto(f"/students/{TEACHER}")
    await expect(page.locator("h1")).to_have_text("My working-life period")
    await expect(page.get_by_text(TITLE_FIT).first).to_be_visible(timeout=WAIT_MS)
    await assert_accessible(page)
    await page.get_by_role("button", name="Accept the placement").click()
    await expect(page.get_by_role("status")).to_have_text(
        "You accepted the proposal. It is confirmed once the company has accepted too."
    )
    await assert_accessible(page)


async def test_a_teachers_working_life_period(
    services: App, open_page: OpenPage, base_url: str
) -> None:
    teacher = await open_page(phone=True)
    landed = await sign_in(teacher, base_url, "teacher")
    assert landed.endswith(f"/students/{TEACHER}"), landed
    await expect(teacher.locator("h1")).to_have_text("My working-life period")
    await assert_accessible(teacher)
    width = await teacher.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"the teacher's page scrolls sideways at 360 px: {width} px wide"
    await _profile(teacher)
    await _choices(teacher)

    coordinator = await open_page()
    await sign_in(coordinator, base_url, COORDINATOR)
    await _round_of_teachers(coordinator)

    await _accept(teacher)
    match = await services.api("teacher", "GET", f"/students/{TEACHER}/match")
    assert (match["placement_id"], match["state"]) == (W_FIT, "accepted"), match
    stored = await services.api("teacher", "GET", f"/teachers/{TEACHER}")
    assert stored["available_weeks"] == ["2027-W10", "2027-W11", "2027-W12", "2027-W13"]

    lines = services.process.log_path.read_text(errors="replace").splitlines()
    failures = [line for line in lines if re.search(r'"level": "(error|critical)"', line)]
    assert not failures, "placements logged errors:\n" + "\n".join(failures[:5])
