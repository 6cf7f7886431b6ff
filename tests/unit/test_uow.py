"""The shared in-memory unit of work stamps its actor on the events it publishes."""

from __future__ import annotations

from shared.contracts import events as ev
from shared.uow import InMemoryUnitOfWork, stamped
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
