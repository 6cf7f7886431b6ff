"""The match-event subscriber with FastStream's in-memory broker and the fake unit of work:
notices are recorded (once) and wake the delivery worker, answers (accepted/declined) are
neither recorded nor claimed, poison goes to the DLT."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, TestKafkaBroker

from services.notifications.entrypoints.subscribers import build_router
from services.notifications.settings import NotificationsSettings
from shared import runtime
from shared.contracts import events as ev
from shared.contracts.topics import dlt
from shared.kafka import publish_event
from tests.support.factories import every_event
from tests.support.fakes.notifications import InMemoryNotificationsUnitOfWork


async def test_notices_are_recorded_once_answers_skipped_and_poison_dead_lettered() -> None:
    settings = NotificationsSettings(
        topic_prefix="pfx.", kafka_bootstrap="localhost:9092", max_attempts=2, consumer_batch=7
    )
    topics = settings.topics
    broker = runtime.broker(settings)
    policy = runtime.policy(settings, broker)
    uow = InMemoryNotificationsUnitOfWork()
    wakes: list[None] = []
    broker.include_router(build_router(settings, policy, lambda: uow, lambda: wakes.append(None)))
    dead: list[dict[str, str]] = []

    @broker.subscriber(dlt(topics.matches), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append(message.headers)

    match_events = [e for e in every_event() if e.topic == ev.MatchProposed.topic]
    notices = [e for e in match_events if not isinstance(e, ev.MatchAccepted | ev.MatchDeclined)]
    async with TestKafkaBroker(broker) as br:
        for event in match_events:
            await publish_event(br, topics, event)
        await publish_event(br, topics, notices[0])  # a redelivery
        await br.publish(b'{"type": "MatchProposed"}', topics.matches, key=b"SE-AB")

    assert [e.type for e in notices] == ["MatchProposed", "MatchConfirmed", "MatchCancelled"]
    assert uow.inbox == {e.event_id for e in notices}  # answers are not even claimed
    for event in notices:
        [row] = await uow.notices.of_source(event.event_id)
        assert row.status == "pending"
    assert len(uow.notices.rows) == 3
    assert len(wakes) == 3  # not for the duplicate
    [headers] = dead
    assert headers["x-error"].startswith("ContractError")
    assert headers["x-consumer-group"] == "pfx.notifications" == settings.group_id
    assert policy.dead_letters == 1
