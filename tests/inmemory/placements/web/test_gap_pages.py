"""The competence gap page (entrypoints/web/gap.py) over the in-memory unit of work: the biggest
gaps in words, the charts with their descriptions and tables, a hidden count read "< 5", the
term chosen on the form, a bad term refused next to the field, the downloads, the link from the
region's page, the page's language; and a coordinator of another region refused."""

from __future__ import annotations

import csv
import io
import re
import zipfile

from services.placements.domain import gap
from services.placements.entrypoints import reports
from services.placements.entrypoints.web import i18n
from tests.handlers.placements.test_gap import ordinary, supplementary, world
from tests.handlers.placements.test_outcomes import REGION, run_round
from tests.support.web import Browser

from .conftest import Site
from .test_outcome_pages import text_of

PAGE = f"/regions/{REGION}/competence-gap"


def coordinator(site: Site, *regions: str) -> Browser:
    return site.open("coordinator", regions=list(regions or (REGION,)))


async def two_rounds(site: Site) -> None:
    await world(site.fake)
    await run_round(site.fake, ordinary())
    await run_round(site.fake, supplementary())


async def test_the_page_says_the_biggest_gaps_and_draws_them(site: Site) -> None:
    await two_rounds(site)
    response = await coordinator(site).get(PAGE)
    assert response.status_code == 200
    html = response.text
    said = text_of(html)
    assert "<h1>Competence gap of SE-AB, spring term 2027</h1>" in html
    first = re.search(r'<ol class="gaps">\s*<li>(.*?)</li>', html, re.S)
    assert first is not None
    assert text_of(first.group(1)) == (
        "12 slots needed `battery-hv`; fewer than 5 students had it. 9 slots stayed empty for "
        "want of it. 5 students were left unplaced for want of it. Slots empty for want of it "
        "after each round: 9 → 9."
    )
    # Both charts are images with a name and a description that says every figure.
    for chart_id in ("gap-demand", "gap-trend"):
        assert f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc"' in html
    desc = dict(re.findall(r'<desc id="([a-z-]+)-desc">(.*?)</desc>', html))
    assert (
        "skill battery-hv: Slots needing it 12, Students who have it &lt; 5" in desc["gap-demand"]
    )
    assert "Round 1" in desc["gap-trend"]
    assert ": 9; Round 2" in desc["gap-trend"]
    # ... and the tables say the same: the hidden count reads "< 5", never a number.
    row = re.search(r"<th scope=\"row\"><code>battery-hv</code></th>(.*?)</tr>", html, re.S)
    assert row is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', row.group(1)) == [
        "2",
        "12",
        "9",
        "&lt; 5",
        "5",
    ]
    assert "The term&#39;s rounds, oldest first" in html
    assert "Students of the term's rounds 12" in said
    assert "No count of fewer than 5 students is shown" in said
    # The form: a labelled select of the region's terms, the chosen one selected.
    assert '<label for="term">Term</label>' in html
    assert '<option value="2027-spring" selected>spring term 2027</option>' in html
    assert '<option value="2027-autumn">autumn term 2027</option>' in html
    assert f'href="{PAGE}.csv?term=2027-spring"' in html
    assert f'href="{PAGE}.xlsx?term=2027-spring"' in html
    assert "s-01" not in html  # no student is named


async def test_another_term_shows_its_demand_until_a_round_counts_its_students(
    site: Site,
) -> None:
    await two_rounds(site)
    html = (await coordinator(site).get(PAGE, params={"term": "2027-HT"})).text
    said = text_of(html)
    assert "<h1>Competence gap of SE-AB, autumn term 2027</h1>" in html
    assert '<option value="2027-autumn" selected>' in html
    assert "No round of this term has been completed yet" in said
    assert 'id="gap-demand-title"' not in html
    assert "wiring" in said  # its one placement's skill, with its slots


async def test_a_bad_term_is_refused_next_to_the_field(site: Site) -> None:
    await two_rounds(site)
    browser = coordinator(site)
    for term, message in (
        ("2027-winter", "Give a term as a year and a half year, like 2027-spring or 2027-autumn."),
        (
            "2031-spring",
            "The region has no placements or rounds in this term. Its terms: spring term 2027, "
            "autumn term 2027.",
        ),
    ):
        response = await browser.get(PAGE, params={"term": term})
        assert response.status_code == 422, term
        html = response.text
        assert '<div class="errors" role="alert"' in html
        assert f'<li><a href="#term">{message}</a></li>' in html
        assert f'<p class="error" id="term-error">{message}</p>' in html
        assert 'aria-describedby="term-help term-error" aria-invalid="true"' in html
        assert '<ol class="gaps">' not in html


async def test_a_region_without_placements_has_nothing_to_choose(site: Site) -> None:
    response = await coordinator(site).get(PAGE)
    assert response.status_code == 200
    assert "there is no term to report on" in text_of(response.text)
    assert '<select id="term"' not in response.text


async def test_the_page_downloads_the_gap_as_csv_and_xlsx(site: Site) -> None:
    await two_rounds(site)
    browser = coordinator(site)
    response = await browser.get(f"{PAGE}.csv", params={"term": "2027-spring"})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="competence-gap-SE-AB-2027-spring.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert ["skill", "battery-hv", "students", "< 5"] in rows
    book = await browser.get(f"{PAGE}.xlsx")
    assert book.status_code == 200
    with zipfile.ZipFile(io.BytesIO(book.content)) as opened:
        assert 'name="Gaps"' in opened.read("xl/workbook.xml").decode()
    bad = await browser.get(f"{PAGE}.csv", params={"term": "nonsense"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")


async def test_the_region_page_links_to_the_gap(site: Site) -> None:
    html = (await coordinator(site).get(f"/regions/{REGION}")).text
    assert f'<a href="{PAGE}">Competence gap:' in html


async def test_the_page_speaks_the_chosen_language(site: Site) -> None:
    await two_rounds(site)
    for lang in ("sv", "fi"):
        html = (await coordinator(site).get(PAGE, params={"lang": lang})).text
        words = i18n.Words(lang)
        assert f'<html lang="{lang}">' in html
        assert reports.term_name(gap.Term(2027, gap.SPRING), words) in html
        assert words.gettext("Term") in html


async def test_a_coordinator_of_another_region_and_the_operator_are_refused(site: Site) -> None:
    await two_rounds(site)
    for browser in (coordinator(site, "SE-O"), site.open("operator")):
        for path in (PAGE, f"{PAGE}.csv", f"{PAGE}.xlsx"):
            response = await browser.get(path)
            assert response.status_code == 403, path
