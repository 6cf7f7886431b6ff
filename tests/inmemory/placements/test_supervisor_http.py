"""Supervisor readiness through the placements app, in process over the fake unit of work: the
API's routes (shapes, problems naming the field, nothing written on bad input), the refused
confirmation as a problem saying why, the internal due reminders, and the supervisor's pages
(a training link, a confirm link that asks for the course) in their language. Who may call what
is test_authorisation.py's."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from services.placements import handlers
from services.placements.bootstrap import build, create_app
from services.placements.domain.commands import RegisterStudent
from services.placements.domain.model import Contact, StudentDraft
from services.placements.settings import PlacementsSettings
from shared.contracts import events as ev
from shared.contracts import links
from tests.handlers.placements.test_handlers import confirmation, post
from tests.support.factories import student
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

SECRET = "inmemory-action-link-secret"
REGION = "SE-AB"
TODAY = datetime.now(UTC).date()
COURSE = "https://kurs.example.se/handledare"
R = f"/v1/regions/{REGION}"


@dataclass
class Site:
    client: httpx.AsyncClient
    fake: InMemoryPlacementsUnitOfWork
    issuer: TestIssuer

    def link(self, match: ev.MatchProposed, action: links.LinkAction) -> str:
        made = links.new_link(uuid.uuid4(), match.data.match_id, action, now=datetime.now(UTC))
        return f"/v1/actions/{links.sign(SECRET.encode(), made)}"

    async def propose(
        self, sid: str = "s-1", pid: str = "p-1", language: str = "en"
    ) -> ev.MatchProposed:
        supervisor = {"name": "Anna Berg", "email": "anna@example.se", "language": language}
        if pid not in self.fake.placement_rows:
            await handlers.post_placement(post(pid, supervisor=supervisor), self.fake)
        draft = StudentDraft.model_validate(
            {**student(sid, prefs=()).model_dump(), "preferences": ()}, strict=False
        )
        await handlers.register_student(
            RegisterStudent(draft, Contact("Sara Nieminen", f"{sid}@school.example.se")), self.fake
        )
        match = ev.MatchProposed(
            producer="matching",
            data=ev.MatchProposedData(
                match_id=uuid.uuid4(),
                region=REGION,
                student_id=sid,
                placement_id=pid,
                round_id=uuid.uuid4(),
                company_id="c-1",
                rank=1,
            ),
        )
        await handlers.apply_match_proposed(match, self.fake)
        return match


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test", action_link_secret=SECRET)
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    transport = httpx.ASGITransport(app=app)
    coordinator = issuer.headers("coordinator", regions=[REGION])
    async with httpx.AsyncClient(
        transport=transport, base_url="http://placements", headers=coordinator
    ) as client:
        yield Site(client, fake, issuer)


def problem_fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


# ----------------------------------------------------------------------------------- the API


async def test_settings_are_read_and_replaced_and_bad_ones_are_named(site: Site) -> None:
    r = await site.client.get(f"{R}/readiness-settings")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "region": REGION,
        "course_url": None,
        "validity_years": 3,
        "require_readiness": False,
        "updated_at": None,
    }
    body = {"course_url": COURSE, "validity_years": 4, "require_readiness": True}
    r = await site.client.put(f"{R}/readiness-settings", json=body)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in body} == body
    for bad, field in (
        ({"course_url": "kurs.example.se"}, "course_url"),
        ({"validity_years": 0}, "validity_years"),
        ({"validity_years": 51}, "validity_years"),
        ({"require_readiness": "perhaps"}, "require_readiness"),
        ({"colour": "blue"}, "colour"),
    ):
        r = await site.client.put(f"{R}/readiness-settings", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert problem_fields(r) == [field]
    kept = (await site.client.get(f"{R}/readiness-settings")).json()
    assert {k: kept[k] for k in body} == body


async def test_a_coordinator_records_a_course_and_a_day_in_the_future_is_refused(
    site: Site,
) -> None:
    await site.propose()
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    body = {"company_id": "c-1", "email": "Anna@Example.se", "trained_on": tomorrow}
    r = await site.client.put(f"{R}/supervisor-training", json=body)
    assert r.status_code == 422, r.text
    assert problem_fields(r) == ["trained_on"]
    assert f"{tomorrow} is in the future" in r.json()["detail"]
    assert site.fake.supervisor_rows == {}
    for bad, field in (
        ({**body, "trained_on": "14.9.2026"}, "trained_on"),
        ({**body, "email": "not-an-address"}, "email"),
        ({**body, "email": "bert@example.se", "trained_on": "2026-01-05"}, "email"),
        ({**body, "company_id": "c-9", "trained_on": "2026-01-05"}, "company_id"),
        ({"company_id": "c-1", "email": "anna@example.se"}, "trained_on"),
    ):
        r = await site.client.put(f"{R}/supervisor-training", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert problem_fields(r) == [field], bad
    assert site.fake.supervisor_rows == {}
    day = (TODAY - timedelta(days=30)).isoformat()
    r = await site.client.put(f"{R}/supervisor-training", json={**body, "trained_on": day})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["email"], got["trained_on"], got["status"], got["recorded_by"]) == (
        "anna@example.se",
        day,
        "valid",
        "coordinator",
    )
    assert got["expires_on"] is not None


async def test_the_placements_whose_supervisor_is_not_ready(site: Site) -> None:
    await site.propose()
    await handlers.post_placement(post("p-2", supervisor=None), site.fake)
    r = await site.client.get(f"{R}/supervisors/not-ready")
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["placements"], page["ready"], page["total"]) == (2, 0, 2)
    by_id = {item["placement_id"]: item for item in page["items"]}
    assert by_id["p-1"]["status"] == "not_started"
    assert by_id["p-1"]["supervisor"]["email"] == "anna@example.se"
    assert by_id["p-1"]["standing_matches"] == 1
    assert (by_id["p-2"]["status"], by_id["p-2"]["supervisor"]) == ("no_supervisor", None)
    assert page["settings"]["require_readiness"] is False
    r = await site.client.get(f"{R}/supervisors/not-ready", params={"limit": 0})
    assert (r.status_code, problem_fields(r)) == (422, ["limit"])


async def test_a_refused_confirmation_is_a_problem_that_says_why(site: Site) -> None:
    match = await site.propose()
    body = {"course_url": COURSE, "validity_years": 3, "require_readiness": True}
    assert (await site.client.put(f"{R}/readiness-settings", json=body)).status_code == 200
    before = list(site.fake.published)
    r = await site.client.post(
        f"/v1/matches/{match.data.match_id}/accept",
        json={"by": "company"},
        headers={"Idempotency-Key": "accept-1"},
    )
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["title"] == "Supervisor not ready"
    assert problem_fields(r) == ["supervisor.training"]
    assert "not_started" in problem["errors"][0]["message"]
    assert "anna@example.se has no supervisor training recorded" in problem["detail"]
    assert site.fake.published == before
    day = (TODAY - timedelta(days=10)).isoformat()
    training = {"company_id": "c-1", "email": "anna@example.se", "trained_on": day}
    assert (await site.client.put(f"{R}/supervisor-training", json=training)).status_code == 200
    r = await site.client.post(
        f"/v1/matches/{match.data.match_id}/accept",
        json={"by": "company"},
        headers={"Idempotency-Key": "accept-1"},  # the refusal was not stored
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted_by_company"] is True


async def test_the_reminders_due_for_the_notifications_service(site: Site) -> None:
    soon = TODAY + timedelta(days=5)
    await handlers.post_placement(post("p-soon", starts_on=soon, ends_on=soon), site.fake)
    match = await site.propose("s-1", "p-soon")
    await handlers.apply_match_confirmed(confirmation(match), site.fake)
    service = {"Authorization": f"Bearer {site.issuer.service()}"}
    params = {
        "starts_from": TODAY.isoformat(),
        "starts_until": (TODAY + timedelta(days=7)).isoformat(),
    }
    r = await site.client.get("/internal/v1/reminders-due", params=params, headers=service)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "items": [
            {
                "match_id": str(match.data.match_id),
                "region": REGION,
                "placement_id": "p-soon",
                "student_id": "s-1",
                "starts_on": soon.isoformat(),
            }
        ],
        "next_after": None,
    }
    backwards = {**params, "starts_until": (TODAY - timedelta(days=1)).isoformat()}
    r = await site.client.get("/internal/v1/reminders-due", params=backwards, headers=service)
    assert (r.status_code, problem_fields(r)) == (422, ["starts_until"])


# ----------------------------------------------------------------------- the supervisor's pages


def page_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    return response.text


async def test_a_training_link_asks_for_the_day_and_records_it_once(site: Site) -> None:
    match = await site.propose()
    body = {"course_url": COURSE, "validity_years": 3}
    assert (await site.client.put(f"{R}/readiness-settings", json=body)).status_code == 200
    url = site.link(match, "training")
    html = page_of(await site.client.get(url), 200)
    assert "Record your supervisor training" in html
    assert "No supervisor training is recorded for you." in html
    assert f'<a href="{COURSE}">' in html
    assert '<label for="trained_on">I completed the supervisor course on</label>' in html
    assert f'max="{TODAY.isoformat()}"' in html
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    html = page_of(await site.client.post(url, data={"trained_on": tomorrow}), 422)
    assert 'role="alert"' in html
    assert '<a href="#trained_on">The day is in the future.' in html
    assert 'aria-invalid="true"' in html
    assert f'value="{tomorrow}"' in html  # what was typed, shown again
    assert site.fake.supervisor_rows == {}
    day = TODAY - timedelta(days=400)
    html = page_of(await site.client.post(url, data={"trained_on": day.isoformat()}), 200)
    assert "Thank you! Your supervisor training is recorded" in html
    [record] = site.fake.supervisor_rows.values()
    assert (record.trained_on, record.recorded_by) == (day, "supervisor")
    html = page_of(await site.client.post(url, data={"trained_on": day.isoformat()}), 410)
    assert "This link was already used" in html


async def test_a_confirm_link_of_a_region_requiring_readiness_records_the_course_and_confirms(
    site: Site,
) -> None:
    match = await site.propose(language="sv")
    body = {"course_url": COURSE, "validity_years": 3, "require_readiness": True}
    assert (await site.client.put(f"{R}/readiness-settings", json=body)).status_code == 200
    url = site.link(match, "confirm")
    html = page_of(await site.client.get(url), 200)
    assert '<html lang="sv">' in html
    assert re.search(r'<input type="date" id="trained_on" name="trained_on"[^>]* required', html)
    html = page_of(await site.client.post(url), 409)  # without the day: refused, saying why
    assert 'name="trained_on"' in html
    assert not [e for e in site.fake.published if isinstance(e, ev.MatchAccepted)]
    old = TODAY.replace(year=TODAY.year - 5).isoformat()
    page_of(await site.client.post(url, data={"trained_on": old}), 409)  # expired: refused
    assert site.fake.supervisor_rows == {}
    day = (TODAY - timedelta(days=20)).isoformat()
    page_of(await site.client.post(url, data={"trained_on": day}), 200)
    [accepted] = [e for e in site.fake.published if isinstance(e, ev.MatchAccepted)]
    assert accepted.data.by == "company"
    assert accepted.actor is not None
    assert accepted.actor.role == "supervisor"
    [record] = site.fake.supervisor_rows.values()
    assert record.trained_on == date.fromisoformat(day)


@pytest.mark.parametrize(
    ("language", "written"), [("sv", "4 maj 2020"), ("fi", "4.5.2020"), ("en", "May 4, 2020")]
)
async def test_the_supervisors_pages_speak_their_language(
    site: Site, language: str, written: str
) -> None:
    match = await site.propose(language=language)
    training = {"company_id": "c-1", "email": "anna@example.se", "trained_on": "2020-05-04"}
    assert (await site.client.put(f"{R}/supervisor-training", json=training)).status_code == 200
    html = page_of(await site.client.get(site.link(match, "training")), 200)
    assert f'<html lang="{language}">' in html
    assert written in html  # the expired course's day, in the supervisor's language
