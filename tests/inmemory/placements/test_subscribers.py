"""The placements subscribers on FastStream's in-memory TestKafkaBroker, over the in-memory unit
of work: typed events reach their handlers once, poison and failing events are dead-lettered."""

from __future__ import annotations

import uuid
from typing import Any

from faststream.kafka import KafkaMessage, TestKafkaBroker

from services.placements.bootstrap import build
from services.placements.settings import PlacementsSettings
from shared.contracts import events as ev
from shared.contracts.topics import MATCHES, ROUNDS, dlt
from shared.kafka import publish_event
from tests.support.factories import every_event
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork


def settings(prefix: str) -> PlacementsSettings:
    return PlacementsSettings(environment="test", topic_prefix=prefix, max_attempts=1)


def test_the_group_is_the_prefixed_service_name() -> None:
    container = build(settings("mem0."), unit_of_work=InMemoryPlacementsUnitOfWork)
    subscribers: list[Any] = list(container.broker.subscribers)
    groups = {sub.group_id for sub in subscribers}
    topics = {name for sub in subscribers for name in sub.topic_names}
    assert groups == {"mem0.placements.matches", "mem0.placements.rounds"}  # one group each
    assert all(g.startswith(f"{container.settings.group_id}.") for g in groups)
    assert topics == {"mem0.apl.matches.v1", "mem0.apl.rounds.v1"}  # never its own topics


async def test_match_and_round_events_are_applied_once_and_poison_goes_to_dlt() -> None:
    fake = InMemoryPlacementsUnitOfWork()
    container = build(settings("mem."), unit_of_work=lambda: fake)
    topics = container.settings.topics
    dead: list[bytes] = []

    @container.broker.subscriber(dlt(topics.matches), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append(message.body)

    consumed = [e for e in every_event() if e.topic in {MATCHES, ROUNDS}]
    assert {e.type for e in consumed} == set(ev.types_of(MATCHES)) | set(ev.types_of(ROUNDS))
    async with TestKafkaBroker(container.broker) as broker:
        for event in [*consumed, consumed[0]]:  # the first one twice
            await publish_event(broker, topics, event)
        await broker.publish(b'{"type": "MatchProposed"}', topics.matches, key=b"SE-AB")

    assert fake.inbox == {e.event_id for e in consumed}
    assert fake.commits == len(consumed) + 1  # the duplicate's block commits, changing nothing
    proposed = next(e for e in consumed if isinstance(e, ev.MatchProposed))
    match = fake.match_rows[proposed.data.match_id]
    assert (match.state, match.reason) == ("cancelled", "superseded")  # the last match event
    completed = next(e for e in consumed if isinstance(e, ev.MatchingRoundCompleted))
    assert fake.round_rows[completed.data.round_id].status == "completed"
    part = next(e for e in consumed if isinstance(e, ev.MatchingRoundOutcomes))
    assert set(fake.outcome_rows) == {
        (part.data.round_id, o.student_id) for o in part.data.outcomes
    }
    assert fake.round_rows[part.data.round_id].parts_received == 1
    assert dead == [b'{"type": "MatchProposed"}']
    assert fake.published == []


async def test_an_event_from_anyone_but_its_topics_owner_is_dead_lettered_unapplied() -> None:
    fake = InMemoryPlacementsUnitOfWork()
    container = build(settings("mem3."), unit_of_work=lambda: fake)
    topics = container.settings.topics
    dead: list[tuple[bytes, str]] = []

    @container.broker.subscriber(dlt(topics.matches), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers["x-error"]))

    real = next(e for e in every_event() if isinstance(e, ev.MatchProposed))
    forged = real.model_copy(update={"producer": "probeA", "event_id": uuid.uuid4()})
    async with TestKafkaBroker(container.broker) as broker:
        await publish_event(broker, topics, forged)
    assert dead == [
        (
            forged.to_json(),
            "ContractError: producer: 'probeA' does not write apl.matches.v1 (its only "
            "producer is 'matching')",
        )
    ]
    assert fake.match_rows == {}
    assert fake.inbox == set()


class _Failing(InMemoryPlacementsUnitOfWork):
    async def claim(self, event: ev.Event) -> bool:
        raise ValueError("cannot apply")


async def test_a_handler_that_keeps_failing_dead_letters_the_event() -> None:
    fake = _Failing()
    container = build(settings("mem2."), unit_of_work=lambda: fake)
    topics = container.settings.topics
    dead: list[bytes] = []

    @container.broker.subscriber(dlt(topics.rounds), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append(message.body)

    event = next(e for e in every_event() if isinstance(e, ev.MatchingRoundCompleted))
    async with TestKafkaBroker(container.broker) as broker:
        await publish_event(broker, topics, event)
    assert dead == [event.to_json()]
    assert fake.round_rows == {}
    assert container.policy.dead_letters == 1
