"""The supervisors' action pages and the audit route through the placements app, in process over
the fake unit of work: a valid link asks, then acts once (as the company, actor `supervisor`);
a used, expired or tampered link gets a clear page in the supervisor's language, never a trace;
coordinators read their regions' audit trail."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.placements import handlers
from services.placements.bootstrap import build, create_app
from services.placements.domain.commands import AnswerMatch, PostPlacement, RegisterStudent
from services.placements.domain.model import Contact, OfferDraft, StudentDraft
from services.placements.settings import PlacementsSettings
from shared.contracts import events as ev
from shared.contracts import links
from tests.support.factories import placement, student
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

SECRET = "inmemory-action-link-secret"
NAME = "Sara Nieminen"


@dataclass
class Site:
    client: httpx.AsyncClient
    fake: InMemoryPlacementsUnitOfWork
    issuer: TestIssuer
    match: ev.MatchProposed

    def link(
        self,
        action: links.LinkAction = "confirm",
        *,
        now: datetime | None = None,
        secret: str = SECRET,
    ) -> str:
        made = links.new_link(
            uuid.uuid4(), self.match.data.match_id, action, now=now or datetime.now(UTC)
        )
        return f"/v1/actions/{links.sign(secret.encode(), made)}"

    def answers(self) -> list[ev.Event]:
        return [e for e in self.fake.published if e.topic == "apl.match-decisions.v1"]


async def proposed(fake: InMemoryPlacementsUnitOfWork, language: str) -> ev.MatchProposed:
    fields = placement("p-1").model_dump()
    fields["supervisor"] = {"name": "Anna Berg", "email": "anna@example.se", "language": language}
    fields["title"] = "Elektriker <AB>"
    offer = OfferDraft.model_validate(fields, strict=False)
    await handlers.post_placement(PostPlacement(offer, None), fake)
    profile = StudentDraft.model_validate(
        {**student("s-1", prefs=()).model_dump(), "programme": "EE"}, strict=False
    )
    await handlers.register_student(
        RegisterStudent(profile, Contact(NAME, "sara@example.fi")), fake
    )
    match = ev.MatchProposed(
        producer="matching",
        data=ev.MatchProposedData(
            match_id=uuid.uuid4(),
            region="SE-AB",
            student_id="s-1",
            placement_id="p-1",
            round_id=uuid.uuid4(),
            company_id=offer.company_id,
            rank=1,
        ),
    )
    await handlers.apply_match_proposed(match, fake)
    return match


@pytest.fixture(params=["en"])
async def site(request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test", action_link_secret=SECRET)
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    match = await proposed(fake, request.param)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    browser = {"Accept-Language": "en-GB,en;q=0.8"}  # what a page without a match speaks
    async with httpx.AsyncClient(
        transport=transport, base_url="http://placements", headers=browser
    ) as client:
        yield Site(client, fake, issuer, match)


def assert_page(response: httpx.Response, status: int, *texts: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert "<script" not in html.lower()
    assert "Traceback" not in html
    for text in texts:
        assert text in html, (text, html)
    return html


async def test_opening_a_link_shows_the_match_and_asks_without_acting(site: Site) -> None:
    url = site.link("confirm")
    html = assert_page(
        await site.client.get(url),
        200,
        "Confirm the proposal?",
        "Elektriker &lt;AB&gt;",  # escaped
        "EE",
        '<form method="post">',
        ">Confirm</button>",
        '<html lang="en">',
    )
    assert NAME not in html  # the name only once the match is confirmed
    assert site.answers() == []  # opening (a mail scanner, too) changes nothing
    assert_page(await site.client.get(url), 200, "Confirm the proposal?")


async def test_posting_confirms_once_as_the_company_with_the_supervisor_as_actor(
    site: Site,
) -> None:
    url = site.link("confirm")
    assert_page(await site.client.post(url), 200, "Thank you! The proposal is confirmed")
    [accepted] = site.answers()
    assert isinstance(accepted, ev.MatchAccepted)
    assert accepted.data.by == "company"
    assert accepted.actor is not None
    assert (accepted.actor.role, accepted.actor.client) == ("supervisor", None)
    assert accepted.actor.subject.startswith("action-link:")
    [record] = [r for r in site.fake.audit_rows.values() if r.event_type == "MatchAccepted"]
    assert record.actor == accepted.actor

    # used: a clear page, and nothing happens again (opening or posting)
    assert_page(await site.client.post(url), 410, "This link was already used", "accepted")
    assert_page(await site.client.get(url), 410, "This link was already used")
    assert len(site.answers()) == 1


async def test_a_decline_link_declines_with_the_supervisors_reason(site: Site) -> None:
    url = site.link("decline")
    assert_page(await site.client.get(url), 200, "Decline the proposal?", ">Decline</button>")
    assert_page(await site.client.post(url), 200, "The proposal is declined")
    [declined] = site.answers()
    assert isinstance(declined, ev.MatchDeclined)
    assert (declined.data.by, declined.data.reason_code) == ("company", "supervisor_declined")
    assert declined.data.reason is None  # no words on the topic


async def test_an_expired_link_gets_a_clear_page(site: Site) -> None:
    url = site.link("confirm", now=datetime.now(UTC) - timedelta(days=14, seconds=1))
    for response in (await site.client.get(url), await site.client.post(url)):
        html = assert_page(response, 410, "This link has expired", "14 days")
        assert "<form" not in html
    assert site.answers() == []


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: url[:-1] + ("A" if url[-1] != "A" else "B"),  # the MAC
        lambda url: url[:-10],  # cut short
        lambda url: url + "x",
        lambda url: "/v1/actions/not-a-token",
        lambda url: "/v1/actions/" + "%00" * 94,
    ],
)
async def test_a_tampered_link_gets_a_clear_page(site: Site, tamper) -> None:
    url = tamper(site.link("confirm"))
    for response in (await site.client.get(url), await site.client.post(url)):
        html = assert_page(response, 400, "This link is not valid")
        assert "<form" not in html
    assert site.answers() == []


async def test_a_link_signed_with_another_secret_is_refused(site: Site) -> None:
    url = site.link("confirm", secret="someone-elses-secret")
    assert_page(await site.client.post(url), 400, "This link is not valid")
    assert site.answers() == []


async def test_a_refusal_speaks_the_browsers_language_when_the_link_names_no_match(
    site: Site,
) -> None:
    headers = {"Accept-Language": "fi-FI, en;q=0.5"}
    response = await site.client.get("/v1/actions/garbage", headers=headers)
    assert_page(response, 400, "Linkki ei ole kelvollinen", '<html lang="fi">')
    response = await site.client.get("/v1/actions/garbage", headers={"Accept-Language": "sv-FI"})
    assert_page(response, 400, "Länken är inte giltig", '<html lang="sv">')
    response = await site.client.get("/v1/actions/garbage", headers={"Accept-Language": "de"})
    assert_page(response, 400, "This link is not valid", '<html lang="en">')  # the default


@pytest.mark.parametrize(
    ("site", "words"),
    [
        ("sv", ("Bekräfta förslaget?", ">Bekräfta</button>", '<html lang="sv">')),
        ("fi", ("Vahvistetaanko ehdotus?", ">Vahvista</button>", '<html lang="fi">')),
    ],
    indirect=["site"],
)
async def test_pages_speak_the_supervisors_language(site: Site, words: tuple[str, ...]) -> None:
    headers = {"Accept-Language": "en"}  # the supervisor's language wins over the browser's
    assert_page(await site.client.get(site.link("confirm"), headers=headers), 200, *words)


async def test_a_closed_match_says_so_and_shows_the_name_once_confirmed(site: Site) -> None:
    match_id = site.match.data.match_id
    await handlers.answer_match(AnswerMatch(match_id, "student", "accept"), site.fake)
    await handlers.answer_match(AnswerMatch(match_id, "company", "accept"), site.fake)
    confirmed = ev.MatchConfirmed(
        producer="matching",
        data=ev.MatchConfirmedData(
            match_id=match_id, region="SE-AB", student_id="s-1", placement_id="p-1"
        ),
    )
    await handlers.apply_match_confirmed(confirmed, site.fake)
    before = len(site.answers())
    url = site.link("decline")
    html = assert_page(await site.client.get(url), 409, "no longer open", "confirmed", NAME)
    assert "<form" not in html
    assert_page(await site.client.post(url), 409, "no longer open")
    assert len(site.answers()) == before
    assert site.fake.used_links == {}  # not used up: nothing was done with it


async def test_the_action_routes_declare_the_supervisor_link_rule(site: Site) -> None:
    document = (await site.client.get("/openapi.json")).json()
    operations = document["paths"]["/v1/actions/{token}"]
    assert {m: op["x-apl-access"] for m, op in operations.items()} == {
        "get": "supervisor-link",
        "post": "supervisor-link",
    }
    audit = document["paths"]["/v1/regions/{region}/audit"]["get"]
    assert audit["x-apl-access"] == "coordinator-region"


# ------------------------------------------------------------------------------------- audit


async def test_a_coordinator_reads_the_audit_trail_of_their_regions_only(site: Site) -> None:
    await site.client.post(site.link("confirm"))
    own = site.issuer.headers("coordinator", regions=["SE-AB"])
    response = await site.client.get("/v1/regions/SE-AB/audit?limit=2", headers=own)
    assert response.status_code == 200, response.text
    newest, before = response.json()
    assert newest["event_type"] == "MatchAccepted"
    assert newest["actor"]["role"] == "supervisor"
    assert re.fullmatch(r"action-link:[0-9a-f-]{36}", newest["actor"]["subject"])
    assert before["event_type"] == "StudentRegistered"
    assert set(newest) == {"event_id", "event_type", "region", "actor", "at"}
    assert NAME not in response.text
    page = await site.client.get("/v1/regions/SE-AB/audit?limit=1&offset=1", headers=own)
    assert [e["event_id"] for e in page.json()] == [before["event_id"]]

    other = site.issuer.headers("coordinator", regions=["SE-O"])
    assert (await site.client.get("/v1/regions/SE-AB/audit", headers=other)).status_code == 403
    company = site.issuer.headers("company", company_id="c-1")
    assert (await site.client.get("/v1/regions/SE-AB/audit", headers=company)).status_code == 403
    assert (await site.client.get("/v1/regions/SE-AB/audit")).status_code == 401
