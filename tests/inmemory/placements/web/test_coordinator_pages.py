"""The coordinator's pages over the in-memory unit of work: the region's dashboard, running a
round, the round's page (polling, then the report with its charts), the students without a
match, the audit trail, the downloads, and a coordinator of another region refused."""

from __future__ import annotations

import csv
import functools
import io
import re
import uuid
import zipfile
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx

from services.placements import handlers
from services.placements.domain.commands import (
    AnswerMatch,
    PostPlacement,
    RegisterStudent,
    WithdrawPlacement,
    WithdrawStudent,
)
from services.placements.domain.model import Contact, OfferDraft, StudentDraft
from shared.contracts import events as ev
from shared.contracts.profiles import GeoPoint
from tests.support.factories import placement, proposed, student
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.web import Browser

from .conftest import Site

REGION = "SE-AB"
CONTACT = Contact("Sara Nieminen", "sara@school.example.se")
HOME = GeoPoint(lat=59.3, lon=18.0)
HTMX = {"accept": "text/html", "hx-request": "true"}


def figures_of(html: str) -> dict[str, str]:
    """The dashboard's figures: each `<dt>` with its `<dd>`."""
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", html, flags=re.S)
    return {unescape(k.strip()): unescape(re.sub(r"<[^>]+>", "", v)).strip() for k, v in pairs}


async def post(fake: InMemoryPlacementsUnitOfWork, pid: str, **kw: Any) -> None:
    fields = {**placement(pid, region=kw.pop("region", REGION)).model_dump(), **kw}
    offer = OfferDraft.model_validate(fields, strict=False)
    await handlers.post_placement(PostPlacement(offer), fake)


async def register(
    fake: InMemoryPlacementsUnitOfWork, sid: str, prefs: tuple[str, ...], **kw: Any
) -> None:
    fields = {**student(sid, region=kw.pop("region", REGION), prefs=()).model_dump(), **kw}
    draft = StudentDraft.model_validate({**fields, "preferences": prefs}, strict=False)
    await handlers.register_student(RegisterStudent(draft, CONTACT), fake)


proposal = functools.partial(proposed, region=REGION)


def completion(round_id: uuid.UUID, **figures: Any) -> ev.MatchingRoundCompleted:
    values = {
        "students": 4,
        "placed": 3,
        "placed_weight": 3,
        "total_rank_cost": 6,
        "first_choice": 2,
        "top3": 3,
        "unknown_preferences": 0,
        "blocking_pairs": 0,
        "solve_seconds": 0.012,
        "solver": "sparse",
        **figures,
    }
    data = ev.MatchingRoundCompletedData(
        round_id=round_id,
        region=REGION,
        policy="stable",
        figures=ev.RoundFigures(**values),
        unplaced_by_reason={"choices_full": 1},
        proposed=3,
        cancelled=0,
    )
    return ev.MatchingRoundCompleted(producer="matching", data=data)


async def seed(fake: InMemoryPlacementsUnitOfWork) -> None:
    """SE-AB: open placements p-1 (2 slots, at HOME) and p-2 (3), p-3 withdrawn; students s-1
    (at HOME), s-2 (BA), both ranked, s-3 (none ranked, no home), s-4 withdrawn; s-1 has a
    proposal. SE-O: a placement and a student."""
    await post(fake, "p-1", capacity=2, site=HOME)
    await post(fake, "p-2", capacity=3)
    await post(fake, "p-3", capacity=9)
    await handlers.withdraw_placement(WithdrawPlacement("p-3"), fake)
    await post(fake, "p-9", region="SE-O", capacity=5)
    await register(fake, "s-1", ("p-1", "p-2"), home=HOME)
    await register(fake, "s-2", ("p-2",), programme="BA")
    await register(fake, "s-3", (), home=None)
    await register(fake, "s-4", ("p-1",))
    await handlers.withdraw_student(WithdrawStudent("s-4"), fake)
    await register(fake, "s-9", ("p-9",), region="SE-O")
    await handlers.apply_match_proposed(proposal("s-1", "p-1", uuid.uuid4(), 1), fake)


def coordinator(site: Site, *regions: str) -> Browser:
    return site.open("coordinator", regions=list(regions or (REGION,)))


async def test_the_dashboard_shows_the_regions_figures(site: Site) -> None:
    await seed(site.fake)
    response = await coordinator(site).get(f"/regions/{REGION}")
    assert response.status_code == 200
    html = response.text
    assert figures_of(html) == {
        "Students": "3",
        "Ranked at least one placement": "2",
        "Ranked none": "1",
        "With a standing match": "1",
        "Without a match": "2",
        "Open placements": "2",
        "Slots in open placements": "5",
    }
    assert "No round has been run in this region yet." in html
    for link in ("/audit", "/matches.csv", "/matches.xlsx", "/unplaced"):
        assert f'href="/regions/{REGION}{link}"' in html
    assert f'action="/regions/{REGION}/rounds"' in html
    assert 'name="csrf" value="test-csrf-token"' in html
    assert html.count("<h1>") == 1


