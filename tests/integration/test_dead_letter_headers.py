"""Dead letters on the real broker carry their error as one line, not a traceback; the trace
goes to the log with the record's coordinates."""

from __future__ import annotations

import asyncio
import traceback
import uuid

import pytest
import structlog
from faststream.kafka import KafkaRouter

from shared.contracts import events as ev
from shared.contracts.events import PlacementPosted
from shared.contracts.topics import Topics, dlt
from shared.kafka import EventPolicy, make_broker, publish_event, subscriber_options
from tests.support.factories import placement
from tests.support.infra import Infra
from tests.support.kafka import read_records

pytestmark = pytest.mark.infra


def _failing() -> RuntimeError:
    """An error whose message carries a whole traceback below its first line."""
    try:
        raise ValueError("deep down")
    except ValueError:
        return RuntimeError(f"cannot apply this placement\n{traceback.format_exc()}")


async def test_a_dead_letter_says_its_error_in_one_line(infra: Infra, topics: Topics) -> None:
    broker = make_broker(infra.kafka, "test-dlt-headers")
    policy = EventPolicy(
        broker, topics, group_id=f"g-{uuid.uuid4().hex[:6]}", max_attempts=2, backoff_initial=0.01
    )
    router = KafkaRouter(middlewares=[policy.middleware])
    done = asyncio.Event()

    @router.subscriber(
        topics.placements,
        decoder=policy.decode,
        **subscriber_options(policy.group_id, session_timeout_ms=6000),
    )
    async def on_placement(event: ev.PlacementEvent) -> None:
        assert isinstance(event, PlacementPosted)
        if event.data.placement_id == "p-after":
            done.set()
            return
        raise _failing()

    broker.include_router(router)
    with structlog.testing.capture_logs() as logs:
        async with broker:
            await broker.start()
            await publish_event(
                broker, topics, PlacementPosted(producer="placements", data=placement("p-x"))
            )
            await publish_event(
                broker, topics, PlacementPosted(producer="placements", data=placement("p-after"))
            )
            await asyncio.wait_for(done.wait(), 60)
    [letter] = await read_records(
        infra.kafka, dlt(topics.placements), until=lambda got: len(got) >= 1
    )
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["x-error"] == "RuntimeError: cannot apply this placement"
    assert headers["x-error-type"] == "RuntimeError"
    assert not any("Traceback" in value or "\n" in value for value in headers.values())
    [logged] = [e for e in logs if e["event"] == "event dead-lettered"]
    assert isinstance(logged["exc_info"], RuntimeError)  # the trace is the log's
    assert "deep down" in str(logged["exc_info"])
    assert str(logged["offset"]) == headers["x-original-offset"]
    assert str(logged["partition"]) == headers["x-original-partition"]
