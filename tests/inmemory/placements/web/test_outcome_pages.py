"""The pages after a round (entrypoints/web/outcomes.py, and the outcome parts of the student's
and the round's pages) over the in-memory unit of work: a student's outcome in words and the
vacancies that fit them, the round's full report and its downloads, its outcomes filtered, the
rounds listed, the run form's options, two dry runs side by side, the vacancies page with its
assignments by hand and supplementary rounds, each refusal next to its field, in the page's
language; and a coordinator of another region refused."""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
from html import unescape
from urllib.parse import parse_qs, urlsplit

from services.placements import handlers
from services.placements.domain.model import Student
from services.placements.entrypoints.web import i18n
from shared import explain
from shared.contracts import events as ev
from tests.handlers.placements.test_outcomes import (
    FIRST,
    completed,
    outcome,
    outcomes_events,
    run_round,
    world,
)
from tests.support.web import Browser

from .conftest import Site

REGION = "SE-AB"
HTMX = {"accept": "text/html", "hx-request": "true"}


def text_of(html: str) -> str:
    """The page's words, tags and runs of white space dropped."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def coordinator(site: Site, *regions: str) -> Browser:
    return site.open("coordinator", regions=list(regions or (REGION,)))


def words(lang: i18n.Lang) -> i18n.Words:
    return i18n.Words(lang)


# ------------------------------------------------------------------------------ students


async def test_an_unplaced_student_sees_why_and_the_vacancies_that_fit(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, FIRST)
    student = site.open("student", student_id="s-2")
    html = (await student.get("/students/s-2")).text
    said = text_of(html)
    assert "Not placed: every choice that fits was needed by others." in said
    assert "Choice 1 (p-1): full: its 2 slots went to 2 students of higher priority" in said
    assert "Every placement you ranked that fits you was taken." in said
    # p-1 is full now, p-far beyond the travel limit, p-weld needs a skill: p-2 alone fits.
    section = html[html.index('id="vacancies-h"') :]
    assert re.findall(r'name="add" value="([^"]+)"', section) == ["p-2"]
    assert '<input type="hidden" name="choice" value="p-1">' in section
    assert 'action="/students/s-2/choices"' in section
    assert 'name="csrf" value="test-csrf-token"' in section

    added = await student.post("/students/s-2/choices", {"choice": "p-1", "add": "p-2"})
    assert added.status_code == 303
    stored = site.fake.student_rows["s-2"]
    assert isinstance(stored, Student)
    assert stored.profile.preferences == ("p-1", "p-2")
    again = (await student.get("/students/s-2")).text
    assert "On your ranking" in again


async def test_the_students_outcome_in_swedish_and_finnish(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, FIRST)
    student = site.open("student", student_id="s-3")
    record = (await handlers.student_outcome("s-3", site.fake)).record
    for lang in ("sv", "fi"):
        html = (await student.get(f"/students/s-3?lang={lang}")).text
        assert f'<html lang="{lang}">' in html
        lines = explain.describe(record.outcome, words(lang))
        english = explain.describe(record.outcome)
        assert lines != english
        for line in lines:
            assert line in text_of(html), (lang, line)
        assert "distance 133 km > 40 km" not in text_of(html)


async def test_a_placed_student_sees_how_it_came_about(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, FIRST)
    html = (await site.open("student", student_id="s-1").get("/students/s-1")).text
    said = text_of(html)
    assert "Placed at p-1, choice 1." in said
    assert "This is the first choice." in said
    assert 'id="vacancies-h"' not in html  # a placed student is shown no vacancies


async def test_a_filled_placement_says_so(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, [outcome("s-1", "p-2", None, filled=True)])
    said = text_of((await site.open("student", student_id="s-1").get("/students/s-1")).text)
    assert "Placed at p-2: a vacancy that fits, not among the choices." in said
    assert "the round placed you at a vacancy that fits your profile" in said


# ------------------------------------------------------------------------- round and report


async def test_the_round_page_has_the_full_report_with_charts_and_tables(site: Site) -> None:
    await world(site.fake)
    round_id = await run_round(site.fake, FIRST, blocking=1)
    html = (await coordinator(site).get(f"/rounds/{round_id}")).text
    said = text_of(html)
    for chart_id in ("outcome-ranks", "outcome-reasons", "proposal-ranks"):
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in html
    desc = dict(re.findall(r'<desc id="([a-z-]+)-desc">(.*?)</desc>', html))
    assert "Choice 1: 2; Choice 2: 0;" in desc["outcome-ranks"]
    assert "Filled: a vacancy not among their choices: 0; Not placed: 2." in desc["outcome-ranks"]
    assert "Every choice that fits them was full: 1" in desc["outcome-reasons"]
    assert "None of their choices fits them: 1" in desc["outcome-reasons"]
    assert "<caption>Every student of the round by the choice they were placed at</caption>" in html
    assert "Students by programme" in said
    assert "At their first choice 2" in said
    assert "Share placed 50%" in said
    assert "Students by priority group" in said
    assert "1 blocking pair:" in said
    assert "Free slots" in said
    assert f'href="/rounds/{round_id}/report.csv"' in html
    assert f'href="/rounds/{round_id}/report.xlsx"' in html
    assert f'href="/rounds/{round_id}/outcomes"' in html
    assert "Fewer than 5 placed students" in said  # 2 measured: hidden

    sv = text_of((await coordinator(site).get(f"/rounds/{round_id}?lang=sv")).text)
    assert i18n.translations("sv").gettext("Blocking pairs") in sv
    assert "Blocking pairs" not in sv


async def test_the_report_downloads_as_csv_and_xlsx(site: Site) -> None:
    await world(site.fake)
    round_id = await run_round(site.fake, FIRST)
    browser = coordinator(site)
    response = await browser.get(f"/rounds/{round_id}/report.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="round-{round_id}.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert rows[0] == ["section", "key", "figure", "value"]
    assert ["summary", "placed", "value", "2"] in rows
    assert ["unplaced_by_reason", "choices_full", "students", "1"] in rows
    book = await browser.get(f"/rounds/{round_id}/report.xlsx")
    assert book.status_code == 200
    with zipfile.ZipFile(io.BytesIO(book.content)) as opened:
        assert 'name="Ranks"' in opened.read("xl/workbook.xml").decode()


async def test_the_outcomes_are_listed_filtered_with_their_explanations(site: Site) -> None:
    await world(site.fake)
    round_id = await run_round(site.fake, FIRST)
    browser = coordinator(site)
    html = (await browser.get(f"/rounds/{round_id}/outcomes")).text
    assert re.findall(r'<th scope="row"><code>(.*?)</code></th>', html) == [
        "s-1",
        "s-2",
        "s-3",
        "s-4",
    ]
    assert html.count("<details>") == 4
    assert "<li>Choice 1 (p-far): distance 133 km &gt; 40 km</li>" in html
    unplaced = (await browser.get(f"/rounds/{round_id}/outcomes?placed=no")).text
    assert re.findall(r"<code>(s-\d)</code>", unplaced) == ["s-2", "s-3"]
    assert '<option value="no" selected>' in unplaced
    full = (await browser.get(f"/rounds/{round_id}/outcomes?reason=choices_full")).text
    assert re.findall(r"<code>(s-\d)</code>", full) == ["s-2"]
    assert "1 student matches." in text_of(full)
    nobody = (await browser.get(f"/rounds/{round_id}/outcomes?programme=XX")).text
    assert "0 students match." in text_of(nobody)


async def test_the_outcomes_page_through_with_their_filters(site: Site) -> None:
    await world(site.fake)
    many = [outcome(f"s-{i:03}", reason="choices_full") for i in range(60)]
    round_id = await run_round(site.fake, many)
    html = (await coordinator(site).get(f"/rounds/{round_id}/outcomes?placed=no")).text
    assert len(re.findall(r"<code>(s-\d+)</code>", html)) == 50
    assert f'href="/rounds/{round_id}/outcomes?placed=no&amp;offset=50" rel="next"' in html
    second = (await coordinator(site).get(f"/rounds/{round_id}/outcomes?placed=no&offset=50")).text
    assert len(re.findall(r"<code>(s-\d+)</code>", second)) == 10


# --------------------------------------------------------------------- rounds and options


async def test_the_rounds_are_listed_newest_first_with_their_options(site: Site) -> None:
    await world(site.fake)
    browser = coordinator(site)
    first = await run_round(site.fake, FIRST)
    response = await browser.post(
        f"/regions/{REGION}/rounds",
        {"policy": "stable", "kind": "supplementary", "fill": "1", "dry_run": "1"},
    )
    assert response.status_code == 303
    second = uuid.UUID(response.headers["location"].split("/")[2].split("?")[0])
    found = site.fake.round_rows[second]
    assert (found.policy, found.kind, found.fill, found.dry_run) == (
        "stable",
        "supplementary",
        True,
        True,
    )
    [requested] = [e for e in site.fake.published if isinstance(e, ev.MatchingRoundRequested)]
    assert (requested.data.kind, requested.data.fill, requested.data.dry_run) == (
        "supplementary",
        True,
        True,
    )
    html = (await browser.get(f"/regions/{REGION}/rounds")).text
    links = re.findall(r'<a href="/rounds/([0-9a-f-]{36})">', html)
    assert links == [str(second), str(first)]
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    assert "Supplementary" in rows[0]
    assert text_of(rows[0]).count("yes") == 2
    assert "Ordinary" in rows[1]
    assert "2 / 4" in rows[1]
    page = text_of((await browser.get(f"/rounds/{second}")).text)
    assert "Supplementary, with fill, dry run" in page
    assert "A dry run: computed and reported only." in page


async def test_the_region_page_offers_the_options_and_the_links(site: Site) -> None:
    await world(site.fake)
    html = (await coordinator(site).get(f"/regions/{REGION}")).text
    for name in ('name="kind" id="kind-supplementary"', 'name="fill"', 'name="dry_run"'):
        assert name in html
    assert f'action="/regions/{REGION}/compare"' in html
    assert f'href="/regions/{REGION}/rounds"' in html
    assert f'href="/regions/{REGION}/vacancies"' in html
    assert html.count('name="csrf" value="test-csrf-token"') >= 3


async def test_a_supplementary_round_without_unplaced_is_refused_next_to_the_kind(
    site: Site,
) -> None:
    await world(site.fake)
    response = await coordinator(site).post(
        f"/regions/{REGION}/rounds", {"policy": "optimal", "kind": "supplementary"}
    )
    assert response.status_code == 422
    html = response.text
    assert "The region has no unplaced students: a supplementary round would place no one." in (
        text_of(html)
    )
    assert 'aria-describedby="kind-error"' in html
    assert 'href="#kind-ordinary"' in html
    assert 'id="kind-supplementary" value="supplementary" checked aria-invalid="true"' in html
    assert site.fake.round_rows == {}
    fi = await coordinator(site).post(
        f"/regions/{REGION}/rounds?lang=fi", {"policy": "optimal", "kind": "supplementary"}
    )
    message = (
        "The region has no unplaced students: a supplementary round would place no one. Run "
        "an ordinary round."
    )
    assert i18n.translations("fi").gettext(message) in text_of(fi.text)
    assert i18n.translations("fi").gettext(message) != message


# -------------------------------------------------------------------------- side by side


async def test_two_dry_runs_are_compared_once_both_are_done(site: Site) -> None:
    await world(site.fake)
    browser = coordinator(site)
    response = await browser.post(f"/regions/{REGION}/compare", {"fill": "1"})
    assert response.status_code == 303
    location = response.headers["location"]
    query = parse_qs(urlsplit(location).query)
    a, b = uuid.UUID(query["a"][0]), uuid.UUID(query["b"][0])
    ra, rb = site.fake.round_rows[a], site.fake.round_rows[b]
    assert (ra.policy, ra.dry_run, ra.fill) == ("optimal", True, True)
    assert (rb.policy, rb.dry_run, rb.fill) == ("stable", True, True)

    waiting = (await browser.get(location)).text
    assert f'hx-get="/rounds/compare/status?a={a}&amp;b={b}"' in waiting
    assert 'hx-trigger="every 2s"' in waiting

    a_found = [outcome("s-1", "p-1", 1), outcome("s-2", "p-1", 1), outcome("s-3")]
    b_found = [outcome("s-1", "p-1", 1), outcome("s-2"), outcome("s-3", "p-2", 2)]
    for round_id, found, policy in ((a, a_found, "optimal"), (b, b_found, "stable")):
        for part in outcomes_events(round_id, found, dry_run=True, per_part=10):
            await handlers.apply_round_outcomes(part, site.fake)
        done = completed(round_id, found, dry_run=True, policy=policy, fill=True)  # type: ignore[arg-type]
        await handlers.apply_round_completed(done, site.fake)
        polled = await browser.client.get(f"/rounds/compare/status?a={a}&b={b}", headers=HTMX)
        if round_id == a:
            assert 'hx-trigger="every 2s"' in polled.text  # b is not done yet
    assert "hx-trigger" not in polled.text
    assert "<html" not in polled.text
    html = (await browser.get(location)).text
    said = text_of(html)
    assert "Both rounds are completed." in said
    rows = {
        text_of(k): text_of(v)
        for k, v in re.findall(r'<th scope="row">(.*?)</th>(.*?)</tr>', html, flags=re.S)
    }
    assert rows["Placed"] == "2 2"
    assert rows["Choice 1"] == "2 1"
    assert rows["Choice 2"] == "0 1"
    assert rows["Not placed"] == "1 1"
    assert "2 students are placed differently by the two rounds." in said
    assert re.findall(r'<th scope="row"><code>(s-\d)</code></th>', html) == ["s-2", "s-3"]


# ---------------------------------------------------------------- vacancies and by hand


async def test_the_vacancies_page_lists_free_slots_and_the_unplaced(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, FIRST)
    html = (await coordinator(site).get(f"/regions/{REGION}/vacancies")).text
    said = text_of(html)
    assert re.findall(r'<li class="card" id="student-(s-\d)">', html) == ["s-2", "s-3"]
    assert "Every choice that fits them was full" in said
    assert 'list="assign-s-2-list"' in html
    assert 'value="p-2"' in html  # the nearest vacancy that fits, filled in
    free = html[html.index('id="free-h"') :]
    assert re.findall(r"<code>(p-[a-z0-9]+)</code>", free) == ["p-2", "p-far", "p-weld"]
    assert html.count(f'action="/regions/{REGION}/assignments"') == 2
    assert f'action="/regions/{REGION}/supplementary"' in html


async def test_an_assignment_by_hand_is_sent_to_matching(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, FIRST)
    browser = coordinator(site)
    response = await browser.post(
        f"/regions/{REGION}/assignments",
        {"student_id": "s-2", "placement_id": "p-2", "reason": "Talked to the company"},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/regions/{REGION}/vacancies?assigned=")
    [event] = [e for e in site.fake.published if isinstance(e, ev.MatchAssignmentRequested)]
    assert (event.data.student_id, event.data.placement_id, event.data.reason) == (
        "s-2",
        "p-2",
        None,  # the words stay in the placements service
    )
    [kept] = site.fake.assignment_rows.values()
    assert kept.reason == "Talked to the company"
    assert event.data.override_hard_constraints is False
    notice = text_of((await browser.get(response.headers["location"])).text)
    assert "The assignment of s-2 to p-2 was sent to matching" in notice


async def test_assignment_refusals_are_shown_next_to_their_fields(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, FIRST)
    browser = coordinator(site)
    before = len(site.fake.published)

    async def refused(status: int, **form: str) -> str:
        response = await browser.post(f"/regions/{REGION}/assignments", form)
        assert response.status_code == status, response.text[:500]
        return response.text

    no_reason = await refused(422, student_id="s-2", placement_id="p-2", reason=" ")
    assert 'id="assign-s-2-reason-error">Say why the student is assigned by hand.' in no_reason
    assert 'href="#assign-s-2-reason"' in no_reason
    assert "<details open>" in no_reason

    full = await refused(409, student_id="s-2", placement_id="p-1", reason="r")
    assert "This placement is full: all its 2 slots are held." in full
    assert 'id="assign-s-2-placement-error"' in full
    assert 'value="p-1"' in full  # what was sent comes back

    far = await refused(422, student_id="s-3", placement_id="p-far", reason="r")
    assert 'id="assign-s-3-override-error"' in far
    assert "<li>distance 133 km &gt; 40 km</li>" in far
    assert 'href="#assign-s-3-override"' in far

    weld = await refused(422, student_id="s-3", placement_id="p-weld", reason="r")
    assert "<li>lacks the required skill welding</li>" in weld

    unknown = await refused(422, student_id="s-3", placement_id="p-none", reason="r")
    assert "No placement has this id." in unknown

    sv = await browser.post(
        f"/regions/{REGION}/assignments?lang=sv",
        {"student_id": "s-3", "placement_id": "p-far", "reason": "r"},
    )
    assert "avstånd 133 km &gt; 40 km" in sv.text
    assert len(site.fake.published) == before  # nothing written on a refusal

    overridden = await browser.post(
        f"/regions/{REGION}/assignments",
        {"student_id": "s-3", "placement_id": "p-far", "reason": "Has a car", "override": "1"},
    )
    assert overridden.status_code == 303
    [event] = [e for e in site.fake.published if isinstance(e, ev.MatchAssignmentRequested)]
    assert event.data.override_hard_constraints is True
    assert event.data.constraints_overridden == ("max_travel_km",)


async def test_a_supplementary_round_is_opened_or_refused_on_the_form(site: Site) -> None:
    await world(site.fake)
    browser = coordinator(site)
    nobody = await browser.post(f"/regions/{REGION}/supplementary", {"ranks_until": ""})
    assert nobody.status_code == 422
    assert 'id="open-error"' in nobody.text
    assert "The region has no unplaced students" in text_of(nobody.text)
    assert site.fake.published == [] or not any(
        isinstance(e, ev.SupplementaryRoundOpened) for e in site.fake.published
    )

    await run_round(site.fake, FIRST)
    past = await browser.post(f"/regions/{REGION}/supplementary", {"ranks_until": "2001-01-01"})
    assert past.status_code == 422
    assert 'id="ranks_until-error">The last day to rank may not be in the past.' in past.text
    assert 'aria-invalid="true" aria-describedby="ranks_until-error"' in past.text
    bad = await browser.post(f"/regions/{REGION}/supplementary", {"ranks_until": "soon"})
    assert "Give the date as YYYY-MM-DD." in bad.text
    teachers = await browser.post(
        f"/regions/{REGION}/supplementary", {"ranks_until": "", "participant": "teacher"}
    )
    assert teachers.status_code == 422
    assert "The region has no unplaced teachers" in text_of(teachers.text)
    assert 'id="invite-teacher" value="teacher" checked' in teachers.text
    odd = await browser.post(f"/regions/{REGION}/supplementary", {"participant": "pupil"})
    assert odd.status_code == 422
    assert 'id="invite-error">Choose students or teachers.' in odd.text
    assert not any(isinstance(e, ev.SupplementaryRoundOpened) for e in site.fake.published)

    opened = await browser.post(f"/regions/{REGION}/supplementary", {"ranks_until": "2099-01-31"})
    assert opened.status_code == 303
    [event] = [e for e in site.fake.published if isinstance(e, ev.SupplementaryRoundOpened)]
    assert event.data.student_ids == ("s-2", "s-3")
    assert str(event.data.ranks_until) == "2099-01-31"
    said = text_of((await browser.get(opened.headers["location"])).text)
    assert "A supplementary round was opened: 2 unplaced students are told by e-mail" in said
    # An invited student's page says the round is open and until when to rank.
    invited = text_of((await site.open("student", student_id="s-2").get("/students/s-2")).text)
    assert "A supplementary round is open for the students left unplaced" in invited
    assert "Jan 31, 2099" in invited


# ------------------------------------------------------------------------------- access


async def test_a_coordinator_of_another_region_is_refused_the_new_pages(site: Site) -> None:
    await world(site.fake)
    round_id = await run_round(site.fake, FIRST)
    other = coordinator(site, "SE-O")
    for path in (
        f"/regions/{REGION}/rounds",
        f"/regions/{REGION}/vacancies",
        f"/rounds/{round_id}/outcomes",
        f"/rounds/{round_id}/report.csv",
        f"/rounds/compare?a={round_id}&b={round_id}",
    ):
        response = await other.get(path)
        assert response.status_code == 403, path
    for path, form in (
        (f"/regions/{REGION}/compare", {}),
        (f"/regions/{REGION}/supplementary", {}),
        ("/regions/SE-O/assignments", {"student_id": "s-2", "placement_id": "p-2", "reason": "r"}),
    ):
        response = await other.post(path, form)
        assert response.status_code == 403, path
    assert not any(
        isinstance(e, ev.MatchAssignmentRequested | ev.SupplementaryRoundOpened)
        for e in site.fake.published
    )
