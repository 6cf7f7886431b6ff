"""Events about ids the placements service does not know are counted and logged, and leave no
state: a cancellation of a match never proposed (nor assigned) here, a confirmation of one. The
same tests against the in-memory fake and (marked infra) real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.placements import handlers
from shared.contracts import events as ev
from shared.metrics import METRICS
from tests.handlers.placements.test_handlers import post
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier


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

    async def test_a_confirmation_of_a_match_never_proposed_changes_nothing(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        before = counted("MatchConfirmed")
        confirmed = ev.MatchConfirmed(producer="matching", data=ev.MatchConfirmedData(**ids()))
        assert await handlers.apply_match_confirmed(confirmed, uow)
        assert await handlers.placement_matches("p-1", uow) == []
        assert counted("MatchConfirmed") == before + 1


class TestInMemory(InMemoryTier, UnknownIdContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, UnknownIdContract):
    pass
