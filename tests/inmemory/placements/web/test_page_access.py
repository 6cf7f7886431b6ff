"""The authorisation matrix of the web application's pages: every page route (tagged `web`),
for every kind of caller signed in by the session cookie, against the same world as the API's
matrix (tests/inmemory/placements/test_authorisation.py). A page route without a row here fails.

Cells: `303` (sent on: to sign in, or to the person's first page), `403` (signed in without
the right: an error page), `ok` (anything else but a 500). Forms are posted with the session's
CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.placements.bootstrap import build, create_app
from services.placements.settings import PlacementsSettings
from tests.inmemory.placements.test_authorisation import (
    CALLERS,
    OWN_MATCH,
    OWN_ROUND,
    is_page,
    routes_of,
    tokens,
    world,
)
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer
from tests.support.web import CSRF, session_cookie

from .rows import (
    OPEN,
    OPERATOR,
    PageRow,
    Visit,
    company,
    coordinator,
    readiness,
    student,
    teacher,
)

__all__ = ["OWN_MATCH", "OWN_ROUND"]  # the world's ids, for the rows' modules


#                     anon st-own st-oth co-own co-oth crd-in crd-out oper svc
REDIRECT = "303 303 303 303 303 303 303 303 303"
SIGN_OUT = "403 303 303 303 303 303 303 303 303"  # no session, no CSRF token: refused
START = "ok 303 303 303 303 303 303 303 403"

SHELL: tuple[PageRow, ...] = (
    PageRow(("GET", "/"), Visit("GET", "/"), START),
    PageRow(("GET", "/login"), Visit("GET", "/login"), REDIRECT),
    PageRow(("GET", "/auth/callback"), Visit("GET", "/auth/callback"), OPEN),
    PageRow(("POST", "/logout"), Visit("POST", "/logout"), SIGN_OUT),
    PageRow(("GET", "/assets/app/{name}"), Visit("GET", "/assets/app/app.css"), OPEN),
    PageRow(("GET", "/operations"), Visit("GET", "/operations"), OPERATOR),
)
PAGES: tuple[PageRow, ...] = (
    SHELL + student.ROWS + company.ROWS + coordinator.ROWS + readiness.ROWS + teacher.ROWS
)


@dataclass
class Pages:
    client: httpx.AsyncClient
    holder: dict[str, InMemoryPlacementsUnitOfWork]
    app: Any
    settings: PlacementsSettings
    tokens: dict[str, str | None]

    async def visit(self, row: PageRow, caller: str) -> httpx.Response:
        self.holder["fake"] = world()
        self.client.cookies.clear()
        token = self.tokens[caller]
        if token is not None:
            session = {"at": token, "rt": None, "exp": 4_000_000_000.0, "csrf": CSRF}
            self.client.cookies.set("apl_session", session_cookie(self.settings, session))
        v = row.visit
        data = {"csrf": CSRF, **v.form} if v.method == "POST" else None
        return await self.client.request(
            v.method, v.path, data=data, headers={"accept": "text/html"}
        )


@pytest.fixture(scope="module")
async def pages() -> AsyncIterator[Pages]:
    issuer = TestIssuer()
    holder = {"fake": world()}
    settings = PlacementsSettings(environment="test", auth_issuer=issuer.url)
    container = build(settings, unit_of_work=lambda: holder["fake"], verifier=issuer.verifier())
    app = create_app(container)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://placements") as client:
        yield Pages(client, holder, app, settings, tokens(issuer))


def _class(status: int) -> str:
    if status in (303, 403):
        return str(status)
    return "500" if status >= 500 and status != 503 else "ok"


def test_every_page_route_has_a_row(pages: Pages) -> None:
    rows = {row.route for row in PAGES}
    found = {key for key, route in routes_of(pages.app) if is_page(route)}
    assert sorted(found - rows) == [], "page routes without a row in PAGES"
    assert sorted(rows - found) == [], "PAGES rows of routes that do not exist"


@pytest.mark.parametrize("row", PAGES, ids=lambda r: f"{r.route[0]} {r.route[1]}")
async def test_page_matrix(pages: Pages, row: PageRow) -> None:
    got = {}
    for caller in CALLERS:
        response = await pages.visit(row, caller)
        got[caller] = _class(response.status_code)
    assert got == row.expected
