"""The two units of work every handler contract of the placements service runs against: the
in-memory fake (`InMemoryTier`) and PostgreSQL in a fresh schema (`PostgresTier`, marked
`infra`). A contract class takes `uow` and `published(uow)` from one of them:

    class TestInMemory(InMemoryTier, SomeContract): ...

    @pytest.mark.infra
    class TestPostgres(PostgresTier, SomeContract): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.placements.adapters.postgres import PostgresPlacementsUnitOfWork, init_connection
from services.placements.bootstrap import MIGRATIONS
from shared.contracts import events as ev
from shared.db import create_pool, migrate
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork


class InMemoryTier:
    @pytest.fixture
    def uow(self) -> InMemoryPlacementsUnitOfWork:
        return InMemoryPlacementsUnitOfWork()

    async def published(self, uow: Any) -> list[ev.Event]:
        """The events the handlers committed, oldest first."""
        fake: InMemoryPlacementsUnitOfWork = uow
        return list(fake.published)


class PostgresTier:
    @pytest.fixture
    async def uow(
        self, database_url: str, fresh_schema: str
    ) -> AsyncIterator[PostgresPlacementsUnitOfWork]:
        await migrate(database_url, fresh_schema, MIGRATIONS)
        pool = await create_pool(
            database_url, fresh_schema, min_size=1, max_size=2, init=init_connection
        )
        try:
            yield PostgresPlacementsUnitOfWork(pool)
        finally:
            await pool.close()

    async def published(self, uow: Any) -> list[ev.Event]:
        """The events in the outbox, oldest first."""
        postgres: PostgresPlacementsUnitOfWork = uow
        async with postgres:
            rows = await postgres.conn.fetch("SELECT topic, payload FROM outbox ORDER BY id")
        return [ev.parse_event(r["topic"], bytes(r["payload"])) for r in rows]
