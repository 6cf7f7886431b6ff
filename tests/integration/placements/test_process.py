"""`apl serve placements` as a real OS process: it migrates, serves, survives SIGKILL without
losing a committed event, and stops cleanly (status 0) on SIGTERM. It trusts the local Keycloak
(`infra.auth_issuer`), and the test signs in there as a coordinator of SE-AB."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from devtools.auth import DEV_PASSWORD, password_token
from shared.contracts.topics import Topics
from tests.integration.placements.conftest import consume
from tests.integration.placements.test_api import placement_body
from tests.support.databases import create_database, drop_database
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.infra


@pytest.fixture
async def own_database(infra: Infra) -> AsyncIterator[str]:
    """A database of its own, so this process's relay is the only one on its schema."""
    url = await create_database(infra.database_url, "apl_test_pl")
    yield url
    await drop_database(infra.database_url, url)


async def test_service_process_keeps_committed_events_across_a_kill(
    infra: Infra,
    own_database: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    issuer = infra.auth_issuer
    token = await asyncio.to_thread(password_token, issuer, "coordinator-se-ab", DEV_PASSWORD)
    signed_in = {"Authorization": f"Bearer {token}"}
    env = {
        **infra.kafka_env("placements"),
        "APL_PLACEMENTS_DATABASE_URL": own_database,
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_PLACEMENTS_TOPIC_PREFIX": topics.prefix,
        "APL_AUTH_ISSUER": issuer,
    }
    service = ServiceProcess("placements", env, tmp_path)
    service.start()
    try:
        first, second = f"p-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            anonymous = await client.post("/v1/placements", json=placement_body(first))
            assert anonymous.status_code == 401, anonymous.text
            r = await client.post("/v1/placements", json=placement_body(first), headers=signed_in)
            assert r.status_code == 201, r.text
        assert service.proc is not None
        killed = service.proc
        service.kill()  # whether or not the relay got to it, the event is in the outbox
        assert killed.returncode == -signal.SIGKILL, service.tail()
        service.start()
        assert service.proc is not killed
        assert service.proc.poll() is None
        assert service.starts == 2
        async with httpx.AsyncClient(base_url=service.url, timeout=10, headers=signed_in) as client:
            r = await client.post("/v1/placements", json=placement_body(second))
            assert r.status_code == 201, r.text
            assert (await client.get(f"/v1/placements/{first}")).status_code == 200

        def both(values: list[dict[str, object]]) -> bool:
            ids = {v["data"]["placement_id"] for v in values}  # type: ignore[index]
            return {first, second} <= ids

        values = await consume(infra.kafka, topics.placements, both)
        assert both(values), service.tail()
        service.stop()
        assert service.proc.returncode == 0, service.tail()  # SIGTERM: a clean exit
    finally:
        service.stop()
