"""A decline's words never travel: the MatchDeclined on the topic carries a reason code, the
words stay in the placements database, and erasing the student erases them (the match's reason,
the stored Idempotency-Key response). Real PostgreSQL and Kafka."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.placements.conftest import Placements, consume, uid
from tests.integration.placements.test_api import placement_body, propose, student_body

pytestmark = pytest.mark.infra

WORDS = "Call me on 070-123 45 67, Sara Nieminen"


async def test_decline_words_stay_here_and_are_erased_with_the_student(
    placements: Placements,
) -> None:
    p = placements
    pid, sid, other = uid("p"), uid("s"), uid("s")
    assert (await p.client.post("/v1/placements", json=placement_body(pid))).status_code == 201
    for student in (sid, other):
        r = await p.client.post("/v1/students", json=student_body(student, [pid]))
        assert r.status_code == 201, r.text
    worded, coded = await propose(p, sid, pid), await propose(p, other, pid)

    key = {"Idempotency-Key": uid("k")}
    r = await p.client.post(
        f"/v1/matches/{worded}/decline", json={"by": "student", "reason": WORDS}, headers=key
    )
    assert (r.status_code, r.json()["reason"]) == (200, WORDS)  # the words are kept here
    r = await p.client.post(
        f"/v1/matches/{coded}/decline", json={"by": "company", "reason_code": "no_capacity"}
    )
    assert r.status_code == 200, r.text

    def both(values: list[dict[str, Any]]) -> bool:
        return bool(
            sum(v["type"] == "MatchDeclined" and v["data"]["placement_id"] == pid for v in values)
            == 2
        )

    values = await consume(p.kafka, p.topics.match_decisions, both)
    declines = {
        v["data"]["match_id"]: v["data"]
        for v in values
        if v["type"] == "MatchDeclined" and v["data"]["placement_id"] == pid
    }
    assert declines[str(worded)]["reason_code"] == "other"
    assert declines[str(coded)]["reason_code"] == "no_capacity"
    assert all(d.get("reason") is None for d in declines.values())
    raw = b"".join(bytes(v["data"].get("reason") or "", "utf-8") for v in values)
    assert b"070-123" not in raw

    assert (await p.client.delete(f"/v1/students/{sid}")).status_code == 204
    reason = await p.db.fetchval(
        "SELECT reason FROM placements.matches WHERE match_id = $1", worded
    )
    assert reason is None
    stored = await p.db.fetchval(
        "SELECT response::text FROM placements.idempotency_keys WHERE key = $1",
        key["Idempotency-Key"],
    )
    assert stored is not None
    assert "070-123" not in stored
    kept = await p.db.fetchval("SELECT reason FROM placements.matches WHERE match_id = $1", coded)
    assert kept == "no_capacity"  # a code is no personal data
