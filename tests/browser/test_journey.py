"""The journey of two placements in a real browser, end to end: each person signs in through the
real Keycloak page and works on the real pages of the placements service, which runs here with
the matching and notifications services (separate OS processes on the real Kafka and PostgreSQL,
one topic prefix and one fresh database of their own) and an SMTP sink in the test process.

The student `student` (s-000001) adds a placement to their ranking, moves it to the top by
keyboard and saves; the coordinator of SE-AB runs an optimal round and watches its page until
the report is there; the student sees the proposal, their first choice, and accepts. The company
side answers in both of its ways: the staff `company` (c-000001) accepts the other student
(s-000002, `student2`) on the placement's page, and the supervisor confirms s-000001 through the
link of the proposal notice, read from the SMTP sink and opened without an account, in the
supervisor's language. Accepted by both sides, each match is confirmed by the matching service;
the students' pages, the company's page and the supervisor's confirmation notices say so, and
the links that can no longer act say why. axe-core checks every page on the way.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Locator, Page, expect

from devtools.demo import mailsink
from services.placements.entrypoints import actions
from services.placements.entrypoints.web import i18n
from shared.contracts.links import ActionLink, verify
from shared.contracts.topics import Topics
from tests.browser.conftest import COMPANY, REGION, WEB_CLIENT_SECRET, App
from tests.support.browser import OpenPage, assert_accessible, sign_in
from tests.support.databases import create_database, drop_database
from tests.support.identity import DevTokens
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.infra, pytest.mark.timeout(600)]

NOTIFICATIONS_SECRET = "dev-notifications-secret"  # deploy/keycloak/dev: apl-notifications
SERVICES = ("placements", "matching", "notifications")
S1, S2 = "s-000001", "s-000002"  # the dev users `student` and `student2`
COORDINATOR = "coordinator-se-ab"
P1, P2 = "p-journey-1", "p-journey-2"
TITLE1, TITLE2 = "Electrician's apprentice", "Service technician"
SUPERVISOR = "handledare.journey@example.se"
SUPERVISOR_LANGUAGE: i18n.Lang = "sv"
WAIT = 120.0
"""Seconds a step waits for the services behind it (a round, a notice, a confirmation)."""
ACTION_LINK = re.compile(r"https?://[^\s\"<>]+/v1/actions/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Journey:
    """The three services of the journey, the mail they sent, and the key of the action links."""

    app: App
    processes: dict[str, ServiceProcess]
    mail: mailsink.Store
    link_secret: bytes

    def notices_to(self, recipient: str) -> list[str]:
        """The plain texts of the messages sent to `recipient` so far, oldest first."""
        texts: list[str] = []
        for name in reversed(self.mail.names()):
            message = self.mail.read(name)
            if email.utils.parseaddr(str(message["To"]))[1] == recipient:
                texts.append(_plain(message))
        return texts

    def links_to(self, recipient: str) -> dict[tuple[uuid.UUID, str], str]:
        """The action links in the messages to `recipient`: (match id, action) -> URL."""
        found: dict[tuple[uuid.UUID, str], str] = {}
        for text in self.notices_to(recipient):
            for url in ACTION_LINK.findall(text):
                link = self.link(url)
                found[(link.match_id, link.action)] = url
        return found

    def link(self, url: str) -> ActionLink:
        """What a link of a notice names (its signature checked with the services' key)."""
        return verify(self.link_secret, url.rsplit("/", 1)[1], now=datetime.now(UTC))


def _plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


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
        "supervisor": {
            "name": "Handledare",
            "email": SUPERVISOR,
            "language": SUPERVISOR_LANGUAGE,
        },
    }


def _student(sid: str, preferences: list[str]) -> dict[str, Any]:
    return {
        "student_id": sid,
        "region": REGION,
        "programme": "EE",
        "preferences": preferences,
        "name": f"Student {sid}",
        "email": f"{sid}@school.example.se",
    }


