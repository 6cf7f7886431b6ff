"""The routes of outcomes, vacancies, supplementary rounds, overrides, comparisons and reports
over the in-memory unit of work: shapes, status codes and problems naming the field. The client
signs in as a coordinator of SE-AB; who may call what is test_authorisation.py's."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.placements.bootstrap import build, create_app
from services.placements.entrypoints.web.i18n import Lang, Words
from services.placements.settings import PlacementsSettings
from shared import explain
from shared.contracts import events as ev
from tests.handlers.placements.test_outcomes import FIRST, outcome, run_round, world
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

PUBLIC = "https://apl.example.se"


@dataclass
class Api:
    client: httpx.AsyncClient
    fake: InMemoryPlacementsUnitOfWork
    issuer: TestIssuer

    def published(self) -> list[str]:
        return [e.type for e in self.fake.published]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    fake = InMemoryPlacementsUnitOfWork()
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test", public_url=PUBLIC)
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    transport = httpx.ASGITransport(app=app)
    coordinator = issuer.headers("coordinator", regions=["SE-AB"])
    async with httpx.AsyncClient(
        transport=transport, base_url="http://placements", headers=coordinator
    ) as client:
        await world(fake)
        yield Api(client, fake, issuer)


def fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


async def test_a_students_outcome_with_its_words(api: Api) -> None:
    r = await api.client.get("/v1/students/s-2/outcome")
    assert r.status_code == 404
    assert "no round" in r.json()["detail"]
    round_id = await run_round(api.fake, FIRST)
    r = await api.client.get("/v1/students/s-2/outcome")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["round_id"], body["placement_id"], body["reason"], body["lang"]) == (
        str(round_id),
        None,
        "choices_full",
        "en",
    )
    assert body["explanation"]["better_choices"][0]["held_by"]["higher_priority"] == 2
    assert body["text"] == explain.describe(FIRST[1])  # English: the offline text
    assert body["text"][1].startswith("Choice 1 (p-1): full")
    assert body["match"] is None
    assert body["round"]["status"] == "completed"
    cases: tuple[tuple[str, dict[str, str], Lang], ...] = (
        ("?lang=sv", {}, "sv"),
        ("", {"Accept-Language": "fi;q=1"}, "fi"),
    )
    for query, header, lang in cases:
        r = await api.client.get(f"/v1/students/s-2/outcome{query}", headers=header)
        assert r.json()["lang"] == lang
        assert r.json()["text"] == explain.describe(FIRST[1], Words(lang))
    own = api.issuer.headers("student", student_id="s-1")
    r = await api.client.get("/v1/students/s-1/outcome", headers=own)
    assert r.status_code == 200
    assert (r.json()["rank"], r.json()["match"]["state"]) == (1, "proposed")
    assert r.json()["text"] == ["Placed at p-1, choice 1.", "This is the first choice."]


async def test_a_rounds_outcomes_paged_and_filtered(api: Api) -> None:
    round_id = await run_round(api.fake, FIRST)
    r = await api.client.get(f"/v1/rounds/{round_id}/outcomes", params={"limit": 2})
    assert r.status_code == 200
    body = r.json()
    assert (body["total"], [i["student_id"] for i in body["items"]]) == (4, ["s-1", "s-2"])
    assert body["items"][0]["programme"] == "EE"
    r = await api.client.get(
        f"/v1/rounds/{round_id}/outcomes", params={"placed": "false", "programme": "EE"}
    )
    assert [i["student_id"] for i in r.json()["items"]] == ["s-2", "s-3"]
    r = await api.client.get(
        f"/v1/rounds/{round_id}/outcomes", params={"reason": "no_eligible_choice"}
    )
    assert [i["student_id"] for i in r.json()["items"]] == ["s-3"]
    r = await api.client.get(f"/v1/rounds/{round_id}/outcomes", params={"reason": "bored"})
    assert (r.status_code, fields(r)) == (422, ["reason"])
    r = await api.client.get(f"/v1/rounds/{uuid.uuid4()}/outcomes")
    assert r.status_code == 404


async def test_rounds_listed_and_requested_with_options(api: Api) -> None:
    r = await api.client.post(
        "/v1/rounds", json={"region": "SE-AB", "policy": "stable", "dry_run": True, "fill": True}
    )
    assert r.status_code == 202
    r = await api.client.get("/v1/rounds")  # one region: it may be left out
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1
    item = body["items"][0]
    assert (item["policy"], item["dry_run"], item["fill"], item["kind"]) == (
        "stable",
        True,
        True,
        "ordinary",
    )
    published = len(api.published())
    r = await api.client.post(
        "/v1/rounds", json={"region": "SE-AB", "policy": "greedy", "dry_run": True}
    )
    assert (r.status_code, fields(r)) == (422, ["policy"])
    r = await api.client.post("/v1/rounds", json={"region": "SE-AB", "kind": "supplementary"})
    assert (r.status_code, fields(r)) == (422, ["kind"])
    assert len(api.published()) == published
    two = api.issuer.headers("coordinator", regions=["SE-AB", "SE-O"])
    r = await api.client.get("/v1/rounds", headers=two)
    assert r.status_code == 403
    assert "region=" in r.json()["detail"]


async def test_vacancies_of_a_region_and_a_student(api: Api) -> None:
    round_id = await run_round(api.fake, FIRST)
    r = await api.client.get("/v1/regions/SE-AB/vacancies", params={"per_student": 5})
    assert r.status_code == 200
    body = r.json()
    assert (body["round_id"], body["free_slots"]) == (str(round_id), 6)
    assert [p["placement_id"] for p in body["placements"]] == ["p-2", "p-far", "p-weld"]
    assert body["placements"][0] | {"held": 0, "free_slots": 1} == body["placements"][0]
    students = body["students"]
    assert students["total"] == 2
    first = students["items"][0]
    assert (first["student_id"], first["reason"], first["vacancies_total"]) == (
        "s-2",
        "choices_full",
        1,
    )
    assert first["vacancies"][0]["placement_id"] == "p-2"
    assert first["vacancies"][0]["distance_km"] > 10
    r = await api.client.get("/v1/students/s-2/vacancies")
    body = r.json()
    assert (body["total"], body["reason"], body["match"]) == (1, "choices_full", None)
    assert body["items"][0]["placement_id"] == "p-2"
    r = await api.client.get("/v1/students/s-1/vacancies")
    assert r.json()["match"]["placement_id"] == "p-1"


async def test_a_supplementary_round_is_opened_then_run(api: Api) -> None:
    r = await api.client.post("/v1/regions/SE-AB/supplementary", json={})
    assert (r.status_code, fields(r)) == (422, ["region"])
    round_id = await run_round(api.fake, FIRST)
    r = await api.client.post("/v1/regions/SE-AB/supplementary", json={"ranks_until": "2000-01-01"})
    assert (r.status_code, fields(r)) == (422, ["ranks_until"])
    # a round of students leaves nobody unplaced among the teachers; a participant is one of two
    r = await api.client.post("/v1/regions/SE-AB/supplementary", json={"participant": "teacher"})
    assert (r.status_code, fields(r)) == (422, ["region"])
    assert "no unplaced teachers" in r.text
    r = await api.client.post("/v1/regions/SE-AB/supplementary", json={"participant": "pupil"})
    assert (r.status_code, fields(r)) == (422, ["participant"])
    r = await api.client.post("/v1/regions/SE-AB/supplementary", json={"ranks_until": None})
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["round_id"], body["students"], body["student_ids"]) == (
        str(round_id),
        2,
        ["s-2", "s-3"],
    )
    assert api.published()[-1] == "SupplementaryRoundOpened"
    r = await api.client.post("/v1/rounds", json={"region": "SE-AB", "kind": "supplementary"})
    assert r.status_code == 202
    request = api.fake.published[-1]
    assert isinstance(request, ev.MatchingRoundRequested)
    assert request.data.kind == "supplementary"


async def test_an_assignment_by_hand(api: Api) -> None:
    await run_round(api.fake, FIRST)
    body = {"student_id": "s-2", "placement_id": "p-far", "reason": "lives nearby that term"}
    r = await api.client.post("/v1/matches", json=body)
    assert (r.status_code, set(fields(r))) == (422, {"override_hard_constraints"})
    assert "max_travel_km" in r.json()["detail"]
    r = await api.client.post("/v1/matches", json=body | {"override_hard_constraints": True})
    assert r.status_code == 202, r.text
    out = r.json()
    assert (out["status"], out["override_hard_constraints"]) == ("requested", True)
    assert [c["rule"] for c in out["constraints_overridden"]] == ["max_travel_km"]
    uuid.UUID(out["match_id"])
    assert api.published()[-1] == "MatchAssignmentRequested"
    r = await api.client.post("/v1/matches", json=body | {"placement_id": "p-1"})
    assert (r.status_code, fields(r)) == (409, ["placement_id"])  # full
    for reason in ("", "   "):
        r = await api.client.post("/v1/matches", json=body | {"reason": reason})
        assert (r.status_code, fields(r)) == (422, ["reason"])
    r = await api.client.post("/v1/matches", json={"student_id": "s-3", "placement_id": "p-2"})
    assert (r.status_code, fields(r)) == (422, ["reason"])
    r = await api.client.post("/v1/matches", json=body | {"student_id": "nobody"})
    assert r.status_code == 404
    assert api.published().count("MatchAssignmentRequested") == 1


async def test_two_dry_runs_side_by_side(api: Api) -> None:
    a = await run_round(api.fake, [outcome("s-1", "p-1", 1), outcome("s-2")], dry_run=True)
    b = await run_round(api.fake, [outcome("s-1"), outcome("s-2", "p-1", 1)], dry_run=True)
    r = await api.client.get("/v1/rounds/compare", params={"a": str(a), "b": str(b)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["a"]["placed"], body["b"]["placed"], body["different"]) == (1, 1, 2)
    assert body["a"]["round"]["dry_run"] is True
    assert [d["student_id"] for d in body["differences"]] == ["s-1", "s-2"]
    r = await api.client.get("/v1/rounds/compare", params={"a": str(a), "b": "nope"})
    assert (r.status_code, fields(r)) == (422, ["b"])


async def test_a_rounds_report_as_json_csv_and_xlsx(api: Api) -> None:
    round_id = await run_round(api.fake, FIRST, blocking=2)
    r = await api.client.get(f"/v1/rounds/{round_id}/report")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["students"], body["placed"], body["placement_rate"]) == (4, 2, 0.5)
    assert body["ranks"]["1"] == 2
    assert set(body["ranks"]) == {*map(str, range(1, 11)), "unranked", "filled", "unplaced"}
    assert body["blocking_pairs"]["count"] == 2
    assert body["blocking_pairs"]["text"].startswith("2 blocking pairs")
    assert body["by_programme"] == [
        {
            "key": "other",
            "students": None,
            "placed": None,
            "placement_rate": None,
            "first_choice": None,
            "filled": None,
        }
    ]
    assert body["small_groups"][0]["suppressed"] is True
    assert body["distance"]["suppressed"] is True  # 2 measured: under 5
    r = await api.client.get(f"/v1/rounds/{round_id}/report.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["section", "key", "figure", "value"]
    assert ["summary", "placed", "value", "2"] in rows
    assert ["rank", "1", "students", "2"] in rows
    r = await api.client.get(f"/v1/rounds/{round_id}/report.xlsx", params={"lang": "sv"})
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as book:
        names = book.namelist()
        assert "xl/workbook.xml" in names
        sheets = book.read("xl/workbook.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    assert all(f'name="{s}"' in sheets for s in ("Report", "Ranks", "Programmes", "Priorities"))
    assert "unplaced_by_reason" in strings


async def test_a_students_language_and_their_notice_context(api: Api) -> None:
    body: dict[str, Any] = {
        "student_id": "s-fi",
        "region": "SE-AB",
        "name": "Sara Nieminen",
        "email": "sara@example.fi",
        "language": "fi",
    }
    r = await api.client.post("/v1/students", json=body)
    assert (r.status_code, r.json()["language"]) == (201, "fi")
    r = await api.client.post("/v1/students", json=body | {"student_id": "s-x", "language": "de"})
    assert (r.status_code, fields(r)) == (422, ["language"])
    assert (await api.client.get("/v1/students/s-1")).json()["language"] == "sv"
    await run_round(api.fake, FIRST)
    service = {"Authorization": f"Bearer {api.issuer.service()}"}
    path = "/internal/v1/student-notice-context"
    r = await api.client.get(path, params={"student_id": "s-2"}, headers=service)
    assert r.status_code == 200, r.text
    context = r.json()
    assert (context["language"], context["vacancies_total"]) == ("sv", 1)
    assert context["page_url"] == f"{PUBLIC}/student/choices"
    r = await api.client.get(
        path, params={"student_id": "s-1", "placement_id": "p-1"}, headers=service
    )
    assert (r.json()["placement"]["placement_id"], r.json()["page_url"]) == (
        "p-1",
        f"{PUBLIC}/student",
    )
    r = await api.client.get(path, params={"student_id": "nobody"}, headers=service)
    assert r.status_code == 404