async def test_running_a_round_requests_it_and_goes_to_its_page(site: Site) -> None:
    browser = coordinator(site)
    response = await browser.post(f"/regions/{REGION}/rounds", {"policy": "stable"})
    assert response.status_code == 303
    location = response.headers["location"]
    [found] = site.fake.round_rows.values()
    assert location == f"/rounds/{found.round_id}?requested=1"
    assert (found.region, found.policy, found.status) == (REGION, "stable", "requested")
    [event] = site.fake.published
    assert isinstance(event, ev.MatchingRoundRequested)
    assert event.actor is not None
    assert event.actor.role == "coordinator"

    page = await browser.get(location)
    assert page.status_code == 200
    assert "The round was requested." in page.text
    assert f'hx-get="/rounds/{found.round_id}/status"' in page.text
    assert 'hx-trigger="every 2s"' in page.text
    assert 'aria-live="polite"' in page.text
    assert "<svg" not in page.text  # no report before it completes

    dashboard = await browser.get(f"/regions/{REGION}")
    assert "Requested, matching is working" in dashboard.text
    assert f'href="/rounds/{found.round_id}"' in dashboard.text


async def test_a_round_without_a_policy_is_refused_next_to_the_field(site: Site) -> None:
    response = await coordinator(site).post(f"/regions/{REGION}/rounds", {"policy": "fastest"})
    assert response.status_code == 422
    assert "Choose how the round matches." in response.text
    assert 'aria-invalid="true"' in response.text
    assert 'aria-describedby="policy-error"' in response.text
    assert site.fake.round_rows == {}
    assert site.fake.published == []


async def test_the_round_page_polls_until_completed_then_shows_the_report(site: Site) -> None:
    await seed(site.fake)
    await post(site.fake, "p-far", site=GeoPoint(lat=59.8, lon=18.0))
    browser = coordinator(site)
    response = await browser.post(f"/regions/{REGION}/rounds", {"policy": "stable"})
    round_id = uuid.UUID(response.headers["location"].split("/")[2].split("?")[0])
    polled = await browser.client.get(f"/rounds/{round_id}/status", headers=HTMX)
    assert polled.status_code == 200
    assert 'hx-trigger="every 2s"' in polled.text
    assert "<html" not in polled.text
    assert "Requested" in polled.text

    # the round supersedes s-1's earlier proposal, then proposes
    earlier = await handlers.student_match("s-1", site.fake)
    superseded = ev.MatchCancelled(
        producer="matching",
        data=ev.MatchCancelledData(
            match_id=earlier.match_id,
            region=REGION,
            student_id="s-1",
            placement_id=earlier.placement_id,
            reason="superseded",
            round_id=round_id,
        ),
    )
    assert await handlers.apply_match_cancelled(superseded, site.fake)
    for sid, pid, rank in (("s-1", "p-1", 1), ("s-2", "p-far", 2), ("s-3", "p-2", None)):
        await handlers.apply_match_proposed(proposal(sid, pid, round_id, rank), site.fake)
    assert await handlers.apply_round_completed(completion(round_id), site.fake)

    done = await browser.client.get(f"/rounds/{round_id}/status", headers=HTMX)
    assert "hx-trigger" not in done.text  # the polling stops
    assert 'id="round-report" hx-swap-oob="true"' in done.text
    assert done.text.count('<svg class="bars"') == 5

    html = (await browser.get(f"/rounds/{round_id}")).text
    assert "hx-trigger" not in html
    assert figures_of(html)["Students in the round"] == "4"
    assert figures_of(html)["Placed"] == "3"
    assert figures_of(html)["New proposals"] == "3"
    assert html.count('<svg class="bars"') == 5
    assert html.count('role="img"') == 5
    for chart_id in (
        "rank-figures",
        "unplaced-reasons",
        "proposal-ranks",
        "proposal-programmes",
        "proposal-distances",
    ):
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in html
        assert f'<title id="{chart_id}-title">' in html
    desc = dict(re.findall(r'<desc id="([a-z-]+)-desc">(.*?)</desc>', html))
    assert "First choice: 2; Second or third choice: 1;" in desc["rank-figures"]
    assert "Not placed: 1." in desc["rank-figures"]
    assert "Every choice that fits them was full: 1." in desc["unplaced-reasons"]
    assert "Choice 1: 1; Choice 2: 1; Not among their choices: 1." in desc["proposal-ranks"]
    assert "BA: 1; EE: 2." in desc["proposal-programmes"]
    assert "Under 5 km: 1;" in desc["proposal-distances"]
    assert "50 to 100 km: 1;" in desc["proposal-distances"]
    assert "Home or site not known: 1." in desc["proposal-distances"]
    assert html.count("<details>") == 5
    assert html.count('<th scope="col">') >= 5
    assert "<caption>New proposals by programme</caption>" in html


