"""The match-event subscriber with FastStream's in-memory broker: notices reach the handler,
answers (accepted/declined) do not, poison goes to the DLT."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, TestKafkaBroker

from services.notifications.entrypoints.subscriber import build_router, group_id
from shared.contracts import events as ev
from shared.contracts.topics import Topics, dlt
from shared.kafka import make_broker, publish_event
from tests.support.factories import every_event


async def test_notice_events_reach_the_handler_and_poison_is_dead_lettered() -> None:
    topics = Topics("pfx.")
    broker = make_broker("localhost:9092", "inmemory-notifications")
    handled: list[ev.Event] = []
    dead: list[dict[str, str]] = []

    async def record(event: ev.Event) -> None:
        handled.append(event)

    router, consumer = build_router(broker, topics, record, max_attempts=2)
    broker.include_router(router)

    @broker.subscriber(dlt(topics.matches), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append(message.headers)

    match_events = [e for e in every_event() if e.topic == ev.MatchProposed.topic]
    async with TestKafkaBroker(broker) as br:
        for event in match_events:
            await publish_event(br, topics, event)
        await br.publish(b'{"type": "MatchProposed"}', topics.matches, key=b"SE-AB")
        assert [e.type for e in handled] == ["MatchProposed", "MatchConfirmed", "MatchCancelled"]
        on_dead.mock.assert_called_once()
        assert dead[0]["x-error"].startswith("ContractError")
        assert consumer.dead_letters == 1
        assert consumer.group_id == "pfx.notifications" == group_id(topics)
