"""The authorisation matrix: every route of the app, for every kind of caller, against resources
that exist (the in-memory container, tokens of the test issuer).

Every route must declare a rule the policy knows (`x-apl-access`), and must have a row in
`MATRIX` below (a new route fails here until someone decides who may call it). Each cell is the
status class expected: 401 (no or a bad token), 403 (a valid token without the right), or ok
(anything else but a 500: the request reached the handler, which answered 2xx, 404, 409, 422).
The matrix that ran is written to the terminal summary and to `$APL_AUTH_MATRIX` if set.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from services.placements.bootstrap import build, create_app
from services.placements.domain import policy
from services.placements.domain.model import (
    Contact,
    MatchRecord,
    Placement,
    Round,
    Student,
)
from services.placements.entrypoints.auth import rule_of
from services.placements.settings import PlacementsSettings
from shared.contracts.profiles import PlacementOffer, StudentProfile
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer

OWN_MATCH = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER_MATCH = uuid.UUID("00000000-0000-4000-8000-000000000002")
OWN_ROUND = uuid.UUID("00000000-0000-4000-8000-0000000000a1")

CALLERS = (
    "anonymous",
    "student own",
    "student other",
    "company own",
    "company other",
    "coordinator in",
    "coordinator out",
    "operator",
    "service",
)


def tokens(issuer: TestIssuer) -> dict[str, str | None]:
    return {
        "anonymous": None,
        "student own": issuer.mint("student", student_id="s-own"),
        "student other": issuer.mint("student", student_id="s-other"),
        "company own": issuer.mint("company", company_id="c-own"),
        "company other": issuer.mint("company", company_id="c-other"),
        "coordinator in": issuer.mint("coordinator", regions=["SE-AB"]),
        "coordinator out": issuer.mint("coordinator", regions=["SE-O", "SE-M"]),
        "operator": issuer.mint("operator"),
        "service": issuer.service(),
    }


def offer(pid: str, company: str = "c-own", region: str = "SE-AB") -> dict[str, Any]:
    return {
        "placement_id": pid,
        "company_id": company,
        "region": region,
        "capacity": 2,
        "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    }


def registration(sid: str) -> dict[str, Any]:
    return {
        "student_id": sid,
        "region": "SE-AB",
        "programme": "EE",
        "name": "Sara Nieminen",
        "email": f"{sid}@school.example.se",
    }


def world() -> InMemoryPlacementsUnitOfWork:
    """Own resources (company c-own, student s-own, region SE-AB) and others' (SE-O)."""
    fake = InMemoryPlacementsUnitOfWork()
    for pid, company, region in (("p-own", "c-own", "SE-AB"), ("p-other", "c-other", "SE-O")):
        fake.placement_rows[pid] = Placement(
            PlacementOffer.model_validate(offer(pid, company, region))
        )
    for sid, region in (("s-own", "SE-AB"), ("s-other", "SE-O")):
        profile = StudentProfile(student_id=sid, region=region, programme="EE")
        fake.student_rows[sid] = Student(profile, Contact("Name", f"{sid}@school.example.se"))
    for match_id, sid, pid, company, region in (
        (OWN_MATCH, "s-own", "p-own", "c-own", "SE-AB"),
        (OTHER_MATCH, "s-other", "p-other", "c-other", "SE-O"),
    ):
        fake.match_rows[match_id] = MatchRecord(
            match_id=match_id,
            round_id=None,
            region=region,
            student_id=sid,
            placement_id=pid,
            company_id=company,
            rank=1,
            state="proposed",
            accepted_by_student=False,
            accepted_by_company=False,
            declined_by=None,
            reason=None,
            updated_at=datetime.now(UTC),
        )
        fake.match_order[match_id] = next(fake.sequence)
    fake.round_rows[OWN_ROUND] = Round(OWN_ROUND, "SE-AB", "optimal", "requested")
    return fake


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """A route (method, path template), the request made, and the expected class per caller,
    in the order of CALLERS."""

    route: tuple[str, str]
    call: Call
    expect: str
    label: str = ""

    @property
    def expected(self) -> dict[str, str]:
        return dict(zip(CALLERS, self.expect.split(), strict=True))

    @property
    def name(self) -> str:
        return self.label or f"{self.route[0]} {self.route[1]}"