async def _seed(app: App) -> None:
    """P1 (two places) and P2 (one) of the company, both supervised by SUPERVISOR; s-000001 has
    ranked P2 alone, s-000002 P1."""
    await app.api("company", "POST", "/placements", _offer(P1, TITLE1, capacity=2))
    await app.api("company", "POST", "/placements", _offer(P2, TITLE2, capacity=1))
    items = [_student(S1, [P2]), _student(S2, [P1])]
    await app.api("coordinator", "POST", "/students/batch", {"items": items})


@pytest.fixture(scope="module")
async def journey(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Journey]:
    """Placements, matching and notifications on a topic prefix and a database of their own,
    sending mail to an SMTP sink here; the placements service trusts the local Keycloak and
    signs the dev users in through its web client."""
    folder = tmp_path_factory.mktemp("journey")
    store = mailsink.Store(folder / "mail")
    smtp_port = free_port()
    controller = Controller(mailsink._Handler(store), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    topics = await make_topics()
    database_url = await create_database(infra.database_url, "apl_journey")
    link_secret = secrets.token_urlsafe(32)
    placements_port = free_port()
    placements_url = f"http://127.0.0.1:{placements_port}"
    common = {
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_AUTH_ISSUER": infra.auth_issuer,
    }
    extra = {
        "placements": {
            "APL_WEB_CLIENT_SECRET": WEB_CLIENT_SECRET,
            "APL_SESSION_SECRET": secrets.token_urlsafe(32),
            "APL_ACTION_LINK_SECRET": link_secret,
        },
        "matching": {},
        "notifications": {
            # Also the base of the action links (APL_PLACEMENTS_PUBLIC_URL is not set).
            "APL_NOTIFICATIONS_PLACEMENTS_URL": placements_url,
            "APL_NOTIFICATIONS_PLACEMENTS_PUBLIC_URL": "",
            "APL_NOTIFICATIONS_CLIENT_SECRET": NOTIFICATIONS_SECRET,
            "APL_ACTION_LINK_SECRET": link_secret,
            "APL_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
            "APL_NOTIFICATIONS_SMTP_PORT": str(smtp_port),
        },
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
    processes["placements"].port = placements_port
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start, 90) for p in processes.values()))
        app = App(placements_url, processes["placements"], DevTokens(infra.auth_issuer))
        await _seed(app)
        yield Journey(app, processes, store, link_secret.encode())
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes.values()))
        controller.stop()
        await drop_database(infra.database_url, database_url)


@pytest.fixture(scope="module")
def base_url(journey: Journey) -> str:
    """The pages of this module are the journey's own placements service's."""
    return journey.app.url


async def _reload_until(page: Page, target: Locator, what: str, wait: float = WAIT) -> None:
    """Reload the page until `target` is on it (a change another service makes)."""

    async def shown() -> bool:
        await page.reload()
        return await target.count() > 0

    try:
        await eventually(shown, wait=wait, interval=0.5, what=what)
    except AssertionError as error:
        said = " ".join((await page.locator("main").inner_text()).split())
        raise AssertionError(f"{error}; {page.url} shows: {said}") from None
    await expect(target.first).to_be_visible()


async def _signed_in(open_page: OpenPage, base_url: str, user: str, **options: Any) -> Page:
    page = await open_page(**options)
    await sign_in(page, base_url, user)
    return page


