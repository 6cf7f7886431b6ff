"""The competence gap in a real browser: after a round, the coordinator goes from the region's
page to its competence gap, reads the biggest gap in words, its chart and its tables (a count
under 5 reads "< 5"), chooses the term and downloads the CSV by keyboard alone, sees a bad term
refused next to the field, and the page fits a phone. The placements and matching services run
as separate OS processes on the real Kafka and PostgreSQL (a topic prefix and a database of
their own); the coordinator signs in through the real Keycloak page; axe-core checks each page.

The world: P_HV (8 slots) needs battery-hv, which none of the six students who rank it has;
P_WELD (2 slots) needs welding, which the seventh has and ranks. The round places the welder and
leaves the six unplaced for want of battery-hv: all 8 slots stay empty for want of it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Page, ViewportSize, expect

from shared.contracts.topics import Topics
from tests.browser.conftest import COMPANY, REGION, App, placements_and_matching
from tests.support.browser import OpenPage, assert_accessible, sign_in
from tests.support.infra import Infra

pytestmark = [pytest.mark.infra, pytest.mark.timeout(420)]

COORDINATOR = "coordinator-se-ab"
P_HV, P_WELD = "p-gap-hv", "p-gap-weld"
LACKING = [f"s-gap-{i}" for i in range(1, 7)]
WELDER = "s-gap-7"
WAIT_S = 120
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
FIRST_GAP = (
    "8 slots needed `battery-hv`; fewer than 5 students had it. 8 slots stayed empty for want "
    "of it. 6 students were left unplaced for want of it."
)


def _offer(pid: str, capacity: int, skill: str) -> dict[str, Any]:
    return {
        "placement_id": pid,
        "company_id": COMPANY,
        "region": REGION,
        "capacity": capacity,
        "title": f"Needs {skill}",
        "required_skills": [skill],
        "programmes": ["EE"],
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "supervisor": {"name": "Handledare", "email": "handledare@example.se", "language": "sv"},
    }


def _student(sid: str, skills: list[str], choice: str) -> dict[str, Any]:
    return {
        "student_id": sid,
        "region": REGION,
        "programme": "EE",
        "skills": skills,
        "preferences": [choice],
        "name": f"Student {sid}",
        "email": f"{sid}@school.example.se",
    }


async def _round(app: App) -> str:
    """A round of the region, waited for until every outcome part arrived here."""
    accepted = await app.api("coordinator", "POST", "/rounds", {"region": REGION})
    round_id = str(accepted["round_id"])
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = await app.api("coordinator", "GET", f"/rounds/{round_id}")
        if found["status"] == "completed" and found["parts_received"] >= found["outcome_parts"]:
            return round_id
        await asyncio.sleep(0.5)
    raise AssertionError(f"round {round_id} did not complete in {WAIT_S} s")


@pytest.fixture(scope="module")
async def services(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[App]:
    async with placements_and_matching(
        infra, make_topics, tmp_path_factory.mktemp("gap"), "apl_gap"
    ) as app:
        await app.api("company", "POST", "/placements", _offer(P_HV, 8, "battery-hv"))
        await app.api("company", "POST", "/placements", _offer(P_WELD, 2, "welding"))
        items = [_student(sid, ["wiring"], P_HV) for sid in LACKING]
        items.append(_student(WELDER, ["welding"], P_WELD))
        await app.api("coordinator", "POST", "/students/batch", {"items": items})
        await _round(app)
        yield app


@pytest.fixture(scope="module")
def base_url(services: App) -> str:
    return services.url


async def _fits_a_phone(page: Page) -> None:
    await page.set_viewport_size(PHONE)
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    await page.set_viewport_size(DESKTOP)
    assert width <= PHONE["width"], f"{page.url} scrolls sideways at 360 px: {width} px wide"


async def _tab_to(page: Page, selector: str, presses: int = 60) -> None:
    """Press Tab until the element is focused (reachable by keyboard), or fail."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"() => document.activeElement?.matches({selector!r}) ?? false"):
            return
    raise AssertionError(f"{selector} is not reached by Tab on {page.url}")


async def test_the_coordinator_reads_the_competence_gap_by_keyboard_and_on_a_phone(
    services: App, open_page: OpenPage, base_url: str
) -> None:
    page = await open_page()
    await sign_in(page, base_url, COORDINATOR)
    await page.goto(f"/regions/{REGION}")
    await page.get_by_role("link", name=re.compile(r"^Competence gap")).click()
    await page.wait_for_url(re.compile(rf"/regions/{REGION}/competence-gap$"))
    await expect(page.locator("h1")).to_have_text(f"Competence gap of {REGION}, spring term 2027")
    await expect(page.locator("ol.gaps > li").first).to_have_text(FIRST_GAP)
    chart = page.get_by_role("img", name="The biggest gaps: slots needed and students who have it")
    await expect(chart).to_be_visible()
    row = page.locator("tr").filter(has=page.locator('th code:text-is("battery-hv")'))
    await expect(row.locator("td")).to_have_text(["1", "8", "8", "< 5", "6"])
    await expect(page.get_by_text("No count of fewer than 5 students is shown")).to_be_visible()
    await assert_accessible(page)
    await _fits_a_phone(page)

    # By keyboard alone: the term, then "Show the term", then the CSV download.
    await _tab_to(page, "#term")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"competence-gap\?term=2027-spring$"))
    await expect(page.locator("ol.gaps > li").first).to_have_text(FIRST_GAP)
    await _tab_to(page, 'a[href$="competence-gap.csv?term=2027-spring"]')
    async with page.expect_download() as fetched:
        await page.keyboard.press("Enter")
    download = await fetched.value
    assert download.suggested_filename == f"competence-gap-{REGION}-2027-spring.csv"
    body = (await download.path()).read_text(encoding="utf-8")
    assert "skill,battery-hv,students,< 5" in body
    assert "s-gap-" not in body  # no student is named

    await page.goto(f"/regions/{REGION}/competence-gap?term=2031-spring")
    summary = page.locator(".errors")
    await expect(summary).to_contain_text("The region has no placements or rounds in this term.")
    await summary.get_by_role("link").click()
    await expect(page.locator("#term")).to_be_focused()
    await expect(page.locator("#term")).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page)

    phone = await open_page(phone=True)
    await sign_in(phone, base_url, COORDINATOR)
    await phone.goto(f"/regions/{REGION}/competence-gap")
    await expect(phone.locator("ol.gaps > li").first).to_have_text(FIRST_GAP)
    width = await phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the gap page scrolls sideways at 360 px: {width} px wide"
    await assert_accessible(phone)

    lines = services.process.log_path.read_text(errors="replace").splitlines()
    failures = [line for line in lines if re.search(r'"level": "(error|critical)"', line)]
    assert not failures, "placements logged errors:\n" + "\n".join(failures[:5])