#                  anon st-own st-oth co-own co-oth crd-in crd-out oper svc
EVERYONE = "ok ok ok ok ok ok ok ok ok"
COORD = "401 403 403 403 403 ok 403 403 403"
STAFF = "401 403 403 ok 403 ok 403 403 403"
SELF = "401 ok 403 403 403 ok 403 403 403"
READERS = "401 ok ok ok 403 ok 403 403 403"
LISTERS = "401 ok ok ok ok ok 403 403 403"
SERVICE = "401 403 403 403 403 403 403 403 ok"
AS_STUDENT = "401 ok 403 403 403 ok 403 403 403"
AS_COMPANY = "401 403 403 ok 403 ok 403 403 403"

P = "/v1/placements"
S = "/v1/students"
M = f"/v1/matches/{OWN_MATCH}"
MATRIX: tuple[Row, ...] = (
    Row(("GET", "/healthz"), Call("GET", "/healthz"), EVERYONE),
    Row(("GET", "/readyz"), Call("GET", "/readyz"), EVERYONE),
    Row(("GET", "/metrics"), Call("GET", "/metrics"), EVERYONE),
    Row(("GET", "/docs/asyncapi.json"), Call("GET", "/docs/asyncapi.json"), EVERYONE),
    Row(("GET", "/docs"), Call("GET", "/docs"), EVERYONE),
    Row(("GET", "/docs/oauth2-redirect"), Call("GET", "/docs/oauth2-redirect"), EVERYONE),
    Row(("GET", "/docs/asyncapi"), Call("GET", "/docs/asyncapi"), EVERYONE),
    Row(("GET", "/assets/vendor/{name}"), Call("GET", "/assets/vendor/htmx.min.js"), EVERYONE),
    Row(("POST", P), Call("POST", P, offer("p-new")), STAFF),
    Row(("POST", f"{P}/batch"), Call("POST", f"{P}/batch", {"items": [offer("p-new")]}), COORD),
    Row(("GET", P), Call("GET", P, params={"region": "SE-AB"}), LISTERS),
    Row(("GET", f"{P}/{{placement_id}}"), Call("GET", f"{P}/p-own"), READERS),
    Row(("PATCH", f"{P}/{{placement_id}}"), Call("PATCH", f"{P}/p-own", {"capacity": 3}), STAFF),
    Row(("DELETE", f"{P}/{{placement_id}}"), Call("DELETE", f"{P}/p-own"), STAFF),
    Row(("GET", f"{P}/{{placement_id}}/matches"), Call("GET", f"{P}/p-own/matches"), STAFF),
    Row(
        ("PUT", "/v1/companies/{company_id}/notification-channel"),
        Call("PUT", "/v1/companies/c-own/notification-channel", {"channel": "email"}),
        STAFF,
    ),
    Row(
        ("POST", "/v1/companies/{company_id}/invitations"),
        Call("POST", "/v1/companies/c-own/invitations", {"email": "hr@c-own.example.se"}),
        COORD,
    ),
    Row(("POST", S), Call("POST", S, registration("s-new")), COORD),
    Row(
        ("POST", f"{S}/batch"), Call("POST", f"{S}/batch", {"items": [registration("s-n")]}), COORD
    ),
    Row(
        ("PUT", f"{S}/{{student_id}}/preferences"),
        Call("PUT", f"{S}/s-own/preferences", {"preferences": ["p-own"]}),
        SELF,
    ),
    Row(("DELETE", f"{S}/{{student_id}}"), Call("DELETE", f"{S}/s-own"), SELF),
    # a teacher's own profile (s-own is a student's record: the coordinator's call is a 404;
    # the teachers' own calls are tests/inmemory/placements/test_teacher_access.py)
    Row(
        ("PUT", "/v1/teachers/{teacher_id}"),
        Call("PUT", "/v1/teachers/s-own", {"subject": "Physics"}),
        COORD,
    ),
    Row(("GET", "/v1/teachers/{teacher_id}"), Call("GET", "/v1/teachers/s-own"), COORD),
    Row(("GET", f"{S}/{{student_id}}"), Call("GET", f"{S}/s-own"), SELF),
    Row(("GET", f"{S}/{{student_id}}/match"), Call("GET", f"{S}/s-own/match"), SELF),
    Row(
        ("POST", "/v1/matches/{match_id}/accept"),
        Call("POST", f"{M}/accept", {"by": "student"}),
        AS_STUDENT,
        "POST /v1/matches/{match_id}/accept by=student",
    ),
    Row(
        ("POST", "/v1/matches/{match_id}/accept"),
        Call("POST", f"{M}/accept", {"by": "company"}),
        AS_COMPANY,
        "POST /v1/matches/{match_id}/accept by=company",
    ),
    Row(
        ("POST", "/v1/matches/{match_id}/decline"),
        Call("POST", f"{M}/decline", {"by": "student", "reason": "far"}),
        AS_STUDENT,
        "POST /v1/matches/{match_id}/decline by=student",
    ),
    Row(
        ("POST", "/v1/matches/{match_id}/decline"),
        Call("POST", f"{M}/decline", {"by": "company"}),
        AS_COMPANY,
        "POST /v1/matches/{match_id}/decline by=company",
    ),
    Row(("GET", f"{S}/{{student_id}}/outcome"), Call("GET", f"{S}/s-own/outcome"), SELF),
    Row(("GET", f"{S}/{{student_id}}/vacancies"), Call("GET", f"{S}/s-own/vacancies"), SELF),
    Row(
        ("POST", "/v1/matches"),
        Call(
            "POST", "/v1/matches", {"student_id": "s-own", "placement_id": "p-own", "reason": "r"}
        ),
        COORD,
    ),
    Row(("POST", "/v1/rounds"), Call("POST", "/v1/rounds", {"region": "SE-AB"}), COORD),
    Row(("GET", "/v1/rounds"), Call("GET", "/v1/rounds", params={"region": "SE-AB"}), COORD),
    Row(
        ("GET", "/v1/rounds/compare"),
        Call("GET", "/v1/rounds/compare", params={"a": str(OWN_ROUND), "b": str(OWN_ROUND)}),
        COORD,
    ),
    Row(("GET", "/v1/rounds/{round_id}"), Call("GET", f"/v1/rounds/{OWN_ROUND}"), COORD),
    Row(
        ("GET", "/v1/rounds/{round_id}/outcomes"),
        Call("GET", f"/v1/rounds/{OWN_ROUND}/outcomes"),
        COORD,
    ),
    Row(
        ("GET", "/v1/rounds/{round_id}/report"),
        Call("GET", f"/v1/rounds/{OWN_ROUND}/report"),
        COORD,
    ),
    Row(
        ("GET", "/v1/rounds/{round_id}/report.csv"),
        Call("GET", f"/v1/rounds/{OWN_ROUND}/report.csv"),
        COORD,
    ),
    Row(
        ("GET", "/v1/rounds/{round_id}/report.xlsx"),
        Call("GET", f"/v1/rounds/{OWN_ROUND}/report.xlsx"),
        COORD,
    ),
    Row(
        ("GET", "/v1/regions/{region}/vacancies"),
        Call("GET", "/v1/regions/SE-AB/vacancies"),
        COORD,
    ),
    Row(
        ("POST", "/v1/regions/{region}/supplementary"),
        Call("POST", "/v1/regions/SE-AB/supplementary", {}),
        COORD,
    ),
    Row(("GET", "/v1/regions/{region}/audit"), Call("GET", "/v1/regions/SE-AB/audit"), COORD),
    Row(
        ("GET", "/v1/regions/{region}/competence-gap"),
        Call("GET", "/v1/regions/SE-AB/competence-gap", params={"term": "2027-spring"}),
        COORD,
    ),
    Row(
        ("GET", "/v1/regions/{region}/competence-gap.csv"),
        Call("GET", "/v1/regions/SE-AB/competence-gap.csv"),
        COORD,
    ),
    Row(
        ("GET", "/v1/regions/{region}/competence-gap.xlsx"),
        Call("GET", "/v1/regions/SE-AB/competence-gap.xlsx"),
        COORD,
    ),
    Row(("GET", "/v1/actions/{token}"), Call("GET", "/v1/actions/not-a-link"), EVERYONE),
    Row(("POST", "/v1/actions/{token}"), Call("POST", "/v1/actions/not-a-link"), EVERYONE),
    Row(
        ("GET", "/internal/v1/notice-context"),
        Call(
            "GET",
            "/internal/v1/notice-context",
            params={"placement_id": "p-own", "student_id": "s-own"},
        ),
        SERVICE,
    ),
    Row(
        ("GET", "/internal/v1/student-notice-context"),
        Call("GET", "/internal/v1/student-notice-context", params={"student_id": "s-own"}),
        SERVICE,
    ),
    Row(
        ("POST", "/internal/v1/notice-contexts"),
        Call(
            "POST",
            "/internal/v1/notice-contexts",
            {"supervisors": [{"placement_id": "p-own", "student_id": "s-own"}]},
        ),
        SERVICE,
    ),
    # supervisor readiness (entrypoints/readiness.py)
    Row(
        ("GET", "/v1/regions/{region}/readiness-settings"),
        Call("GET", "/v1/regions/SE-AB/readiness-settings"),
        COORD,
    ),
    Row(
        ("PUT", "/v1/regions/{region}/readiness-settings"),
        Call("PUT", "/v1/regions/SE-AB/readiness-settings", {"require_readiness": True}),
        COORD,
    ),
    Row(
        ("PUT", "/v1/regions/{region}/supervisor-training"),
        Call(
            "PUT",
            "/v1/regions/SE-AB/supervisor-training",
            {"company_id": "c-own", "email": "anna@example.se", "trained_on": "2026-01-05"},
        ),
        COORD,
    ),
    Row(
        ("GET", "/v1/regions/{region}/supervisors/not-ready"),
        Call("GET", "/v1/regions/SE-AB/supervisors/not-ready"),
        COORD,
    ),
    Row(
        ("GET", "/internal/v1/reminders-due"),
        Call(
            "GET",
            "/internal/v1/reminders-due",
            params={"starts_from": "2027-01-11", "starts_until": "2027-01-18"},
        ),
        SERVICE,
    ),
)


