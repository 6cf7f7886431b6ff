"""The competence gap routes (`/v1/regions/{region}/competence-gap`, `.csv`, `.xlsx`) over the
in-memory unit of work: the JSON's shape with its hidden counts, the words in the request's
language, the downloads, and problems naming the field for a bad term. The client signs in as
a coordinator of SE-AB; who may call what is test_authorisation.py's."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from services.placements import handlers
from services.placements.bootstrap import build, create_app
from services.placements.entrypoints import reports
from services.placements.entrypoints.web.i18n import Lang, Words
from services.placements.settings import PlacementsSettings
from tests.handlers.placements.test_gap import ordinary, supplementary, world
from tests.handlers.placements.test_outcomes import REGION, run_round
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

GAP = f"/v1/regions/{REGION}/competence-gap"


@dataclass
class Api:
    client: httpx.AsyncClient
    fake: InMemoryPlacementsUnitOfWork
    issuer: TestIssuer


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test")
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    transport = httpx.ASGITransport(app=app)
    coordinator = issuer.headers("coordinator", regions=[REGION])
    async with httpx.AsyncClient(
        transport=transport, base_url="http://placements", headers=coordinator
    ) as client:
        await world(fake)
        await run_round(fake, ordinary())
        await run_round(fake, supplementary())
        yield Api(client, fake, issuer)


def fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


async def test_the_gap_as_json_with_hidden_counts_null_and_named(api: Api) -> None:
    r = await api.client.get(GAP)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["region"], body["term"], body["term_name"], body["lang"]) == (
        REGION,
        "2027-spring",
        "spring term 2027",
        "en",
    )
    assert (body["starts_on"], body["ends_on"]) == ("2027-01-01", "2027-06-30")
    assert body["terms"] == ["2027-spring", "2027-autumn"]
    assert (body["placements"], body["slots"], body["open_slots"], body["students"]) == (
        3,
        16,
        4,
        12,
    )
    first = body["gaps"][0]
    assert (first["dimension"], first["key"], first["slots"], first["empty_slots"]) == (
        "skill",
        "battery-hv",
        12,
        9,
    )
    assert (first["students"], first["suppressed"]) == (None, ["students"])
    assert first["text"] == (
        "12 slots needed `battery-hv`; fewer than 5 students had it. 9 slots stayed empty for "
        "want of it. 5 students were left unplaced for want of it. Slots empty for want of it "
        "after each round: 9 → 9."
    )
    assert [t["unplaced_missing"] for t in first["trend"]] == [6, 5]
    assert [r["kind"] for r in body["rounds"]] == ["ordinary", "ordinary"]
    assert body["rounds"][1]["free_slots"] == 9
    assert any("fewer than 5 students" in n for n in body["notes"])
    assert "s-01" not in r.text  # no student is named
    skills = {g["key"]: g for g in body["skills"]}
    assert (skills["wiring"]["students"], skills["wiring"]["suppressed"]) == (
        9,
        ["unplaced_missing"],
    )
    top = await api.client.get(GAP, params={"top": 1, "term": "2027-VT"})
    assert [g["key"] for g in top.json()["gaps"]] == ["battery-hv"]


async def test_the_words_are_in_the_requests_language(api: Api) -> None:
    found = await handlers.competence_gap(REGION, None, api.fake)
    cases: tuple[tuple[dict[str, str], dict[str, str], Lang], ...] = (
        ({"lang": "sv"}, {}, "sv"),
        ({}, {"Accept-Language": "fi-FI, en;q=0.5"}, "fi"),
    )
    for params, headers, lang in cases:
        r = await api.client.get(GAP, params=params, headers=headers)
        body = r.json()
        assert body["lang"] == lang
        out = reports.render_gap(found, Words(lang))
        assert body["gaps"][0]["text"] == out.gaps[0].text
        assert body["term_name"] == out.term_name


async def test_the_gap_downloads_as_csv_and_xlsx(api: Api) -> None:
    r = await api.client.get(f"{GAP}.csv", params={"term": "2027-spring"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        'attachment; filename="competence-gap-SE-AB-2027-spring.csv"'
    )
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["section", "key", "figure", "value"]
    assert ["skill", "battery-hv", "students", "< 5"] in rows
    assert ["skill", "battery-hv", "round 2 unplaced_missing", "5"] in rows
    assert ["summary", "slots", "value", "16"] in rows
    r = await api.client.get(f"{GAP}.xlsx", params={"lang": "sv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == reports.XLSX_MEDIA
    with zipfile.ZipFile(io.BytesIO(r.content)) as book:
        sheets = book.read("xl/workbook.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    assert all(f'name="{s}"' in sheets for s in ("Gaps", "Skills", "Programmes", "Rounds"))
    assert "battery-hv" in strings
    assert "&lt; 5" in strings


async def test_a_bad_term_or_top_is_a_problem_naming_the_field(api: Api) -> None:
    before = len(api.fake.published)
    for params in ({"term": "2031-spring"}, {"term": "next term"}, {"term": "x" * 21}):
        r = await api.client.get(GAP, params=params)
        assert r.status_code == 422, params
        assert fields(r) == ["term"]
    r = await api.client.get(GAP, params={"term": "2031-spring"})
    assert "its terms: 2027-spring, 2027-autumn" in r.json()["errors"][0]["message"]
    r = await api.client.get(f"{GAP}.csv", params={"term": "2027-winter"})
    assert (r.status_code, fields(r)) == (422, ["term"])
    for top in ("0", "51", "many"):
        r = await api.client.get(GAP, params={"top": top})
        assert (r.status_code, fields(r)) == (422, ["top"])
    empty = await api.client.get("/v1/regions/SE-AB-EMPTY/competence-gap")
    assert empty.status_code == 403  # not the coordinator's region
    other = api.issuer.headers("coordinator", regions=["SE-AB-EMPTY"])
    r = await api.client.get("/v1/regions/SE-AB-EMPTY/competence-gap", headers=other)
    assert (r.status_code, fields(r)) == (422, ["term"])
    assert len(api.fake.published) == before  # nothing written


async def test_the_operator_and_another_regions_coordinator_are_refused(api: Api) -> None:
    for headers in (
        api.issuer.headers("operator"),
        api.issuer.headers("coordinator", regions=["SE-O"]),
    ):
        r = await api.client.get(GAP, headers=headers)
        assert r.status_code == 403
