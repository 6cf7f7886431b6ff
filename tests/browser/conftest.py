"""The browser tier: the placements service as a separate OS process (`apl serve placements`) on
the real Kafka and PostgreSQL, trusting the local Keycloak of `apl infra up` and signing its users
in through the web client of the dev realm (`apl-web`, deploy/keycloak/dev/clients.json); a real
Chromium (tests/support/browser.py) drives it.

The service runs once per test session (per xdist worker) on a topic prefix and a schema of its
own. Before the first test it holds what the dev users' first pages show: the company `company`
(c-000001) has posted PLACEMENT in REGION, and the coordinator has imported the students
`student` (s-000001) and `student2` (s-000002), who have ranked it. Every test in this directory
is marked `infra`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.contracts.topics import Topics
from tests.support.browser import browser, open_page, page  # noqa: F401  # the fixtures
from tests.support.databases import create_database, drop_database
from tests.support.identity import DevTokens
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port

HERE = Path(__file__).resolve().parent
WEB_CLIENT_SECRET = "dev-web-secret"  # the dev realm's apl-web (clients.json)
REGION = "SE-AB"
COMPANY = "c-000001"  # the dev user `company`
STUDENTS = {"s-000001": "s-000001@school.example.se", "s-000002": "s-000002@school.example.se"}
PLACEMENT = "p-browser-1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.infra)


@dataclass(frozen=True)
class App:
    """The running service: its address, its process (log: `process.tail()`), and real tokens
    of the dev users for calls to its API."""

    url: str
    process: ServiceProcess
    tokens: DevTokens

    async def api(self, user: str, method: str, path: str, body: Any = None) -> Any:
        """Call `/v1<path>` as `user`; the answer's JSON (a failure asserts, with the body)."""
        async with httpx.AsyncClient(base_url=f"{self.url}/v1", timeout=15) as http:
            response = await http.request(
                method, path, json=body, headers=self.tokens.headers(user)
            )
        assert response.status_code < 300, (user, method, path, response.text)
        return response.json() if response.content else None


@contextlib.asynccontextmanager
async def placements_and_matching(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    folder: Path,
    database: str,
    *,
    link_secret: str | None = None,
) -> AsyncIterator[App]:
    """The placements and matching services as OS processes of their own (a module's stack:
    its own topic prefix and database, `database` the name's prefix), signed in through the dev
    realm's web client; stopped and the database dropped at the end."""
    topics = await make_topics()
    database_url = await create_database(infra.database_url, database)
    common = {"APL_TOPIC_PREFIX": topics.prefix, "APL_AUTH_ISSUER": infra.auth_issuer}
    extra: dict[str, dict[str, str]] = {
        "placements": {
            "APL_WEB_CLIENT_SECRET": WEB_CLIENT_SECRET,
            "APL_SESSION_SECRET": secrets.token_urlsafe(32),
            "APL_ACTION_LINK_SECRET": link_secret or secrets.token_urlsafe(32),
        },
        "matching": {},
    }
    processes = {
        name: ServiceProcess(
            name,
            {
                **common,
                **infra.kafka_env(name),
                f"APL_{name.upper()}_DATABASE_URL": database_url,
                **extra[name],
            },
            folder / "logs",
        )
        for name in extra
    }
    processes["placements"].port = free_port()
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start, 90) for p in processes.values()))
        placements = processes["placements"]
        yield App(placements.url, placements, DevTokens(infra.auth_issuer))
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes.values()))
        await drop_database(infra.database_url, database_url)


async def _seed(app: App) -> None:
    offer = {
        "placement_id": PLACEMENT,
        "company_id": COMPANY,
        "region": REGION,
        "capacity": 2,
        "title": "Electrician's apprentice",
        "programmes": ["EE"],
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "supervisor": {"name": "Supervisor", "email": "handledare@example.se", "language": "sv"},
    }
    await app.api("company", "POST", "/placements", offer)
    items = [
        {
            "student_id": sid,
            "region": REGION,
            "programme": "EE",
            "preferences": [PLACEMENT],
            "name": f"Student {sid}",
            "email": email,
        }
        for sid, email in STUDENTS.items()
    ]
    await app.api("coordinator", "POST", "/students/batch", {"items": items})


@pytest.fixture(scope="session")
async def app(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[App]:
    topics = await make_topics()
    env = {
        **infra.kafka_env("placements"),
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_AUTH_ISSUER": infra.auth_issuer,
        "APL_PLACEMENTS_DATABASE_URL": database_url,
        "APL_PLACEMENTS_SCHEMA_NAME": f"browser_{uuid.uuid4().hex[:10]}",
        "APL_WEB_CLIENT_SECRET": WEB_CLIENT_SECRET,
        "APL_SESSION_SECRET": secrets.token_urlsafe(32),
        "APL_ACTION_LINK_SECRET": secrets.token_urlsafe(32),
    }
    process = ServiceProcess("placements", env, tmp_path_factory.mktemp("browser"))
    await asyncio.to_thread(process.start, 90)
    try:
        running = App(process.url, process, DevTokens(infra.auth_issuer))
        await _seed(running)
        yield running
    finally:
        await asyncio.to_thread(process.stop)


@pytest.fixture(scope="session")
def base_url(app: App) -> str:
    return app.url