@dataclass
class Matrix:
    issuer: TestIssuer
    client: httpx.AsyncClient
    holder: dict[str, InMemoryPlacementsUnitOfWork]
    app: Any
    tokens: dict[str, str | None]

    async def call(self, row: Row, caller: str) -> httpx.Response:
        self.holder["fake"] = world()  # every call on the same fresh world
        token = self.tokens[caller]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = row.call
        return await self.client.request(
            c.method, c.path, json=c.json, params=c.params, headers=headers
        )


RESULTS: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
async def matrix() -> AsyncIterator[Matrix]:
    issuer = TestIssuer()
    holder = {"fake": world()}
    settings = PlacementsSettings(environment="test")
    container = build(settings, unit_of_work=lambda: holder["fake"], verifier=issuer.verifier())
    app = create_app(container)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://placements") as client:
        yield Matrix(issuer, client, holder, app, tokens(issuer))
    if RESULTS:
        _write(RESULTS)


def _class(status: int) -> str:
    if status in (401, 403):
        return str(status)
    return "500" if status >= 500 and status != 503 else "ok"


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, those of included routers too (FastAPI keeps them in the router)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # an included router
            found += _api_routes(route.original_router.routes)
    return found


def routes_of(app: Any) -> list[tuple[tuple[str, str], APIRoute]]:
    """(method, path) of every route, the ones left out of the OpenAPI document included; the
    document's operations must be among them."""
    found = [
        ((method, route.path), route)
        for route in _api_routes(app.routes)
        for method in sorted(route.methods or ())
    ]
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert documented <= {key for key, _ in found}
    return found


