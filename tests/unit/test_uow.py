"""The shared in-memory unit of work stamps its actor on the events it publishes."""

from __future__ import annotations

from services.matching.bootstrap import build as build_matching
from services.matching.settings import MatchingSettings
from services.notifications.bootstrap import build as build_notifications
from services.notifications.settings import NotificationsSettings
from shared.contracts import events as ev
from shared.uow import InMemoryUnitOfWork, stamped, system_actor
from tests.support.factories import every_event

ACTOR = ev.Actor(subject="sub-1", role="company", client="apl-web")


async def test_published_events_carry_the_actor_unless_they_name_one() -> None:
    own = ev.Actor(subject="matching", role="service", client="apl-matching")
    first, second = every_event()[:2]
    uow = InMemoryUnitOfWork(actor=ACTOR)
    async with uow:
        await uow.publish([first, second.by(own)])
    assert [e.actor for e in uow.published] == [ACTOR, own]
    assert [e.event_id for e in uow.published] == [first.event_id, second.event_id]


async def test_without_an_actor_events_are_left_as_they_are() -> None:
    event = every_event()[0]
    uow = InMemoryUnitOfWork()
    async with uow:
        await uow.publish([event])
    assert uow.published == [event]
    assert uow.published[0].actor is None
    assert stamped([event], None) == [event]


def test_the_services_own_events_name_the_system_as_their_actor() -> None:
    kafka, database = "localhost:9092", "postgresql://unused/apl"
    matching = build_matching(MatchingSettings(kafka_bootstrap=kafka, database_url=database))
    notifications = build_notifications(
        NotificationsSettings(kafka_bootstrap=kafka, database_url=database)
    )
    assert matching.uow().actor == system_actor("matching")
    assert notifications.uow().actor == system_actor("notifications")
    assert system_actor("matching") == ev.Actor(
        subject="service:matching", role="system", client="apl-matching"
    )
