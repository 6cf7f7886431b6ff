"""Message flow through `EventPolicy` with FastStream's in-memory `TestKafkaBroker`: typed
subscribers, dead letters for contract violations and for handlers that keep failing, one record
at a time in a batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, KafkaRouter, TestKafkaBroker

from shared.contracts import events as ev
from shared.contracts.topics import Topics, dlt
from shared.kafka import EventPolicy, make_broker, publish_event, subscriber_options
from shared.kafka_client import KafkaConnection
from tests.support.factories import placement

Handle = Callable[[ev.Event], Awaitable[None]]


def _wire(
    handle: Handle,
    on_dead_letter: Handle | None = None,
    *,
    batch: bool = False,
    transient: tuple[type[BaseException], ...] = (ConnectionError,),
) -> tuple[KafkaBroker, EventPolicy, Any]:
    """A broker whose typed placements subscriber calls `handle` through the policy, and a
    watcher of the dead-letter topic (its `.mock` records the calls)."""
    topics = Topics()
    broker = make_broker(KafkaConnection("localhost:9092"), "inmemory")
    policy = EventPolicy(
        broker,
        topics,
        group_id="g",
        max_attempts=2,
        backoff_initial=0.001,
        transient=transient,
        on_dead_letter=on_dead_letter,
    )
    router = KafkaRouter(middlewares=[policy.middleware])
    if batch:

        @router.subscriber(
            topics.placements, decoder=policy.decode, batch=True, **subscriber_options("g")
        )
        async def on_placements(events: list[ev.PlacementEvent]) -> None:
            for event in events:
                await handle(event)

    else:

        @router.subscriber(topics.placements, decoder=policy.decode, **subscriber_options("g"))
        async def on_placement(event: ev.PlacementEvent) -> None:
            await handle(event)

    broker.include_router(router)

    @broker.subscriber(dlt(topics.placements), group_id="dlt-watch")
    async def on_dead(message: Any) -> None:
        pass

    return broker, policy, on_dead


async def test_valid_event_reaches_the_typed_handler_and_malformed_goes_to_dlt() -> None:
    handled: list[ev.Event] = []

    async def handle(event: ev.Event) -> None:
        handled.append(event)

    broker, policy, on_dead = _wire(handle)
    async with TestKafkaBroker(broker) as br:
        event = ev.PlacementPosted(producer="placements", data=placement())
        await publish_event(br, policy.topics, event)
        await br.publish(b"{broken", policy.topics.placements, key=b"SE-AB")
        assert handled == [event]
        assert isinstance(handled[0], ev.PlacementPosted)
        on_dead.mock.assert_called_once()
        assert policy.dead_letters == 1


async def test_a_failing_handler_is_retried_then_dead_lettered_and_the_hook_hears_of_it() -> None:
    heard: list[ev.Event] = []
    calls: list[ev.Event] = []

    async def hear(event: ev.Event) -> None:
        heard.append(event)

    async def refuse(event: ev.Event) -> None:
        calls.append(event)
        raise ValueError("never")

    broker, policy, _ = _wire(refuse, on_dead_letter=hear)
    async with TestKafkaBroker(broker) as br:
        event = ev.PlacementPosted(producer="placements", data=placement())
        await publish_event(br, policy.topics, event)
        await br.publish(b"{broken", policy.topics.placements, key=b"SE-AB")
        assert policy.dead_letters == 2
        assert calls == [event, event]  # max_attempts = 2
        assert heard == [event]  # the malformed message has no trustworthy event


async def test_in_a_batch_each_record_has_its_own_dead_letter() -> None:
    handled: list[str] = []

    async def handle(event: ev.Event) -> None:
        assert isinstance(event, ev.PlacementPosted)
        if event.data.placement_id == "p-explodes":
            raise RuntimeError("cannot apply")
        handled.append(event.data.placement_id)

    broker, policy, on_dead = _wire(handle, batch=True)
    async with TestKafkaBroker(broker) as br:
        events = [
            ev.PlacementPosted(producer="placements", data=placement(pid))
            for pid in ("p-1", "p-explodes", "p-2")
        ]
        await br.publish_batch(
            *[e.to_json() for e in events], b"{broken", topic=policy.topics.placements
        )
        assert handled == ["p-1", "p-2"]
        assert policy.dead_letters == 2
        assert on_dead.mock.call_count == 2


async def test_a_transient_error_escapes_and_nothing_is_dead_lettered() -> None:
    async def outage(event: ev.Event) -> None:
        raise ConnectionError("database down")

    broker, policy, on_dead = _wire(outage)
    async with TestKafkaBroker(broker) as br:
        event = ev.PlacementPosted(producer="placements", data=placement())
        with pytest.raises(ConnectionError):  # the in-memory broker hands the nack's cause back
            await publish_event(br, policy.topics, event)
        assert policy.dead_letters == 0
        on_dead.mock.assert_not_called()


def _whole(
    handle: Callable[[list[ev.Event]], Awaitable[None]],
) -> tuple[KafkaBroker, EventPolicy, Any]:
    """A broker whose batch subscriber gets a poll's records at once (`whole_batches`), and a
    watcher of the dead-letter topic."""
    topics = Topics()
    broker = make_broker(KafkaConnection("localhost:9092"), "inmemory")
    policy = EventPolicy(
        broker, topics, group_id="g", max_attempts=2, backoff_initial=0.001, whole_batches=True
    )
    router = KafkaRouter(middlewares=[policy.middleware])

    @router.subscriber(
        topics.placements, decoder=policy.decode, batch=True, **subscriber_options("g")
    )
    async def on_placements(events: list[ev.PlacementEvent]) -> None:
        await handle(list(events))

    broker.include_router(router)

    @broker.subscriber(dlt(topics.placements), group_id="dlt-watch")
    async def on_dead(message: Any) -> None:
        pass

    return broker, policy, on_dead


def _posted(*ids: str) -> list[ev.Event]:
    return [ev.PlacementPosted(producer="placements", data=placement(pid)) for pid in ids]


async def test_whole_batches_reach_the_subscriber_in_one_call() -> None:
    calls: list[list[ev.Event]] = []

    async def handle(events: list[ev.Event]) -> None:
        calls.append(events)

    broker, policy, on_dead = _whole(handle)
    async with TestKafkaBroker(broker) as br:
        events = _posted("p-1", "p-2", "p-3")
        await br.publish_batch(*[e.to_json() for e in events], topic=policy.topics.placements)
        assert calls == [events]  # one call: one transaction for the batch
        on_dead.mock.assert_not_called()


async def test_a_failing_whole_batch_is_split_and_only_the_bad_record_dead_lettered() -> None:
    calls: list[list[str]] = []
    applied: list[str] = []

    async def handle(events: list[ev.Event]) -> None:
        ids = [e.data.placement_id for e in events if isinstance(e, ev.PlacementPosted)]
        calls.append(ids)
        if "p-explodes" in ids:
            raise RuntimeError("cannot apply")  # a transaction would roll the batch back
        applied.extend(ids)

    broker, policy, on_dead = _whole(handle)
    async with TestKafkaBroker(broker) as br:
        events = _posted("p-1", "p-explodes", "p-2")
        await br.publish_batch(*[e.to_json() for e in events], topic=policy.topics.placements)
        # the whole batch once, then each record on its own (the bad one max_attempts times)
        assert calls == [
            ["p-1", "p-explodes", "p-2"],
            ["p-1"],
            ["p-explodes"],
            ["p-explodes"],
            ["p-2"],
        ]
        assert applied == ["p-1", "p-2"]
        assert policy.dead_letters == 1
        on_dead.mock.assert_called_once()


async def test_a_whole_batch_with_a_malformed_record_is_handled_record_by_record() -> None:
    calls: list[list[ev.Event]] = []

    async def handle(events: list[ev.Event]) -> None:
        calls.append(events)

    broker, policy, on_dead = _whole(handle)
    async with TestKafkaBroker(broker) as br:
        events = _posted("p-1", "p-2")
        await br.publish_batch(
            events[0].to_json(), b"{broken", events[1].to_json(), topic=policy.topics.placements
        )
        assert calls == [[events[0]], [events[1]]]
        on_dead.mock.assert_called_once()
        assert policy.dead_letters == 1


async def test_a_transient_error_in_a_whole_batch_rewinds_it() -> None:
    async def outage(events: list[ev.Event]) -> None:
        raise ConnectionError("database down")

    broker, policy, on_dead = _whole(outage)
    async with TestKafkaBroker(broker) as br:
        with pytest.raises(ConnectionError):
            await br.publish_batch(
                *[e.to_json() for e in _posted("p-1", "p-2")], topic=policy.topics.placements
            )
        assert policy.dead_letters == 0
        on_dead.mock.assert_not_called()