async def test_the_students_without_a_match_are_listed_with_the_rounds_reasons(
    site: Site,
) -> None:
    await seed(site.fake)
    round_id = uuid.uuid4()
    await handlers.apply_round_completed(completion(round_id), site.fake)
    declined = proposal("s-2", "p-2", round_id, 1)
    await handlers.apply_match_proposed(declined, site.fake)
    await handlers.answer_match(
        AnswerMatch(declined.data.match_id, "company", "decline"), site.fake
    )
    html = (await coordinator(site).get(f"/regions/{REGION}/unplaced")).text
    rows = re.findall(r'<th scope="row"><code>(.*?)</code></th>', html)
    assert rows == ["s-2", "s-3"]
    assert "none ranked" in html
    assert "Every choice that fits them was full" in html
    assert f'href="/rounds/{round_id}"' in html


async def test_the_audit_trail_pages_through_the_regions_changes(site: Site) -> None:
    for i in range(55):
        await post(site.fake, f"p-{i:02}")
    browser = coordinator(site)
    await browser.post(f"/regions/{REGION}/rounds", {"policy": "optimal"})
    first = (await browser.get(f"/regions/{REGION}/audit")).text
    bodies = re.findall(r"<tbody>(.*?)</tbody>", first, flags=re.S)
    assert len(re.findall(r"<tr>", bodies[0])) == 50
    assert "A matching round was requested" in first  # newest first
    assert "Coordinator" in first
    assert "A placement was posted" in first
    assert "Not recorded" in first  # the seeded posts were made without an actor
    assert f'href="/regions/{REGION}/audit?offset=50" rel="next"' in first
    assert 'rel="prev"' not in first
    second = (await browser.get(f"/regions/{REGION}/audit?offset=50")).text
    assert len(re.findall(r"<tr>", re.findall(r"<tbody>(.*?)</tbody>", second, re.S)[0])) == 6
    assert f'href="/regions/{REGION}/audit?offset=0" rel="prev"' in second
    assert 'rel="next"' not in second
    assert "Coordinator" not in second


async def test_the_matches_download_as_csv_with_a_header_and_a_bom(site: Site) -> None:
    await seed(site.fake)
    m = proposal("s-2", "p-2", uuid.uuid4(), 2)
    await handlers.apply_match_proposed(m, site.fake)
    await handlers.answer_match(AnswerMatch(m.data.match_id, "student", "accept"), site.fake)
    response = await coordinator(site).get(f"/regions/{REGION}/matches.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    today = datetime.now(UTC).date().isoformat()
    assert response.headers["content-disposition"] == (
        f'attachment; filename="matches-{REGION}-{today}.csv"'
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["student_id"], r["placement_id"], r["rank"], r["state"]) for r in rows] == [
        ("s-1", "p-1", "1", "proposed"),
        ("s-2", "p-2", "2", "accepted"),
    ]
    assert rows[1]["match_id"] == str(m.data.match_id)
    assert rows[1]["company_id"] == "c-1"
    assert datetime.fromisoformat(rows[1]["updated_at"]).tzinfo is not None


async def test_the_matches_download_as_an_excel_workbook(site: Site) -> None:
    await seed(site.fake)
    response = await coordinator(site).get(f"/regions/{REGION}/matches.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response.headers["content-disposition"].endswith('.xlsx"')
    with zipfile.ZipFile(io.BytesIO(response.content)) as book:
        names = set(book.namelist())
        assert "xl/worksheets/sheet1.xml" in names
        strings = book.read("xl/sharedStrings.xml").decode("utf-8")
        sheet = book.read("xl/worksheets/sheet1.xml").decode("utf-8")
        workbook = book.read("xl/workbook.xml").decode("utf-8")
    for header in ("match_id", "student_id", "placement_id", "company_id", "rank", "state"):
        assert f"<t>{header}</t>" in strings
    assert "<t>s-1</t>" in strings
    assert "<t>p-1</t>" in strings
    assert "<pane " in sheet  # the header row stays in view
    assert "<autoFilter " in sheet
    assert "<cols>" in sheet
    assert 'name="Matches SE-AB"' in workbook


async def test_a_coordinator_of_another_region_is_refused(site: Site) -> None:
    await seed(site.fake)
    own = coordinator(site)
    await own.post(f"/regions/{REGION}/rounds", {"policy": "optimal"})
    [round_id] = site.fake.round_rows
    other = coordinator(site, "SE-O")
    for path in (
        f"/regions/{REGION}",
        f"/regions/{REGION}/unplaced",
        f"/regions/{REGION}/audit",
        f"/regions/{REGION}/matches.csv",
        f"/regions/{REGION}/matches.xlsx",
        f"/rounds/{round_id}",
        f"/rounds/{round_id}/status",
    ):
        response = await other.get(path)
        assert response.status_code == 403, path
        assert "You may not do this" in response.text
    refused = await other.post(f"/regions/{REGION}/rounds", {"policy": "optimal"})
    assert refused.status_code == 403
    assert len(site.fake.round_rows) == 1
    assert (await other.get("/regions/SE-O")).status_code == 200


async def test_the_operator_does_not_see_a_regions_pages(site: Site) -> None:
    await seed(site.fake)
    operator = site.open("operator")
    response: httpx.Response = await operator.get(f"/regions/{REGION}")
    assert response.status_code == 403
    assert "s-1" not in response.text
    assert (await operator.get(f"/regions/{REGION}/matches.csv")).status_code == 403