async def _rank_and_save(page: Page) -> None:
    """s-000001 adds P1 (below P2), moves it up with Alt+ArrowUp, and saves."""
    await page.goto(f"/students/{S1}/choices")
    await expect(page.locator("h1")).to_have_text("My choices")
    ranking = page.locator("ol.ranking > li")
    await expect(ranking).to_have_count(1)
    await expect(ranking.first).to_have_attribute("data-id", P2)
    offer = page.locator("ul.offers > li").filter(
        has=page.get_by_role("heading", name=TITLE1, exact=True)
    )
    await offer.get_by_role("button", name="Add to my ranking").click()
    await expect(page.get_by_role("status")).to_have_text(
        "The placement was added to your ranking, and the ranking is saved."
    )
    await expect(ranking).to_have_count(2)
    await expect(ranking.nth(1)).to_have_attribute("data-id", P1)

    await page.get_by_role("button", name=f"Move up: {TITLE1}").focus()
    await page.keyboard.press("Alt+ArrowUp")
    await expect(ranking.nth(0)).to_have_attribute("data-id", P1)
    await expect(ranking.nth(1)).to_have_attribute("data-id", P2)
    await expect(page.locator("#ranking-live")).to_have_text(f"Moved to place 1: {TITLE1}")
    await expect(page.locator("#ranking-dirty")).to_be_visible()
    # The focus stays on the item moved, for the next key press.
    await expect(page.get_by_role("button", name=f"Move up: {TITLE1}")).to_be_focused()

    await page.get_by_role("button", name="Save my ranking").click()
    await expect(page.get_by_role("status")).to_have_text("Your ranking is saved.")
    await expect(ranking.nth(0)).to_have_attribute("data-id", P1)
    await expect(ranking.nth(1)).to_have_attribute("data-id", P2)
    await expect(page.locator("#ranking-dirty")).to_be_hidden()
    await assert_accessible(page)


async def _run_round(page: Page) -> None:
    """The coordinator runs an optimal round of SE-AB; its page polls until the report."""
    await page.goto(f"/regions/{REGION}")
    await expect(page.locator("h1")).to_have_text(f"Region {REGION}")
    await expect(page.get_by_text("No round has been run in this region yet.")).to_be_visible()
    await assert_accessible(page)
    await page.get_by_role("radio", name=re.compile(r"^Optimal")).check()
    await page.get_by_role("button", name="Run the round").click()
    await page.wait_for_url(re.compile(r"/rounds/[0-9a-f-]{36}\?requested=1$"))
    await expect(page.get_by_role("status").first).to_have_text("The round was requested.")
    # No reload: the page's own polling (htmx) brings the status and the report.
    timeout = WAIT * 1000
    await expect(page.locator("#round-status .badge")).to_have_text("Completed", timeout=timeout)
    await expect(page.locator("#figures-h")).to_be_visible(timeout=timeout)
    figures = page.locator("#round-report dl.figures")
    await expect(figures.locator('dt:text-is("Students in the round") + dd')).to_have_text("2")
    await expect(figures.locator('dt:text-is("Placed") + dd')).to_have_text("2")
    await expect(figures.locator('dt:text-is("At their first choice") + dd')).to_have_text("2")
    await assert_accessible(page)


async def _proposal(page: Page, sid: str) -> Locator:
    """The student's page once the round's proposal is there: P1, their first choice."""
    await page.goto(f"/students/{sid}")
    await expect(page.locator("h1")).to_have_text("My placement")
    await _reload_until(
        page, page.get_by_text("This placement is your 1st choice."), f"{sid}'s proposal"
    )
    facts = page.locator("section[aria-labelledby=proposal-h] dl.facts")
    await expect(facts.locator('dt:text-is("Placement") + dd')).to_have_text(TITLE1)
    await expect(facts.locator('dt:text-is("Company") + dd')).to_have_text(COMPANY)
    return facts


async def _accept_as_student(page: Page, *, company_accepted: bool = False) -> None:
    """Accept the proposal; once the company side has accepted too, the matching service may
    have confirmed it by the time the page comes back."""
    await page.get_by_role("button", name="Accept the placement").click()
    await expect(page.get_by_role("status")).to_have_text(
        "You accepted the proposal. It is confirmed once the company has accepted too."
    )
    await expect(page.get_by_role("button", name="Accept the placement")).to_have_count(0)
    status = page.locator('section[aria-labelledby=proposal-h] dt:text-is("Status") + dd')
    badge = re.compile(r"^(Accepted|Confirmed)$") if company_accepted else "Accepted"
    await expect(status.locator(".badge")).to_have_text(badge)
    await expect(status).to_contain_text("You have accepted.")
    await assert_accessible(page)


