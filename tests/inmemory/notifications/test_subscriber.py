"""The match- and round-event subscribers with FastStream's in-memory broker and the fake unit of
work: notices are recorded (once) and wake the delivery worker, answers (accepted/declined),
requests, completions and dry runs are neither recorded nor claimed, poison goes to the DLT."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, TestKafkaBroker

from services.notifications.domain.notices import notification_id, student_recipient
from services.notifications.entrypoints.subscribers import build_router
from services.notifications.settings import NotificationsSettings
from shared import runtime
from shared.contracts import events as ev
from shared.contracts.topics import dlt
from shared.kafka import publish_event
from tests.support.factories import every_event
from tests.support.fakes.notifications import (
    InMemoryNotificationsUnitOfWork,
    outcome,
    round_outcomes,
    supplementary_opened,
)

NOTICES = (ev.MatchProposed, ev.MatchConfirmed, ev.MatchCancelled)


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
    notices = [e for e in match_events if isinstance(e, NOTICES)]
    async with TestKafkaBroker(broker) as br:
        for event in match_events:
            await publish_event(br, topics, event)
        await publish_event(br, topics, notices[0])  # a redelivery
        await br.publish(b'{"type": "MatchProposed"}', topics.matches, key=b"SE-AB")

    assert [e.type for e in notices] == ["MatchProposed", "MatchConfirmed", "MatchCancelled"]
    assert uow.inbox == {e.event_id for e in notices}  # answers are not even claimed
    for event, count in zip(notices, [2, 2, 1], strict=True):  # supervisor (and student)
        rows = await uow.notices.of_source(event.event_id)
        assert [r.status for r in rows] == ["pending"] * count
    assert len(uow.notices.rows) == 5
    assert len(wakes) == 3  # not for the duplicate
    [headers] = dead
    assert headers["x-error"].startswith("ContractError")
    assert headers["x-consumer-group"] == "pfx.notifications" == settings.group_id
    assert policy.dead_letters == 1


async def test_round_outcomes_and_openings_are_recorded_requests_and_dry_runs_skipped() -> None:
    settings = NotificationsSettings(
        topic_prefix="pfx.", kafka_bootstrap="localhost:9092", max_attempts=2
    )
    topics = settings.topics
    broker = runtime.broker(settings)
    policy = runtime.policy(settings, broker)
    uow = InMemoryNotificationsUnitOfWork()
    wakes: list[None] = []
    broker.include_router(build_router(settings, policy, lambda: uow, lambda: wakes.append(None)))
    dead: list[dict[str, str]] = []

    @broker.subscriber(dlt(topics.rounds), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append(message.headers)

    others = [e for e in every_event() if e.topic == ev.MatchingRoundRequested.topic]
    others = [
        e for e in others if isinstance(e, ev.MatchingRoundRequested | ev.MatchingRoundCompleted)
    ]
    told = round_outcomes([outcome("s-1"), outcome("s-2", "p-1"), outcome("s-3")])
    dry = round_outcomes([outcome("s-4")], dry_run=True)
    opened = supplementary_opened(["s-1", "s-3"])
    async with TestKafkaBroker(broker) as br:
        for event in [*others, told, dry, opened, told]:  # and a redelivery
            await publish_event(br, topics, event)
        await br.publish(b'{"type": "SupplementaryRoundOpened"}', topics.rounds, key=b"SE-AB")

    assert others  # the requests and completions were published too
    assert uow.inbox == {told.event_id, opened.event_id}  # the rest are not even claimed
    assert [r.student_id for r in await uow.notices.of_source(told.event_id)] == sorted(
        ["s-1", "s-3"], key=lambda s: notification_id(told.event_id, student_recipient(s))
    )
    assert len(await uow.notices.of_source(opened.event_id)) == 2
    assert len(uow.notices.rows) == 4
    assert len(wakes) == 2
    [headers] = dead
    assert headers["x-error"].startswith("ContractError")