def is_page(route: APIRoute) -> bool:
    """A route of the web application: its matrix is tests/inmemory/placements/web/
    test_page_access.py (signed in by the session cookie, not a bearer token)."""
    return "web" in (route.tags or [])


def test_every_route_declares_a_known_rule_and_has_a_row(matrix: Matrix) -> None:
    rows = {row.route for row in MATRIX}
    undeclared = [key for key, route in routes_of(matrix.app) if rule_of(route) is None]
    assert undeclared == [], "routes without an x-apl-access rule the policy knows"
    api = {key for key, route in routes_of(matrix.app) if not is_page(route)}
    missing = [key for key in sorted(api) if key not in rows]
    assert missing == [], "routes without a row in MATRIX: decide who may call them"
    stale = rows - api
    assert stale == set(), "MATRIX rows of routes that do not exist"


def test_the_openapi_document_names_the_rule_and_the_security_of_every_operation(
    matrix: Matrix,
) -> None:
    document = matrix.app.openapi()
    scheme = document["components"]["securitySchemes"]["oidc"]
    flow = scheme["flows"]["authorizationCode"]
    assert flow["authorizationUrl"].startswith(matrix.issuer.url) is False  # settings': none here
    assert scheme["type"] == "oauth2"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            name = operation.get("x-apl-access")
            assert name in policy.RULES, f"{method} {path}"
            if policy.RULES[name].anonymous:
                assert "security" not in operation, f"{method} {path}"
            else:
                assert operation["security"] == [{"oidc": ["openid"]}] or operation["security"] == [
                    {"oidc": []}
                ], f"{method} {path}"
                assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"


