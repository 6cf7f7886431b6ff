"""Fixtures shared by every tier.

`infra` gives the real Kafka (its admin principal and each service's own, SASL/SCRAM with ACLs)
and an admin PostgreSQL URL (see `tests/support/infra.py`). Each test session works in a database
of its own (created here and dropped afterwards) and under a topic prefix of its own, so runs
never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from shared.contracts.topics import Topics
from shared.kafka import delete_topics, ensure_topics
from tests.support.databases import create_database, drop_database
from tests.support.infra import Infra, provide_infra


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test has a node id of its own, or the run stops. pytest-xdist schedules tests by
    node id, so tests sharing one run once between them and the run still passes: with pytest
    9.2, schemathesis' items (one per API operation, tests/integration/placements/test_fuzz.py)
    all got their function's id, and under `--dist loadfile` 1 of the 44 ran (pyproject.toml
    keeps pytest below 9.2 for it)."""
    shared = sorted(n for n, c in Counter(item.nodeid for item in items).items() if c > 1)
    if shared:
        raise pytest.UsageError(f"tests sharing a node id (xdist would run one): {shared[:5]}")


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    if os.environ.get("APL_TESTS_NO_INFRA"):
        # `make test-unit`: the fast tier must not need Kafka or PostgreSQL, nor start them.
        pytest.fail("this test needs Kafka and PostgreSQL, which the unit tier never starts")
    with provide_infra() as given:
        yield given


@pytest.fixture(scope="session")
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A fresh database for this test session on the real server."""
    url = await create_database(infra.database_url)
    yield url
    await drop_database(infra.database_url, url)


@pytest.fixture
async def fresh_schema(database_url: str) -> AsyncIterator[str]:
    """A schema name no other test uses (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    yield schema
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def make_topics(infra: Infra) -> AsyncIterator[Callable[[], Awaitable[Topics]]]:
    """Create the contract's topics under a new prefix, and each service's ACLs on them;
    returns the `Topics` naming them.

    They are deleted when the session ends: every set is 120 partitions, and a broker that keeps
    them all runs out of file handles after a few dozen runs."""
    made: list[Topics] = []

    async def make() -> Topics:
        topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")
        await ensure_topics(infra.kafka, topics, usernames=infra.kafka_usernames)
        made.append(topics)
        return topics

    yield make
    for topics in made:
        await delete_topics(infra.kafka, topics, usernames=infra.kafka_usernames)


@pytest.fixture
async def topics(make_topics: Callable[[], Awaitable[Topics]]) -> Topics:
    return await make_topics()
