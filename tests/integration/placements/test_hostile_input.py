"""Inputs that used to reach a 500 from PostgreSQL, or were coerced silently, against the real
app and database: each is a 422 problem naming the field, and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.placements.conftest import Placements, uid
from tests.integration.placements.test_api import fields, placement_body, student_body

pytestmark = pytest.mark.infra

NUL = "\x00"


def refused(response: Any, *names: str) -> None:
    assert response.status_code == 422, response.text
    assert fields(response) == set(names)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("name", f"Sara{NUL}Nieminen", "name"),
        ("student_id", "s-nul", "student_id"),
        ("skills", ["wiring", f"we{NUL}lding"], "skills[1]"),
    ],
)
async def test_a_nul_character_in_a_student_is_named(
    placements: Placements, field: str, value: Any, named: str
) -> None:
    sid = uid("s")
    body = student_body(sid, [])
    body[field] = f"{sid}{NUL}" if field == "student_id" else value
    r = await placements.client.post("/v1/students", json=body)
    refused(r, named)
    assert "NUL" in r.json()["errors"][0]["message"]
    assert (await placements.client.get(f"/v1/students/{sid}")).status_code == 404


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("title", f"Elec{NUL}trician", "title"), ("programmes", ["EE", f"I{NUL}N"], "programmes[1]")],
)
async def test_a_nul_character_in_a_placement_is_named(
    placements: Placements, field: str, value: Any, named: str
) -> None:
    pid = uid("p")
    r = await placements.client.post("/v1/placements", json=placement_body(pid, **{field: value}))
    refused(r, named)
    assert (await placements.client.get(f"/v1/placements/{pid}")).status_code == 404


async def test_a_nul_character_in_a_path_or_query_is_named(placements: Placements) -> None:
    c = placements.client
    refused(await c.get("/v1/placements/p%00x"), "placement_id")
    refused(await c.get("/v1/placements", params={"company_id": f"c{NUL}1"}), "company_id")


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e400"])
async def test_a_number_that_is_not_finite_is_named(placements: Placements, number: str) -> None:
    sid = uid("s")
    text = json.dumps(student_body(sid, [])).replace(
        '"region"', f'"max_travel_km": {number}, "region"'
    )
    r = await placements.client.post(
        "/v1/students", content=text, headers={"Content-Type": "application/json"}
    )
    refused(r, "max_travel_km")
    assert (await placements.client.get(f"/v1/students/{sid}")).status_code == 404


async def test_an_offset_beyond_the_bound_is_named(placements: Placements) -> None:
    r = await placements.client.get("/v1/placements", params={"region": "SE-AB", "offset": 10**20})
    refused(r, "offset")
    ok = await placements.client.get(
        "/v1/placements", params={"region": "SE-AB", "offset": 10_000_000}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"placement_id": ', "not valid JSON"),
        (b'{"placement_id": "p-\xff\xfe"}', "not UTF-8"),
        (b"[" * 5_000 + b"]" * 5_000, "JSON"),
    ],
)
async def test_a_body_that_is_not_json_or_not_utf8_is_named_body(
    placements: Placements, content: bytes, message: str
) -> None:
    r = await placements.client.post(
        "/v1/placements", content=content, headers={"Content-Type": "application/json"}
    )
    refused(r, "(body)")
    assert message in r.json()["errors"][0]["message"]


@pytest.mark.parametrize("capacity", ["2", True, 2.0])
async def test_a_capacity_must_be_an_integer(placements: Placements, capacity: Any) -> None:
    pid = uid("p")
    r = await placements.client.post("/v1/placements", json=placement_body(pid, capacity=capacity))
    refused(r, "capacity")
    assert (await placements.client.get(f"/v1/placements/{pid}")).status_code == 404


async def test_a_patched_date_must_be_a_date_not_a_number(placements: Placements) -> None:
    pid = uid("p")
    assert (await placements.client.post("/v1/placements", json=placement_body(pid))).is_success
    r = await placements.client.patch(f"/v1/placements/{pid}", json={"starts_on": 0})
    refused(r, "starts_on")
    after = (await placements.client.get(f"/v1/placements/{pid}")).json()
    assert after["starts_on"] == "2027-01-18"  # not 1970-01-01


async def test_many_bad_preferences_answer_the_first_50_and_a_count(
    placements: Placements,
) -> None:
    sid = uid("s")
    prefs = [f"p-missing-{i}" for i in range(100)]
    r = await placements.client.post("/v1/students", json=student_body(sid, prefs))
    assert r.status_code == 422
    problem = r.json()
    assert len(problem["errors"]) == 50
    assert problem["errors_total"] == 101  # more than 10, and each unknown one
    assert len(r.content) < 12_000
    assert "and 51 more" in problem["detail"]


async def test_a_webhook_to_the_metadata_address_or_loopback_is_refused(
    placements: Placements,
) -> None:
    pid, company = uid("p"), uid("c")
    body = placement_body(pid, company=company)
    assert (await placements.client.post("/v1/placements", json=body)).status_code == 201
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:15432/"):
        channel = {"channel": "webhook", "webhook_url": url}
        path = f"/v1/companies/{company}/notification-channel"
        refused(await placements.client.put(path, json=channel), "webhook_url")
        patch = await placements.client.patch(
            f"/v1/placements/{pid}", json={"notification": channel}
        )
        refused(patch, "notification.webhook_url")
    stored = await placements.db.fetchval(
        "SELECT webhook_url FROM placements.companies WHERE company_id = $1", company
    )
    assert stored is None
    assert (await placements.client.get(f"/v1/placements/{pid}")).json()["notification"] is None