async def test_docs_sign_in_with_the_public_client_and_pkce(matrix: Matrix) -> None:
    page = (await matrix.client.get("/docs")).text
    assert '"clientId": "apl-docs"' in page
    assert '"usePkceWithAuthorizationCodeGrant": true' in page
    assert (await matrix.client.get("/docs/oauth2-redirect")).status_code == 200
    assert (await matrix.client.get("/openapi.json")).status_code == 200


@pytest.mark.parametrize("row", MATRIX, ids=lambda r: r.name)
async def test_matrix(matrix: Matrix, row: Row) -> None:
    got: dict[str, str] = {}
    statuses: dict[str, int] = {}
    for caller in CALLERS:
        response = await matrix.call(row, caller)
        statuses[caller] = response.status_code
        got[caller] = _class(response.status_code)
        if got[caller] == "401":
            assert response.headers["www-authenticate"].startswith('Bearer realm="apl"')
        if got[caller] in ("401", "403"):
            assert response.headers["content-type"].startswith("application/problem+json")
    RESULTS[row.name] = statuses
    assert got == row.expected, statuses


BAD_TOKENS: dict[str, Callable[[TestIssuer], str]] = {
    "garbage": lambda i: "garbage",
    "expired": TestIssuer.expired,
    "not yet valid": TestIssuer.not_yet_valid,
    "wrong audience": TestIssuer.wrong_audience,
    "wrong issuer": TestIssuer.wrong_issuer,
    "alg none": TestIssuer.alg_none,
    "HS256 with the public key": TestIssuer.hs256_with_public_key,
    "unknown kid": TestIssuer.unknown_kid,
    "tampered": TestIssuer.tampered,
    "huge": lambda i: "e" * 100_000,
}


@pytest.mark.parametrize("name", BAD_TOKENS)
async def test_bad_tokens_are_401_with_a_challenge_never_500(matrix: Matrix, name: str) -> None:
    token = BAD_TOKENS[name](matrix.issuer)
    r = await matrix.client.get(f"{P}/p-own", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="apl", error="invalid_token", error_description="')
    assert r.json()["type"].endswith("/unauthorized")
    r = await matrix.client.get(f"{P}/p-own")
    assert (r.status_code, r.headers["www-authenticate"]) == (401, 'Bearer realm="apl"')


async def test_an_unreachable_issuer_is_503_with_retry_after() -> None:
    issuer = TestIssuer(down=True)
    container = build(
        PlacementsSettings(environment="test"),
        unit_of_work=world,
        verifier=issuer.verifier(),
    )
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://placements") as client:
        r = await client.get(f"{P}/p-own", headers=issuer.headers("coordinator"))
        assert (r.status_code, r.headers["retry-after"]) == (503, "30")
        assert r.json()["type"].endswith("/issuer-unavailable")
        assert (await client.get("/healthz")).status_code == 200
        unconfigured = create_app(build(PlacementsSettings(environment="test"), unit_of_work=world))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=unconfigured), base_url="http://placements"
        ) as bare:
            r = await bare.get(f"{P}/p-own", headers=issuer.headers("coordinator"))
            assert r.status_code == 503
            assert "APL_AUTH_ISSUER" in r.json()["detail"]


def _write(results: dict[str, dict[str, int]]) -> None:
    lines = ["| route | " + " | ".join(CALLERS) + " |", "|---" * (len(CALLERS) + 1) + "|"]
    for name, statuses in results.items():
        lines.append(f"| {name} | " + " | ".join(str(statuses[c]) for c in CALLERS) + " |")
    table = "\n".join(lines)
    target = os.environ.get("APL_AUTH_MATRIX")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            out.write(table + "\n\n" + json.dumps(results, indent=1) + "\n")
    print("\nauthorisation matrix (statuses):\n" + table)
