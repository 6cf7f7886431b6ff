"""Events about ids the placements service does not know are counted and logged, and leave no
state: a cancellation of a match never proposed (nor assigned) here, an answer to one. The
same tests against the in-memory fake and (marked infra) real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.placements import handlers
from services.placements.adapters.postgres import PostgresPlacementsUnitOfWork, init_connection
from services.placements.bootstrap import MIGRATIONS
from shared.contracts import events as ev
from shared.db import create_pool, migrate
from shared.metrics import METRICS
from tests.handlers.placements.test_handlers import post
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork


def counted(event_type: str) -> float:
    labels = {"topic": "apl.matches.v1", "event_type": event_type, "field": "match_id"}
    return METRICS.registry.get_sample_value("apl_events_unknown_ids_total", labels) or 0.0


def ids(pid: str = "p-1") -> dict[str, Any]:
    return {"match_id": uuid.uuid4(), "region": "SE-AB", "student_id": "s-1", "placement_id": pid}


class UnknownIdContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def test_a_cancellation_of_a_match_never_proposed_leaves_nothing(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        before = counted("MatchCancelled")
        cancel = ev.MatchCancelled(
            producer="matching", data=ev.MatchCancelledData(**ids(), reason="superseded")
        )
        assert await handlers.apply_match_cancelled(cancel, uow)
        assert not await handlers.apply_match_cancelled(cancel, uow)  # claimed: a duplicate
        assert await handlers.placement_matches("p-1", uow) == []
        assert counted("MatchCancelled") == before + 1

    async def test_answers_to_a_match_never_proposed_change_nothing(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        before = counted("MatchAccepted"), counted("MatchConfirmed")
        accepted = ev.MatchAccepted(
            producer="placements", data=ev.MatchAcceptedData(**ids(), by="company")
        )
        confirmed = ev.MatchConfirmed(producer="matching", data=ev.MatchConfirmedData(**ids()))
        assert await handlers.apply_match_accepted(accepted, uow)
        assert await handlers.apply_match_confirmed(confirmed, uow)
        assert await handlers.placement_matches("p-1", uow) == []
        assert (counted("MatchAccepted"), counted("MatchConfirmed")) == (
            before[0] + 1,
            before[1] + 1,
        )


class TestInMemory(UnknownIdContract):
    @pytest.fixture
    def uow(self) -> InMemoryPlacementsUnitOfWork:
        return InMemoryPlacementsUnitOfWork()


@pytest.mark.infra
class TestPostgres(UnknownIdContract):
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
