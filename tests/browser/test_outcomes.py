"""After a round, in a real browser: the coordinator compares optimal and stable by two dry runs
and sees both sides, runs the round, and reads its report, its outcomes, its rounds and its
vacancies; the unplaced student sees why, in words, and the vacancy that fits them, at a phone's
width, and adds it to their ranking. The placements and matching services run as separate OS
processes on the real Kafka and PostgreSQL (a topic prefix and a database of their own); each
person signs in once through the real Keycloak page; axe-core checks every page on the way.

The world: P_FULL (one slot) ranked by both dev students, s-000002 (`student2`) of higher
priority, so s-000001 (`student`) stays unplaced with its slot taken, and P_FREE, which they did
not rank and which fits them (two slots).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Page, ViewportSize, expect

from shared.contracts.topics import Topics
from tests.browser.conftest import COMPANY, REGION, WEB_CLIENT_SECRET, App
from tests.support.browser import OpenPage, assert_accessible, sign_in
from tests.support.databases import create_database, drop_database
from tests.support.identity import DevTokens
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port

pytestmark = [pytest.mark.infra, pytest.mark.timeout(420)]

SERVICES = ("placements", "matching")
S1, S2 = "s-000001", "s-000002"
COORDINATOR = "coordinator-se-ab"
P_FULL, P_FREE = "p-outcome-full", "p-outcome-free"
TITLE_FULL, TITLE_FREE = "Welder's apprentice", "Maintenance technician"
WAIT_MS = 120_000
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


async def _fits_a_phone(page: Page) -> None:
    """The page does not scroll sideways at a phone's width (its tables scroll inside)."""
    await page.set_viewport_size(PHONE)
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    await page.set_viewport_size(DESKTOP)
    assert width <= PHONE["width"], f"{page.url} scrolls sideways at 360 px: {width} px wide"


def _offer(pid: str, title: str, capacity: int) -> dict[str, Any]:
    return {
        "placement_id": pid,
        "company_id": COMPANY,
        "region": REGION,
        "capacity": capacity,
        "title": title,
        "programmes": ["EE"],
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "supervisor": {"name": "Handledare", "email": "handledare@example.se", "language": "sv"},
    }


def _student(sid: str, priority: int) -> dict[str, Any]:
    return {
        "student_id": sid,
        "region": REGION,
        "programme": "EE",
        "priority": priority,
        "preferences": [P_FULL],
        "name": f"Student {sid}",
        "email": f"{sid}@school.example.se",
    }


@pytest.fixture(scope="module")
async def services(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[App]:
    folder = tmp_path_factory.mktemp("outcomes")
    topics = await make_topics()
    database_url = await create_database(infra.database_url, "apl_outcomes")
    common = {
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_AUTH_ISSUER": infra.auth_issuer,
    }
    extra: dict[str, dict[str, str]] = {
        "placements": {
            "APL_WEB_CLIENT_SECRET": WEB_CLIENT_SECRET,
            "APL_SESSION_SECRET": secrets.token_urlsafe(32),
            "APL_ACTION_LINK_SECRET": secrets.token_urlsafe(32),
        },
        "matching": {},
    }
    processes = {
        name: ServiceProcess(
            name,
            {
                **common,
                **infra.kafka_env(name),
                f"APL_{name.upper()}_DATABASE_URL": database_url,
                **extra[name],
            },
            folder / "logs",
        )
        for name in SERVICES
    }
    processes["placements"].port = free_port()
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start, 90) for p in processes.values()))
        app = App(
            processes["placements"].url, processes["placements"], DevTokens(infra.auth_issuer)
        )
        await app.api("company", "POST", "/placements", _offer(P_FULL, TITLE_FULL, 1))
        await app.api("company", "POST", "/placements", _offer(P_FREE, TITLE_FREE, 2))
        items = [_student(S1, 0), _student(S2, 1)]
        await app.api("coordinator", "POST", "/students/batch", {"items": items})
        yield app
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes.values()))
        await drop_database(infra.database_url, database_url)


@pytest.fixture(scope="module")
def base_url(services: App) -> str:
    return services.url


