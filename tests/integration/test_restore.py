"""The restore drill of docs/operations.md ("Backups and restore"), with the machine's
PostgreSQL 15 client binaries (`pg_dump`, `pg_restore`, `psql`; found as `apl infra` finds the
server's).

As in compose: the placements service connects as a login role of its own that owns its schema
(made here the way deploy/postgres/init-roles.sh makes it, under a name of this test's). The
service migrates its schema and takes a placement through its API; the administrator dumps the
database (`pg_dump -Fc`), creates a new one and restores into it (`pg_restore`, owners kept) and
grants the role CONNECT; the service then starts on the restored database as its role: ready, no
migration to apply, the placement there as it was, and it takes a new one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from devtools import localinfra
from shared.contracts.topics import Topics
from tests.support.databases import create_database, drop_database, with_database
from tests.support.identity import DevTokens
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.infra

REGION = "SE-AB"


def client(name: str) -> Path:
    """A PostgreSQL client program of the machine's PostgreSQL (the server binaries' folder)."""
    path = localinfra.pg_bin() / name
    assert path.exists(), f"{path}: the PostgreSQL 15 client binaries are needed"
    return path


def run(*args: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr}"
    return result.stdout


def as_role(url: str, role: str, password: str) -> str:
    """`url` (the administrator's) with the role's credentials instead."""
    parts = urlsplit(url)
    netloc = f"{role}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def admin_execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def service_role(infra: Infra) -> AsyncIterator[tuple[str, str]]:
    """A login role like a service's in compose (dropped at the end, after its databases)."""
    role, password = f"r_{uuid.uuid4().hex[:10]}", secrets.token_hex(12)
    await admin_execute(infra.database_url, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    yield role, password
    await admin_execute(infra.database_url, f"DROP ROLE IF EXISTS {role}")


def placement(pid: str) -> dict[str, Any]:
    return {
        "placement_id": pid,
        "company_id": "c-000001",  # the dev user `company`'s
        "region": REGION,
        "capacity": 2,
        "title": f"Placement {pid}",
        "programmes": ["EE"],
        "starts_on": "2027-01-18",
        "ends_on": "2027-03-12",
        "supervisor": {"name": "Supervisor", "email": "handledare@example.se", "language": "sv"},
    }


async def test_a_dump_restored_into_a_new_database_serves_the_same_data(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    service_role: tuple[str, str],
    tmp_path: Path,
) -> None:
    role, password = service_role
    topics = await make_topics()
    tokens = DevTokens(infra.auth_issuer)
    source = await create_database(infra.database_url, "apl_drill")
    restored = with_database(infra.database_url, f"apl_restored_{uuid.uuid4().hex[:10]}")
    restored_name = restored.rpartition("/")[2]
    # what init-roles.sh does for a service, in the source database
    await admin_execute(
        source,
        f"CREATE SCHEMA placements AUTHORIZATION {role}",
        f"GRANT CONNECT ON DATABASE {source.rpartition('/')[2]} TO {role}",
    )
    env = {
        **infra.kafka_env("placements"),
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_AUTH_ISSUER": infra.auth_issuer,
        "APL_ENVIRONMENT": "test",
    }
    created: list[str] = [source]
    try:
        before = ServiceProcess(
            "placements",
            {**env, "APL_PLACEMENTS_DATABASE_URL": as_role(source, role, password)},
            tmp_path / "logs",
            name="placements-source",
        )
        await asyncio.to_thread(before.start, 90)
        try:
            async with httpx.AsyncClient(base_url=before.url, timeout=15) as api:
                posted = await api.post(
                    "/v1/placements",
                    json=placement("p-drill"),
                    headers={"Idempotency-Key": "p-drill"},
                    auth=tokens.auth("company"),
                )
                assert posted.status_code == 201, posted.text
                original = (
                    await api.get("/v1/placements/p-drill", auth=tokens.auth("company"))
                ).json()
        finally:
            await asyncio.to_thread(before.stop)

        # ---- the drill: dump, a new database, restore (as the administrator, owners kept)
        dump = tmp_path / "apl.dump"
        await asyncio.to_thread(run, client("pg_dump"), "-Fc", "-f", dump, "-d", source)
        await admin_execute(infra.database_url, f"CREATE DATABASE {restored_name}")
        created.append(restored)
        await asyncio.to_thread(run, client("pg_restore"), "--exit-on-error", "-d", restored, dump)
        await admin_execute(
            infra.database_url, f"GRANT CONNECT ON DATABASE {restored_name} TO {role}"
        )
        owner = await asyncio.to_thread(
            run,
            client("psql"),
            "-Atc",
            "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'placements'",
            restored,
        )
        assert owner.strip() == role

        # ---- the service on the restored database, as its own role
        after = ServiceProcess(
            "placements",
            {**env, "APL_PLACEMENTS_DATABASE_URL": as_role(restored, role, password)},
            tmp_path / "logs",
            name="placements-restored",
        )
        await asyncio.to_thread(after.start, 90)  # waits for /readyz: database and broker
        try:
            async with httpx.AsyncClient(base_url=after.url, timeout=15) as api:
                ready = await api.get("/readyz")
                assert ready.status_code == 200, ready.text
                again = await api.get("/v1/placements/p-drill", auth=tokens.auth("company"))
                assert again.status_code == 200, again.text
                assert again.json() == original
                # the same write repeated: the restored idempotency record answers it
                repeat = await api.post(
                    "/v1/placements",
                    json=placement("p-drill"),
                    headers={"Idempotency-Key": "p-drill"},
                    auth=tokens.auth("company"),
                )
                assert repeat.status_code == 201, repeat.text
                fresh = await api.post(
                    "/v1/placements",
                    json=placement("p-after"),
                    headers={"Idempotency-Key": "p-after"},
                    auth=tokens.auth("company"),
                )
                assert fresh.status_code == 201, fresh.text
        finally:
            await asyncio.to_thread(after.stop)
        migrated = [
            json.loads(line)
            for line in after.log_path.read_text().splitlines()
            if line.startswith("{") and "migrations applied" in line
        ]
        assert migrated, "no 'migrations applied' line"
        assert migrated[-1]["applied"] == [], "the restored schema was up to date"
    finally:
        for url in created:
            await drop_database(infra.database_url, url)