def _words(lang: i18n.Lang) -> Callable[[str], str]:
    return i18n.translations(lang).gettext


async def _open_link(page: Page, url: str, status: int) -> None:
    response = await page.goto(url)
    assert response is not None
    assert response.status == status, (url, response.status, await page.content())
    await expect(page.locator("html")).to_have_attribute("lang", SUPERVISOR_LANGUAGE)
    await expect(page.locator("h1")).to_have_count(1)


async def test_from_ranking_to_confirmed_placements(
    journey: Journey, open_page: OpenPage, base_url: str
) -> None:
    app = journey.app
    sv = _words(SUPERVISOR_LANGUAGE)

    # The student ranks: P1 added, moved above P2 by keyboard, saved.
    student = await _signed_in(open_page, base_url, "student")
    await _rank_and_save(student)
    stored = await app.api("student", "GET", f"/students/{S1}")
    assert stored["preferences"] == [P1, P2], stored["preferences"]

    # The coordinator runs a round.
    coordinator = await _signed_in(open_page, base_url, COORDINATOR)
    await _run_round(coordinator)

    # The student sees the proposal, their first choice, and accepts.
    facts = await _proposal(student, S1)
    await expect(student.get_by_text("You are proposed this placement.")).to_be_visible()
    await expect(facts.locator('dt:text-is("Status") + dd')).to_contain_text(
        "Waiting for your answer"
    )
    await assert_accessible(student)
    await _accept_as_student(student)

    # The company accepts s-000002 on the placement's page (s-000002 has not answered yet).
    company = await _signed_in(open_page, base_url, "company")
    await company.goto(f"/placements/{P1}")
    await expect(company.locator("h1")).to_have_text(TITLE1)
    # "Accept" and the student, in a visually hidden span (Chromium's name puts a space
    # between them).
    accept_s2 = company.get_by_role("button", name=re.compile(rf"^Accept\s?: {S2}$"))
    await _reload_until(company, accept_s2, "s-000002 at the placement")
    row_s1 = company.get_by_role("row").filter(has_text=S1)
    await expect(row_s1).to_contain_text("The student accepted; your answer is awaited.")
    await assert_accessible(company)
    await accept_s2.click()
    await expect(company.get_by_role("status")).to_have_text(
        "You accepted the student. Once the student has accepted too, the placement is confirmed."
    )
    row_s2 = company.get_by_role("row").filter(has_text=S2)
    await expect(row_s2).to_contain_text("Your company accepted; the student has not answered yet.")
    await expect(accept_s2).to_have_count(0)
    await assert_accessible(company)

    # s-000002 sees that the company has accepted, and accepts too.
    student2 = await _signed_in(open_page, base_url, "student2")
    await _proposal(student2, S2)
    await expect(
        student2.get_by_text("The company has accepted. Please accept or decline.")
    ).to_be_visible()
    await assert_accessible(student2)
    await _accept_as_student(student2, company_accepted=True)

    # The supervisor's proposal notices: one confirm and one decline link per student, under
    # the journey's placements service.
    match1 = uuid.UUID((await app.api("student", "GET", f"/students/{S1}/match"))["match_id"])
    match2 = uuid.UUID((await app.api("student2", "GET", f"/students/{S2}/match"))["match_id"])
    wanted = {(m, a) for m in (match1, match2) for a in ("confirm", "decline")}

    def both_proposals() -> dict[tuple[uuid.UUID, str], str]:
        found = journey.links_to(SUPERVISOR)
        return found if wanted <= found.keys() else {}

    links = await eventually(both_proposals, wait=WAIT, interval=0.5, what="the proposal notices")
    assert all(url.startswith(f"{app.url}/v1/actions/") for url in links.values()), links

    # The supervisor opens s-000001's confirm link, signed in nowhere, in a browser set to
    # English: the page is in the supervisor's language, and asks once more.
    supervisor = await open_page(locale="en-GB")
    await _open_link(supervisor, links[(match1, "confirm")], 200)
    await expect(supervisor.locator("h1")).to_have_text(sv(actions.TITLES["ask_confirm"]))
    assert sv(actions.TITLES["ask_confirm"]) != actions.TITLES["ask_confirm"]
    await expect(supervisor.locator("dl")).to_contain_text(TITLE1)
    await assert_accessible(supervisor)
    await supervisor.get_by_role("button", name=sv(actions.BUTTONS["confirm"])).click()
    await expect(supervisor.locator("h1")).to_have_text(sv(actions.TITLES["done_confirm"]))
    await expect(supervisor.get_by_role("button")).to_have_count(0)
    await assert_accessible(supervisor)

    # Accepted by both sides, each match is confirmed (by the matching service).
    await _reload_until(
        student, student.get_by_text("Your placement is confirmed."), "s-000001 confirmed"
    )
    await expect(student.locator('dt:text-is("Status") + dd .badge')).to_have_text("Confirmed")
    await assert_accessible(student)
    await _reload_until(
        student2, student2.get_by_text("Your placement is confirmed."), "s-000002 confirmed"
    )
    await expect(student2.locator('dt:text-is("Status") + dd .badge')).to_have_text("Confirmed")

    # The company now sees both students by name and contact, the places filled.
    await company.goto(f"/placements/{P1}")
    names = company.locator("#students-section .student-name")
    await expect(names).to_have_text([f"Student {S1}", f"Student {S2}"])
    await expect(company.locator('dt:text-is("Places") + dd')).to_have_text("2 of 2 confirmed")
    await expect(company.get_by_role("link", name=f"{S1}@school.example.se")).to_be_visible()
    await assert_accessible(company)

    # The used link says it was used; s-000002's link, whose company side answered on the
    # placement's page, says the proposal is no longer open. Neither asks anything.
    confirmed = sv(actions.STATES["confirmed"])
    await _open_link(supervisor, links[(match1, "confirm")], 410)
    await expect(supervisor.locator("h1")).to_have_text(sv(actions.TITLES["used"]))
    await expect(supervisor.locator("main > p")).to_contain_text(confirmed)
    await expect(supervisor.get_by_role("button")).to_have_count(0)
    await assert_accessible(supervisor)
    await _open_link(supervisor, links[(match2, "confirm")], 409)
    await expect(supervisor.locator("h1")).to_have_text(sv(actions.TITLES["closed"]))
    await expect(supervisor.locator("main > p")).to_contain_text(confirmed)
    await expect(supervisor.get_by_role("button")).to_have_count(0)
    await assert_accessible(supervisor)

    # And the supervisor is told of each confirmation with the student's contact (a notice
    # without a confirm or decline link: there is nothing left to answer; the supervisor has no
    # training recorded, so every notice also carries the link to record it).
    def answers(text: str) -> set[str]:
        return {journey.link(url).action for url in ACTION_LINK.findall(text)}

    def confirmations() -> list[str]:
        found = [
            text
            for text in journey.notices_to(SUPERVISOR)
            if not answers(text) & {"confirm", "decline"} and "@school.example.se" in text
        ]
        return found if len(found) >= 2 else []

    told = await eventually(confirmations, wait=WAIT, interval=0.5, what="the confirmations")
    for sid in (S1, S2):
        assert sum(f"{sid}@school.example.se" in text for text in told) == 1, told
    notices = journey.notices_to(SUPERVISOR)
    proposals = [text for text in notices if answers(text) >= {"confirm", "decline"}]
    assert (len(proposals), len(notices)) == (2, 4), notices
    assert all("training" in answers(text) for text in notices), notices

    for name, process in journey.processes.items():
        lines = process.log_path.read_text(errors="replace").splitlines()
        failures = [line for line in lines if re.search(r'"level": "(error|critical)"', line)]
        assert not failures, f"{name} logged errors:\n" + "\n".join(failures[:5])
