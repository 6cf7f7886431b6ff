"""Every batch subscriber of the three services polls with the project's short wait
(`shared.kafka.BATCH_WAIT_MS`), not faststream's 200 ms: after a poll that found nothing,
faststream sleeps as long again, and a record reaching an idle subscriber waited that long."""

from __future__ import annotations

from typing import Any

from services.matching.bootstrap import build as build_matching
from services.matching.settings import MatchingSettings
from services.notifications.bootstrap import build as build_notifications
from services.notifications.settings import NotificationsSettings
from services.placements.bootstrap import build as build_placements
from services.placements.settings import PlacementsSettings
from shared.kafka import BATCH_WAIT_MS
from tests.support.fakes.matching import InMemoryMatchingUnitOfWork
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork

FASTSTREAM_DEFAULT_MS = 200


def _batch_waits(subscribers: Any) -> dict[str, int]:
    """Each batch subscriber's topics and poll wait."""
    return {
        ",".join(sub.topic_names): sub.batch_timeout_ms
        for sub in subscribers
        if hasattr(sub, "batch_timeout_ms")
    }


def test_every_batch_subscriber_polls_with_the_short_wait() -> None:
    assert BATCH_WAIT_MS < FASTSTREAM_DEFAULT_MS
    brokers = {
        "matching": build_matching(
            MatchingSettings(environment="test", topic_prefix="w."),
            unit_of_work=InMemoryMatchingUnitOfWork,
        ).broker,
        "placements": build_placements(
            PlacementsSettings(environment="test", topic_prefix="w."),
            unit_of_work=InMemoryPlacementsUnitOfWork,
        ).broker,
        "notifications": build_notifications(
            NotificationsSettings(environment="test", topic_prefix="w.")
        ).broker,
    }
    for service, broker in brokers.items():
        waits = _batch_waits(broker.subscribers)
        assert waits, f"{service} has no batch subscriber"
        assert set(waits.values()) == {BATCH_WAIT_MS}, (service, waits)