async def _compare(page: Page) -> None:
    """Two dry runs from the region's page; the comparison page polls until both are done."""
    await page.goto(f"/regions/{REGION}")
    await page.get_by_label("With fill in both").check()
    await page.get_by_role("button", name="Compare optimal and stable").click()
    await page.wait_for_url(re.compile(r"/rounds/compare\?a=[0-9a-f-]{36}&b=[0-9a-f-]{36}$"))
    await expect(page.locator("h1")).to_have_text(f"Two rounds of {REGION} side by side")
    await assert_accessible(page)
    # No reload: the page's own polling (htmx) brings the comparison.
    await expect(page.get_by_text("Both rounds are completed.")).to_be_visible(timeout=WAIT_MS)
    table = page.locator("table.compare")
    await expect(table.locator("thead th")).to_have_text(["Figure", "Optimal", "Stable"])
    placed = table.locator("tbody tr").filter(has=page.locator('th:text-is("Placed")'))
    # Both place both students: s-000002 at P_FULL, s-000001 by fill at P_FREE.
    await expect(placed.locator("td")).to_have_text(["2", "2"])
    filled = table.locator("tbody tr").filter(
        has=page.locator('th:text-is("Filled: a vacancy not among their choices")')
    )
    await expect(filled.locator("td")).to_have_text(["1", "1"])
    await expect(page.get_by_text("0 students are placed differently")).to_be_visible()
    await assert_accessible(page)
    await _fits_a_phone(page)


async def _round_and_report(page: Page) -> None:
    """An ordinary round without fill: s-000001 stays unplaced; the report and its pages."""
    await page.goto(f"/regions/{REGION}")
    await page.get_by_role("radio", name=re.compile(r"^Stable")).check()
    await page.get_by_role("radio", name=re.compile(r"^Ordinary")).check()
    await page.get_by_role("button", name="Run the round").click()
    await page.wait_for_url(re.compile(r"/rounds/[0-9a-f-]{36}\?requested=1$"))
    await expect(page.locator("#outcome-ranks-h")).to_be_visible(timeout=WAIT_MS)
    figures = page.locator("#round-report dl.figures")
    await expect(figures.locator('dt:text-is("Placed") + dd')).to_have_text("1")
    await expect(figures.locator('dt:text-is("Not placed") + dd')).to_have_text("1")
    await expect(page.get_by_role("link", name="The report as CSV")).to_be_visible()
    await assert_accessible(page)
    await _fits_a_phone(page)

    await page.get_by_role("link", name="Every student's outcome, with its explanation").click()
    await page.get_by_label("Placed or not").select_option("no")
    await page.get_by_role("button", name="Show", exact=True).click()
    rows = page.locator("table.outcomes tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("th")).to_have_text(S1)
    await rows.first.locator("summary").click()
    await expect(rows.first.locator("ul.why")).to_contain_text(
        f"Choice 1 ({P_FULL}): full: its 1 slot went to 1 student of higher priority"
    )
    await assert_accessible(page)

    await page.goto(f"/regions/{REGION}/rounds")
    await expect(page.locator("tbody tr")).to_have_count(3)  # the two dry runs and the round
    await assert_accessible(page)

    await page.goto(f"/regions/{REGION}/vacancies")
    card = page.locator(f"#student-{S1}")
    await expect(card.locator("ol.vacancies")).to_contain_text(P_FREE)
    await card.get_by_text("Assign by hand").click()
    await expect(card.get_by_label("Placement (its id)")).to_have_value(P_FREE)
    await assert_accessible(page)
    await _fits_a_phone(page)


async def _unplaced_student(page: Page) -> None:
    """s-000001 at a phone's width: why, in words, and the vacancy that fits, added."""
    await page.goto(f"/students/{S1}")
    section = page.locator("section[aria-labelledby=outcome-h]")
    await expect(section.locator(".lead")).to_have_text(
        "Not placed: every choice that fits was needed by others."
    )
    await expect(section).to_contain_text("full: its 1 slot went to 1 student of higher priority")
    vacancies = page.locator("section[aria-labelledby=vacancies-h]")
    await expect(vacancies.locator("ul.offers > li h3")).to_have_text([TITLE_FREE])
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"the placement page scrolls sideways at 360 px: {width} px wide"
    await assert_accessible(page)
    await vacancies.get_by_role("button", name="Add to my ranking").click()
    await expect(page.get_by_role("status")).to_have_text(
        "The placement was added to your ranking, and the ranking is saved."
    )
    ranking = page.locator("ol.ranking > li")
    await expect(ranking).to_have_count(2)
    await expect(ranking.nth(1)).to_have_attribute("data-id", P_FREE)


async def test_a_comparison_a_report_and_an_unplaced_students_next_step(
    services: App, open_page: OpenPage, base_url: str
) -> None:
    coordinator = await open_page()
    await sign_in(coordinator, base_url, COORDINATOR)
    await _compare(coordinator)
    await _round_and_report(coordinator)

    student = await open_page(phone=True)
    await sign_in(student, base_url, "student")
    await _unplaced_student(student)
    stored = await services.api("student", "GET", f"/students/{S1}")
    assert stored["preferences"] == [P_FULL, P_FREE], stored["preferences"]

    lines = services.process.log_path.read_text(errors="replace").splitlines()
    failures = [line for line in lines if re.search(r'"level": "(error|critical)"', line)]
    assert not failures, "placements logged errors:\n" + "\n".join(failures[:5])
