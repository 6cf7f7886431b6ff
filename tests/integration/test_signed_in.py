"""One placement, signed in all the way: real tokens of the local Keycloak's dev users against the
placements service in-process (its own verifier of `infra.auth_issuer`), with the matching
service in-process on the same topics and database to run the round.

register (a coordinator imports a student) -> rank (the student) -> round (the coordinator) ->
accept (the student, then the company) -> confirmed; and at each step the callers who may not
are refused: no token 401, the other student, the other company, the operator and a coordinator
of another region 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.matching.bootstrap import running as matching_running
from services.matching.settings import MatchingSettings
from services.placements.bootstrap import create_app
from services.placements.bootstrap import running as placements_running
from services.placements.settings import PlacementsSettings
from shared.contracts.topics import Topics
from tests.support.databases import create_database, drop_database
from tests.support.identity import DevTokens
from tests.support.infra import Infra
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

REGION = "SE-AB"
STUDENT, COMPANY = "s-000001", "c-000001"  # the dev users `student` and `company`
OTHER_STUDENT = "s-000002"  # `student2`
PLACEMENT = "p-signed-in"


@dataclass
class Api:
    """The placements app, called as a dev user (`None`: without a token)."""

    http: httpx.AsyncClient
    tokens: DevTokens

    async def call(
        self, user: str | None, method: str, path: str, body: Any = None
    ) -> httpx.Response:
        headers = {} if user is None else self.tokens.headers(user)
        return await self.http.request(method, path, json=body, headers=headers)

    async def ok(self, user: str, method: str, path: str, body: Any = None) -> Any:
        response = await self.call(user, method, path, body)
        assert response.status_code < 300, (user, method, path, response.text)
        return response.json()

    async def refused(
        self, status: int, users: tuple[str | None, ...], method: str, path: str, body: Any = None
    ) -> None:
        for user in users:
            response = await self.call(user, method, path, body)
            assert response.status_code == status, (user, method, path, response.text)


@pytest.fixture
async def api(infra: Infra, topics: Topics) -> AsyncIterator[Api]:
    database = await create_database(infra.database_url, "apl_signed_in")
    common: dict[str, Any] = {
        "database_url": database,
        "topic_prefix": topics.prefix,
        "outbox_poll_seconds": 0.05,
        "kafka_session_timeout_ms": 6000,
        "auth_issuer": infra.auth_issuer,
        "environment": "test",
    }
    try:
        async with (
            matching_running(MatchingSettings(**common, **infra.kafka_settings("matching"))),
            placements_running(
                PlacementsSettings(**common, **infra.kafka_settings("placements"))
            ) as placements,
        ):
            transport = httpx.ASGITransport(app=create_app(placements))
            async with httpx.AsyncClient(transport=transport, base_url="http://p/v1") as http:
                yield Api(http, DevTokens(infra.auth_issuer))
    finally:
        await drop_database(infra.database_url, database)


async def test_a_placement_from_registration_to_confirmation_signed_in(api: Api) -> None:
    student, match_of = f"/students/{STUDENT}", f"/students/{STUDENT}/match"

    # The company posts its placement; no token is 401, the other company posts none for it.
    offer = {
        "placement_id": PLACEMENT,
        "company_id": COMPANY,
        "region": REGION,
        "capacity": 1,
        "title": "Electrician's apprentice",
        "programmes": ["EE"],
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "supervisor": {"name": "Supervisor", "email": "handledare@example.se", "language": "sv"},
    }
    await api.refused(401, (None,), "POST", "/placements", offer)
    await api.refused(403, ("company2",), "POST", "/placements", offer)
    await api.ok("company", "POST", "/placements", offer)
    await api.refused(403, ("company2",), "GET", f"/placements/{PLACEMENT}")
    await api.refused(403, ("company2",), "GET", f"/placements/{PLACEMENT}/matches")

    # Register: the coordinator imports the two students; not the other region's coordinator.
    items = {
        "items": [
            {
                "student_id": sid,
                "region": REGION,
                "programme": "EE",
                "name": f"Student {sid}",
                "email": f"{sid}@school.example.se",
            }
            for sid in (STUDENT, OTHER_STUDENT)
        ]
    }
    await api.refused(401, (None,), "POST", "/students/batch", items)
    await api.refused(
        403, ("coordinator-se-m", "student", "company"), "POST", "/students/batch", items
    )
    assert (await api.ok("coordinator", "POST", "/students/batch", items))["created"] == 2

    # The student's personal data: the student and the coordinator; nobody else.
    await api.refused(401, (None,), "GET", student)
    await api.refused(403, ("student2", "operator", "coordinator-se-m", "company"), "GET", student)
    assert (await api.ok("student", "GET", student))["email"] == f"{STUDENT}@school.example.se"
    await api.ok("coordinator", "GET", student)

    # Rank: the student sets their preferences; the other student cannot set them.
    ranking = {"preferences": [PLACEMENT]}
    await api.refused(403, ("student2",), "PUT", f"{student}/preferences", ranking)
    ranked = await api.ok("student", "PUT", f"{student}/preferences", ranking)
    assert ranked["preferences"] == [PLACEMENT]

    # Round: the coordinator of the region; not the other region's, not a student.
    await api.refused(403, ("coordinator-se-m", "student"), "POST", "/rounds", {"region": REGION})
    round_id = (await api.ok("coordinator", "POST", "/rounds", {"region": REGION}))["round_id"]
    await api.refused(403, ("coordinator-se-m",), "GET", f"/rounds/{round_id}")

    async def completed() -> dict[str, Any] | None:
        body: dict[str, Any] = await api.ok("coordinator", "GET", f"/rounds/{round_id}")
        return body if body["status"] == "completed" else None

    finished = await eventually(completed, wait=120, interval=0.3, what="the round completed")
    assert finished["figures"]["placed"] == 1

    async def state(wanted: str) -> dict[str, Any] | None:
        response = await api.call("student", "GET", match_of)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["state"] == wanted else None

    proposed = await eventually(lambda: state("proposed"), wait=120, interval=0.3, what="proposed")
    assert proposed["placement_id"] == PLACEMENT
    accept = f"/matches/{proposed['match_id']}/accept"

    # The match is the student's and the company's only.
    await api.refused(401, (None,), "GET", match_of)
    await api.refused(403, ("student2", "coordinator-se-m", "operator"), "GET", match_of)
    await api.refused(403, ("company2",), "GET", f"/placements/{PLACEMENT}/matches")
    await api.refused(401, (None,), "POST", accept, {"by": "student"})
    await api.refused(403, ("student2", "coordinator-se-m"), "POST", accept, {"by": "student"})
    await api.refused(403, ("company2",), "POST", accept, {"by": "company"})
    await api.refused(403, ("student",), "POST", accept, {"by": "company"})

    # Accept: the student, then the company; the match is confirmed.
    await api.ok("student", "POST", accept, {"by": "student"})
    await api.ok("company", "POST", accept, {"by": "company"})
    confirmed = await eventually(
        lambda: state("confirmed"), wait=120, interval=0.3, what="confirmed"
    )
    assert confirmed["match_id"] == proposed["match_id"]
    at_placement = await api.ok("company", "GET", f"/placements/{PLACEMENT}/matches")
    assert [(m["student_id"], m["state"]) for m in at_placement] == [(STUDENT, "confirmed")]
